import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Queryable, QueryResult } from '../db/index.js';
import { requestLogDropped } from './metrics.js';
import { createRequestLog, type RequestLogEntry } from './request-log.js';

const silent = pino({ level: 'silent' });

function entry(endpoint: string): RequestLogEntry {
  return {
    accountId: null,
    method: 'GET',
    endpoint,
    operation: 'GetObject',
    statusCode: 200,
    responseTimeMs: 3,
    bytesTransferred: 10,
    errorCode: null,
    ipAddress: '127.0.0.1',
    userAgent: 'test',
    at: new Date(),
  };
}

/** A database whose every INSERT is kept, or never answers, or fails. */
function fakeDb(behaviour: 'record' | 'stall' | 'fail') {
  const batches: string[][] = [];
  const db: Queryable = {
    async query<R>(_sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
      if (behaviour === 'stall') return new Promise(() => {});
      if (behaviour === 'fail') throw new Error('connection refused');
      batches.push(params[2] as string[]);
      return { rows: [], rowCount: (params[2] as string[]).length };
    },
    exec: async () => {},
  };
  return { db, batches };
}

async function droppedSoFar(): Promise<number> {
  return (await requestLogDropped.get()).values[0]?.value ?? 0;
}

describe('request log', () => {
  it('writes entries in batches of at most batchSize rows, in the order they came', async () => {
    const { db, batches } = fakeDb('record');
    const log = createRequestLog({ db, logger: silent, maxBuffered: 100, batchSize: 3, flushIntervalMs: 60_000 });
    for (let i = 0; i < 7; i++) log.record(entry(`/b/${i}`));
    await log.flush();
    expect(batches.flat()).toEqual(['/b/0', '/b/1', '/b/2', '/b/3', '/b/4', '/b/5', '/b/6']);
    expect(batches.every((batch) => batch.length <= 3)).toBe(true);
    await log.close();
  });

  it('drops and counts what does not fit while the database stalls, and close() ends within its bound', async () => {
    const { db } = fakeDb('stall');
    const log = createRequestLog({ db, logger: silent, maxBuffered: 5, batchSize: 2, flushIntervalMs: 60_000, closeTimeoutMs: 20 });
    const before = await droppedSoFar();
    // Two go to the stalled INSERT, five wait in the buffer, the last three find it full.
    for (let i = 0; i < 10; i++) log.record(entry(`/b/${i}`));
    expect((await droppedSoFar()) - before).toBe(3);
    await log.close();
    // The five still waiting when the bound passed are dropped too; the stalled two are the database's.
    expect((await droppedSoFar()) - before).toBe(8);
    log.record(entry('/after-close'));
    expect((await droppedSoFar()) - before).toBe(8);
  });

  it('drops and counts a batch the database refuses', async () => {
    const { db } = fakeDb('fail');
    const log = createRequestLog({ db, logger: silent, maxBuffered: 10, batchSize: 10, flushIntervalMs: 60_000 });
    const before = await droppedSoFar();
    log.record(entry('/a'));
    log.record(entry('/b'));
    await log.flush();
    expect((await droppedSoFar()) - before).toBe(2);
    await log.close();
  });
});
