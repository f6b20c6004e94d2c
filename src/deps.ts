import type { Logger } from 'pino';
import type { KeyStore } from './auth/key-store.js';
import type { Backend } from './backend/backend.js';
import type { ReadyConfig } from './config.js';
import type { Db } from './db/index.js';
import type { JettySpeedProbe } from './jettyspeed.js';
import type { RequestLog } from './observability/request-log.js';
import type { RateLimits } from './quota/rate-limit.js';
import type { BandwidthMeter } from './quota/bandwidth.js';

/** What the app builders need; main.ts opens them, tests pass their own. */
export interface AppDeps {
  config: ReadyConfig;
  db: Db;
  backend: Backend;
  logger: Logger;
  /** Access key -> account and secrets; one per process so admin changes invalidate what requests read. */
  keys: KeyStore;
  /** api_requests writer: buffered, bounded, never makes a request wait. */
  requestLog: RequestLog;
  /** Request counters per account and per client address, shared by every process unless kept in memory. */
  rateLimits: RateLimits;
  /** Downloads' bytes against the monthly bandwidth quota, counted in memory and written at least every second. */
  bandwidth: BandwidthMeter;
  /** Whether JettySpeed answered its last health probe; downloads are sent there only while it did. */
  jettySpeed: JettySpeedProbe;
}
