import { Writable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { verifyWebhook } from '../auth/webhook-signature.js';
import { loadConfig, ConfigError } from '../config.js';
import { migrate, type Db } from '../db/index.js';
import { openPglite } from '../db/pglite.js';
import { createLogger } from '../log.js';
import { backoffMs, deliverDueEvents, describeFailure, signedRequest, type OutboxDeps } from './outbox.js';

const SECRET = 'outbox-test-secret-0123456789';

describe('backoffMs', () => {
  const bounds = { retryMinMs: 1_000, retryMaxMs: 600_000 };
  it('doubles from the minimum up to the cap, within the upper half of each step', () => {
    expect([1, 2, 3, 4].map((n) => backoffMs(n, bounds, () => 0.999999))).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect([1, 2, 3, 4].map((n) => backoffMs(n, bounds, () => 0))).toEqual([500, 1_000, 2_000, 4_000]);
    expect(backoffMs(10, bounds, () => 0.999999)).toBe(512_000);
    expect(backoffMs(11, bounds, () => 0.999999)).toBe(600_000);
    expect(backoffMs(10_000, bounds, () => 0.5)).toBe(450_000);
  });
});

describe('signedRequest', () => {
  it('signs the exact body it sends, as AgentCache verifies its own webhooks', () => {
    const nowMs = 1_900_000_000_123;
    const { body, headers } = signedRequest({ id: 'e1', type: 'quota.warning' }, SECRET, nowMs);
    expect(headers['x-agentcache-timestamp']).toBe('1900000000');
    const verdict = (secret: string, raw: string) =>
      verifyWebhook({ secret, timestamp: headers['x-agentcache-timestamp'], signature: headers['x-agentcache-signature'], rawBody: Buffer.from(raw), nowSeconds: 1_900_000_000 });
    expect(verdict(SECRET, body)).toBe('valid');
    expect(verdict(SECRET, body.replace('e1', 'e2'))).toBe('bad-signature');
    expect(verdict(`${SECRET}x`, body)).toBe('bad-signature');
  });
});

describe('describeFailure', () => {
  it("names the network error's cause, and a timeout as such", () => {
    const refused = new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }) });
    expect(describeFailure(refused, 5_000)).toBe('fetch failed: connect ECONNREFUSED 127.0.0.1:9');
    expect(describeFailure(new DOMException('The operation was aborted due to timeout', 'TimeoutError'), 5_000)).toBe('no answer within 5000 ms');
    expect(describeFailure(new Error('x'.repeat(1_000)), 5_000).length).toBeLessThan(310);
  });
});

describe('outbox settings', () => {
  it('send to AGENTCACHE_API_URL + /webhooks/jettythunder, and refuse a cap below the first wait', () => {
    expect(loadConfig({ AGENTCACHE_API_URL: 'https://agentcache.ai/api/' }).outbox.defaultTargetUrl).toBe('https://agentcache.ai/api/webhooks/jettythunder');
    expect(loadConfig({}).outbox).toEqual({ defaultTargetUrl: null, pollMs: 2_000, retryMinMs: 1_000, retryMaxMs: 600_000, timeoutMs: 5_000 });
    expect(() => loadConfig({ OUTBOX_RETRY_MIN_MS: '5000', OUTBOX_RETRY_MAX_MS: '1000' })).toThrow(ConfigError);
    expect(() => loadConfig({ OUTBOX_POLL_MS: 'soon' })).toThrow(/OUTBOX_POLL_MS/);
  });
});

describe('deliverDueEvents', () => {
  let db: Db;
  let accountId: string;
  const logLines: string[] = [];
  const logger = createLogger('info', new Writable({ write: (chunk: Buffer, _e, done) => (logLines.push(chunk.toString()), done()) }));

  function deps(defaultTargetUrl: string | null = 'https://agentcache.example/api/webhooks/jettythunder'): OutboxDeps {
    return { db, logger, config: { adminSecret: SECRET, outbox: { defaultTargetUrl, pollMs: 1_000, retryMinMs: 1_000, retryMaxMs: 60_000, timeoutMs: 1_000 } } };
  }

  async function enqueue(key: string, targetUrl: string | null = null): Promise<string> {
    const { rows } = await db.query<{ id: string }>(
      `INSERT INTO outbox (account_id, event_type, dedupe_key, payload, target_url) VALUES ($1, 'quota.warning', $2, $3, $4) RETURNING id`,
      [accountId, key, JSON.stringify({ key }), targetUrl],
    );
    return rows[0]!.id;
  }

  async function row(id: string) {
    const { rows } = await db.query<{ attempts: number; last_error: string | null; delivered: boolean; wait_ms: number }>(
      `SELECT attempts, last_error, delivered_at IS NOT NULL AS delivered,
              (extract(epoch FROM next_attempt_at - now()) * 1000)::float8 AS wait_ms FROM outbox WHERE id = $1`,
      [id],
    );
    return rows[0]!;
  }

  beforeAll(async () => {
    db = await openPglite(null);
    await migrate(db);
    const { rows } = await db.query<{ id: string }>(
      `INSERT INTO agentcache_accounts (agentcache_user_id, agentcache_email, agentcache_tier, api_key, api_secret_encrypted, s3_bucket_name, s3_prefix)
       VALUES ('outbox-user', 'u@example.com', 'pro', 'k', 'x', 'b', 'p') RETURNING id`,
    );
    accountId = rows[0]!.id;
  });
  beforeEach(async () => {
    await db.query('DELETE FROM outbox');
  });
  afterAll(async () => {
    await db?.close();
  });

  it('marks a 2xx delivered, and a failure pending with its reason and a backed-off next attempt', async () => {
    const ok = await enqueue('ok', 'https://hooks.example/ok');
    const failing = await enqueue('failing');
    const sent: Array<{ url: string; body: string }> = [];
    const fetchStub = (async (url: string, init: RequestInit) => {
      sent.push({ url, body: String(init.body) });
      return new Response(null, { status: url.endsWith('/ok') ? 204 : 503 });
    }) as typeof fetch;
    expect(await deliverDueEvents(deps(), { fetch: fetchStub, random: () => 0.999999 })).toEqual({ claimed: 2, delivered: 1, failed: 1 });
    expect(sent.map((s) => s.url).sort()).toEqual(['https://agentcache.example/api/webhooks/jettythunder', 'https://hooks.example/ok']);
    expect(await row(ok)).toMatchObject({ attempts: 1, delivered: true, last_error: null });
    const pending = await row(failing);
    expect(pending).toMatchObject({ attempts: 1, delivered: false, last_error: 'HTTP 503' });
    expect(pending.wait_ms).toBeGreaterThan(500);
    // Not due yet: the next pass sends nothing, and nothing delivered is ever sent again.
    expect(await deliverDueEvents(deps(), { fetch: fetchStub })).toEqual({ claimed: 0, delivered: 0, failed: 0 });
    expect(sent).toHaveLength(2);
  });

  it('never lets two passes send one row at the same time', async () => {
    const id = await enqueue('leased');
    let release!: () => void;
    const answered = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const slowFetch = (async () => {
      calls++;
      await answered;
      return new Response(null, { status: 200 });
    }) as typeof fetch;
    const first = deliverDueEvents(deps(), { fetch: slowFetch });
    await expect.poll(() => calls).toBe(1);
    expect(await deliverDueEvents(deps(), { fetch: slowFetch })).toEqual({ claimed: 0, delivered: 0, failed: 0 });
    release();
    expect(await first).toEqual({ claimed: 1, delivered: 1, failed: 0 });
    expect(calls).toBe(1);
    expect(await row(id)).toMatchObject({ delivered: true });
  });

  it('keeps a row with nowhere to go until a target exists', async () => {
    const id = await enqueue('nowhere');
    const never = (async () => {
      throw new Error('must not be called');
    }) as typeof fetch;
    expect(await deliverDueEvents(deps(null), { fetch: never })).toEqual({ claimed: 0, delivered: 0, failed: 0 });
    expect(await row(id)).toMatchObject({ attempts: 0, delivered: false });
    const ok = (async () => new Response('fine', { status: 200 })) as typeof fetch;
    expect(await deliverDueEvents(deps(), { fetch: ok })).toMatchObject({ delivered: 1 });
  });

  it('records a network failure without the signature or the secret', async () => {
    const id = await enqueue('refused');
    const refused = (async () => {
      throw new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 10.0.0.1:443') });
    }) as typeof fetch;
    await deliverDueEvents(deps(), { fetch: refused });
    const pending = await row(id);
    expect(pending.last_error).toBe('fetch failed: connect ECONNREFUSED 10.0.0.1:443');
    expect(logLines.join('')).not.toContain(SECRET);
    expect(logLines.join('')).not.toMatch(/v1=[0-9a-f]{64}/);
  });
});
