import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.js';
import type { Backend } from './backend.js';
import { createFsBackend } from './fs.js';
import { createS3Backend, type S3BackendOptions } from './s3.js';

export * from './backend.js';

/**
 * Opens the configured backend. The fs backend's folder is named after the base bucket, so the same
 * `users/<id>/...` keys work on both. An s3 bucket must already exist: see ensureBucket in s3.ts.
 */
export async function openBackend(config: Config, options: { logger?: S3BackendOptions['logger'] } = {}): Promise<Backend> {
  if (config.storageBackend === 's3') {
    if (!config.s3) throw new Error('STORAGE_BACKEND is s3 but the LYVE_* settings are missing');
    return createS3Backend(config.s3, { logger: options.logger });
  }
  const root = path.join(config.dataDir, 'objects', config.bucketName);
  await mkdir(root, { recursive: true, mode: 0o700 });
  return createFsBackend({ root });
}
