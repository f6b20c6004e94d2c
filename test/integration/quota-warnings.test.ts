import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook } from '../../src/auth/webhook-signature.js';
import { recordQuotaWarnings, type QuotaWarningEvent } from '../../src/quota/warnings.js';
import { admin, userId, waitFor, type Provisioned } from '../helpers/admin.js';
import { createPostgresDatabase, testDatabaseUrl } from '../helpers/db.js';
import { s3Client } from '../helpers/s3.js';
import { startTestServer, TEST_ADMIN_SECRET, type TestServer } from '../helpers/server.js';

interface Received {
  path: string;
  event: QuotaWarningEvent;
  signature: 'valid' | 'bad-signature' | 'stale';
}

/**
 * AgentCache's side: answers 500 while `failing`, 200 otherwise, and can stop listening altogether
 * (connections refused) and come back on the same port.
 */
function startReceiver() {
  const accepted: Received[] = [];
  const refusedWith500: string[] = [];
  let failing = true;
  let server: Server;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((request, response) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          const rawBody = Buffer.concat(chunks);
          const event = JSON.parse(rawBody.toString('utf8')) as QuotaWarningEvent;
          if (failing) {
            refusedWith500.push(event.id);
            response.writeHead(500).end('receiver down');
            return;
          }
          const signature = verifyWebhook({
            secret: TEST_ADMIN_SECRET,
            timestamp: request.headers['x-agentcache-timestamp'] as string | undefined,
            signature: request.headers['x-agentcache-signature'] as string | undefined,
            rawBody,
            nowSeconds: Math.floor(Date.now() / 1000),
          });
          accepted.push({ path: request.url ?? '', event, signature });
          response.writeHead(signature === 'valid' ? 200 : 401).end();
        });
      });
      server.listen(port, '127.0.0.1', () => {
        port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  return {
    accepted,
    refusedWith500,
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    listen,
    setFailing(value: boolean) {
      failing = value;
    },
    /** Stops listening: connection attempts are refused until listen() again. */
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const FAST_OUTBOX = {
  QUOTA_WARNING_SCAN_MS: '40',
  OUTBOX_POLL_MS: '20',
  OUTBOX_RETRY_MIN_MS: '20',
  OUTBOX_RETRY_MAX_MS: '80',
  OUTBOX_TIMEOUT_MS: '2000',
};

function currentPeriod(): string {
  return new Date().toISOString().slice(0, 7);
}

function acceptedFor(receiver: ReturnType<typeof startReceiver>, account: Provisioned, resource = 'storage', period = currentPeriod()) {
  return receiver.accepted.filter(
    (r) => r.event.account.agentcache_user_id === account.agentcacheUserId && r.event.resource === resource && r.event.period === period,
  );
}

async function outboxRows(server: TestServer, account: Provisioned) {
  const { rows } = await server.db.query<{ id: string; dedupe_key: string; attempts: number; last_error: string | null; delivered: boolean }>(
    `SELECT id, dedupe_key, attempts, last_error, delivered_at IS NOT NULL AS delivered FROM outbox WHERE account_id = $1 ORDER BY dedupe_key`,
    [account.id],
  );
  return rows;
}

async function provisionWith(server: TestServer, overrides: Record<string, number>, options: { webhookUrl?: string; tier?: string } = {}): Promise<Provisioned> {
  const agentcacheUserId = userId('warn');
  const provisioned = await admin(server, 'POST', '/api/agentcache/provision', {
    agentcache_user_id: agentcacheUserId,
    agentcache_email: `${agentcacheUserId}@example.com`,
    tier: options.tier ?? 'pro',
    ...(options.webhookUrl ? { webhook_url: options.webhookUrl } : {}),
  });
  expect(provisioned.status).toBe(201);
  if (Object.keys(overrides).length > 0) {
    const set = await admin(server, 'POST', '/api/agentcache/overrides', { agentcache_user_id: agentcacheUserId, ...overrides });
    expect(set.status).toBe(200);
  }
  const { account } = provisioned.body;
  return { id: account.id, agentcacheUserId, apiKey: account.api_key, apiSecret: account.api_secret };
}

async function upload(server: TestServer, account: Provisioned, key: string, bytes: number): Promise<void> {
  const client = s3Client(server, account);
  try {
    await client.send(new PutObjectCommand({ Bucket: 'default', Key: key, Body: Buffer.alloc(bytes, 7) }));
  } finally {
    client.destroy();
  }
}

describe('quota warnings reach AgentCache through the outbox', () => {
  const receiver = startReceiver();
  let server: TestServer;
  let env: Record<string, string>;
  let dataDir: string;
  let dropDatabase: (() => Promise<void>) | undefined;
  let warned: Provisioned;

  beforeAll(async () => {
    await receiver.listen();
    // One database and data folder for the whole file, so a second server can start where the first stopped.
    dataDir = await mkdtemp(path.join(tmpdir(), 'jt-warnings-'));
    const database = testDatabaseUrl ? await createPostgresDatabase() : null;
    dropDatabase = database?.drop;
    env = { ...FAST_OUTBOX, DATA_DIR: dataDir, AGENTCACHE_API_URL: receiver.url, ...(database ? { DATABASE_URL: database.url } : {}) };
    server = await startTestServer(env);
  });
  afterAll(async () => {
    await server?.close();
    await receiver.stop();
    await dropDatabase?.();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('a warning event is delivered once after the receiver was down for a while, and never twice', async () => {
    warned = await provisionWith(server, { storage_quota_bytes: 1000 }, { webhookUrl: `${receiver.url}/hooks/warned` });
    await upload(server, warned, 'first', 850);

    // Down: the 80 % event is refused again and again and stays pending, with the reason recorded.
    await waitFor('three refused attempts', async () => (receiver.refusedWith500.length >= 3 ? true : undefined));
    const [pending] = await outboxRows(server, warned);
    expect(pending).toMatchObject({ dedupe_key: `quota:${warned.id}:storage:80:${currentPeriod()}`, delivered: false, last_error: 'HTTP 500' });
    expect(pending!.attempts).toBeGreaterThanOrEqual(3);
    expect(receiver.refusedWith500.every((id) => id === pending!.id)).toBe(true);

    await upload(server, warned, 'second', 100);
    await waitFor('the 95 % event to be refused too', async () => (receiver.refusedWith500.some((id) => id !== pending!.id) ? true : undefined));

    receiver.setFailing(false);
    await waitFor('both events delivered', async () => {
      const rows = await outboxRows(server, warned);
      return rows.length === 2 && rows.every((row) => row.delivered) ? rows : undefined;
    });

    const delivered = acceptedFor(receiver, warned);
    expect(delivered.map((r) => r.event.threshold_percent).sort()).toEqual([80, 95]);
    const rows = await outboxRows(server, warned);
    for (const received of delivered) {
      expect(received.signature).toBe('valid');
      expect(received.path).toBe('/hooks/warned');
      expect(rows.map((row) => row.id)).toContain(received.event.id);
      expect(received.event).toMatchObject({
        type: 'quota.warning',
        account: { agentcache_user_id: warned.agentcacheUserId, tier: 'pro' },
        resource: 'storage',
        quota_bytes: 1000,
        period: currentPeriod(),
      });
      expect(Date.parse(received.event.created_at)).not.toBeNaN();
    }
    expect(delivered.find((r) => r.event.threshold_percent === 80)!.event.used_bytes).toBe(850);
    expect(delivered.find((r) => r.event.threshold_percent === 95)!.event.used_bytes).toBe(950);

    // Later scans find nothing new, and later polls send nothing again.
    expect(await recordQuotaWarnings(server.db)).toEqual([]);
    // Several scan and poll intervals pass; the next tests check again after many more.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(acceptedFor(receiver, warned)).toHaveLength(2);
    expect((await outboxRows(server, warned)).map((row) => row.dedupe_key)).toHaveLength(2);
  });

  it('bandwidth warnings go to AGENTCACHE_API_URL when the account has no webhook_url, one per threshold', async () => {
    const downloader = await provisionWith(server, { bandwidth_quota_bytes: 1000 });
    const free = await provisionWith(server, {}, { tier: 'free' });
    const zeroQuota = await provisionWith(server, { storage_quota_bytes: 0, bandwidth_quota_bytes: 0 });
    await server.db.query(
      `INSERT INTO bandwidth_usage (account_id, period_start, bytes)
       SELECT id, date_trunc('month', now() AT TIME ZONE 'UTC')::date, $2 FROM agentcache_accounts WHERE id = ANY($1::uuid[])`,
      [[downloader.id, free.id, zeroQuota.id], 1000],
    );

    await waitFor('three bandwidth events', async () => (acceptedFor(receiver, downloader, 'bandwidth').length >= 3 ? true : undefined));
    const delivered = acceptedFor(receiver, downloader, 'bandwidth');
    expect(delivered.map((r) => r.event.threshold_percent).sort()).toEqual([100, 80, 95]);
    for (const received of delivered) {
      expect(received.signature).toBe('valid');
      expect(received.path).toBe('/webhooks/jettythunder');
      expect(received.event).toMatchObject({ used_bytes: 1000, quota_bytes: 1000 });
    }
    // Nothing stored, so no storage warning; a quota of 0 (the free tier's) warns about nothing.
    expect(acceptedFor(receiver, downloader, 'storage')).toEqual([]);
    expect(await outboxRows(server, free)).toEqual([]);
    expect(await outboxRows(server, zeroQuota)).toEqual([]);
    // The storage warnings of the first test were not sent again meanwhile.
    expect(acceptedFor(receiver, warned)).toHaveLength(2);
  });

  it('events still undelivered when the server stops are delivered by the next start, once', async () => {
    await receiver.stop();
    const full = await provisionWith(server, { storage_quota_bytes: 1000 }, { webhookUrl: `${receiver.url}/hooks/full` });
    await upload(server, full, 'all', 1000);
    const refused = await waitFor('refused attempts of all three events', async () => {
      const rows = await outboxRows(server, full);
      return rows.length === 3 && rows.every((row) => row.attempts >= 2) ? rows : undefined;
    });
    for (const row of refused) {
      expect(row.delivered).toBe(false);
      expect(row.last_error).toMatch(/ECONNREFUSED/);
      expect(row.last_error).not.toContain(TEST_ADMIN_SECRET);
    }

    await server.close();
    await receiver.listen();
    server = await startTestServer(env);

    await waitFor('delivery after the restart', async () => {
      const rows = await outboxRows(server, full);
      return rows.every((row) => row.delivered) ? true : undefined;
    });
    const delivered = acceptedFor(receiver, full);
    expect(delivered.map((r) => r.event.threshold_percent).sort()).toEqual([100, 80, 95]);
    expect(delivered.every((r) => r.signature === 'valid' && r.path === '/hooks/full')).toBe(true);
    expect(new Set(delivered.map((r) => r.event.id))).toEqual(new Set(refused.map((row) => row.id)));
    // The first server's deliveries are not repeated by the second.
    expect(acceptedFor(receiver, warned)).toHaveLength(2);
  });

  it('a storage warning comes again in the next month while usage stays above the threshold', async () => {
    const now = new Date();
    const nextMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1, 0, 0, 1));
    const period = nextMonth.toISOString().slice(0, 7);
    const recorded = await recordQuotaWarnings(server.db, { now: nextMonth });
    expect(recorded.map((warning) => warning.dedupeKey).filter((key) => key.includes(warned.id)).sort()).toEqual([
      `quota:${warned.id}:storage:80:${period}`,
      `quota:${warned.id}:storage:95:${period}`,
    ]);
    // Bandwidth counts from zero each month: last month's bytes warn about nothing in this one.
    expect(recorded.some((warning) => warning.dedupeKey.includes(':bandwidth:'))).toBe(false);
    expect(await recordQuotaWarnings(server.db, { now: nextMonth })).toEqual([]);
  });
});
