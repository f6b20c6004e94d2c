import { createHash, randomBytes } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionAccount, waitFor, type Provisioned } from '../helpers/admin.js';
import { restClient, type RestClient } from '../helpers/rest.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

let server: TestServer;
let account: Provisioned;
let rest: RestClient;
let s3: S3Client;

beforeAll(async () => {
  server = await startTestServer();
  account = await provisionAccount(server, undefined, 'pro');
  rest = restClient(server, account);
  s3 = s3Client(server, account);
});
afterAll(async () => {
  s3?.destroy();
  await server?.close();
});

async function usedBytes(): Promise<number> {
  const { rows } = await server.db.query<{ storage_used_bytes: string; storage_reserved_bytes: string }>(
    'SELECT storage_used_bytes, storage_reserved_bytes FROM agentcache_accounts WHERE id = $1',
    [account.id],
  );
  expect(Number(rows[0]!.storage_reserved_bytes)).toBe(0);
  return Number(rows[0]!.storage_used_bytes);
}

async function backendKeyOf(id: string): Promise<string> {
  const { rows } = await server.db.query<{ backend_key: string }>('SELECT b.backend_key FROM agentcache_assets o JOIN blobs b ON b.id = o.blob_id WHERE o.id = $1', [id]);
  return rows[0]!.backend_key;
}

describe('upload', () => {
  it('streams the file into the account and answers 201 with the asset', async () => {
    const bytes = randomBytes(200_000);
    const before = await usedBytes();
    const upload = await rest.uploadBytes(bytes, 'sunset.png', { cache_key: 'dalle_sunset', agentcache_pipeline_id: 'pipe-1', ttl_seconds: '3600' }, 'image/png');
    expect(upload.status).toBe(201);
    expect(upload.body).toMatchObject({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      bucket: 'default',
      key: 'sunset.png',
      size_bytes: bytes.length,
      content_type: 'image/png',
      sha256: sha256(bytes),
      etag: md5(bytes),
      cache_key: 'dalle_sunset',
      agentcache_pipeline_id: 'pipe-1',
      deduplicated: false,
    });
    const expiresIn = Date.parse(upload.body.expires_at) - Date.now();
    expect(expiresIn).toBeGreaterThan(3500_000);
    expect(expiresIn).toBeLessThanOrEqual(3600_000);
    expect(await usedBytes()).toBe(before + bytes.length);

    const { rows } = await server.db.query<{ uploaded_via: string; cache_key: string; agentcache_pipeline_id: string }>(
      'SELECT uploaded_via, cache_key, agentcache_pipeline_id FROM agentcache_assets WHERE id = $1',
      [upload.body.id],
    );
    expect(rows[0]).toEqual({ uploaded_via: 'api', cache_key: 'dalle_sunset', agentcache_pipeline_id: 'pipe-1' });
  });

  it('puts the file where bucket and key say, and says when the bytes were stored already', async () => {
    const bytes = randomBytes(10_000);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'first-copy', Body: bytes }));
    await s3.send(new CreateBucketCommand({ Bucket: 'images' }));

    const upload = await rest.uploadBytes(bytes, 'ignored-name.bin', { bucket: 'images', key: 'nested/copy.bin' });
    expect(upload.status).toBe(201);
    expect(upload.body).toMatchObject({ bucket: 'images', key: 'nested/copy.bin', deduplicated: true, sha256: sha256(bytes) });
    const { rows } = await server.db.query<{ n: string }>('SELECT count(*) AS n FROM blobs WHERE account_id = $1 AND sha256 = $2', [account.id, sha256(bytes)]);
    expect(Number(rows[0]!.n)).toBe(1);
  });

  it('keys the object by the file name as sent, in UTF-8', async () => {
    const upload = await rest.uploadBytes(Buffer.from('名前'), 'dalle ünïcødé 😀.png');
    expect(upload.status).toBe(201);
    expect(upload.body.key).toBe('dalle ünïcødé 😀.png');
    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'dalle ünïcødé 😀.png' }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).toString()).toBe('名前');
  });

  it('takes cache_key, TTL and pipeline after the file, as the seed\'s own example sends cache_key', async () => {
    const upload = await rest.upload([
      ['file', new Blob([randomBytes(3000)]), 'trailing.bin'],
      ['cache_key', 'sent-after'],
      ['ttl_seconds', '120'],
      ['agentcache_pipeline_id', 'pipe-after'],
    ]);
    expect(upload.status).toBe(201);
    expect(upload.body).toMatchObject({ key: 'trailing.bin', cache_key: 'sent-after', agentcache_pipeline_id: 'pipe-after' });
    expect(Date.parse(upload.body.expires_at)).toBeGreaterThan(Date.now() + 100_000);
  });

  it.each([
    [[['file', new Blob([randomBytes(5000)]), 'late.bin'], ['key', 'placed-late.bin']], 'FIELD_AFTER_FILE', 'key'],
    [[['file', new Blob([randomBytes(5000)]), 'late.bin'], ['bucket', 'default']], 'FIELD_AFTER_FILE', 'bucket'],
    [[['file', new Blob([randomBytes(5000)]), 'late.bin'], ['ttl_seconds', 'soon']], 'VALIDATION_ERROR', 'ttl_seconds'],
    [[['file', new Blob([randomBytes(5000)]), 'late.bin'], ['file', new Blob(['again']), 'again.bin']], 'SECOND_FILE', 'file'],
  ] as const)('refuses a form whose trailing part is wrong (%#: %s), storing nothing', async (parts, code, field) => {
    const before = await usedBytes();
    const upload = await rest.upload(parts as never);
    expect(upload.status).toBe(400);
    expect(upload.body).toMatchObject({ code, field });
    const { rows } = await server.db.query('SELECT 1 FROM agentcache_assets WHERE account_id = $1 AND object_key IN ($2, $3)', [account.id, 'late.bin', 'placed-late.bin']);
    expect(rows).toHaveLength(0);
    expect(await usedBytes()).toBe(before);
  });

  it('names the field order in its refusal', async () => {
    const upload = await rest.upload([['file', new Blob(['x']), 'x.bin'], ['key', 'elsewhere']]);
    expect(upload.body.error).toBe('"key" came after the file, but it decides where the file is stored: send it before the file (with curl, put -F "key=…" before -F "file=@…").');
  });

  it.each([
    [[['cache_key', 'no file']], 400, 'FILE_REQUIRED'],
    [[['colour', 'blue'], ['file', new Blob(['x']), 'x.txt']], 400, 'UNKNOWN_FIELD'],
    [[['ttl_seconds', '60'], ['expires_at', '2999-01-01T00:00:00Z'], ['file', new Blob(['x']), 'x.txt']], 400, 'VALIDATION_ERROR'],
    [[['expires_at', '2001-01-01T00:00:00Z'], ['file', new Blob(['x']), 'x.txt']], 400, 'VALIDATION_ERROR'],
    [[['bucket', 'nope'], ['file', new Blob(['x']), 'x.txt']], 404, 'NO_SUCH_BUCKET'],
    [[['key', 'k'.repeat(1100)], ['file', new Blob(['x']), 'x.txt']], 400, 'KEY_TOO_LONG'],
  ] as const)('answers %#: %s %s', async (parts, status, code) => {
    const upload = await rest.upload(parts as never);
    expect(upload.status).toBe(status);
    expect(upload.body.code).toBe(code);
  });

  it('keeps the connection usable after refusing a form whose file was left unread', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const send = (method: string, path: string, body?: Buffer, contentType?: string) =>
      new Promise<{ status: number; body: string; socket: unknown }>((resolve, reject) => {
        const headers: Record<string, string> = { authorization: `Bearer ${account.apiKey}`, 'x-api-secret': account.apiSecret };
        if (body) Object.assign(headers, { 'content-type': contentType!, 'content-length': String(body.length) });
        const request = httpRequest(`${server.gatewayUrl}/api${path}`, { method, agent, headers }, (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode!, body: Buffer.concat(chunks).toString(), socket: request.socket }));
        });
        request.on('error', reject);
        request.end(body);
      });
    try {
      const boundary = 'unread-file';
      const form = Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="colour"\r\n\r\nblue\r\n`),
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n\r\n`),
        randomBytes(400_000),
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      const refused = await send('POST', '/storage/upload', form, `multipart/form-data; boundary=${boundary}`);
      expect(refused.status).toBe(400);
      expect(JSON.parse(refused.body).code).toBe('UNKNOWN_FIELD');
      const next = await send('GET', '/storage/list?limit=1');
      expect(next.status).toBe(200);
      expect(next.socket).toBe(refused.socket);
    } finally {
      agent.destroy();
    }
  });

  it('refuses a form cut short before its closing boundary, storing nothing', async () => {
    const before = await usedBytes();
    const boundary = 'cut-short';
    for (const body of [
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.bin"\r\n\r\n${'x'.repeat(5000)}`,
      `--${boundary}\r\nContent-Disposition: form-data; name="cache_key"\r\n\r\ncut`,
    ]) {
      const response = await rest.call('POST', '/storage/upload', { headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body });
      expect(response.status).toBe(400);
      expect(['INCOMPLETE_BODY', 'MALFORMED_FORM']).toContain(response.body.code);
    }
    const { rows } = await server.db.query('SELECT 1 FROM agentcache_assets WHERE account_id = $1 AND object_key = $2', [account.id, 'cut.bin']);
    expect(rows).toHaveLength(0);
    expect(await usedBytes()).toBe(before);
  });

  it('refuses a body that is not a form', async () => {
    const response = await rest.call('POST', '/storage/upload', { headers: { 'content-type': 'application/octet-stream' }, body: 'raw bytes' });
    expect(response.status).toBe(415);
    expect(response.body.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });
});

describe('download', () => {
  let bytes: Buffer;
  let id: string;
  beforeAll(async () => {
    bytes = randomBytes(64_000);
    const upload = await rest.uploadBytes(bytes, 'download-me.bin', { cache_key: 'dl-key' }, 'application/x-test');
    id = upload.body.id;
  });

  it('streams the bytes by id and by cache_key, and counts each hit', async () => {
    const byId = await rest.call('GET', `/storage/download/${id}`);
    expect(byId.status).toBe(200);
    expect(byId.bytes.equals(bytes)).toBe(true);
    expect(byId.headers.get('content-type')).toBe('application/x-test');
    expect(byId.headers.get('etag')).toBe(`"${md5(bytes)}"`);
    const byCacheKey = await rest.call('GET', `/storage/download?cache_key=dl-key`);
    expect(byCacheKey.bytes.equals(bytes)).toBe(true);

    const hits = await waitFor('two recorded hits', async () => {
      const { rows } = await server.db.query<{ hit_count: number; last_accessed: Date | null }>('SELECT hit_count, last_accessed FROM agentcache_assets WHERE id = $1', [id]);
      return rows[0]!.hit_count === 2 ? rows[0] : undefined;
    });
    expect(hits.last_accessed).not.toBeNull();
  });

  it('serves a range', async () => {
    const ranged = await rest.call('GET', `/storage/download/${id}`, { headers: { range: 'bytes=1000-1999' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('content-range')).toBe(`bytes 1000-1999/${bytes.length}`);
    expect(ranged.bytes.equals(bytes.subarray(1000, 2000))).toBe(true);
    const unsatisfiable = await rest.call('GET', `/storage/download/${id}`, { headers: { range: 'bytes=999999-' } });
    expect(unsatisfiable.status).toBe(416);
    expect(unsatisfiable.body.code).toBe('INVALID_RANGE');
  });

  it('answers 304 to a request that has the current version', async () => {
    const notModified = await rest.call('GET', `/storage/download/${id}`, { headers: { 'if-none-match': `"${md5(bytes)}"` } });
    expect(notModified.status).toBe(304);
    expect(notModified.bytes.length).toBe(0);
  });

  it('answers a gateway URL that serves the bytes without credentials', async () => {
    const redirect = await rest.call('GET', `/storage/download/${id}?redirect=1`);
    expect(redirect.status).toBe(200);
    expect(redirect.body).toEqual({ url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/default\/download-me\.bin\?X-Amz-/), via: 'gateway', expires_at: expect.any(String) });
    expect(Date.parse(redirect.body.expires_at) - Date.now()).toBeGreaterThan(3500_000);
    const followed = await fetch(redirect.body.url);
    expect(followed.status).toBe(200);
    expect(Buffer.from(await followed.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it('answers 404 for an id or cache_key that names nothing', async () => {
    for (const path of ['/storage/download/00000000-0000-0000-0000-000000000000', '/storage/download/not-a-uuid', '/storage/download?cache_key=nothing-here']) {
      const response = await rest.call('GET', path);
      expect(response.status).toBe(404);
      expect(response.body.code).toBe('NOT_FOUND');
    }
  });
});

describe('one namespace with S3', () => {
  it('an object uploaded here is read over S3, and one put over S3 is downloaded here', async () => {
    const viaRest = randomBytes(3000);
    const upload = await rest.uploadBytes(viaRest, 'from-rest.bin', { key: 'shared/from-rest.bin' });
    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'shared/from-rest.bin' }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(viaRest)).toBe(true);
    expect(got.ETag).toBe(`"${upload.body.etag}"`);

    const viaS3 = randomBytes(4000);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'shared/from-s3.bin', Body: viaS3 }));
    const listed = await rest.call('GET', '/storage/list?prefix=shared/from-s3');
    expect(listed.body.assets).toHaveLength(1);
    expect(listed.body.assets[0]).toMatchObject({ key: 'shared/from-s3.bin', size_bytes: viaS3.length, uploaded_via: 's3' });
    const downloaded = await rest.call('GET', `/storage/download/${listed.body.assets[0].id}`);
    expect(downloaded.bytes.equals(viaS3)).toBe(true);
  });

  it('an expired object is gone from both surfaces before any collector runs', async () => {
    const upload = await rest.uploadBytes(randomBytes(100), 'short-lived.bin', { cache_key: 'short', ttl_seconds: '60' });
    expect((await rest.call('GET', `/storage/download/${upload.body.id}`)).status).toBe(200);
    // The minute passes.
    await server.db.query("UPDATE agentcache_assets SET expires_at = now() - interval '1 second' WHERE id = $1", [upload.body.id]);
    expect((await rest.call('GET', `/storage/download/${upload.body.id}`)).status).toBe(404);
    expect((await rest.call('GET', '/storage/download?cache_key=short')).status).toBe(404);
    expect((await rest.call('GET', '/storage/list?cache_key=short')).body.assets).toEqual([]);
    await expect(s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'short-lived.bin' }))).rejects.toMatchObject({ name: 'NotFound' });
  });
});

describe('delete', () => {
  it('frees the quota and deletes the bytes once no object holds them', async () => {
    const bytes = randomBytes(20_000);
    const upload = await rest.uploadBytes(bytes, 'delete-me.bin');
    const backendKey = await backendKeyOf(upload.body.id);
    const before = await usedBytes();
    const deleted = await rest.call('DELETE', `/storage/${upload.body.id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ deleted: [{ id: upload.body.id, bucket: 'default', key: 'delete-me.bin', size_bytes: bytes.length }], freed_bytes: bytes.length });
    expect(await usedBytes()).toBe(before - bytes.length);
    expect(await server.backend.head({ key: backendKey })).toBeNull();
    expect((await rest.call('GET', `/storage/download/${upload.body.id}`)).status).toBe(404);
    expect((await rest.call('DELETE', `/storage/${upload.body.id}`)).status).toBe(404);
  });

  it('by cache_key removes every object under it, keeping bytes another object still holds', async () => {
    const bytes = randomBytes(5000);
    await rest.uploadBytes(bytes, 'ck-1.bin', { cache_key: 'to-forget' });
    await rest.uploadBytes(randomBytes(10), 'ck-2.bin', { cache_key: 'to-forget' });
    const keeper = await rest.uploadBytes(bytes, 'ck-keeper.bin', { cache_key: 'to-keep' });
    const deleted = await rest.call('DELETE', '/storage?cache_key=to-forget');
    expect(deleted.status).toBe(200);
    expect(deleted.body.deleted.map((asset: { key: string }) => asset.key).sort()).toEqual(['ck-1.bin', 'ck-2.bin']);
    expect(deleted.body.freed_bytes).toBe(5010);
    expect(await server.backend.head({ key: await backendKeyOf(keeper.body.id) })).not.toBeNull();
    expect((await rest.call('GET', '/storage/download?cache_key=to-keep')).bytes.equals(bytes)).toBe(true);
    expect((await rest.call('DELETE', '/storage?cache_key=to-forget')).status).toBe(404);
  });
});

describe('list', () => {
  let other: RestClient;
  beforeAll(async () => {
    other = restClient(server, await provisionAccount(server, undefined, 'pro'));
    for (const [key, pipeline] of [['list/c.txt', 'p1'], ['list/a.txt', 'p2'], ['list/b.txt', 'p1'], ['elsewhere.txt', 'p1']] as const) {
      await other.uploadBytes(Buffer.from(key), 'f', { key, agentcache_pipeline_id: pipeline, cache_key: `ck-${key}` });
    }
  });

  it('pages newest first with a cursor, each object once', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { assets: { key: string }[]; next_cursor: string | null } } = await other.call('GET', `/storage/list?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...page.body.assets.map((asset) => asset.key));
      cursor = page.body.next_cursor;
    } while (cursor !== null);
    expect(seen).toEqual(['elsewhere.txt', 'list/b.txt', 'list/a.txt', 'list/c.txt']);
  });

  it('orders by key and filters by prefix, pipeline and cache_key', async () => {
    const byKey = await other.call('GET', '/storage/list?order=key&prefix=list/');
    expect(byKey.body.assets.map((asset: { key: string }) => asset.key)).toEqual(['list/a.txt', 'list/b.txt', 'list/c.txt']);
    const firstPage = await other.call('GET', '/storage/list?order=key&limit=2');
    const secondPage = await other.call('GET', `/storage/list?order=key&limit=2&cursor=${firstPage.body.next_cursor}`);
    expect([...firstPage.body.assets, ...secondPage.body.assets].map((asset: { key: string }) => asset.key)).toEqual(['elsewhere.txt', 'list/a.txt', 'list/b.txt', 'list/c.txt']);
    expect(secondPage.body.next_cursor).toBeNull();

    const pipeline = await other.call('GET', '/storage/list?agentcache_pipeline_id=p1&order=key');
    expect(pipeline.body.assets.map((asset: { key: string }) => asset.key)).toEqual(['elsewhere.txt', 'list/b.txt', 'list/c.txt']);
    const cacheKey = await other.call('GET', '/storage/list?cache_key=ck-list/a.txt');
    expect(cacheKey.body.assets).toEqual([expect.objectContaining({ key: 'list/a.txt', bucket: 'default', cache_key: 'ck-list/a.txt', hit_count: 0, uploaded_via: 'api' })]);
    expect((await other.call('GET', '/storage/list?bucket=default&prefix=zzz')).body).toEqual({ assets: [], next_cursor: null });
  });

  it('refuses a cursor of the other order, an unknown bucket, and sees no other account', async () => {
    const newest = await other.call('GET', '/storage/list?limit=1');
    const mixed = await other.call('GET', `/storage/list?order=key&cursor=${newest.body.next_cursor}`);
    expect(mixed.status).toBe(400);
    expect(mixed.body.code).toBe('INVALID_CURSOR');
    expect((await other.call('GET', '/storage/list?bucket=missing')).status).toBe(404);
    const mine = await rest.call('GET', '/storage/list?prefix=list/');
    expect(mine.body.assets).toEqual([]);
  });
});
