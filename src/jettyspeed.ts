import type { Logger } from 'pino';
import { uriEncode } from './auth/canonical.js';

/**
 * JettySpeed, the CDN in front of the backend bucket (JETTYSPEED_CDN_URL). Downloads are sent there only
 * while it is known to be up: a background probe asks `GET <cdn>/health` every interval, and the endpoint
 * counts as healthy only after a 2xx within the timeout. Requests read the last answer and never wait
 * on the CDN, so a slow or dead JettySpeed costs a user nothing but the faster path.
 */

export interface JettySpeedProbe {
  /** True while the last probe answered 2xx in time; false before the first answer and when disabled. */
  healthy(): boolean;
  /** Stops probing and waits for a probe in flight to give up. */
  stop(): Promise<void>;
}

export interface JettySpeedProbeOptions {
  /** null, or enabled false: nothing is probed and healthy() is always false. */
  cdnUrl: string | null;
  enabled: boolean;
  intervalMs: number;
  timeoutMs: number;
  logger: Pick<Logger, 'info' | 'warn'>;
}

const DISABLED: JettySpeedProbe = { healthy: () => false, stop: async () => undefined };

export function startJettySpeedProbe(options: JettySpeedProbeOptions): JettySpeedProbe {
  const { cdnUrl, intervalMs, timeoutMs, logger } = options;
  if (!options.enabled || cdnUrl === null) return DISABLED;
  const healthUrl = `${cdnUrl}/health`;
  const stopping = new AbortController();
  let healthy = false;
  let answered = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;

  async function probe(): Promise<void> {
    let answeredOk = false;
    let reason: string;
    try {
      const response = await fetch(healthUrl, { redirect: 'manual', signal: AbortSignal.any([stopping.signal, AbortSignal.timeout(timeoutMs)]) });
      // The body is not needed; cancelling it frees the connection.
      await response.body?.cancel().catch(() => undefined);
      answeredOk = response.status >= 200 && response.status < 300;
      reason = `answered ${response.status}`;
    } catch (error) {
      const name = (error as Error).name;
      reason = name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (error as Error).message;
    }
    if (stopping.signal.aborted) return;
    // Logged on the first answer and on changes only: a probe every few seconds would otherwise fill the log.
    if (answeredOk && (!healthy || !answered)) logger.info({ url: healthUrl }, 'JettySpeed is up; downloads may use it');
    if (!answeredOk && (healthy || !answered)) logger.warn({ url: healthUrl, reason }, 'JettySpeed is down; downloads use the gateway');
    healthy = answeredOk;
    answered = true;
  }

  function run(): void {
    inFlight = probe().finally(() => {
      inFlight = undefined;
      if (stopping.signal.aborted) return;
      timer = setTimeout(run, intervalMs);
      // The probe never keeps a process alive on its own.
      timer.unref();
    });
  }
  run();

  return {
    healthy: () => healthy,
    async stop() {
      stopping.abort();
      clearTimeout(timer);
      healthy = false;
      await inFlight;
    },
  };
}

/**
 * The JettySpeed address of an object's bytes. The seed names only the endpoint, so the path is the
 * backend key the bytes live under (`users/<agentcache_user_id>/blobs/<id>`), which JettySpeed reads from
 * the backend bucket it fronts. An account stores given content once, under one key that is never reused
 * for other bytes, so the URL's content never changes and a CDN may cache it for as long as it likes;
 * objects of equal content share one cached copy. The key is chosen by the gateway, never by a tenant.
 */
export function jettySpeedUrl(cdnUrl: string, backendKey: string): string {
  return `${cdnUrl}/${uriEncode(backendKey, true)}`;
}
