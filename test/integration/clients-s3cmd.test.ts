import { writeFile } from 'node:fs/promises';
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
  run,
  runOk,
  sha256File,
  stdoutText,
  uniqueBucket,
  writeS3cmdConfig,
  type Workspace,
} from '../helpers/clients.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** s3cmd 2.x as Debian ships it, path-style over plain HTTP with SigV4, against the gateway. */
describe('s3cmd against the gateway', () => {
  let server: TestServer;
  let workspace: Workspace;
  let configFile: string;
  let env: Record<string, string>;
  const bucket = uniqueBucket('s3cmd');

  const s3cmd = (...args: string[]) => runOk(TOOLS.s3cmd, ['-c', configFile, ...args], { env });
  const s3cmdMayFail = (...args: string[]) => run(TOOLS.s3cmd, ['-c', configFile, ...args], { env });
  const s3url = (key = '') => `s3://${bucket}/${key}`;
  /** `s3cmd info` prints the ETag, unquoted, as "MD5 sum". */
  const md5SumOf = async (key: string) => /^\s*MD5 sum:\s*(\S+)$/m.exec(stdoutText(await s3cmd('info', s3url(key))))?.[1];

  printGatewayErrorsOnFailure(() => server);

  beforeAll(async () => {
    server = await startTestServer();
    const account = await provisionAccount(server);
    workspace = await createWorkspace('s3cmd');
    configFile = await writeS3cmdConfig(workspace, endpointOf(server, account));
    env = hermeticEnv(workspace.home);
  });
  afterAll(async () => {
    await workspace?.cleanup();
    await server?.close();
  });

  it('makes a bucket, which ls then shows beside the default one', async () => {
    expect(stdoutText(await s3cmd('mb', s3url()))).toContain(`Bucket '${s3url()}' created`);
    const buckets = stdoutText(await s3cmd('ls'))
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/).at(-1));
    expect(buckets).toEqual(expect.arrayContaining(['s3://default', `s3://${bucket}`]));
  });

  it('puts a small and a 20 MiB object in one part each, with the MD5 as ETag', async () => {
    await s3cmd('put', '--disable-multipart', workspace.small.path, s3url(KEYS.small));
    await s3cmd('put', '--disable-multipart', workspace.big.path, s3url(KEYS.big));
    await s3cmd('put', '--disable-multipart', workspace.small.path, s3url(KEYS.outside));
    expect(await md5SumOf(KEYS.small)).toBe(workspace.small.md5);
    expect(await md5SumOf(KEYS.big)).toBe(workspace.big.md5);
  });

  it('lists with a prefix and a delimiter', async () => {
    const lines = stdoutText(await s3cmd('ls', s3url('docs/'))).trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^\\s*DIR\\s+${s3url('docs/nested/')}$`));
    expect(lines[1]).toMatch(new RegExp(`\\s${workspace.small.size}\\s+s3://${bucket}/docs/small file\\+ü\\.bin$`));
  });

  it('gets both objects back byte for byte, and its own MD5 check against the ETag passes', async () => {
    for (const [key, file] of [[KEYS.small, workspace.small], [KEYS.big, workspace.big]] as const) {
      const out = workspace.out('get.bin');
      const got = await s3cmd('get', '--force', s3url(key), out);
      expect(got.stderr).not.toMatch(/MD5 signatures do not match|WARNING/);
      expect(await sha256File(out)).toBe(file.sha256);
    }
  });

  it('resumes a download with --continue (a Range request from where the file ends)', async () => {
    const out = workspace.out('partial.bin');
    await writeFile(out, await fileSlice(workspace.big, 0, 7_000_000));
    await s3cmd('get', '--continue', s3url(KEYS.big), out);
    expect(await sha256File(out)).toBe(workspace.big.sha256);
  });

  it('copies an object within the bucket', async () => {
    await s3cmd('cp', s3url(KEYS.small), s3url(KEYS.copy));
    expect(await md5SumOf(KEYS.copy)).toBe(workspace.small.md5);
    const out = workspace.out('copy.bin');
    await s3cmd('get', '--force', s3url(KEYS.copy), out);
    expect(await sha256File(out)).toBe(workspace.small.sha256);
  });

  it('signurl makes SigV2 URLs only, which the gateway refuses as S3 does where SigV4 is required', async () => {
    const url = stdoutText(await s3cmd('signurl', s3url(KEYS.outside), '+600')).trim();
    expect(url).toContain('Signature=');
    const fetched = await curlGet(url, workspace);
    expect(fetched.status).toBe(400);
    expect(fetched.body.toString('utf8')).toContain('<Code>InvalidRequest</Code>');
    expect(fetched.body.toString('utf8')).toContain('AWS4-HMAC-SHA256');
  });

  it('deletes one object, then a prefix recursively (DeleteObjects)', async () => {
    await s3cmd('del', s3url(KEYS.copy));
    const info = await s3cmdMayFail('info', s3url(KEYS.copy));
    expect(info.code).not.toBe(0);
    expect(info.stderr).toMatch(/404/);

    await s3cmd('del', '--recursive', '--force', s3url('docs/'));
    const left = stdoutText(await s3cmd('ls', '--recursive', s3url())).trim().split('\n');
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(new RegExp(`\\s${s3url(KEYS.outside)}$`));
  });
});
