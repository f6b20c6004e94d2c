import { readFile } from 'node:fs/promises';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionAccount } from '../helpers/admin.js';
import {
  KEYS,
  TOOLS,
  createWorkspace,
  curlGet,
  endpointOf,
  fileSlice,
  hermeticEnv,
  printGatewayErrorsOnFailure,
  rcloneEnv,
  runOk,
  sha256File,
  stdoutJson,
  stdoutText,
  uniqueBucket,
  type Workspace,
} from '../helpers/clients.js';
import { s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

interface LsjsonEntry {
  Path: string;
  Name: string;
  Size: number;
  IsDir: boolean;
  Hashes?: { md5?: string };
}

/** rclone as Debian ships it, an `s3` remote with provider Other, configured by environment only. */
describe('rclone against the gateway', () => {
  let server: TestServer;
  let workspace: Workspace;
  let env: Record<string, string>;
  let sdk: S3Client;
  const bucket = uniqueBucket('rclone');

  const rclone = (...args: string[]) => runOk(TOOLS.rclone, args, { env });
  const remote = (key = '') => `jt:${bucket}/${key}`;

  printGatewayErrorsOnFailure(() => server);

  beforeAll(async () => {
    server = await startTestServer();
    const account = await provisionAccount(server);
    workspace = await createWorkspace('rclone');
    env = hermeticEnv(workspace.home, await rcloneEnv(workspace, endpointOf(server, account), 'jt'));
    sdk = s3Client(server, account);
  });
  afterAll(async () => {
    sdk?.destroy();
    await workspace?.cleanup();
    await server?.close();
  });

  it('makes a bucket, which lsd then shows beside the default one', async () => {
    await rclone('mkdir', remote());
    const names = stdoutText(await rclone('lsd', 'jt:'))
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/).at(-1));
    expect(names).toEqual(expect.arrayContaining(['default', bucket]));
  });

  it('puts a small and a 20 MiB object in one part each, with the quoted MD5 as ETag', async () => {
    await rclone('copyto', '--s3-upload-cutoff', '64M', workspace.small.path, remote(KEYS.small));
    await rclone('copyto', '--s3-upload-cutoff', '64M', workspace.big.path, remote(KEYS.big));
    await rclone('copyto', '--s3-upload-cutoff', '64M', workspace.small.path, remote(KEYS.outside));
    for (const [key, file] of [[KEYS.small, workspace.small], [KEYS.big, workspace.big]] as const) {
      // As the gateway serves it: a multipart upload would show as "<md5 of md5s>-<parts>".
      const head = await sdk.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      expect(head.ETag).toBe(`"${file.md5}"`);
      expect(head.ContentLength).toBe(file.size);
    }
    const listed = stdoutJson<LsjsonEntry[]>(await rclone('lsjson', '--recursive', '--files-only', '--hash', remote()));
    const md5s = Object.fromEntries(listed.map((entry) => [entry.Path, entry.Hashes?.md5]));
    expect(md5s).toEqual({ [KEYS.small]: workspace.small.md5, [KEYS.big]: workspace.big.md5, [KEYS.outside]: workspace.small.md5 });
  });

  it('lists a folder: a prefix and a delimiter', async () => {
    const listed = stdoutJson<LsjsonEntry[]>(await rclone('lsjson', remote('docs')));
    const entries = listed.map(({ Path, IsDir, Size }) => ({ Path, IsDir, ...(IsDir ? {} : { Size }) }));
    expect(entries.sort((a, b) => a.Path.localeCompare(b.Path))).toEqual([
      { Path: 'nested', IsDir: true },
      { Path: 'small file+ü.bin', IsDir: false, Size: workspace.small.size },
    ]);
  });

  it('gets both objects back byte for byte (rclone checks the MD5 against the ETag itself)', async () => {
    for (const [key, file] of [[KEYS.small, workspace.small], [KEYS.big, workspace.big]] as const) {
      const out = workspace.out('get.bin');
      await rclone('copyto', remote(key), out);
      expect(await sha256File(out)).toBe(file.sha256);
    }
  });

  it('reads a byte range with cat --offset --count', async () => {
    const got = await rclone('cat', '--offset', '5000000', '--count', '1000000', remote(KEYS.big));
    expect(got.stdout.equals(await fileSlice(workspace.big, 5_000_000, 1_000_000))).toBe(true);
  });

  it('copies an object server-side within the bucket', async () => {
    await rclone('copyto', remote(KEYS.small), remote(KEYS.copy));
    const head = await sdk.send(new HeadObjectCommand({ Bucket: bucket, Key: KEYS.copy }));
    expect(head.ETag).toBe(`"${workspace.small.md5}"`);
    const out = workspace.out('copy.bin');
    await rclone('copyto', remote(KEYS.copy), out);
    expect(await sha256File(out)).toBe(workspace.small.sha256);
  });

  it('makes a presigned (SigV4) link that curl fetches', async () => {
    const url = stdoutText(await rclone('link', '--expire', '10m', remote(KEYS.outside))).trim();
    expect(url).toContain('X-Amz-Algorithm=AWS4-HMAC-SHA256');
    const fetched = await curlGet(url, workspace);
    expect(fetched.status).toBe(200);
    expect(fetched.body.equals(await readFile(workspace.small.path))).toBe(true);
  });

  it('deletes one object, then everything under a prefix', async () => {
    const files = async () => stdoutText(await rclone('lsf', '--recursive', '--files-only', remote())).trim().split('\n').sort();
    await rclone('deletefile', remote(KEYS.copy));
    expect(await files()).toEqual([KEYS.big, KEYS.small, KEYS.outside].sort());
    await rclone('delete', remote('docs'));
    expect(await files()).toEqual([KEYS.outside]);
  });
});
