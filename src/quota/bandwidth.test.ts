import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import type { Queryable, QueryResult } from '../db/index.js';
import { createBandwidthMeter, monthStart } from './bandwidth.js';
import type { QuotaError } from './errors.js';

/** bandwidth_usage in memory, answering the meter's two statements as PostgreSQL would. */
function fakeUsageTable() {
  const bytes = new Map<string, number>();
  const statements: unknown[][] = [];
  let failures = 0;
  const db: Queryable = {
    async query<R>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
      statements.push([...params]);
      if (failures > 0) {
        failures -= 1;
        throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
      }
      if (sql.includes('INSERT INTO bandwidth_usage')) {
        const [ids, periods, counts, watchedIds, watchedPeriods] = params as [string[], string[], number[], string[], string[]];
        const rows: { account_id: string; period_start: string; bytes: number }[] = [];
        ids.forEach((id, i) => {
          const key = `${id}/${periods[i]}`;
          bytes.set(key, (bytes.get(key) ?? 0) + counts[i]!);
          rows.push({ account_id: id, period_start: periods[i]!, bytes: bytes.get(key)! });
        });
        watchedIds.forEach((id, i) => {
          const total = bytes.get(`${id}/${watchedPeriods[i]}`);
          if (total !== undefined) rows.push({ account_id: id, period_start: watchedPeriods[i]!, bytes: total });
        });
        return { rows: rows as R[], rowCount: rows.length };
      }
      const [id, period] = params as [string, string];
      const total = bytes.get(`${id}/${period}`);
      const rows = total === undefined ? [] : [{ bytes: total }];
      return { rows: rows as R[], rowCount: rows.length };
    },
    async exec() {},
  };
  return {
    db,
    bytes,
    statements,
    failNext(count: number) {
      failures = count;
    },
  };
}

function quietLogger() {
  const warnings: unknown[] = [];
  return { warnings, logger: { warn: (...args: unknown[]) => warnings.push(args), error: () => undefined, info: () => undefined } };
}

const account = (accountId: string, bandwidthQuotaBytes: number) => ({
  accountId,
  limits: { tier: 'pro', storageQuotaBytes: 0, bandwidthQuotaBytes, rateLimitPerMinute: 100, maxFileSizeBytes: 0, jettySpeedEnabled: false },
});

const MARCH = new Date('2025-03-14T12:00:00Z');

async function drain(body: Readable): Promise<number> {
  let received = 0;
  await pipeline(
    body,
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        received += chunk.length;
        done();
      },
    }),
  );
  return received;
}

describe('bandwidth meter', () => {
  it('batches every account counted since the last flush into one statement', async () => {
    const table = fakeUsageTable();
    const meter = createBandwidthMeter({ db: table.db, logger: quietLogger().logger, clock: () => MARCH, flushIntervalMs: 0 });
    for (const [id, size] of [['a', 100], ['b', 7], ['a', 50]] as const) {
      const grant = await meter.admit(account(id, 1_000), size);
      expect(await drain(grant.meter(Readable.from([Buffer.alloc(size)])))).toBe(size);
    }
    const readsBefore = table.statements.length;
    expect(meter.unflushedBytes('a')).toBe(150);

    await meter.flush();
    expect(table.statements.length - readsBefore).toBe(1);
    expect(table.bytes.get('a/2025-03-01')).toBe(150);
    expect(table.bytes.get('b/2025-03-01')).toBe(7);
    expect(meter.unflushedBytes('a')).toBe(0);
    await meter.close();
  });

  it('keeps the bytes of a failed flush and writes them with the next one', async () => {
    const table = fakeUsageTable();
    const { logger, warnings } = quietLogger();
    const meter = createBandwidthMeter({ db: table.db, logger, clock: () => MARCH, flushIntervalMs: 0 });
    const first = await meter.admit(account('a', 1_000), 300);
    first.count(300);
    first.release();

    table.failNext(1);
    await meter.flush();
    expect(warnings).toHaveLength(1);
    expect(table.bytes.get('a/2025-03-01')).toBeUndefined();
    expect(meter.unflushedBytes('a')).toBe(300);
    // The kept bytes still count against the quota while they wait.
    await expect(meter.admit(account('a', 1_000), 701)).rejects.toMatchObject({ code: 'QUOTA_BANDWIDTH_EXCEEDED' });

    const second = await meter.admit(account('a', 1_000), 200);
    second.count(200);
    await meter.flush();
    expect(table.bytes.get('a/2025-03-01')).toBe(500);
    expect(meter.unflushedBytes('a')).toBe(0);
    await meter.close();
  });

  it('never admits past the quota, however many downloads race', async () => {
    const table = fakeUsageTable();
    const meter = createBandwidthMeter({ db: table.db, logger: quietLogger().logger, clock: () => MARCH, flushIntervalMs: 0 });
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () => meter.admit(account('a', 100), 30)));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(3);
    const refused = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected')!.reason as QuotaError;
    expect(refused.code).toBe('QUOTA_BANDWIDTH_EXCEEDED');
    expect(refused.message).toContain('0 bytes used of 100 bytes');
    expect(refused.message).toContain('90 bytes held by downloads in progress');
    expect(refused.details).toEqual({ used: 0, quota: 100 });
    await meter.close();
  });

  it('charges a body cut short only what passed, and frees the rest', async () => {
    const table = fakeUsageTable();
    const meter = createBandwidthMeter({ db: table.db, logger: quietLogger().logger, clock: () => MARCH, flushIntervalMs: 0 });
    const grant = await meter.admit(account('a', 100), 100);
    // A backend that sends 40 of the 100 bytes, then stalls until the client leaves.
    const backend = new Readable({ read() {} });
    backend.push(Buffer.alloc(40));
    const counted = grant.meter(backend);
    const first = await new Promise<Buffer>((resolve) => counted.once('data', resolve));
    counted.destroy();
    await new Promise((resolve) => counted.once('close', resolve));
    expect(first.length).toBe(40);
    expect(backend.destroyed).toBe(true);
    expect(meter.unflushedBytes('a')).toBe(40);
    // What was not sent is free again: exactly the rest of the quota can be admitted.
    await expect(meter.admit(account('a', 100), 61)).rejects.toMatchObject({ code: 'QUOTA_BANDWIDTH_EXCEEDED' });
    await expect(meter.admit(account('a', 100), 60)).resolves.toBeDefined();
    await meter.close();
  });

  it('counts a new month from zero at the turn, and writes each month to its own row', async () => {
    const table = fakeUsageTable();
    let now = new Date('2025-03-31T23:59:59Z');
    const meter = createBandwidthMeter({ db: table.db, logger: quietLogger().logger, clock: () => now, flushIntervalMs: 0 });
    const march = await meter.admit(account('a', 100), 100);
    march.count(100);
    await expect(meter.admit(account('a', 100), 1)).rejects.toThrow(/100 bytes used of 100 bytes.*renews on 2025-04-01/);

    now = new Date('2025-04-01T00:00:00Z');
    expect(meter.periodStart()).toBe('2025-04-01');
    const april = await meter.admit(account('a', 100), 60);
    april.count(60);
    await meter.flush();
    expect(table.bytes.get('a/2025-03-01')).toBe(100);
    expect(table.bytes.get('a/2025-04-01')).toBe(60);
    await meter.close();
  });

  it("learns other processes' usage from each flush", async () => {
    const table = fakeUsageTable();
    const meter = createBandwidthMeter({ db: table.db, logger: quietLogger().logger, clock: () => MARCH, flushIntervalMs: 0 });
    (await meter.admit(account('a', 100), 10)).release();
    table.bytes.set('a/2025-03-01', 95);
    await expect(meter.admit(account('a', 100), 10)).resolves.toBeDefined();
    await meter.flush();
    await expect(meter.admit(account('a', 100), 10)).rejects.toThrow(/95 bytes used of 100 bytes/);
    await meter.close();
  });

  it('names the month by UTC', () => {
    expect(monthStart(new Date('2025-12-31T23:30:00-05:00'))).toBe('2026-01-01');
    expect(monthStart(new Date('2025-02-28T23:59:59.999Z'))).toBe('2025-02-01');
  });
});
