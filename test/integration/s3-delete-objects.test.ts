import { createHash, randomBytes } from 'node:crypto';
import { DeleteObjectsCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeChecksum, md5Base64 } from '../../src/auth/checksums.js';
import { DELETE_OBJECTS_MAX_BODY_BYTES } from '../../src/gateway/xml-input.js';
import { provisionAccount, type Provisioned } from '../helpers/admin.js';
import { signedRequest, xmlText, type RawResponse } from '../helpers/raw-s3.js';
import { s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const deleteBody = (keys: readonly string[], quiet = false) =>
  `<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${quiet ? '<Quiet>true</Quiet>' : ''}${keys
    .map((key) => `<Object><Key>${key}</Key></Object>`)
    .join('')}</Delete>`;

describe('DeleteObjects', () => {
  let server: TestServer;
  let account: Provisioned;
  let s3: S3Client;

  beforeAll(async () => {
    server = await startTestServer();
    account = await provisionAccount(server);
    s3 = s3Client(server, account);
  });
  afterAll(async () => {
    s3?.destroy();
    await server?.close();
  });

  async function put(...keys: string[]): Promise<void> {
    for (const key of keys) await s3.send(new PutObjectCommand({ Bucket: 'default', Key: key, Body: randomBytes(100) }));
  }
  async function exists(key: string): Promise<boolean> {
    return s3.send(new HeadObjectCommand({ Bucket: 'default', Key: key })).then(
      () => true,
      (error: { name?: string }) => {
        if (error.name === 'NotFound') return false;
        throw error;
      },
    );
  }
  const postDelete = (body: string, headers: Record<string, string>, sentBody?: string): Promise<RawResponse> =>
    signedRequest(server, account, { method: 'POST', path: '/default?delete', body, headers: { 'content-type': 'application/xml', ...headers }, ...(sentBody !== undefined && { sentBody }) });

  it('deletes each key and reports each, a missing key as Deleted, in request order', async () => {
    await put('v/1', 'v/2', 'v/3');
    const usage = async () => Number((await server.db.query<{ used: number }>('SELECT storage_used_bytes AS used FROM agentcache_accounts WHERE id = $1', [account.id])).rows[0]!.used);
    const before = await usage();
    const result = await s3.send(new DeleteObjectsCommand({ Bucket: 'default', Delete: { Objects: [{ Key: 'v/2' }, { Key: 'v/missing' }, { Key: 'v/1' }, { Key: 'v/3' }] } }));
    expect(result.Deleted!.map((d) => d.Key)).toEqual(['v/2', 'v/missing', 'v/1', 'v/3']);
    expect(result.Errors).toBeUndefined();
    for (const key of ['v/1', 'v/2', 'v/3']) expect(await exists(key)).toBe(false);
    expect(await usage()).toBe(before - 300);
    expect((await server.db.query('SELECT 1 FROM staged_writes')).rowCount).toBe(0);
  });

  it('reports nothing but errors in Quiet mode', async () => {
    await put('q/1', 'q/2');
    const result = await s3.send(new DeleteObjectsCommand({ Bucket: 'default', Delete: { Quiet: true, Objects: [{ Key: 'q/1' }, { Key: 'q/2' }, { Key: 'q/none' }] } }));
    expect(result.Deleted).toBeUndefined();
    expect(result.Errors).toBeUndefined();
    expect(await exists('q/1')).toBe(false);
  });

  it('answers for a key it cannot delete on its own, and still deletes the others', async () => {
    await put('e/1', 'e/2');
    const result = await s3.send(
      new DeleteObjectsCommand({ Bucket: 'default', Delete: { Quiet: true, Objects: [{ Key: 'e/1' }, { Key: 'e/2', VersionId: '3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY' }, { Key: 'x'.repeat(1025) }] } }),
    );
    expect(result.Errors).toEqual([
      { Key: 'e/2', VersionId: '3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY', Code: 'NoSuchVersion', Message: 'The specified version does not exist.' },
      { Key: 'x'.repeat(1025), Code: 'KeyTooLongError', Message: 'Your key is too long' },
    ]);
    expect(await exists('e/1')).toBe(false);
    expect(await exists('e/2')).toBe(true);
    // "null" is the one version an object in a never-versioned bucket has.
    const nullVersion = await s3.send(new DeleteObjectsCommand({ Bucket: 'default', Delete: { Objects: [{ Key: 'e/2', VersionId: 'null' }] } }));
    expect(nullVersion.Deleted).toEqual([{ Key: 'e/2', VersionId: 'null' }]);
    expect(await exists('e/2')).toBe(false);
  });

  it('accepts Content-MD5 alone as the integrity check', async () => {
    await put('md5/1');
    const body = deleteBody(['md5/1']);
    const response = await postDelete(body, { 'content-md5': md5Base64(body) });
    expect(response.status).toBe(200);
    expect(response.body).toContain('<Deleted><Key>md5/1</Key></Deleted>');
    expect(await exists('md5/1')).toBe(false);
  });

  it('refuses a body whose Content-MD5 does not match with BadDigest, deleting nothing', async () => {
    await put('bad/1');
    const body = deleteBody(['bad/1']);
    const response = await postDelete(body, { 'content-md5': md5Base64(deleteBody(['bad/2'])) });
    expect(response.status).toBe(400);
    expect(xmlText(response.body, 'Code')).toBe('BadDigest');
    expect(await exists('bad/1')).toBe(true);
  });

  it('refuses a body whose x-amz-checksum-crc32 does not match with BadDigest, deleting nothing', async () => {
    await put('bad/3');
    const body = deleteBody(['bad/3']);
    const response = await postDelete(body, { 'x-amz-checksum-crc32': await computeChecksum('CRC32', Buffer.from(deleteBody(['bad/4']))) });
    expect(xmlText(response.body, 'Code')).toBe('BadDigest');
    expect(await exists('bad/3')).toBe(true);
    const right = await postDelete(body, { 'x-amz-checksum-sha256': await computeChecksum('SHA256', Buffer.from(body)) });
    expect(right.status).toBe(200);
    expect(await exists('bad/3')).toBe(false);
  });

  it('refuses a body other than the one signed with XAmzContentSHA256Mismatch, deleting nothing', async () => {
    await put('swap/1', 'swap/2');
    const signed = deleteBody(['swap/1']);
    const sent = deleteBody(['swap/2']);
    const response = await postDelete(signed, { 'content-md5': md5Base64(sent) }, sent);
    expect(xmlText(response.body, 'Code')).toBe('XAmzContentSHA256Mismatch');
    expect(await exists('swap/1')).toBe(true);
    expect(await exists('swap/2')).toBe(true);
  });

  it('requires Content-MD5 or an x-amz-checksum-*, as S3 does', async () => {
    await put('none/1');
    const response = await postDelete(deleteBody(['none/1']), {});
    expect(response.status).toBe(400);
    expect(xmlText(response.body, 'Code')).toBe('InvalidRequest');
    expect(xmlText(response.body, 'Message')).toBe('Missing required header for this request: Content-MD5 OR x-amz-checksum-*');
    expect(await exists('none/1')).toBe(true);
    const malformedMd5 = await postDelete(deleteBody(['none/1']), { 'content-md5': 'not-base64' });
    expect(xmlText(malformedMd5.body, 'Code')).toBe('InvalidDigest');
  });

  it('refuses malformed, empty, oversized and over-long requests', async () => {
    const send = (body: string) => postDelete(body, { 'content-md5': md5Base64(body) });
    expect(xmlText((await send('<Delete><Object><Key>a</Key>')).body, 'Code')).toBe('MalformedXML');
    expect(xmlText((await send('<Delete></Delete>')).body, 'Code')).toBe('MalformedXML');
    expect(xmlText((await send(deleteBody(Array.from({ length: 1001 }, (_, i) => `k${i}`)))).body, 'Code')).toBe('MalformedXML');
    const empty = await postDelete('', { 'content-md5': md5Base64('') });
    expect(xmlText(empty.body, 'Code')).toBe('MissingRequestBodyError');
    const huge = `<Delete>${' '.repeat(DELETE_OBJECTS_MAX_BODY_BYTES)}<Object><Key>a</Key></Object></Delete>`;
    expect(xmlText((await send(huge)).body, 'Code')).toBe('MaxMessageLengthExceeded');
  });

  it('keeps keys exactly, XML references and all', async () => {
    const odd = ['sp ace/&<>"\'', 'tab\tkey', 'é/ü', '  leading'];
    await put(...odd);
    const result = await s3.send(new DeleteObjectsCommand({ Bucket: 'default', Delete: { Objects: odd.map((Key) => ({ Key })) } }));
    expect(result.Deleted!.map((d) => d.Key)).toEqual(odd);
    for (const key of odd) expect(await exists(key)).toBe(false);
  });

  it('answers for 1,000 keys in one request', async () => {
    await put('many/0007', 'many/0999');
    const keys = Array.from({ length: 1000 }, (_, i) => `many/${String(i).padStart(4, '0')}`);
    const result = await s3.send(new DeleteObjectsCommand({ Bucket: 'default', Delete: { Objects: keys.map((Key) => ({ Key })) } }));
    expect(result.Deleted!.map((d) => d.Key)).toEqual(keys);
    expect(await exists('many/0999')).toBe(false);
  });

  it('answers NoSuchBucket for a bucket the account does not own', async () => {
    await expect(s3.send(new DeleteObjectsCommand({ Bucket: 'no-such-bucket-here', Delete: { Objects: [{ Key: 'a' }] } }))).rejects.toMatchObject({ name: 'NoSuchBucket' });
  });

  it('removes a blob when the last key holding it goes', async () => {
    const body = randomBytes(5000);
    for (const key of ['blob/1', 'blob/2']) await s3.send(new PutObjectCommand({ Bucket: 'default', Key: key, Body: body }));
    const sha = createHash('sha256').update(body).digest('hex');
    const { rows } = await server.db.query<{ backend_key: string }>('SELECT backend_key FROM blobs WHERE sha256 = $1', [sha]);
    await s3.send(new DeleteObjectsCommand({ Bucket: 'default', Delete: { Objects: [{ Key: 'blob/1' }, { Key: 'blob/2' }] } }));
    expect((await server.db.query('SELECT 1 FROM blobs WHERE sha256 = $1', [sha])).rowCount).toBe(0);
    expect(await server.backend.head({ key: rows[0]!.backend_key })).toBeNull();
  });
});
