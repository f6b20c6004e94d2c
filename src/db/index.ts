import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import type { Config } from '../config.js';
import type { Db } from './db.js';
import { openPostgres } from './postgres.js';
import { openPglite } from './pglite.js';

export type { Db, Queryable, QueryResult, Row } from './db.js';
export { migrate } from './migrate.js';

/** PostgreSQL when DATABASE_URL is set, else embedded PGlite under DATA_DIR/pg. */
export async function openDb(
  config: Pick<Config, 'databaseUrl' | 'dataDir'> & Partial<Pick<Config, 'database'>>,
  onError?: (error: Error) => void,
): Promise<Db> {
  if (config.databaseUrl) {
    return openPostgres({
      connectionString: config.databaseUrl,
      ...(config.database && { connectTimeoutMs: config.database.connectTimeoutMs, queryTimeoutMs: config.database.queryTimeoutMs }),
      ...(onError ? { onError } : {}),
    });
  }
  const dir = path.join(config.dataDir, 'pg');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return openPglite(dir);
}
