import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, type Provisioned } from '../helpers/admin.js';
import { createPostgresDatabase, testDatabaseUrl } from '../helpers/db.js';
import { backendFiles, MiB, storageState, streamedPut, xmlElement } from '../helpers/quota.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startChildGateway, startTestServer, type ChildGateway, type TestServer } from '../helpers/server.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

// Two gateway processes on one PostgreSQL and one fs backend folder; PGlite is one process by nature.
describe.runIf(testDatabaseUrl !== null)('64 uploads racing for the last 10 MB of a quota over two gateway processes', () => {
  let dataDir: string;
  let drop: () => Promise<void>;
  let inProcess: TestServer;
  let child: ChildGateway;
  let childGatewayUrl: string;
  let account: Provisioned;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'jt-quota-race-'));
    const database = await createPostgresDatabase();
    drop = database.drop;
    inProcess = await startTestServer({ DATABASE_URL: database.url, DATA_DIR: dataDir });
    child = await startChildGateway({ DATABASE_URL: database.url, DATA_DIR: dataDir });
    childGatewayUrl = child.gatewayUrl;
  });
  afterAll(async () => {
    child?.child.kill('SIGTERM');
    await child?.exited;
    await inProcess?.close();
    await drop?.();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('never stores a byte over the quota, and every refused upload leaves nothing behind', async () => {
    account = await provisionAccount(inProcess, undefined, 'enterprise');
    const prefill = randomBytes(2 * MiB);
    expect((await streamedPut(inProcess.gatewayUrl, account, '/default/prefill', { chunks: [prefill], contentLength: prefill.length })).status).toBe(200);
    const quota = prefill.length + 10 * MiB;
    const limits = await admin(inProcess, 'POST', '/api/agentcache/overrides', {
      agentcache_user_id: account.agentcacheUserId,
      storage_quota_bytes: quota,
      rate_limit_per_minute: 1_000_000,
    });
    expect(limits.status).toBe(200);

    // Sizes around 1 MB, none a multiple of another, so the last fitting upload lands off any boundary.
    // Eight uploads share one content, to race dedup against the quota (tenants pay logical bytes).
    const shared = randomBytes(MiB - 4096);
    const uploads = Array.from({ length: 64 }, (_, index) => {
      const body = index % 8 === 0 ? shared : randomBytes(MiB - 4096 + index * 977);
      // One in four with no declared length (chunked), counted while it streams.
      const declared = index % 4 !== 1;
      const gatewayUrl = index % 2 === 0 ? inProcess.gatewayUrl : childGatewayUrl;
      return { key: `race/${index}`, body, declared, gatewayUrl };
    });
    const answers = await Promise.all(
      uploads.map((upload) =>
        streamedPut(upload.gatewayUrl, account, `/default/${upload.key}`, {
          chunks: upload.declared ? [upload.body] : [upload.body.subarray(0, 300_000), upload.body.subarray(300_000)],
          ...(upload.declared && { contentLength: upload.body.length }),
        }),
      ),
    );

    const accepted = uploads.filter((_, index) => answers[index]!.status === 200);
    for (const [index, answer] of answers.entries()) {
      if (answer.status === 200) continue;
      expect({ index, status: answer.status, code: xmlElement(answer.body, 'Code') }).toEqual({ index, status: 403, code: 'QuotaExceeded' });
      expect(xmlElement(answer.body, 'Message')).toMatch(/used of 12\.00 MB/);
    }
    expect(accepted.length).toBeGreaterThan(0);
    expect(accepted.length).toBeLessThan(uploads.length);

    const { rows } = await inProcess.db.query<{ object_key: string; size_bytes: number; content_hash: string }>(
      'SELECT object_key, size_bytes, content_hash FROM agentcache_assets WHERE account_id = $1 ORDER BY object_key',
      [account.id],
    );
    const expectedRows = [{ key: 'prefill', body: prefill }, ...accepted].map(({ key, body }) => ({ object_key: key, size_bytes: body.length, content_hash: sha256(body) }));
    expect(rows).toEqual(expectedRows.sort((a, b) => a.object_key.localeCompare(b.object_key)));
    const stored = rows.reduce((sum, row) => sum + Number(row.size_bytes), 0);
    expect(stored).toBeLessThanOrEqual(quota);

    const state = await storageState(inProcess.db, account.id);
    const distinctContents = new Set(expectedRows.map((row) => row.content_hash)).size;
    expect(state).toMatchObject({ quota, used: stored, objectBytes: stored, reserved: 0, reservations: 0, stagedWrites: 0, blobs: distinctContents });
    const files = await backendFiles(dataDir, account.agentcacheUserId);
    expect(files.objects).toHaveLength(distinctContents);
    expect(files.staging).toEqual([]);

    // The accepted bytes read back whole through either process.
    for (const [index, upload] of accepted.entries()) {
      const via = index % 2 === 0 ? inProcess.gatewayUrl : childGatewayUrl;
      const response = await getObject(via, account, upload.key);
      expect(sha256(response)).toBe(sha256(upload.body));
    }
  });

  it('a quota or largest-object change through one process applies to the very next upload on the other', async () => {
    const other = await provisionAccount(inProcess, undefined, 'enterprise');
    const put = async (key: string, size: number) => {
      const answer = await streamedPut(childGatewayUrl, other, `/default/${key}`, { chunks: [randomBytes(size)], contentLength: size });
      return [answer.status, xmlElement(answer.body, 'Code') ?? null];
    };
    const override = async (limits: Record<string, number | null>) =>
      expect((await admin(inProcess, 'POST', '/api/agentcache/overrides', { agentcache_user_id: other.agentcacheUserId, ...limits })).status).toBe(200);

    expect(await put('before', 2000)).toEqual([200, null]);
    await override({ max_file_size_bytes: 1000 });
    expect(await put('too-large', 1001)).toEqual([400, 'EntityTooLarge']);
    await override({ max_file_size_bytes: null, storage_quota_bytes: 2100 });
    expect(await put('over-quota', 101)).toEqual([403, 'QuotaExceeded']);
    await override({ storage_quota_bytes: null });
    expect(await put('after', 1001)).toEqual([200, null]);
  });
});

async function getObject(gatewayUrl: string, account: Provisioned, key: string): Promise<Buffer> {
  const client = s3Client({ gatewayUrl } as TestServer, account);
  try {
    const got = await client.send(new GetObjectCommand({ Bucket: 'default', Key: key }));
    return await readAll(got.Body as AsyncIterable<Uint8Array>);
  } finally {
    client.destroy();
  }
}
