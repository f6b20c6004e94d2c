import { randomBytes } from 'node:crypto';
import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Paths pino censors on every line. Secrets reach logs through headers, bodies and errors, so the list
 * names each place one can appear rather than trusting callers to remember.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-secret"]',
  'req.headers["x-amz-security-token"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-secret"]',
  'api_secret',
  'secret',
  'apiSecret',
  'secretAccessKey',
  'masterKey',
  'adminSecret',
  '*.api_secret',
  '*.secret',
  '*.apiSecret',
  '*.secretAccessKey',
  '*.masterKey',
  '*.adminSecret',
  '*.password',
];

// Presigned URLs are bearer credentials until they expire, so their signatures never reach a log.
const SIGNED_QUERY = /([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=)[^&]*/gi;

export function redactUrl(url: string): string {
  return url.replace(SIGNED_QUERY, '$1[Redacted]');
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACTED_PATHS, censor: '[Redacted]' },
      serializers: {
        req(req: { method?: string; url?: string; hostname?: string; ip?: string; headers?: Record<string, unknown> }) {
          return {
            method: req.method,
            url: req.url ? redactUrl(req.url) : req.url,
            host: req.hostname,
            remoteAddress: req.ip,
            userAgent: req.headers?.['user-agent'],
          };
        },
        err: pino.stdSerializers.err,
      },
    },
    destination,
  );
}

/** Request ids double as S3's x-amz-request-id, which clients print in their errors. */
export function newRequestId(): string {
  return randomBytes(8).toString('hex').toUpperCase();
}
