/** Internal quota error codes; each surface translates them (S3: QuotaExceeded / EntityTooLarge). */
export type QuotaErrorCode = 'QUOTA_STORAGE_EXCEEDED' | 'QUOTA_BANDWIDTH_EXCEEDED' | 'ENTITY_TOO_LARGE' | 'RATE_LIMITED';

export class QuotaError extends Error {
  constructor(
    readonly code: QuotaErrorCode,
    message: string,
    readonly details: { used?: number; quota?: number; limit?: number; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.name = 'QuotaError';
  }
}

const GIB = 1024 ** 3;

export function formatBytes(bytes: number): string {
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(2)} GB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(2)} MB`;
  return `${bytes} bytes`;
}
