import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, quota, userId, type Provisioned } from '../helpers/admin.js';
import { signedRequest, xmlText } from '../helpers/raw-s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** One sample of a Prometheus text exposition: the series whose labels are exactly `labels`; 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.keys(found).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return 0;
}

describe('GET /metrics on the admin listener', () => {
  let server: TestServer;
  let account: Provisioned;
  const bucket = `metrics-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    server = await startTestServer();
    account = await provisionAccount(server);
    expect((await signedRequest(server, account, { method: 'PUT', path: `/${bucket}` })).status).toBe(200);
  });
  afterAll(() => server?.close());

  async function scrape(): Promise<string> {
    const response = await fetch(`${server.adminUrl}/metrics`);
    expect(response.status).toBe(200);
    return response.text();
  }

  it('answers without the admin bearer in the Prometheus text format, with Node process metrics', async () => {
    const response = await fetch(`${server.adminUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toMatch(/^# TYPE jt_http_requests_total counter$/m);
    expect(text).toMatch(/^# TYPE jt_http_request_duration_seconds histogram$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    // Not on the tenant listener: there the path is an S3 bucket name.
    expect((await fetch(`${server.gatewayUrl}/metrics`)).headers.get('content-type')).not.toMatch(/version=0\.0\.4/);
  });

  it('counts an upload and a download: requests by operation and status, exact bytes in and out, latency', async () => {
    const body = randomBytes(4321);
    const before = await scrape();
    expect((await signedRequest(server, account, { method: 'PUT', path: `/${bucket}/m.bin`, body })).status).toBe(200);
    const get = await signedRequest(server, account, { method: 'GET', path: `/${bucket}/m.bin` });
    expect(get.status).toBe(200);
    const after = await scrape();

    const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);
    expect(delta('jt_http_requests_total', { surface: 's3', operation: 'PutObject', status: '200' })).toBe(1);
    expect(delta('jt_http_requests_total', { surface: 's3', operation: 'GetObject', status: '200' })).toBe(1);
    expect(delta('jt_bytes_in_total', { surface: 's3' })).toBe(body.length);
    expect(delta('jt_bytes_out_total', { surface: 's3' })).toBe(body.length);
    expect(delta('jt_http_request_duration_seconds_count', { surface: 's3', operation: 'PutObject' })).toBe(1);
    expect(delta('jt_http_request_duration_seconds_sum', { surface: 's3', operation: 'PutObject' })).toBeGreaterThan(0);
  });

  it('counts the bytes a second upload of the same content did not store', async () => {
    const body = randomBytes(2048);
    expect((await signedRequest(server, account, { method: 'PUT', path: `/${bucket}/first.bin`, body })).status).toBe(200);
    const before = sample(await scrape(), 'jt_dedup_bytes_saved_total');
    expect((await signedRequest(server, account, { method: 'PUT', path: `/${bucket}/second.bin`, body })).status).toBe(200);
    expect(sample(await scrape(), 'jt_dedup_bytes_saved_total') - before).toBe(body.length);
  });

  it('counts limit refusals by kind: storage quota and account status, on both surfaces', async () => {
    const free = await provisionAccount(server, userId('free'), 'free');
    const freeBucket = `free-${randomBytes(4).toString('hex')}`;
    expect((await signedRequest(server, free, { method: 'PUT', path: `/${freeBucket}` })).status).toBe(200);

    const before = await scrape();
    const refused = await signedRequest(server, free, { method: 'PUT', path: `/${freeBucket}/x.bin`, body: 'no room for this' });
    expect(refused.status).toBe(403);
    expect(xmlText(refused.body, 'Code')).toBe('QuotaExceeded');

    expect((await admin(server, 'POST', '/api/agentcache/suspend', { agentcache_user_id: free.agentcacheUserId })).status).toBe(200);
    const suspended = await signedRequest(server, free, { method: 'GET', path: `/${freeBucket}/x.bin` });
    expect(suspended.status).toBe(403);
    expect(xmlText(suspended.body, 'Code')).toBe('AccessDenied');
    expect((await quota(server, free.apiKey, free.apiSecret)).status).toBe(403);
    const after = await scrape();

    const delta = (labels: Record<string, string>) => sample(after, 'jt_limit_refusals_total', labels) - sample(before, 'jt_limit_refusals_total', labels);
    expect(delta({ kind: 'storage' })).toBe(1);
    expect(delta({ kind: 'account_status' })).toBe(2);
    expect(delta({ kind: 'bandwidth' })).toBe(0);
    expect(sample(after, 'jt_http_requests_total', { surface: 's3', operation: 'PutObject', status: '403' })).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'jt_http_requests_total', { surface: 'rest', operation: '/api/agentcache/quota', status: '403' })).toBe(1);
  });

  it('counts rate-limit refusals', async () => {
    // The free tier allows 10 requests a minute.
    const busy = await provisionAccount(server, userId('busy'), 'free');
    const before = sample(await scrape(), 'jt_limit_refusals_total', { kind: 'rate' });
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await signedRequest(server, busy, { method: 'GET', path: '/' })).status);
    expect(statuses.slice(0, 10).every((status) => status === 200)).toBe(true);
    expect(statuses[10]).toBe(503);
    expect(sample(await scrape(), 'jt_limit_refusals_total', { kind: 'rate' }) - before).toBe(1);
  });

  it('counts backend failures by operation', async () => {
    const before = sample(await scrape(), 'jt_backend_errors_total', { operation: 'ping' });
    // A file where the fs backend's folder should be: nothing can be written under it.
    const objects = path.join(server.dataDir, 'objects');
    const moved = `${objects}-away`;
    await rm(moved, { recursive: true, force: true });
    await rename(objects, moved);
    await writeFile(objects, 'not a folder');
    try {
      expect((await fetch(`${server.adminUrl}/readyz`)).status).toBe(503);
    } finally {
      await rm(objects);
      await rename(moved, objects);
    }
    expect((await fetch(`${server.adminUrl}/readyz`)).status).toBe(200);
    expect(sample(await scrape(), 'jt_backend_errors_total', { operation: 'ping' }) - before).toBe(1);
  });
});
