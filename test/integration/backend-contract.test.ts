import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, BackendErrorCode, type Backend } from '../../src/backend/backend.js';
import { createFsBackend } from '../../src/backend/fs.js';
import { createS3Backend } from '../../src/backend/s3.js';
import { digestStream, generatedBytes, generatedMd5, generatedStream } from '../fixtures/generated-data.js';
import { startS3rver, type TestS3Server } from '../helpers/s3rver.js';

// Without a logger of its own, the SDK warns on the console about the failing-body cases below.
const quietSdk = { logger: { debug() {}, info() {}, warn() {}, error() {} } };

function s3Config(server: TestS3Server) {
  const { endpoint, bucket, accessKeyId, secretAccessKey } = server;
  return { endpoint, region: 'us-east-1', bucket, accessKeyId, secretAccessKey };
}

interface OpenedBackend {
  backend: Backend;
  cleanup(): Promise<void>;
}

const backends: { name: string; open(): Promise<OpenedBackend> }[] = [
  {
    name: 'fs',
    async open() {
      const root = await mkdtemp(path.join(tmpdir(), 'jt-fs-backend-'));
      const backend = createFsBackend({ root });
      return { backend, cleanup: () => rm(root, { recursive: true, force: true }) };
    },
  },
  {
    name: 's3',
    async open() {
      const server = await startS3rver();
      const backend = createS3Backend(s3Config(server), quietSdk);
      return {
        backend,
        async cleanup() {
          await backend.close();
          await server.close();
        },
      };
    },
  },
];

const MiB = 1024 * 1024;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function listAll(backend: Backend, prefix: string, maxKeys?: number): Promise<{ keys: string[]; pages: number }> {
  const keys: string[] = [];
  let pages = 0;
  let continuationToken: string | undefined;
  do {
    const page = await backend.list({ prefix, continuationToken, maxKeys });
    pages++;
    if (maxKeys !== undefined) expect(page.objects.length).toBeLessThanOrEqual(maxKeys);
    keys.push(...page.objects.map((object) => object.key));
    continuationToken = page.continuationToken;
  } while (continuationToken !== undefined);
  return { keys, pages };
}

function byUtf8Bytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

describe.each(backends)('$name backend', ({ open }) => {
  let backend: Backend;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ backend, cleanup } = await open());
  });
  afterAll(() => cleanup?.());

  it('put of known length streams a 20 MiB body that get returns byte for byte', async () => {
    const size = 20 * MiB;
    const put = await backend.put({ key: 'users/u1/blobs/known', body: generatedStream('known', size), contentLength: size, contentType: 'application/octet-stream' });
    const md5 = generatedMd5('known', size);
    expect(put).toEqual({ etag: md5, size });
    const got = await backend.get({ key: 'users/u1/blobs/known' });
    expect(got.contentLength).toBe(size);
    expect(got.size).toBe(size);
    expect(await digestStream(got.body)).toEqual({ md5, length: size });
  });

  it('put of unknown length stores large and small bodies', async () => {
    for (const [key, size] of [['users/u1/blobs/unknown-large', 12 * MiB + 5], ['users/u1/blobs/unknown-small', 100_000]] as const) {
      const put = await backend.put({ key, body: generatedStream(key, size) });
      expect(put.size).toBe(size);
      const got = await backend.get({ key });
      expect(await digestStream(got.body)).toEqual({ md5: generatedMd5(key, size), length: size });
      expect((await backend.head({ key }))?.etag).toBe(put.etag);
    }
  });

  it("stores the seed's empty .keep prefix marker", async () => {
    const put = await backend.put({ key: 'users/u2/.keep', body: Readable.from([]), contentLength: 0, contentType: 'text/plain' });
    expect(put).toEqual({ etag: createHash('md5').digest('hex'), size: 0 });
    expect(await backend.head({ key: 'users/u2/.keep' })).toMatchObject({ size: 0, etag: put.etag });
    expect((await readAll((await backend.get({ key: 'users/u2/.keep' })).body)).length).toBe(0);
  });

  it('head gives size, ETag and last-modified, and null for a missing key', async () => {
    const size = 300_000;
    const before = Date.now();
    await backend.put({ key: 'users/u1/blobs/head', body: generatedStream('head', size), contentLength: size });
    const head = await backend.head({ key: 'users/u1/blobs/head' });
    expect(head).toMatchObject({ size, etag: generatedMd5('head', size) });
    // Allow for second-granular Last-Modified upstream.
    expect(head!.lastModified.getTime()).toBeGreaterThan(before - 2_000);
    expect(await backend.head({ key: 'users/u1/blobs/never-written' })).toBeNull();
  });

  describe('get with a range', () => {
    const key = 'users/u1/blobs/ranged';
    const size = 3 * MiB + 17;
    beforeAll(async () => {
      await backend.put({ key, body: generatedStream(key, size), contentLength: size });
    });

    it.each([
      ['a middle slice', { start: 1_000_000, end: 1_999_999 }, 1_000_000, 1_000_000],
      ['the first byte', { start: 0, end: 0 }, 0, 1],
      ['from an offset to the end', { start: size - 100 }, size - 100, 100],
      ['an end past the last byte, clamped', { start: size - 10, end: size + 1000 }, size - 10, 10],
    ])('%s', async (_name, range, start, length) => {
      const got = await backend.get({ key, range });
      expect(got.contentLength).toBe(length);
      expect(got.size).toBe(size);
      expect((await readAll(got.body)).equals(generatedBytes(key, start, length))).toBe(true);
    });

    it('a start past the end fails with InvalidRange', async () => {
      await expect(backend.get({ key, range: { start: size, end: size + 5 } })).rejects.toMatchObject({ code: BackendErrorCode.InvalidRange });
    });
  });

  it('get of a missing key fails with NotFound', async () => {
    const failure = backend.get({ key: 'users/u1/blobs/missing' });
    await expect(failure).rejects.toBeInstanceOf(BackendError);
    await expect(failure).rejects.toMatchObject({ code: BackendErrorCode.NotFound });
  });

  it('delete removes an object and succeeds again when it is gone', async () => {
    await backend.put({ key: 'users/u3/blobs/doomed', body: generatedStream('doomed', 1000), contentLength: 1000 });
    await backend.delete({ key: 'users/u3/blobs/doomed' });
    expect(await backend.head({ key: 'users/u3/blobs/doomed' })).toBeNull();
    await backend.delete({ key: 'users/u3/blobs/doomed' });
    await backend.delete({ key: 'users/u3/blobs/never-written' });
  });

  it('deleteMany removes every key given, present or not', async () => {
    const keys = ['users/u4/blobs/a', 'users/u4/blobs/b', 'users/u4/c/d'];
    for (const key of keys) await backend.put({ key, body: generatedStream(key, 10), contentLength: 10 });
    expect(await backend.deleteMany({ keys: [...keys, 'users/u4/blobs/never-written'] })).toEqual({ errors: [] });
    expect((await backend.list({ prefix: 'users/u4/' })).objects).toEqual([]);
    expect(await backend.deleteMany({ keys: [] })).toEqual({ errors: [] });
  });

  it('list pages through a prefix in UTF-8 byte order', async () => {
    const inside = ['list/B', 'list/a-2', 'list/a/1', 'list/a/2', 'list/a0', 'list/b', 'list/z', 'list/é', 'list/ü/x'];
    const outside = ['lis', 'listing/x'];
    for (const key of [...[...inside].reverse(), ...outside]) await backend.put({ key, body: generatedStream(key, 5), contentLength: 5 });
    const expected = [...inside].sort(byUtf8Bytes);
    // Capitals first, '-' before '/' before '0' (so a folder's keys interleave with its siblings), é and ü last.
    expect(expected).toEqual(inside);

    const { keys, pages } = await listAll(backend, 'list/', 3);
    expect(keys).toEqual(expected);
    expect(pages).toBe(3);
    expect((await listAll(backend, 'list/a')).keys).toEqual(['list/a-2', 'list/a/1', 'list/a/2', 'list/a0']);
    expect((await listAll(backend, 'list/nothing-here/')).keys).toEqual([]);

    const first = await backend.list({ prefix: 'list/', maxKeys: 1 });
    expect(first.objects).toEqual([{ key: 'list/B', size: 5, lastModified: expect.any(Date) }]);
  });

  it('multipart upload of three parts completes to the bytes and an S3 multipart ETag', async () => {
    const key = 'users/u5/blobs/multipart';
    const sizes = [5 * MiB, 5 * MiB, 1 * MiB + 3];
    const { uploadId } = await backend.createMultipart({ key, contentType: 'application/octet-stream' });
    const offsets = sizes.map((_, index) => sizes.slice(0, index).reduce((sum, size) => sum + size, 0));
    const partMd5s = sizes.map((size, index) => generatedMd5(key, size, offsets[index]));
    const parts: { partNumber: number; etag: string }[] = [];
    // Out of order on purpose: a part's number, not its arrival, decides its place.
    for (const index of [1, 0, 2]) {
      const body = Readable.from([generatedBytes(key, offsets[index]!, sizes[index]!)]);
      const { etag } = await backend.uploadPart({ key, uploadId, partNumber: index + 1, body, contentLength: sizes[index]! });
      expect(etag).toBe(partMd5s[index]);
      parts[index] = { partNumber: index + 1, etag };
    }
    const total = sizes.reduce((sum, size) => sum + size, 0);
    expect(await backend.head({ key })).toBeNull();

    const { etag } = await backend.completeMultipart({ key, uploadId, parts });
    const expectedEtag = `${createHash('md5').update(Buffer.concat(partMd5s.map((md5) => Buffer.from(md5, 'hex')))).digest('hex')}-3`;
    expect(etag).toBe(expectedEtag);
    expect(await backend.head({ key })).toMatchObject({ size: total, etag: expectedEtag });
    expect(await digestStream((await backend.get({ key })).body)).toEqual({ md5: generatedMd5(key, total), length: total });
  });

  it('abort discards a multipart upload and succeeds again when it is gone', async () => {
    const key = 'users/u5/blobs/aborted-multipart';
    const { uploadId } = await backend.createMultipart({ key });
    const { etag } = await backend.uploadPart({ key, uploadId, partNumber: 1, body: generatedStream(key, 1000), contentLength: 1000 });
    await backend.abortMultipart({ key, uploadId });
    await backend.abortMultipart({ key, uploadId });
    await expect(backend.completeMultipart({ key, uploadId, parts: [{ partNumber: 1, etag }] })).rejects.toMatchObject({ code: BackendErrorCode.NotFound });
    await expect(
      backend.uploadPart({ key, uploadId, partNumber: 2, body: generatedStream(key, 10), contentLength: 10 }),
    ).rejects.toMatchObject({ code: BackendErrorCode.NotFound });
    expect(await backend.head({ key })).toBeNull();
  });

  describe('a put that fails leaves nothing behind', () => {
    it.each([
      ['known', 8 * MiB as number | undefined, 3 * MiB],
      ['unknown', undefined, 10 * MiB],
    ])('when a body of %s length errors midway, with the body error itself', async (name, contentLength, failAt) => {
      const key = `users/u6/broken-${name}`;
      const clientGone = new Error('client went away');
      const body = generatedStream(key, 12 * MiB, { failAfter: { bytes: failAt, error: clientGone } });
      await expect(backend.put({ key, body, contentLength })).rejects.toBe(clientGone);
      expect(await backend.head({ key })).toBeNull();
      expect((await backend.list({ prefix: 'users/u6/' })).objects).toEqual([]);
    });

    it.each([
      ['known', 64 * MiB as number | undefined],
      ['unknown', undefined],
    ])('when a put of %s length is aborted through its signal', async (name, contentLength) => {
      const key = `users/u6/aborted-${name}`;
      const body = generatedStream(key, 64 * MiB, { delayMs: 5 });
      const controller = new AbortController();
      let sent = 0;
      body.on('data', (chunk: Buffer) => {
        sent += chunk.length;
        if (sent >= 512 * 1024) controller.abort(new Error('client disconnected'));
      });
      await expect(backend.put({ key, body, contentLength, signal: controller.signal })).rejects.toMatchObject({ code: BackendErrorCode.Aborted });
      body.destroy();
      expect(await backend.head({ key })).toBeNull();
      expect((await backend.list({ prefix: 'users/u6/' })).objects).toEqual([]);
    });

    it('when the signal fired before the put began', async () => {
      const key = 'users/u6/aborted-early';
      const body = generatedStream(key, 10);
      await expect(backend.put({ key, body, contentLength: 10, signal: AbortSignal.abort() })).rejects.toMatchObject({ code: BackendErrorCode.Aborted });
      expect(await backend.head({ key })).toBeNull();
    });

    it('when the body is shorter than declared', async () => {
      const key = 'users/u6/short';
      await expect(backend.put({ key, body: generatedStream(key, 1000), contentLength: 2000 })).rejects.toMatchObject({ code: BackendErrorCode.Failed });
      expect(await backend.head({ key })).toBeNull();
    });
  });

  it('ping succeeds', async () => {
    await backend.ping();
  });
});

describe('s3 backend when the upstream fails', () => {
  let server: TestS3Server;
  beforeAll(async () => {
    server = await startS3rver();
  });
  afterAll(() => server?.close());

  it('reports credentials the upstream refuses as Failed, without passing the upstream code on', async () => {
    const backend = createS3Backend({ ...s3Config(server), accessKeyId: 'NOT-OURS' }, quietSdk);
    try {
      const attempts = [
        () => backend.head({ key: 'k' }),
        () => backend.get({ key: 'k' }),
        () => backend.put({ key: 'k', body: generatedStream('k', 10), contentLength: 10 }),
        () => backend.ping(),
      ];
      for (const attempt of attempts) {
        const error: unknown = await attempt().then(() => null, (failure: unknown) => failure);
        expect(error).toMatchObject({ code: BackendErrorCode.Failed });
        expect((error as Error).message).not.toMatch(/InvalidAccessKeyId|AccessDenied/);
      }
    } finally {
      await backend.close();
    }
  });

  it('reports an upstream that refuses connections as Unavailable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as { port: number };
    await new Promise((resolve) => closed.close(resolve));
    const backend = createS3Backend({ ...s3Config(server), endpoint: `http://127.0.0.1:${port}` }, quietSdk);
    try {
      await expect(backend.ping()).rejects.toMatchObject({ code: BackendErrorCode.Unavailable });
      await expect(backend.put({ key: 'k', body: generatedStream('k', 10), contentLength: 10 })).rejects.toMatchObject({ code: BackendErrorCode.Unavailable });
    } finally {
      await backend.close();
    }
  });
});
