import { readFile } from 'node:fs/promises';
import path from 'node:path';
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
  runOk,
  sha256File,
  stdoutJson,
  stdoutText,
  uniqueBucket,
  writeAwsConfig,
  writeTree,
  type Workspace,
} from '../helpers/clients.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** The AWS CLI as Debian ships it (`awscli`, v2), its `s3` and `s3api` commands, against the gateway. */
describe('the AWS CLI against the gateway', () => {
  let server: TestServer;
  let workspace: Workspace;
  let env: Record<string, string>;
  const bucket = uniqueBucket('awscli');

  const aws = (...args: string[]) => runOk(TOOLS.aws, ['--endpoint-url', server.gatewayUrl, ...args], { env });
  const s3url = (key = '') => `s3://${bucket}/${key}`;
  const transfers = (output: string) => output.split('\n').filter((line) => /^(upload|download|copy|delete): /.test(line));

  printGatewayErrorsOnFailure(() => server);

  beforeAll(async () => {
    server = await startTestServer();
    const account = await provisionAccount(server);
    workspace = await createWorkspace('awscli');
    env = hermeticEnv(workspace.home, await writeAwsConfig(workspace, endpointOf(server, account)));
  });
  afterAll(async () => {
    await workspace?.cleanup();
    await server?.close();
  });

  it('makes a bucket, which list-buckets then shows beside the default one', async () => {
    expect(stdoutText(await aws('s3', 'mb', s3url()))).toContain(`make_bucket: ${bucket}`);
    const listed = stdoutJson(await aws('s3api', 'list-buckets'));
    expect(listed.Buckets.map((b: { Name: string }) => b.Name)).toEqual(expect.arrayContaining(['default', bucket]));
  });

  it('puts a small and a 20 MiB object in one part each, with the quoted MD5 as ETag', async () => {
    await aws('s3', 'cp', '--no-progress', workspace.small.path, s3url(KEYS.small));
    await aws('s3', 'cp', '--no-progress', workspace.big.path, s3url(KEYS.big));
    const put = stdoutJson(await aws('s3api', 'put-object', '--bucket', bucket, '--key', KEYS.outside, '--body', workspace.small.path));
    expect(put.ETag).toBe(`"${workspace.small.md5}"`);
    // The two `s3 cp` uploads' ETags are checked by the GETs below: a multipart upload would show as "<md5 of md5s>-<parts>".
  });

  it('lists with a prefix and a delimiter (list-objects-v2 and s3 ls)', async () => {
    const listed = stdoutJson(await aws('s3api', 'list-objects-v2', '--bucket', bucket, '--prefix', 'docs/', '--delimiter', '/'));
    expect(listed.Contents.map((o: { Key: string }) => o.Key)).toEqual([KEYS.small]);
    expect(listed.Contents[0].Size).toBe(workspace.small.size);
    expect(listed.Contents[0].ETag).toBe(`"${workspace.small.md5}"`);
    expect(listed.CommonPrefixes).toEqual([{ Prefix: 'docs/nested/' }]);

    const lines = stdoutText(await aws('s3', 'ls', s3url('docs/'))).trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\s+PRE nested\/$/);
    expect(lines[1]).toMatch(new RegExp(`\\s${workspace.small.size} small file\\+ü\\.bin$`));
  });

  it('gets both objects back byte for byte, with the ETag', async () => {
    for (const [key, file] of [[KEYS.small, workspace.small], [KEYS.big, workspace.big]] as const) {
      const out = workspace.out('get.bin');
      const got = stdoutJson(await aws('s3api', 'get-object', '--bucket', bucket, '--key', key, out));
      expect(got.ETag).toBe(`"${file.md5}"`);
      expect(got.ContentLength).toBe(file.size);
      expect(await sha256File(out)).toBe(file.sha256);
    }
  });

  it('gets a byte range of the 20 MiB object', async () => {
    const out = workspace.out('range.bin');
    const got = stdoutJson(await aws('s3api', 'get-object', '--bucket', bucket, '--key', KEYS.big, '--range', 'bytes=5000000-5999999', out));
    expect(got.ContentRange).toBe(`bytes 5000000-5999999/${workspace.big.size}`);
    expect(got.ContentLength).toBe(1_000_000);
    expect((await readFile(out)).equals(await fileSlice(workspace.big, 5_000_000, 1_000_000))).toBe(true);
  });

  it('copies an object within the bucket', async () => {
    expect(stdoutText(await aws('s3', 'cp', '--no-progress', s3url(KEYS.small), s3url(KEYS.copy)))).toContain('copy: ');
    const out = workspace.out('copy.bin');
    const got = stdoutJson(await aws('s3api', 'get-object', '--bucket', bucket, '--key', KEYS.copy, out));
    expect(got.ETag).toBe(`"${workspace.small.md5}"`);
    expect(await sha256File(out)).toBe(workspace.small.sha256);
  });

  it('fetches a presigned (SigV4) GET URL with curl', async () => {
    const url = stdoutText(await aws('s3', 'presign', s3url(KEYS.outside), '--expires-in', '600')).trim();
    expect(url).toContain('X-Amz-Algorithm=AWS4-HMAC-SHA256');
    const fetched = await curlGet(url, workspace);
    expect(fetched.status).toBe(200);
    expect(fetched.body.equals(await readFile(workspace.small.path))).toBe(true);
  });

  it('deletes one object, then a prefix recursively (DeleteObjects)', async () => {
    expect(stdoutText(await aws('s3', 'rm', s3url(KEYS.copy)))).toContain(`delete: ${s3url(KEYS.copy)}`);
    const removed = transfers(stdoutText(await aws('s3', 'rm', '--recursive', s3url('docs/'))));
    expect(removed.sort()).toEqual([`delete: ${s3url(KEYS.big)}`, `delete: ${s3url(KEYS.small)}`]);
    const left = stdoutJson(await aws('s3api', 'list-objects-v2', '--bucket', bucket));
    expect(left.Contents.map((o: { Key: string }) => o.Key)).toEqual([KEYS.outside]);
  });

  it('syncs a directory tree up, and a second sync transfers nothing', async () => {
    // Run from the workspace with relative paths, which is how the CLI then prints them.
    const files = await writeTree(path.join(workspace.dir, 'tree'), 'awscli-tree');
    const sync = (...args: string[]) => runOk(TOOLS.aws, ['--endpoint-url', server.gatewayUrl, 's3', 'sync', '--no-progress', ...args], { env, cwd: workspace.dir });

    const first = transfers(stdoutText(await sync('tree', s3url('tree/'))));
    expect(first.sort()).toEqual(files.map((f) => `upload: tree/${f.relative} to ${s3url(`tree/${f.relative}`)}`).sort());

    const second = await sync('tree', s3url('tree/'));
    expect(transfers(stdoutText(second))).toEqual([]);

    const down = transfers(stdoutText(await sync(s3url('tree/'), 'tree-back')));
    expect(down).toHaveLength(files.length);
    for (const { relative, file } of files) expect(await sha256File(path.join(workspace.dir, 'tree-back', relative))).toBe(file.sha256);
  });
});
