import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../../deps.js';
import { deleteRoutes } from './delete.js';
import { downloadRoutes } from './download.js';
import { createHitRecorder } from './hits.js';
import { listRoutes } from './list.js';
import { uploadRoutes } from './upload.js';

/** /api/storage/*: upload, download, delete and list an account's objects (seed Part 2, storage/). */
export async function storageRoutes(app: FastifyInstance, options: { deps: AppDeps }): Promise<void> {
  const { deps } = options;
  const hits = createHitRecorder(deps.db, deps.logger);
  // Hits still being written finish before the database pool closes behind the listener.
  app.addHook('onClose', async () => hits.settled());

  // Its own scope: the form parser applies to the upload only.
  await app.register(uploadRoutes, { deps });
  await app.register(downloadRoutes, { deps, hits });
  await app.register(deleteRoutes, { deps });
  await app.register(listRoutes, { deps });
}
