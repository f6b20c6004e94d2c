import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, quota, waitFor, type Provisioned } from '../helpers/admin.js';
import { primaryDbKind } from '../helpers/db.js';
import { signedRequest } from '../helpers/raw-s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

interface ApiRequestRow {
  account_id: string | null;
  method: string;
  endpoint: string;
  operation: string | null;
  status_code: number;
  response_time_ms: number | null;
  bytes_transferred: number | null;
  error_message: string | null;
  ip_address: string | null;
  user_agent: string | null;
}

const USER_AGENT = 'request-log-test/1.0';

async function rowsFor(server: TestServer, endpoint: string, method: string): Promise<ApiRequestRow[]> {
  const { rows } = await server.db.query<ApiRequestRow>(
    `SELECT account_id, method, endpoint, operation, status_code, response_time_ms, bytes_transferred::bigint AS bytes_transferred,
            error_message, host(ip_address) AS ip_address, user_agent
       FROM api_requests WHERE endpoint = $1 AND method = $2`,
    [endpoint, method],
  );
  return rows.map((row) => ({ ...row, bytes_transferred: row.bytes_transferred === null ? null : Number(row.bytes_transferred) }));
}

/** The one row logged for a request, once a flush has written it. */
function loggedRow(server: TestServer, endpoint: string, method: string): Promise<ApiRequestRow> {
  return waitFor(`the api_requests row of ${method} ${endpoint}`, async () => {
    const rows = await rowsFor(server, endpoint, method);
    expect(rows.length).toBeLessThanOrEqual(1);
    return rows[0];
  });
}

describe('request log (api_requests)', () => {
  let server: TestServer;
  let account: Provisioned;
  const bucket = `log-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    server = await startTestServer({ REQUEST_LOG_FLUSH_MS: '20' });
    account = await provisionAccount(server);
    expect((await signedRequest(server, account, { method: 'PUT', path: `/${bucket}` })).status).toBe(200);
  });
  afterAll(() => server?.close());

  it('records S3 requests with method, endpoint, operation, status, bytes, account, address and user agent', async () => {
    const body = randomBytes(1500);
    const put = await signedRequest(server, account, { method: 'PUT', path: `/${bucket}/a.bin`, body, headers: { 'user-agent': USER_AGENT } });
    expect(put.status).toBe(200);
    const get = await signedRequest(server, account, { method: 'GET', path: `/${bucket}/a.bin`, headers: { 'user-agent': USER_AGENT } });
    expect(get.status).toBe(200);

    expect(await loggedRow(server, `/${bucket}/a.bin`, 'PUT')).toMatchObject({
      account_id: account.id,
      operation: 'PutObject',
      status_code: 200,
      bytes_transferred: body.length,
      error_message: null,
      ip_address: '127.0.0.1',
      user_agent: USER_AGENT,
    });
    const getRow = await loggedRow(server, `/${bucket}/a.bin`, 'GET');
    expect(getRow).toMatchObject({ account_id: account.id, operation: 'GetObject', status_code: 200, bytes_transferred: body.length });
    expect(getRow.response_time_ms).toBeGreaterThanOrEqual(0);
  });

  it('records an S3 error with the code the client was given', async () => {
    const missing = await signedRequest(server, account, { method: 'GET', path: `/${bucket}/missing.bin` });
    expect(missing.status).toBe(404);
    const row = await loggedRow(server, `/${bucket}/missing.bin`, 'GET');
    expect(row).toMatchObject({ account_id: account.id, operation: 'GetObject', status_code: 404, error_message: 'NoSuchKey' });
    expect(row.bytes_transferred).toBeGreaterThan(0); // the XML error document
  });

  it('records tenant REST requests with their account, and refusals with their code', async () => {
    expect((await quota(server, account.apiKey, account.apiSecret)).status).toBe(200);
    expect((await quota(server, account.apiKey, 'jts_wrong')).status).toBe(401);
    const rows = await waitFor('both quota requests', async () => {
      const found = await rowsFor(server, '/api/agentcache/quota', 'GET');
      return found.length === 2 ? found : undefined;
    });
    const byStatus = Object.fromEntries(rows.map((row) => [row.status_code, row]));
    expect(byStatus[200]).toMatchObject({ account_id: account.id, operation: '/api/agentcache/quota', error_message: null });
    expect(byStatus[401]).toMatchObject({ account_id: null, operation: '/api/agentcache/quota', error_message: 'UNAUTHORIZED' });

    // A path under /api that no REST route claims is the REST API's 404, not an S3 request.
    expect((await fetch(`${server.gatewayUrl}/api/nothing-here`)).status).toBe(404);
    expect(await loggedRow(server, '/api/nothing-here', 'GET')).toMatchObject({ account_id: null, operation: 'unknown', status_code: 404 });
  });

  it('records admin requests without an account, with the route as operation, and leaves probes out', async () => {
    await provisionAccount(server);
    await fetch(`${server.adminUrl}/healthz`);
    await fetch(`${server.adminUrl}/readyz`);
    await fetch(`${server.adminUrl}/metrics`);
    expect((await admin(server, 'GET', '/api/agentcache/accounts/nobody-here')).status).toBe(404);

    const missing = await loggedRow(server, '/api/agentcache/accounts/nobody-here', 'GET');
    expect(missing).toMatchObject({ account_id: null, operation: '/api/agentcache/accounts/:agentcache_user_id', status_code: 404, error_message: 'ACCOUNT_NOT_FOUND' });
    const provisions = await rowsFor(server, '/api/agentcache/provision', 'POST');
    expect(provisions).toHaveLength(2);
    for (const row of provisions) expect(row).toMatchObject({ account_id: null, operation: '/api/agentcache/provision', status_code: 201 });
    // Entries are written in the order requests ended: the probes, answered before the last row, would be there by now.
    const { rows: probes } = await server.db.query(`SELECT endpoint FROM api_requests WHERE endpoint IN ('/healthz', '/readyz', '/metrics')`);
    expect(probes).toEqual([]);
  });

  it.skipIf(primaryDbKind !== 'postgres')('drops and counts entries while the database stalls, and requests keep answering', async () => {
    const small = await startTestServer({ REQUEST_LOG_FLUSH_MS: '10', REQUEST_LOG_BUFFER: '3' });
    const locker = new pg.Client({ connectionString: small.config.databaseUrl! });
    try {
      const tenant = await provisionAccount(small);
      const metric = async () => Number(/^jt_request_log_dropped_total (\S+)$/m.exec(await (await fetch(`${small.adminUrl}/metrics`)).text())?.[1]);
      const before = await metric();

      await locker.connect();
      // Every INSERT into api_requests now waits for this transaction: the log's database is stalled.
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE api_requests IN ACCESS EXCLUSIVE MODE');
      for (let i = 0; i < 12; i++) expect((await quota(small, tenant.apiKey, tenant.apiSecret)).status).toBe(200);
      const dropped = (await metric()) - before;
      // At most one batch is held by the stalled INSERT and three wait in the buffer; the rest are dropped.
      expect(dropped).toBeGreaterThanOrEqual(12 - 3 - 3);
      await locker.query('ROLLBACK');

      // Once the database answers again, what was kept is written, and new requests are logged again.
      const quotaRows = async () => {
        const { rows } = await small.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM api_requests WHERE endpoint = '/api/agentcache/quota'`);
        return rows[0]!.n;
      };
      await waitFor('the entries kept during the stall', async () => ((await quotaRows()) === 12 - dropped ? true : undefined));
      expect((await quota(small, tenant.apiKey, 'jts_wrong')).status).toBe(401);
      await waitFor('the request after the stall', async () => ((await quotaRows()) === 12 - dropped + 1 ? true : undefined));
    } finally {
      await locker.end().catch(() => undefined);
      await small.close();
    }
  });
});

describe('request log turned off (REQUEST_LOG_ENABLED=false)', () => {
  it('writes no api_requests rows, and still writes the JSON request line', async () => {
    const quiet = await startTestServer({ REQUEST_LOG_ENABLED: 'false', REQUEST_LOG_FLUSH_MS: '10' });
    try {
      const tenant = await provisionAccount(quiet);
      expect((await quota(quiet, tenant.apiKey, tenant.apiSecret)).status).toBe(200);
      await waitFor('the request line', async () =>
        quiet.logs.some((line) => line.msg === 'request' && line.operation === '/api/agentcache/quota') ? true : undefined,
      );
      // Well past several flush intervals of an enabled log: nothing was buffered to be written.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const { rows } = await quiet.db.query<{ n: number }>('SELECT count(*)::int AS n FROM api_requests');
      expect(rows[0]!.n).toBe(0);
    } finally {
      await quiet.close();
    }
  });
});
