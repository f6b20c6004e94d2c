import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Client as MinioClient } from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobHashingSettled } from '../../src/jobs/hash-pending.js';
import { provisionAccount } from '../helpers/admin.js';
import {
  MiB,
  REGION,
  TOOLS,
  createWorkspace,
  endpointOf,
  hermeticEnv,
  rcloneEnv,
  runOk,
  sha256File,
  stdoutJson,
  writeAwsConfig,
  writeDataFile,
  type DataFile,
  type Endpoint,
  type Workspace,
} from '../helpers/clients.js';
import { s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const BOTO3_CALL = fileURLToPath(new URL('../helpers/boto3-call.py', import.meta.url));

/** S3's ETag of a file uploaded in parts of `partSize`: the MD5 of the parts' MD5s, a dash, the count. */
async function multipartEtag(file: DataFile, partSize: number, firstPartSize = partSize): Promise<string> {
  const md5s: Buffer[] = [];
  for (let start = 0; start < file.size; ) {
    const end = Math.min(file.size, start + (start === 0 ? firstPartSize : partSize));
    const hash = createHash('md5');
    for await (const chunk of createReadStream(file.path, { start, end: end - 1 })) hash.update(chunk as Buffer);
    md5s.push(hash.digest());
    start = end;
  }
  return `"${createHash('md5').update(Buffer.concat(md5s)).digest('hex')}-${md5s.length}"`;
}

/**
 * Multipart uploads from real clients at their own multipart settings, each downloaded again and compared
 * byte for byte, its ETag in S3's multipart form. Everything goes to the `default` bucket.
 */
describe('real clients uploading in parts', () => {
  let server: TestServer;
  let workspace: Workspace;
  let endpoint: Endpoint;
  let s3: S3Client;
  let hundred: DataFile;

  beforeAll(async () => {
    server = await startTestServer();
    const account = await provisionAccount(server);
    endpoint = endpointOf(server, account);
    s3 = s3Client(server, account);
    workspace = await createWorkspace('multipart');
    hundred = await writeDataFile(path.join(workspace.dir, 'data', 'hundred.bin'), 'multipart-100', 100 * MiB);
  });
  afterAll(async () => {
    s3?.destroy();
    if (server) await blobHashingSettled(server);
    await workspace?.cleanup();
    await server?.close();
  });

  async function headEtag(key: string): Promise<string | undefined> {
    return (await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: key }))).ETag;
  }

  it('aws s3 cp: a 100 MiB file in 8 MiB parts, and back', async () => {
    const env = hermeticEnv(workspace.home, await writeAwsConfig(workspace, endpoint, { defaultMultipart: true }));
    const aws = (...args: string[]) => runOk(TOOLS.aws, ['--endpoint-url', endpoint.url, ...args], { env, timeoutMs: 60_000 });
    await aws('s3', 'cp', '--no-progress', hundred.path, 's3://default/aws/hundred.bin');
    expect(await headEtag('aws/hundred.bin')).toBe(await multipartEtag(hundred, 8 * MiB));
    const out = workspace.out('aws-hundred');
    await aws('s3', 'cp', '--no-progress', 's3://default/aws/hundred.bin', out);
    expect(await sha256File(out)).toBe(hundred.sha256);
  });

  it('aws s3 sync: files above the multipart threshold, and back', async () => {
    const env = hermeticEnv(workspace.home, await writeAwsConfig(workspace, endpoint, { defaultMultipart: true }));
    const aws = (...args: string[]) => runOk(TOOLS.aws, ['--endpoint-url', endpoint.url, ...args], { env, timeoutMs: 60_000 });
    const tree = path.join(workspace.dir, 'tree');
    const files = [
      await writeDataFile(path.join(tree, 'a.bin'), 'sync-a', 9 * MiB),
      await writeDataFile(path.join(tree, 'nested', 'b.bin'), 'sync-b', 17 * MiB + 5),
    ];
    await aws('s3', 'sync', '--no-progress', tree, 's3://default/sync/');
    expect(await headEtag('sync/a.bin')).toBe(await multipartEtag(files[0]!, 8 * MiB));
    expect(await headEtag('sync/nested/b.bin')).toBe(await multipartEtag(files[1]!, 8 * MiB));
    const back = workspace.out('sync-back');
    await mkdir(back);
    await aws('s3', 'sync', '--no-progress', 's3://default/sync/', back);
    expect(await sha256File(path.join(back, 'a.bin'))).toBe(files[0]!.sha256);
    expect(await sha256File(path.join(back, 'nested', 'b.bin'))).toBe(files[1]!.sha256);
  });

  it('rclone copy: a 100 MiB file in 8 MiB parts, and back', async () => {
    const env = {
      ...hermeticEnv(workspace.home, await rcloneEnv(workspace, endpoint, 'jt')),
      // Multipart above 16 MiB, in 8 MiB parts (rclone sends 4 at a time).
      RCLONE_CONFIG_JT_UPLOAD_CUTOFF: '16M',
      RCLONE_CONFIG_JT_CHUNK_SIZE: '8M',
    };
    const rclone = (...args: string[]) => runOk(TOOLS.rclone, args, { env, timeoutMs: 60_000 });
    await rclone('copyto', hundred.path, 'jt:default/rclone/hundred.bin');
    expect(await headEtag('rclone/hundred.bin')).toBe(await multipartEtag(hundred, 8 * MiB));
    const out = workspace.out('rclone-hundred');
    await rclone('copyto', 'jt:default/rclone/hundred.bin', out);
    expect(await sha256File(out)).toBe(hundred.sha256);
  });

  it('@aws-sdk/lib-storage Upload: 4 parts in parallel with its default CRC32 checksums, and back', async () => {
    const file = await writeDataFile(path.join(workspace.dir, 'data', 'sdk.bin'), 'multipart-sdk', 22 * MiB);
    const upload = new Upload({ client: s3, params: { Bucket: 'default', Key: 'sdk/parallel.bin', Body: createReadStream(file.path) }, partSize: 5 * MiB, queueSize: 4 });
    const done = await upload.done();
    expect('ETag' in done && done.ETag).toBe(await multipartEtag(file, 5 * MiB));
    // CreateMultipartUpload asked for CRC32 (the SDK's default), so the object has a composite checksum.
    expect('ChecksumCRC32' in done && done.ChecksumCRC32).toMatch(/^[A-Za-z0-9+/]{6}==-5$/);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'sdk/parallel.bin' }));
    const out = workspace.out('sdk');
    await pipeline(got.Body as Readable, createWriteStream(out));
    expect(await sha256File(out)).toBe(file.sha256);
  });

  it('boto3 upload_file: its default 8 MiB parts, and download_file back', async () => {
    const env = hermeticEnv(workspace.home, {
      JT_ENDPOINT: endpoint.url,
      JT_ACCESS_KEY_ID: endpoint.accessKeyId,
      JT_SECRET_ACCESS_KEY: endpoint.secretAccessKey,
      AWS_CONFIG_FILE: `${workspace.home}/no-aws-config`,
      AWS_SHARED_CREDENTIALS_FILE: `${workspace.home}/no-aws-credentials`,
    });
    const out = workspace.out('boto3');
    const calls = [
      ['upload_file', { Filename: workspace.big.path, Bucket: 'default', Key: 'boto3/big.bin' }],
      ['download_file', { Bucket: 'default', Key: 'boto3/big.bin', Filename: out }],
    ];
    const outcomes = stdoutJson<{ error?: unknown }[]>(await runOk(TOOLS.python3, [BOTO3_CALL, JSON.stringify(calls)], { env, timeoutMs: 60_000 }));
    expect(outcomes.filter((outcome) => outcome.error)).toEqual([]);
    expect(await headEtag('boto3/big.bin')).toBe(await multipartEtag(workspace.big, 8 * MiB));
    expect(await sha256File(out)).toBe(workspace.big.sha256);
  });

  it('minio fPutObject: a 70 MiB file in its 64 MiB parts, and fGetObject back', async () => {
    const url = new URL(endpoint.url);
    const minio = new MinioClient({
      endPoint: url.hostname,
      port: Number(url.port),
      useSSL: false,
      accessKey: endpoint.accessKeyId,
      secretKey: endpoint.secretAccessKey,
      region: REGION,
      pathStyle: true,
    });
    const file = await writeDataFile(path.join(workspace.dir, 'data', 'minio.bin'), 'multipart-minio', 70 * MiB);
    const { etag } = await minio.fPutObject('default', 'minio/seventy.bin', file.path, {});
    expect(`"${etag}"`).toBe(await multipartEtag(file, 64 * MiB));
    const out = workspace.out('minio');
    await minio.fGetObject('default', 'minio/seventy.bin', out);
    expect(await sha256File(out)).toBe(file.sha256);
  });
});
