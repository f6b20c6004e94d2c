import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionAccount, waitFor, type Provisioned } from '../helpers/admin.js';
import { signedRequest, xmlText } from '../helpers/raw-s3.js';
import { HUNG_AFTER_MS, expectNothingHalfWritten, startRequestLoop, type RequestLoop } from '../helpers/request-loop.js';
import { startS3rver, type TestS3Server } from '../helpers/s3rver.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { freePort } from '../helpers/private-postgres.js';

/**
 * The S3 backend goes away under load (its port closed) and comes back on the same port with the same
 * data: requests answer 503 instead of hanging, nothing is left half written, and the same gateway
 * serves again without a restart.
 */
describe('riding out a backend outage', () => {
  let directory: string;
  let port: number;
  const bucket = `jt-outage-${randomBytes(4).toString('hex')}`;
  let s3: TestS3Server | null = null;
  let gateway: TestServer;
  let account: Provisioned;
  let load: RequestLoop | undefined;

  beforeAll(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'jt-outage-s3-'));
    port = await freePort();
    s3 = await startS3rver({ port, directory, bucket });
    gateway = await startTestServer({
      STORAGE_BACKEND: 's3',
      LYVE_ENDPOINT: s3.endpoint,
      LYVE_ACCESS_KEY_ID: s3.accessKeyId,
      LYVE_SECRET_ACCESS_KEY: s3.secretAccessKey,
      LYVE_BUCKET_NAME: bucket,
      BACKEND_CONNECT_TIMEOUT_MS: '2000',
      JOBS_ENABLED: 'false',
    });
    account = await provisionAccount(gateway);
  });
  afterAll(async () => {
    await load?.stop();
    await gateway?.close();
    await s3?.close();
    await rm(directory, { recursive: true, force: true });
  });

  const readyz = async () => {
    const response = await fetch(`${gateway.adminUrl}/readyz`);
    return { status: response.status, body: (await response.json()) as Record<string, string> };
  };

  it('answers 503 while the backend is unreachable, keeps nothing half written, and serves again once it is back', async () => {
    load = startRequestLoop(gateway, account, { prefix: 'load/', workers: 3 });
    await waitFor('a few stored objects', async () => (load!.requests.filter((r) => r.method === 'PUT' && r.status === 200).length >= 6 ? true : undefined));

    await s3!.close();
    s3 = null;
    const stoppedAt = Date.now();
    await waitFor('requests during the outage', async () => (load!.requests.filter((r) => r.startedAt > stoppedAt).length >= 12 ? true : undefined), 20_000);
    expect(await readyz()).toEqual({ status: 503, body: { status: 'unavailable', database: 'ok', backend: 'unavailable' } });
    const direct = await signedRequest(gateway, account, { method: 'PUT', path: '/default/during-outage', body: 'never stored' });
    expect({ status: direct.status, code: xmlText(direct.body, 'Code') }).toEqual({ status: 503, code: 'ServiceUnavailable' });

    const restartingAt = Date.now();
    s3 = await startS3rver({ port, directory, bucket });
    const restartedAt = Date.now();
    await waitFor('a stored object after the restart', async () =>
      load!.requests.some((r) => r.startedAt > restartedAt && r.method === 'PUT' && r.status === 200) ? true : undefined,
    );
    await load.stop();

    // Every request sent while the backend was away was answered (none hung) with a 503, PUTs and GETs alike.
    const duringOutage = load.requests.filter((r) => r.startedAt > stoppedAt && r.endedAt < restartingAt);
    expect(duringOutage.length).toBeGreaterThanOrEqual(12);
    expect(new Set(duringOutage.map((r) => r.method))).toEqual(new Set(['PUT', 'GET']));
    for (const request of duringOutage) {
      expect({ key: request.key, status: request.status, code: request.code }).toEqual({ key: request.key, status: 503, code: 'ServiceUnavailable' });
      expect(request.endedAt - request.startedAt).toBeLessThan(HUNG_AFTER_MS);
    }
    expect(load.requests.filter((r) => r.status === 'hung' || r.status === 'failed')).toEqual([]);
    expect(load.requests.filter((r) => r.intact === false)).toEqual([]);
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', database: 'ok', backend: 'ok' } });

    // Nothing half written: every acknowledged PUT reads back byte for byte, every failed one is absent.
    const stored = await expectNothingHalfWritten(gateway, account, load, ['during-outage']);
    // The database stayed up, so every failed PUT released its reservation at once.
    const { rows: usage } = await gateway.db.query<{ used: number; reserved: number }>(
      'SELECT storage_used_bytes AS used, storage_reserved_bytes AS reserved FROM agentcache_accounts WHERE id = $1',
      [account.id],
    );
    expect(usage[0]).toEqual({ used: stored.reduce((sum, [, put]) => sum + Buffer.byteLength(put.body), 0), reserved: 0 });
    const reservations = await gateway.db.query('SELECT id FROM storage_reservations WHERE account_id = $1', [account.id]);
    expect(reservations.rows).toEqual([]);
  });

  it('answers 503 within its timeout when the backend accepts connections but never answers', async () => {
    // A relay in front of the backend that can go silent: connections still open, nothing comes back.
    let silent = false;
    const sockets = new Set<Socket>();
    const relay: Server = createServer((client) => {
      sockets.add(client);
      client.on('close', () => sockets.delete(client));
      client.on('error', () => undefined);
      if (silent) return;
      const upstream = connect(port, '127.0.0.1');
      sockets.add(upstream);
      upstream.on('close', () => sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const relayPort = (relay.address() as { port: number }).port;
    const viaRelay = await startTestServer({
      STORAGE_BACKEND: 's3',
      LYVE_ENDPOINT: `http://127.0.0.1:${relayPort}`,
      LYVE_ACCESS_KEY_ID: 'S3RVER',
      LYVE_SECRET_ACCESS_KEY: 'S3RVER',
      LYVE_BUCKET_NAME: bucket,
      BACKEND_TIMEOUT_MS: '1000',
      JOBS_ENABLED: 'false',
    });
    try {
      const tenant = await provisionAccount(viaRelay);
      expect((await signedRequest(viaRelay, tenant, { method: 'PUT', path: '/default/kept', body: 'kept' })).status).toBe(200);

      silent = true;
      for (const socket of sockets) socket.destroy();
      for (const request of [
        { method: 'PUT', path: '/default/lost', body: 'lost' },
        { method: 'GET', path: '/default/kept' },
      ]) {
        const startedAt = Date.now();
        const response = await signedRequest(viaRelay, tenant, request);
        expect({ status: response.status, code: xmlText(response.body, 'Code') }).toEqual({ status: 503, code: 'ServiceUnavailable' });
        expect(Date.now() - startedAt).toBeLessThan(HUNG_AFTER_MS);
      }

      silent = false;
      for (const socket of sockets) socket.destroy();
      const kept = await signedRequest(viaRelay, tenant, { method: 'GET', path: '/default/kept' });
      expect({ status: kept.status, body: kept.body }).toEqual({ status: 200, body: 'kept' });
      expect((await signedRequest(viaRelay, tenant, { method: 'GET', path: '/default/lost' })).status).toBe(404);
      const { rows } = await viaRelay.db.query<{ reserved: number }>('SELECT storage_reserved_bytes AS reserved FROM agentcache_accounts WHERE id = $1', [tenant.id]);
      expect(rows[0]!.reserved).toBe(0);
    } finally {
      await viaRelay.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
    }
  });
});
