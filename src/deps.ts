import type { Logger } from 'pino';
import type { KeyStore } from './auth/key-store.js';
import type { Backend } from './backend/backend.js';
import type { ReadyConfig } from './config.js';
import type { Db } from './db/index.js';

/** What the app builders need; main.ts opens them, tests pass their own. */
export interface AppDeps {
  config: ReadyConfig;
  db: Db;
  backend: Backend;
  logger: Logger;
  /** Access key -> account and secrets; one per process so admin changes invalidate what requests read. */
  keys: KeyStore;
}
