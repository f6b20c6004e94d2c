import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcileUsage } from '../../src/jobs/reconcile.js';
import { expireReservations } from '../../src/quota/storage.js';
import { admin, provisionAccount, waitFor } from '../helpers/admin.js';
import { createPostgresDatabase, testDatabaseUrl } from '../helpers/db.js';
import { MiB, storageState, streamedPut, xmlElement } from '../helpers/quota.js';
import { startChildGateway, startTestServer, type ChildGateway, type TestServer } from '../helpers/server.js';

const RESERVATION_TTL_SECONDS = 2;

// A second gateway process to kill; PGlite is one process by nature, so this needs PostgreSQL.
describe.runIf(testDatabaseUrl !== null)('a gateway killed with SIGKILL in the middle of uploads', () => {
  let dataDir: string;
  let drop: () => Promise<void>;
  let survivor: TestServer;
  let victim: ChildGateway;
  let victimGatewayUrl: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'jt-quota-sigkill-'));
    const database = await createPostgresDatabase();
    drop = database.drop;
    // Background jobs stay off so that this test alone decides when reservations expire.
    const shared = { DATABASE_URL: database.url, DATA_DIR: dataDir, RESERVATION_TTL_SECONDS: String(RESERVATION_TTL_SECONDS), JOBS_ENABLED: 'false' };
    survivor = await startTestServer(shared);
    victim = await startChildGateway(shared);
    victimGatewayUrl = victim.gatewayUrl;
  });
  afterAll(async () => {
    victim?.child.kill('SIGKILL');
    await victim?.exited;
    await survivor?.close();
    await drop?.();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('leaves the quota whole once its reservations expire, and reconcile finds nothing else to fix', async () => {
    const account = await provisionAccount(survivor, undefined, 'enterprise');
    expect((await admin(survivor, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, storage_quota_bytes: 4 * MiB })).status).toBe(200);
    const kept = randomBytes(MiB);
    expect((await streamedPut(victimGatewayUrl, account, '/default/kept', { chunks: [kept], contentLength: kept.length })).status).toBe(200);

    // Three uploads send half their body to the victim and wait; one has no declared length.
    const never = new Promise<void>(() => undefined);
    const inFlight = [0, 1, 2].map((index) => {
      const body = randomBytes(MiB);
      const chunks = [body.subarray(0, MiB / 2), body.subarray(MiB / 2)];
      return streamedPut(victimGatewayUrl, account, `/default/in-flight-${index}`, {
        chunks,
        ...(index !== 2 && { contentLength: MiB }),
        beforeChunk: (chunk) => (chunk === 1 ? never : Promise.resolve()),
      }).catch((error: Error) => error);
    });
    await waitFor('three uploads streaming', async () => {
      const state = await storageState(survivor.db, account.id);
      return state.reservations === 3 && state.reserved === 3 * MiB && state.stagedWrites === 3 ? state : undefined;
    });
    // The account is full while they stream.
    const whileFull = await streamedPut(survivor.gatewayUrl, account, '/default/one-byte', { chunks: [Buffer.from('x')], contentLength: 1 });
    expect([whileFull.status, xmlElement(whileFull.body, 'Code')]).toEqual([403, 'QuotaExceeded']);

    victim.child.kill('SIGKILL');
    expect(await victim.exited).toEqual({ code: null, signal: 'SIGKILL' });
    for (const outcome of await Promise.all(inFlight)) expect(outcome).toBeInstanceOf(Error);

    // Nobody released them: the dead process's reservations still hold the quota, for the configured time.
    const orphaned = await survivor.db.query<{ bytes: number; ttl_left: number }>(
      'SELECT bytes, EXTRACT(EPOCH FROM expires_at - now())::float8 AS ttl_left FROM storage_reservations WHERE account_id = $1',
      [account.id],
    );
    expect(orphaned.rows.map((row) => Number(row.bytes))).toEqual([MiB, MiB, MiB]);
    for (const row of orphaned.rows) expect(row.ttl_left).toBeLessThanOrEqual(RESERVATION_TTL_SECONDS);
    expect(await storageState(survivor.db, account.id)).toMatchObject({ used: MiB, reserved: 3 * MiB });

    let expired = 0;
    await waitFor('the reservations to expire', async () => {
      expired += await expireReservations(survivor.db);
      return expired >= 3 ? expired : undefined;
    }, 10_000);
    expect(expired).toBe(3);
    expect(await storageState(survivor.db, account.id)).toMatchObject({ used: MiB, objectBytes: MiB, objects: 1, reserved: 0, reservations: 0 });

    const drift = await reconcileUsage(survivor.db);
    expect(drift.filter((entry) => entry.accountId === account.id)).toEqual([]);

    // The whole rest of the quota is usable again, to the byte.
    const rest = randomBytes(3 * MiB);
    expect((await streamedPut(survivor.gatewayUrl, account, '/default/rest', { chunks: [rest], contentLength: rest.length })).status).toBe(200);
    expect(await storageState(survivor.db, account.id)).toMatchObject({ used: 4 * MiB, quota: 4 * MiB, reserved: 0, reservations: 0 });
  });
});
