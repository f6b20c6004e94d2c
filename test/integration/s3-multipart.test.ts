import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import aws4 from 'aws4';
import { encodeAwsChunked } from '../../src/auth/aws-chunked-encoder.js';
import { deriveSigningKey } from '../../src/auth/canonical.js';
import { computeChecksum } from '../../src/auth/checksums.js';
import { blobHashingSettled } from '../../src/jobs/hash-pending.js';
import { generatedBytes } from '../fixtures/generated-data.js';
import { provisionAccount, type Provisioned } from '../helpers/admin.js';
import { signedRequest, xmlText } from '../helpers/raw-s3.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const MiB = 1024 * 1024;
const md5 = (data: Uint8Array) => createHash('md5').update(data).digest();
const multipartEtag = (parts: Uint8Array[]) => `"${createHash('md5').update(Buffer.concat(parts.map(md5))).digest('hex')}-${parts.length}"`;

describe('multipart uploads through the SDK at its defaults', () => {
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
    if (server) await blobHashingSettled(server);
    await server?.close();
  });

  async function upload(key: string, parts: Uint8Array[], extra: { ContentType?: string; Metadata?: Record<string, string> } = {}) {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: key, ...extra }));
    const etags: string[] = [];
    for (const [index, body] of parts.entries()) {
      const { ETag } = await s3.send(new UploadPartCommand({ Bucket: 'default', Key: key, UploadId, PartNumber: index + 1, Body: body }));
      etags.push(ETag!);
    }
    const completed = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'default',
        Key: key,
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, index) => ({ ETag, PartNumber: index + 1 })) },
      }),
    );
    return { uploadId: UploadId!, etags, completed };
  }

  it('uploads parts, completes, and serves the object whole and part by part', async () => {
    const parts = [generatedBytes('flow', 0, 5 * MiB), generatedBytes('flow', 5 * MiB, 5 * MiB), generatedBytes('flow', 10 * MiB, 1234)];
    const { etags, completed } = await upload('mp/flow.bin', parts, { ContentType: 'video/mp4', Metadata: { run: '7' } });
    expect(etags).toEqual(parts.map((part) => `"${md5(part).toString('hex')}"`));
    expect(completed.ETag).toBe(multipartEtag(parts));
    expect(completed.Location).toBe(`${server.gatewayUrl}/default/mp/flow.bin`);

    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'mp/flow.bin' }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(Buffer.concat(parts))).toBe(true);
    expect(got.ETag).toBe(multipartEtag(parts));
    expect(got.ContentType).toBe('video/mp4');
    expect(got.Metadata).toEqual({ run: '7' });
    expect(got.PartsCount).toBe(3);

    const second = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'mp/flow.bin', PartNumber: 2 }));
    expect(second.$metadata.httpStatusCode).toBe(206);
    expect(second.ContentRange).toBe(`bytes ${5 * MiB}-${10 * MiB - 1}/${10 * MiB + 1234}`);
    expect((await readAll(second.Body as AsyncIterable<Uint8Array>)).equals(parts[1]!)).toBe(true);
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'mp/flow.bin', PartNumber: 3 }));
    expect(head.ContentLength).toBe(1234);
    await expect(s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'mp/flow.bin', PartNumber: 4 }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 416 } });
  });

  it('computes and returns the composite checksum the SDK asked for', async () => {
    const parts = [generatedBytes('crc', 0, 5 * MiB), generatedBytes('crc', 5 * MiB, 100)];
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'mp/crc.bin', ChecksumAlgorithm: 'CRC32' }));
    const uploaded = [];
    for (const [index, body] of parts.entries()) {
      uploaded.push(await s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'mp/crc.bin', UploadId, PartNumber: index + 1, Body: body, ChecksumAlgorithm: 'CRC32' })));
    }
    expect(uploaded.every((part) => part.ChecksumCRC32 !== undefined)).toBe(true);
    const completed = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'default',
        Key: 'mp/crc.bin',
        UploadId,
        MultipartUpload: { Parts: uploaded.map((part, index) => ({ ETag: part.ETag, ChecksumCRC32: part.ChecksumCRC32, PartNumber: index + 1 })) },
      }),
    );
    const expected = `${await computeChecksum('CRC32', Buffer.concat(uploaded.map((part) => Buffer.from(part.ChecksumCRC32!, 'base64'))))}-2`;
    expect(completed.ChecksumCRC32).toBe(expected);
    expect(completed.ChecksumType).toBe('COMPOSITE');
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'mp/crc.bin', ChecksumMode: 'ENABLED' }));
    expect(head.ChecksumCRC32).toBe(expected);
    expect(head.ChecksumType).toBe('COMPOSITE');
  });

  it('returns a FULL_OBJECT CRC64NVME of the whole object, combined from the parts', async () => {
    const parts = [generatedBytes('full', 0, 5 * MiB), generatedBytes('full', 5 * MiB, 777)];
    const key = 'mp/full.bin';
    const { UploadId, ChecksumType } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: key, ChecksumAlgorithm: 'CRC64NVME' }));
    expect(ChecksumType).toBe('FULL_OBJECT');
    const uploaded = [];
    for (const [index, body] of parts.entries()) {
      uploaded.push(await s3.send(new UploadPartCommand({ Bucket: 'default', Key: key, UploadId, PartNumber: index + 1, Body: body, ChecksumAlgorithm: 'CRC64NVME' })));
    }
    const completed = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'default',
        Key: key,
        UploadId,
        MultipartUpload: { Parts: uploaded.map((part, index) => ({ ETag: part.ETag, PartNumber: index + 1 })) },
      }),
    );
    expect(completed.ChecksumCRC64NVME).toBe(await computeChecksum('CRC64NVME', Buffer.concat(parts)));
    expect(completed.ChecksumType).toBe('FULL_OBJECT');
  });

  it('refuses a part without the checksum a COMPOSITE upload was created with', async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'mp/strict', ChecksumAlgorithm: 'SHA256' }));
    await expect(s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'mp/strict', UploadId, PartNumber: 1, Body: 'x', ChecksumAlgorithm: 'CRC32' }))).rejects.toMatchObject({
      name: 'InvalidRequest',
      message: 'Checksum Type mismatch occurred, expected checksum Type: sha256, actual checksum Type: crc32',
    });
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'default', Key: 'mp/strict', UploadId }));
  });

  it("answers S3's errors for a bad part list", async () => {
    const key = 'mp/errors';
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: key }));
    const small = await s3.send(new UploadPartCommand({ Bucket: 'default', Key: key, UploadId, PartNumber: 1, Body: generatedBytes('small', 0, MiB) }));
    const last = await s3.send(new UploadPartCommand({ Bucket: 'default', Key: key, UploadId, PartNumber: 2, Body: 'tail' }));
    const complete = (Parts: { ETag?: string; PartNumber: number }[]) =>
      s3.send(new CompleteMultipartUploadCommand({ Bucket: 'default', Key: key, UploadId, MultipartUpload: { Parts } }));

    await expect(complete([{ ETag: last.ETag, PartNumber: 2 }, { ETag: small.ETag, PartNumber: 1 }])).rejects.toMatchObject({ name: 'InvalidPartOrder' });
    await expect(complete([{ ETag: small.ETag, PartNumber: 1 }, { ETag: small.ETag, PartNumber: 1 }])).rejects.toMatchObject({ name: 'InvalidPartOrder' });
    await expect(complete([{ ETag: small.ETag, PartNumber: 1 }, { ETag: small.ETag, PartNumber: 2 }])).rejects.toMatchObject({ name: 'InvalidPart' });
    await expect(complete([{ ETag: small.ETag, PartNumber: 1 }, { ETag: last.ETag, PartNumber: 3 }])).rejects.toMatchObject({ name: 'InvalidPart' });
    await expect(complete([{ ETag: small.ETag, PartNumber: 1 }, { ETag: last.ETag, PartNumber: 2 }])).rejects.toMatchObject({ name: 'EntityTooSmall' });
    // Every part but the last: a lone small part is a valid object.
    const single = await complete([{ ETag: last.ETag, PartNumber: 2 }]);
    expect(single.ETag).toBe(multipartEtag([Buffer.from('tail')]));
    await expect(complete([{ ETag: small.ETag, PartNumber: 1 }])).rejects.toMatchObject({ name: 'NoSuchUpload', $metadata: { httpStatusCode: 404 } });
    await expect(s3.send(new UploadPartCommand({ Bucket: 'default', Key: key, UploadId, PartNumber: 1, Body: 'x' }))).rejects.toMatchObject({ name: 'NoSuchUpload' });
    await expect(s3.send(new UploadPartCommand({ Bucket: 'default', Key: key, UploadId: 'nope', PartNumber: 1, Body: 'x' }))).rejects.toMatchObject({ name: 'NoSuchUpload' });
  });

  it('answers a retried Complete with the first answer, until the object it made is replaced', async () => {
    const parts = [generatedBytes('twice', 0, 5 * MiB), generatedBytes('twice', 5 * MiB, 10)];
    const { uploadId, etags, completed } = await upload('mp/twice', parts);
    const again = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'default',
        Key: 'mp/twice',
        UploadId: uploadId,
        MultipartUpload: { Parts: etags.map((ETag, index) => ({ ETag, PartNumber: index + 1 })) },
      }),
    );
    expect(again.ETag).toBe(completed.ETag);
    const objects = await server.db.query('SELECT 1 FROM agentcache_assets WHERE object_key = $1', ['mp/twice']);
    expect(objects.rowCount).toBe(1);

    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'mp/twice', Body: 'replaced' }));
    await expect(
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: 'default',
          Key: 'mp/twice',
          UploadId: uploadId,
          MultipartUpload: { Parts: etags.map((ETag, index) => ({ ETag, PartNumber: index + 1 })) },
        }),
      ),
    ).rejects.toMatchObject({ name: 'NoSuchUpload' });
  });

  it('keeps uploads apart: another account cannot see, use, complete or abort them', async () => {
    const other = s3Client(server, await provisionAccount(server));
    try {
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'mp/mine' }));
      await expect(other.send(new UploadPartCommand({ Bucket: 'default', Key: 'mp/mine', UploadId, PartNumber: 1, Body: 'x' }))).rejects.toMatchObject({ name: 'NoSuchUpload' });
      await expect(other.send(new ListPartsCommand({ Bucket: 'default', Key: 'mp/mine', UploadId }))).rejects.toMatchObject({ name: 'NoSuchUpload' });
      await expect(other.send(new AbortMultipartUploadCommand({ Bucket: 'default', Key: 'mp/mine', UploadId }))).rejects.toMatchObject({ name: 'NoSuchUpload' });
      await expect(
        other.send(new CompleteMultipartUploadCommand({ Bucket: 'default', Key: 'mp/mine', UploadId, MultipartUpload: { Parts: [{ ETag: '"x"', PartNumber: 1 }] } })),
      ).rejects.toMatchObject({ name: 'NoSuchUpload' });
      expect((await other.send(new ListMultipartUploadsCommand({ Bucket: 'default' }))).Uploads ?? []).toEqual([]);
      // The same UploadId under another key of the owner is no upload either.
      await expect(s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'mp/other-key', UploadId, PartNumber: 1, Body: 'x' }))).rejects.toMatchObject({ name: 'NoSuchUpload' });
      await s3.send(new AbortMultipartUploadCommand({ Bucket: 'default', Key: 'mp/mine', UploadId }));
    } finally {
      other.destroy();
    }
  });

  it('lists parts a page at a time', async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'mp/listed' }));
    for (const PartNumber of [1, 2, 3, 7]) await s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'mp/listed', UploadId, PartNumber, Body: `part ${PartNumber}` }));
    const first = await s3.send(new ListPartsCommand({ Bucket: 'default', Key: 'mp/listed', UploadId, MaxParts: 2 }));
    expect(first.Parts?.map((part) => [part.PartNumber, part.Size, part.ETag])).toEqual([
      [1, 6, `"${md5(Buffer.from('part 1')).toString('hex')}"`],
      [2, 6, `"${md5(Buffer.from('part 2')).toString('hex')}"`],
    ]);
    expect(first.IsTruncated).toBe(true);
    expect(first.NextPartNumberMarker).toBe('2');
    const rest = await s3.send(new ListPartsCommand({ Bucket: 'default', Key: 'mp/listed', UploadId, PartNumberMarker: first.NextPartNumberMarker }));
    expect(rest.Parts?.map((part) => part.PartNumber)).toEqual([3, 7]);
    expect(rest.IsTruncated).toBe(false);
    expect(rest.Initiator?.ID).toBe(account.id);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'default', Key: 'mp/listed', UploadId }));
  });

  it('lists open uploads by key with prefix, delimiter and both markers', async () => {
    const lister = await provisionAccount(server);
    const client = s3Client(server, lister);
    try {
      const ids: Record<string, string> = {};
      for (const key of ['logs/a', 'logs/b', 'photos/1.jpg', 'photos/2.jpg', 'readme', 'readme']) {
        const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: key }));
        ids[key in ids ? `${key}#2` : key] = UploadId!;
      }
      const all = await client.send(new ListMultipartUploadsCommand({ Bucket: 'default' }));
      expect(all.Uploads?.map((upload) => upload.Key)).toEqual(['logs/a', 'logs/b', 'photos/1.jpg', 'photos/2.jpg', 'readme', 'readme']);
      // One key's uploads come in the order they were initiated.
      expect(all.Uploads?.slice(4).map((upload) => upload.UploadId)).toEqual([ids.readme, ids['readme#2']]);
      expect(all.IsTruncated).toBe(false);

      const grouped = await client.send(new ListMultipartUploadsCommand({ Bucket: 'default', Delimiter: '/' }));
      expect(grouped.CommonPrefixes?.map((prefix) => prefix.Prefix)).toEqual(['logs/', 'photos/']);
      expect(grouped.Uploads?.map((upload) => upload.Key)).toEqual(['readme', 'readme']);
      const photos = await client.send(new ListMultipartUploadsCommand({ Bucket: 'default', Prefix: 'photos/', Delimiter: '/' }));
      expect(photos.Uploads?.map((upload) => upload.Key)).toEqual(['photos/1.jpg', 'photos/2.jpg']);

      // Pages of two: a common prefix counts as one entry, and the markers resume after it.
      const seen: string[] = [];
      let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
      for (let page = 0; page < 5; page++) {
        const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: 'default', Delimiter: '/', MaxUploads: 2, ...markers }));
        seen.push(...(listed.CommonPrefixes ?? []).map((prefix) => prefix.Prefix!), ...(listed.Uploads ?? []).map((upload) => `${upload.Key}@${upload.UploadId}`));
        if (!listed.IsTruncated) break;
        markers = { KeyMarker: listed.NextKeyMarker, UploadIdMarker: listed.NextUploadIdMarker };
      }
      expect(seen).toEqual(['logs/', 'photos/', `readme@${ids.readme}`, `readme@${ids['readme#2']}`]);
      const afterFirstReadme = await client.send(new ListMultipartUploadsCommand({ Bucket: 'default', KeyMarker: 'readme', UploadIdMarker: ids.readme }));
      expect(afterFirstReadme.Uploads?.map((upload) => upload.UploadId)).toEqual([ids['readme#2']]);
      const afterReadme = await client.send(new ListMultipartUploadsCommand({ Bucket: 'default', KeyMarker: 'readme' }));
      expect(afterReadme.Uploads ?? []).toEqual([]);
    } finally {
      client.destroy();
    }
  });

  it('copies parts from the account\'s own objects, whole or by range', async () => {
    const source = generatedBytes('copy-source', 0, 6 * MiB);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'mp/source', Body: source }));
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'mp/copied' }));
    const copy = (PartNumber: number, CopySourceRange?: string, CopySource = 'default/mp/source') =>
      s3.send(new UploadPartCopyCommand({ Bucket: 'default', Key: 'mp/copied', UploadId, PartNumber, CopySource, ...(CopySourceRange && { CopySourceRange }) }));
    const first = await copy(1, `bytes=0-${5 * MiB - 1}`);
    const second = await copy(2);
    expect(first.CopyPartResult?.ETag).toBe(`"${md5(source.subarray(0, 5 * MiB)).toString('hex')}"`);
    await expect(copy(3, `bytes=0-${6 * MiB}`)).rejects.toMatchObject({ name: 'InvalidRange' });
    await expect(copy(3, 'bytes=5-')).rejects.toMatchObject({ name: 'InvalidArgument' });
    await expect(copy(3, undefined, 'default/mp/missing')).rejects.toMatchObject({ name: 'NoSuchKey' });
    await expect(copy(3, undefined, 'not-mine/mp/source')).rejects.toMatchObject({ name: 'NoSuchBucket' });

    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'default',
        Key: 'mp/copied',
        UploadId,
        MultipartUpload: { Parts: [{ ETag: first.CopyPartResult?.ETag, PartNumber: 1 }, { ETag: second.CopyPartResult?.ETag, PartNumber: 2 }] },
      }),
    );
    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'mp/copied' }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(Buffer.concat([source.subarray(0, 5 * MiB), source]))).toBe(true);
  });

  it('takes parts in the other payload modes: signed SHA-256, Content-MD5, signed aws-chunked', async () => {
    const key = 'mp/modes';
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: key }));
    const path = (partNumber: number) => `/default/${key}?partNumber=${partNumber}&uploadId=${encodeURIComponent(UploadId!)}`;
    const first = generatedBytes('modes', 0, 5 * MiB);
    // aws4 signs the body's hex SHA-256 as x-amz-content-sha256.
    const signed = await signedRequest(server, account, { method: 'PUT', path: path(1), body: first, headers: { 'content-md5': md5(first).toString('base64') } });
    expect(signed.status).toBe(200);
    expect(signed.headers.etag).toBe(`"${md5(first).toString('hex')}"`);

    const wrongMd5 = await signedRequest(server, account, { method: 'PUT', path: path(3), body: 'abc', headers: { 'content-md5': md5(Buffer.from('abd')).toString('base64') } });
    expect(wrongMd5.status).toBe(400);
    expect(xmlText(wrongMd5.body, 'Code')).toBe('BadDigest');
    const tampered = await signedRequest(server, account, { method: 'PUT', path: path(3), body: 'abc', sentBody: 'abd' });
    expect(xmlText(tampered.body, 'Code')).toBe('XAmzContentSHA256Mismatch');

    const second = generatedBytes('modes', 5 * MiB, 200_000);
    const chunked = await signedChunkedPart(path(2), second);
    expect(chunked.status).toBe(200);
    expect(chunked.headers.etag).toBe(`"${md5(second).toString('hex')}"`);

    const parts = await s3.send(new ListPartsCommand({ Bucket: 'default', Key: key, UploadId }));
    expect(parts.Parts?.map((part) => part.PartNumber)).toEqual([1, 2]);
    expect(await reservedBytes()).toBe(0);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'default', Key: key, UploadId }));
  });

  async function reservedBytes(): Promise<number> {
    const { rows } = await server.db.query<{ reserved: number }>('SELECT storage_reserved_bytes AS reserved FROM agentcache_accounts WHERE id = $1', [account.id]);
    return Number(rows[0]!.reserved);
  }

  /** A PUT with STREAMING-AWS4-HMAC-SHA256-PAYLOAD: every 64 KiB chunk signed, chained from the seed signature. */
  async function signedChunkedPart(path: string, data: Buffer): Promise<{ status: number; headers: Record<string, unknown> }> {
    const url = new URL(server.gatewayUrl);
    const mode = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
    const placeholder = { signingKey: Buffer.alloc(32), seedSignature: '0'.repeat(64), amzDate: '20000101T000000Z', scope: 'x' };
    const length = encodeAwsChunked(data, { mode, chunkSize: 64 * 1024, signing: placeholder }).length;
    const signed = aws4.sign(
      {
        host: url.host,
        method: 'PUT',
        path,
        service: 's3',
        region: 'us-east-1',
        headers: { 'x-amz-content-sha256': mode, 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(data.length), 'content-length': String(length) },
      },
      { accessKeyId: account.apiKey, secretAccessKey: account.apiSecret },
    );
    const headers = signed.headers as Record<string, string>;
    const amzDate = headers['X-Amz-Date']!;
    const signing = {
      signingKey: deriveSigningKey(account.apiSecret, amzDate.slice(0, 8), 'us-east-1', 's3'),
      seedSignature: /Signature=([0-9a-f]{64})/.exec(headers.Authorization!)![1]!,
      amzDate,
      scope: `${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`,
    };
    const response = await fetch(`${server.gatewayUrl}${path}`, { method: 'PUT', headers, body: new Uint8Array(encodeAwsChunked(data, { mode, chunkSize: 64 * 1024, signing })) });
    await response.arrayBuffer();
    return { status: response.status, headers: Object.fromEntries(response.headers) };
  }
});
