import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The process's one metrics registry. Metrics are module-level singletons: several servers may run in one
 * process (tests, `serve` with both listeners), and prom-client refuses to register a name twice.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

/** Which listener served a request. */
export type Surface = 's3' | 'rest' | 'admin';

/** Why a request was refused for a limit; the label values of jt_limit_refusals_total. */
export type LimitRefusalKind = 'storage' | 'bandwidth' | 'rate' | 'object_size' | 'account_status';

// Buckets span a cached HEAD (milliseconds) to a multi-GiB upload (minutes).
const REQUEST_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];
const JOB_SECONDS_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600];

export const httpRequests = new Counter({
  name: 'jt_http_requests_total',
  help: 'Requests answered, by listener, operation and HTTP status',
  labelNames: ['surface', 'operation', 'status'] as const,
  registers: [registry],
});

export const httpDuration = new Histogram({
  name: 'jt_http_request_duration_seconds',
  help: 'Time from request received to response finished, by listener and operation',
  labelNames: ['surface', 'operation'] as const,
  buckets: REQUEST_SECONDS_BUCKETS,
  registers: [registry],
});

export const bytesIn = new Counter({
  name: 'jt_bytes_in_total',
  help: 'Request body bytes received, by listener',
  labelNames: ['surface'] as const,
  registers: [registry],
});

export const bytesOut = new Counter({
  name: 'jt_bytes_out_total',
  help: 'Response body bytes sent, by listener',
  labelNames: ['surface'] as const,
  registers: [registry],
});

export const limitRefusals = new Counter({
  name: 'jt_limit_refusals_total',
  help: 'Requests refused by a limit: storage, bandwidth, rate, object_size or account_status',
  labelNames: ['kind'] as const,
  registers: [registry],
});

export const backendErrors = new Counter({
  name: 'jt_backend_errors_total',
  help: 'Storage backend calls that failed, by backend operation',
  labelNames: ['operation'] as const,
  registers: [registry],
});

export const dedupBytesSaved = new Counter({
  name: 'jt_dedup_bytes_saved_total',
  help: 'Bytes not written to the backend because identical content was already stored',
  registers: [registry],
});

export const jobRuns = new Counter({
  name: 'jt_job_runs_total',
  help: 'Background job runs, by job and outcome',
  labelNames: ['job', 'outcome'] as const,
  registers: [registry],
});

export const jobDuration = new Histogram({
  name: 'jt_job_duration_seconds',
  help: 'Background job run time, by job',
  labelNames: ['job'] as const,
  buckets: JOB_SECONDS_BUCKETS,
  registers: [registry],
});

export const requestLogDropped = new Counter({
  name: 'jt_request_log_dropped_total',
  help: 'Request log entries dropped because the buffer was full or a batch insert failed',
  registers: [registry],
});

/** The exposition text and its content type, for the /metrics route. */
export async function metricsText(): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}
