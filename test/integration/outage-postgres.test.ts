import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expireReservations } from '../../src/quota/storage.js';
import { admin, provisionAccount, quota, waitFor, type Provisioned } from '../helpers/admin.js';
import { privatePostgresAvailable, startPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres.js';
import { signedRequest, xmlText } from '../helpers/raw-s3.js';
import { HUNG_AFTER_MS, expectNothingHalfWritten, startRequestLoop, type RequestLoop } from '../helpers/request-loop.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * PostgreSQL stops under load and comes back: requests answer 503 instead of hanging, nothing is left
 * half written, and the same gateway processes serve again without a restart. The server stopped is a
 * private cluster of this file's own, never the machine's shared one.
 */
describe.runIf(privatePostgresAvailable)('riding out a PostgreSQL outage', () => {
  let postgres: PrivatePostgres;
  let gateway: TestServer;
  /** A second process on the same database, to see account changes arrive over LISTEN/NOTIFY. */
  let other: TestServer;
  let account: Provisioned;
  let load: RequestLoop | undefined;

  beforeAll(async () => {
    postgres = await startPrivatePostgres();
    const env = { DATABASE_URL: postgres.url, DATABASE_CONNECT_TIMEOUT_MS: '2000', JOBS_ENABLED: 'false' };
    gateway = await startTestServer(env);
    other = await startTestServer(env);
    account = await provisionAccount(gateway);
  });
  afterAll(async () => {
    await load?.stop();
    await gateway?.close();
    await other?.close();
    await postgres?.destroy();
  });

  const readyz = async (server: TestServer) => {
    const response = await fetch(`${server.adminUrl}/readyz`);
    return { status: response.status, body: (await response.json()) as Record<string, string> };
  };
  const listeningSessions = async () => {
    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE query ILIKE 'LISTEN %'`);
      return Number(rows[0]!.n);
    } finally {
      await client.end();
    }
  };

  it('answers 503 while the database is down, keeps nothing half written, and serves again once it is back', async () => {
    load = startRequestLoop(gateway, account, { prefix: 'load/', workers: 3 });
    await waitFor('a few stored objects', async () => (load!.requests.filter((r) => r.method === 'PUT' && r.status === 200).length >= 6 ? true : undefined));

    await postgres.stop('fast');
    const stoppedAt = Date.now();
    // Requests sent while the server is down: every one answered (none hung) with a 503 S3 error.
    await waitFor('requests during the outage', async () => (load!.requests.filter((r) => r.startedAt > stoppedAt).length >= 12 ? true : undefined), 20_000);
    expect(await readyz(gateway)).toMatchObject({ status: 503, body: { status: 'unavailable', database: 'unavailable' } });
    const rest = await quota(gateway, account.apiKey, account.apiSecret);
    expect(rest.status).toBe(503);
    expect(rest.body).toEqual({ error: expect.any(String), code: 'SERVICE_UNAVAILABLE' });
    const direct = await signedRequest(gateway, account, { method: 'PUT', path: '/default/during-outage', body: 'never stored' });
    expect(direct.status).toBe(503);
    expect(['ServiceUnavailable', 'SlowDown']).toContain(xmlText(direct.body, 'Code'));

    const restartingAt = Date.now();
    await postgres.start();
    const restartedAt = Date.now();
    await waitFor('a stored object after the restart', async () =>
      load!.requests.some((r) => r.startedAt > restartedAt && r.method === 'PUT' && r.status === 200) ? true : undefined,
    );
    await load.stop();

    const duringOutage = load.requests.filter((r) => r.startedAt > stoppedAt && r.endedAt < restartingAt);
    expect(duringOutage.length).toBeGreaterThanOrEqual(12);
    for (const request of duringOutage) {
      expect({ key: request.key, status: request.status, code: request.code }).toEqual({
        key: request.key,
        status: 503,
        code: expect.stringMatching(/^(ServiceUnavailable|SlowDown)$/),
      });
      expect(request.endedAt - request.startedAt).toBeLessThan(HUNG_AFTER_MS);
    }
    expect(load.requests.filter((r) => r.status === 'hung' || r.status === 'failed')).toEqual([]);
    // Whatever was read back at any time was what had been stored.
    expect(load.requests.filter((r) => r.intact === false)).toEqual([]);
    expect(await readyz(gateway)).toEqual({ status: 200, body: { status: 'ready', database: 'ok', backend: 'ok' } });
    expect((await quota(gateway, account.apiKey, account.apiSecret)).status).toBe(200);

    // Nothing half written: every acknowledged PUT reads back byte for byte, every failed one is absent.
    const stored = await expectNothingHalfWritten(gateway, account, load, ['during-outage']);
    // A reservation whose release the outage prevented expires (made due here rather than waited for);
    // then only committed bytes are counted.
    await gateway.db.query(`UPDATE storage_reservations SET expires_at = now() - interval '1 second' WHERE account_id = $1`, [account.id]);
    await expireReservations(gateway.db);
    const { rows: usage } = await gateway.db.query<{ used: number; reserved: number; sizes: number }>(
      `SELECT a.storage_used_bytes AS used, a.storage_reserved_bytes AS reserved,
              (SELECT COALESCE(SUM(size_bytes), 0) FROM agentcache_assets o WHERE o.account_id = a.id) AS sizes
         FROM agentcache_accounts a WHERE a.id = $1`,
      [account.id],
    );
    expect(usage[0]).toEqual({ used: usage[0]!.sizes, reserved: 0, sizes: stored.reduce((sum, [, put]) => sum + Buffer.byteLength(put.body), 0) });
  });

  it('hears account changes again after a crash and restart: a suspension through one process is refused at once by the other', async () => {
    if (!postgres.running) await postgres.start();
    await waitFor('both LISTEN connections', async () => ((await listeningSessions()) >= 2 ? true : undefined));
    // Down long enough that the first attempts to listen again fail too.
    await postgres.stop('immediate');
    await sleep(1_500);
    await postgres.start();
    // Both processes' LISTEN connections are back.
    await waitFor('both LISTEN connections', async () => ((await listeningSessions()) >= 2 ? true : undefined));
    // The other process has the account cached as active.
    expect((await signedRequest(other, account, { method: 'GET', path: '/default/during-outage' })).status).toBe(404);
    expect((await admin(gateway, 'POST', '/api/agentcache/suspend', { agentcache_user_id: account.agentcacheUserId })).status).toBe(200);
    const deadline = Date.now() + 2_000;
    let code: string | undefined;
    while (Date.now() < deadline) {
      code = xmlText((await signedRequest(other, account, { method: 'GET', path: '/default/during-outage' })).body, 'Code');
      if (code === 'AccessDenied') break;
      await sleep(50);
    }
    expect(code).toBe('AccessDenied');
  });
});
