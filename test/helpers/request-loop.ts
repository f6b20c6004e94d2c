import { expect } from 'vitest';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Provisioned } from './admin.js';
import { signedRequest, xmlText, type RawResponse } from './raw-s3.js';
import type { TestServer } from './server.js';

/** One request of the loop and what it got: a status, or `hung` when no answer came within the bound. */
export interface LoggedRequest {
  method: 'PUT' | 'GET';
  key: string;
  startedAt: number;
  endedAt: number;
  status: number | 'hung' | 'failed';
  /** The S3 error code of a failed answer. */
  code?: string;
  /** For a GET answered 200: whether the bytes were those the PUT sent. */
  intact?: boolean;
}

export interface RequestLoop {
  requests: LoggedRequest[];
  /** Every PUT's key, the body it sent and its status. */
  puts: Map<string, { body: string; status: LoggedRequest['status'] }>;
  /** Resolves once every worker has finished its current request. */
  stop(): Promise<void>;
}

/** How long a request may go unanswered before it is logged as hung: far beyond any bound of ours. */
export const HUNG_AFTER_MS = 15_000;

async function timed(send: () => Promise<RawResponse>): Promise<RawResponse | 'hung' | 'failed'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => {
    timer = setTimeout(() => resolve('hung'), HUNG_AFTER_MS);
  });
  try {
    return await Promise.race([send().catch(() => 'failed' as const), hung]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A light, steady load on the S3 surface: `workers` clients, each putting a fresh small object and then
 * reading back one that was stored, over and over, with no retries (raw SigV4 requests), until stopped.
 * Bounded: each worker stops by itself after `maxRounds`.
 */
export function startRequestLoop(
  server: TestServer,
  account: Pick<Provisioned, 'apiKey' | 'apiSecret'>,
  options: { workers?: number; bucket?: string; prefix: string; pauseMs?: number; maxRounds?: number },
): RequestLoop {
  const bucket = options.bucket ?? 'default';
  const requests: LoggedRequest[] = [];
  const puts: RequestLoop['puts'] = new Map();
  const stored: string[] = [];
  let stopped = false;

  async function send(method: 'PUT' | 'GET', key: string, body?: string): Promise<LoggedRequest> {
    const startedAt = Date.now();
    const response = await timed(() => signedRequest(server, account, { method, path: `/${bucket}/${key}`, ...(body !== undefined && { body }) }));
    const logged: LoggedRequest = { method, key, startedAt, endedAt: Date.now(), status: typeof response === 'string' ? response : response.status };
    if (typeof response !== 'string' && response.status !== 200) logged.code = xmlText(response.body, 'Code');
    if (typeof response !== 'string' && response.status === 200 && method === 'GET') logged.intact = response.body === puts.get(key)?.body;
    requests.push(logged);
    return logged;
  }

  async function worker(id: number): Promise<void> {
    for (let round = 0; round < (options.maxRounds ?? 2_000) && !stopped; round++) {
      const key = `${options.prefix}w${id}-${round}`;
      const body = randomBytes(256 + Math.floor(Math.random() * 4096)).toString('base64');
      puts.set(key, { body, status: 'hung' });
      const put = await send('PUT', key, body);
      puts.set(key, { body, status: put.status });
      if (put.status === 200) stored.push(key);
      if (stored.length > 0) await send('GET', stored[Math.floor(Math.random() * stored.length)]!);
      await sleep(options.pauseMs ?? 20);
    }
  }

  const running = Promise.all(Array.from({ length: options.workers ?? 3 }, (_, id) => worker(id)));
  return {
    requests,
    puts,
    async stop() {
      stopped = true;
      await running;
    },
  };
}

/**
 * What an outage may not leave behind, after the loop: every PUT answered 200 reads back byte for byte,
 * every other one (and `alsoAbsent`) is NoSuchKey with no row; no blob lacks its object; every byte on
 * the backend is a committed blob or a staged write listed for the collector. Returns the stored PUTs.
 */
export async function expectNothingHalfWritten(
  server: TestServer,
  account: Pick<Provisioned, 'id' | 'apiKey' | 'apiSecret' | 'agentcacheUserId'>,
  load: RequestLoop,
  alsoAbsent: string[] = [],
): Promise<Array<[string, { body: string }]>> {
  const stored = [...load.puts].filter(([, put]) => put.status === 200);
  const failed = [...load.puts].filter(([, put]) => put.status !== 200);
  expect(failed.length).toBeGreaterThan(0);
  for (const [key, put] of stored) {
    const response = await signedRequest(server, account, { method: 'GET', path: `/default/${key}` });
    expect({ key, status: response.status, intact: response.body === put.body }).toEqual({ key, status: 200, intact: true });
  }
  for (const key of [...failed.map(([key]) => key), ...alsoAbsent]) {
    const response = await signedRequest(server, account, { method: 'GET', path: `/default/${key}` });
    expect({ key, status: response.status, code: xmlText(response.body, 'Code') }).toEqual({ key, status: 404, code: 'NoSuchKey' });
  }
  const { rows: objects } = await server.db.query<{ object_key: string }>('SELECT object_key FROM agentcache_assets WHERE account_id = $1', [account.id]);
  expect(objects.map((o) => o.object_key).sort()).toEqual(stored.map(([key]) => key).sort());
  const orphanBlobs = await server.db.query(
    'SELECT b.id FROM blobs b WHERE b.account_id = $1 AND NOT EXISTS (SELECT 1 FROM agentcache_assets o WHERE o.blob_id = b.id)',
    [account.id],
  );
  expect(orphanBlobs.rows).toEqual([]);
  const { rows: trackedRows } = await server.db.query<{ key: string }>(
    'SELECT backend_key AS key FROM blobs WHERE account_id = $1 UNION SELECT backend_key FROM staged_writes WHERE account_id = $1',
    [account.id],
  );
  const tracked = new Set(trackedRows.map((r) => r.key));
  const onBackend = (await server.backend.list({ prefix: `users/${account.agentcacheUserId}/blobs/` })).objects.map((o) => o.key);
  expect(onBackend.filter((key) => !tracked.has(key))).toEqual([]);
  return stored;
}
