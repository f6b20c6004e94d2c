import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackendErrorCode, type Backend } from './backend.js';
import { createFsBackend, FS_STAGING_DIR, MIN_PART_BYTES } from './fs.js';

const body = (text: string) => ({ body: Readable.from([Buffer.from(text)]), contentLength: Buffer.byteLength(text) });

describe('fs backend', () => {
  let parent: string;
  let root: string;
  let backend: Backend;
  beforeEach(async () => {
    parent = await mkdtemp(path.join(tmpdir(), 'jt-fs-unit-'));
    root = path.join(parent, 'root');
    backend = createFsBackend({ root });
  });
  afterEach(() => rm(parent, { recursive: true, force: true }));

  it.each([
    ['empty', ''],
    ['absolute', '/etc/passwd'],
    ['a .. segment', '../escape'],
    ['a .. segment inside', 'users/u1/../../escape'],
    ['a . segment', 'users/./u1'],
    ['an empty segment', 'users//u1'],
    ['a trailing slash', 'users/u1/'],
    ['a backslash', 'users\\..\\escape'],
    ['NUL', 'users/u1\0x'],
    ['a lone surrogate', 'users/\uD800'],
    ['the staging folder', `${FS_STAGING_DIR}/tmp/x`],
    ['a segment over 255 bytes', `users/${'é'.repeat(128)}`],
    ['over 1024 bytes', `users/${'a/'.repeat(600)}x`],
  ])('refuses a key that is %s, touching nothing', async (_name, key) => {
    await expect(backend.put({ key, ...body('x') })).rejects.toMatchObject({ code: BackendErrorCode.Failed });
    await expect(backend.head({ key })).rejects.toMatchObject({ code: BackendErrorCode.Failed });
    await expect(backend.delete({ key })).rejects.toMatchObject({ code: BackendErrorCode.Failed });
    expect(await readdir(parent)).toEqual([]);
  });

  it('accepts dot-files and the staging name below the top level', async () => {
    for (const key of ['users/test-user-123/.keep', `users/u1/${FS_STAGING_DIR}/x`, 'é/ü']) {
      await backend.put({ key, ...body(key) });
      expect(await backend.head({ key })).toMatchObject({ size: Buffer.byteLength(key) });
    }
  });

  it('lists in UTF-8 byte order, not JavaScript string order, and resumes inside a folder', async () => {
    const keys = ['x/\uFB00', 'x/😀', 'x/a/b/c', 'x/a/b/d', 'x/a-b', 'x/a.b', 'x/a0'];
    for (const key of keys) await backend.put({ key, ...body('1') });
    const expected = ['x/a-b', 'x/a.b', 'x/a/b/c', 'x/a/b/d', 'x/a0', 'x/\uFB00', 'x/😀'];
    expect([...keys].sort()).not.toEqual(expected); // JavaScript puts the surrogate pair before U+FB00
    const seen: string[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await backend.list({ prefix: 'x/', maxKeys: 3, continuationToken });
      seen.push(...page.objects.map((object) => object.key));
      continuationToken = page.continuationToken;
    } while (continuationToken);
    expect(seen).toEqual(expected);
  });

  it('never lists staging, nor anything for a prefix no key can have', async () => {
    const stalled = new Readable({ read() {} }); // a client that sent a little and went quiet
    stalled.push('partial');
    void backend.put({ key: 'a', body: stalled, contentLength: 100 }).catch(() => undefined);
    await backend.put({ key: 'b', ...body('b') });
    expect(await readdir(path.join(root, FS_STAGING_DIR, 'tmp'))).toHaveLength(1);
    expect((await backend.list({ prefix: '' })).objects.map((object) => object.key)).toEqual(['b']);
    for (const prefix of [`${FS_STAGING_DIR}/`, '../', 'a//']) expect((await backend.list({ prefix })).objects).toEqual([]);
    await expect(backend.list({ prefix: '', continuationToken: 'not a token' })).rejects.toMatchObject({ code: BackendErrorCode.Failed });
    stalled.destroy();
  });

  it('refuses to put below an object, leaving the object whole', async () => {
    await backend.put({ key: 'f', ...body('file') });
    await expect(backend.put({ key: 'f/x', ...body('x') })).rejects.toMatchObject({ code: BackendErrorCode.Failed });
    expect(await backend.head({ key: 'f' })).toMatchObject({ size: 4 });
  });

  it('removes folders a delete leaves empty', async () => {
    await backend.put({ key: 'p/q/r', ...body('r') });
    await backend.put({ key: 'p/s', ...body('s') });
    await backend.delete({ key: 'p/q/r' });
    expect(await readdir(path.join(root, 'p'))).toEqual(['s']);
  });

  it('answers any range on an empty object with InvalidRange, as S3 does', async () => {
    await backend.put({ key: 'empty', ...body('') });
    await expect(backend.get({ key: 'empty', range: { start: 0 } })).rejects.toMatchObject({ code: BackendErrorCode.InvalidRange });
  });

  it('refuses to complete what S3 would refuse, and keeps the upload for a retry', async () => {
    const key = 'mp';
    const { uploadId } = await backend.createMultipart({ key });
    const small = await backend.uploadPart({ key, uploadId, partNumber: 1, ...body('small') });
    const last = await backend.uploadPart({ key, uploadId, partNumber: 2, ...body('last') });
    const refusals = [
      [{ partNumber: 1, etag: small.etag }, { partNumber: 2, etag: last.etag }], // a part under 5 MiB that is not last
      [{ partNumber: 2, etag: last.etag }, { partNumber: 1, etag: small.etag }], // out of order
      [{ partNumber: 1, etag: last.etag }], // wrong ETag
      [{ partNumber: 3, etag: last.etag }], // never uploaded
    ];
    for (const parts of refusals) {
      await expect(backend.completeMultipart({ key, uploadId, parts })).rejects.toMatchObject({ code: BackendErrorCode.Failed });
    }
    expect(MIN_PART_BYTES).toBe(5 * 1024 * 1024);
    expect(await backend.completeMultipart({ key, uploadId, parts: [{ partNumber: 1, etag: `"${small.etag}"` }] })).toMatchObject({ etag: /-1$/ });
    expect(await backend.head({ key })).toMatchObject({ size: 5 });
    await expect(backend.completeMultipart({ key: 'other', uploadId, parts: [] })).rejects.toMatchObject({ code: BackendErrorCode.NotFound });
  });
});
