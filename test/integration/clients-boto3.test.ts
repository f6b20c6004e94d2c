import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionAccount } from '../helpers/admin.js';
import {
  KEYS,
  TOOLS,
  createWorkspace,
  curlGet,
  endpointOf,
  fileSlice,
  formatRun,
  hermeticEnv,
  printGatewayErrorsOnFailure,
  run,
  sha256File,
  stdoutJson,
  uniqueBucket,
  type Workspace,
} from '../helpers/clients.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const CALL_SCRIPT = fileURLToPath(new URL('../helpers/boto3-call.py', import.meta.url));

type Call = [method: string, kwargs?: Record<string, unknown>];
interface Outcome {
  result?: any;
  error?: { Code: string; Message: string };
  HTTPStatusCode?: number;
}

/** boto3 as Debian ships it (python3-boto3), driven through boto3-call.py. */
describe('boto3 against the gateway', () => {
  let server: TestServer;
  let workspace: Workspace;
  let env: Record<string, string>;
  const bucket = uniqueBucket('boto3');

  /** Runs the calls in one boto3 process (its start-up is most of a call's cost) and returns each outcome. */
  async function boto3Calls(...calls: Call[]): Promise<Outcome[]> {
    const result = await run(TOOLS.python3, [CALL_SCRIPT, JSON.stringify(calls.map(([method, kwargs = {}]) => [method, kwargs]))], { env });
    if (result.code !== 0) throw new Error(`boto3 failed\n${formatRun(result)}`);
    return stdoutJson(result);
  }
  /** The calls' results; fails the test with boto3's errors when any call raised. */
  async function boto3(...calls: Call[]): Promise<any[]> {
    const outcomes = await boto3Calls(...calls);
    const failed = outcomes.flatMap((outcome, i) => (outcome.error ? [`${calls[i]![0]}: ${JSON.stringify(outcome)}`] : []));
    if (failed.length > 0) throw new Error(`boto3 calls raised\n${failed.join('\n')}`);
    return outcomes.map((outcome) => outcome.result);
  }

  printGatewayErrorsOnFailure(() => server);

  beforeAll(async () => {
    server = await startTestServer();
    const account = await provisionAccount(server);
    workspace = await createWorkspace('boto3');
    const endpoint = endpointOf(server, account);
    env = hermeticEnv(workspace.home, {
      JT_ENDPOINT: endpoint.url,
      JT_ACCESS_KEY_ID: endpoint.accessKeyId,
      JT_SECRET_ACCESS_KEY: endpoint.secretAccessKey,
      // Files that do not exist: nothing but the script's own settings applies.
      AWS_CONFIG_FILE: `${workspace.home}/no-aws-config`,
      AWS_SHARED_CREDENTIALS_FILE: `${workspace.home}/no-aws-credentials`,
    });
  });
  afterAll(async () => {
    await workspace?.cleanup();
    await server?.close();
  });

  it('creates a bucket, which head_bucket finds and list_buckets shows beside the default one', async () => {
    const [created, head, listed] = await boto3(['create_bucket', { Bucket: bucket }], ['head_bucket', { Bucket: bucket }], ['list_buckets']);
    expect(created.HTTPStatusCode).toBe(200);
    expect(head.HTTPStatusCode).toBe(200);
    expect(listed.Buckets.map((b: { Name: string }) => b.Name)).toEqual(expect.arrayContaining(['default', bucket]));
  });

  it('puts a small and a 20 MiB object with put_object, with the quoted MD5 as ETag', async () => {
    const uploads = [[KEYS.small, workspace.small], [KEYS.big, workspace.big], [KEYS.outside, workspace.small]] as const;
    const results = await boto3(
      ...uploads.flatMap(([key, file]): Call[] => [
        ['put_object', { Bucket: bucket, Key: key, _BodyFile: file.path, ContentType: 'application/x-test' }],
        ['head_object', { Bucket: bucket, Key: key }],
      ]),
    );
    uploads.forEach(([, file], i) => {
      const [put, head] = [results[2 * i], results[2 * i + 1]];
      expect(put.ETag).toBe(`"${file.md5}"`);
      expect(head.ETag).toBe(`"${file.md5}"`);
      expect(head.ContentLength).toBe(file.size);
      expect(head.ContentType).toBe('application/x-test');
    });
  });

  it('lists with a prefix and a delimiter, with ListObjectsV2 and ListObjects', async () => {
    const query = { Bucket: bucket, Prefix: 'docs/', Delimiter: '/' };
    for (const listed of await boto3(['list_objects_v2', query], ['list_objects', query])) {
      expect(listed.Contents.map((o: { Key: string; Size: number; ETag: string }) => [o.Key, o.Size, o.ETag])).toEqual([
        [KEYS.small, workspace.small.size, `"${workspace.small.md5}"`],
      ]);
      expect(listed.CommonPrefixes).toEqual([{ Prefix: 'docs/nested/' }]);
    }
  });

  it('gets both objects back byte for byte, with the ETag', async () => {
    const gets = [[KEYS.small, workspace.small, workspace.out('small.bin')], [KEYS.big, workspace.big, workspace.out('big.bin')]] as const;
    const results = await boto3(...gets.map(([key, , out]): Call => ['get_object', { Bucket: bucket, Key: key, _OutFile: out }]));
    for (const [i, [, file, out]] of gets.entries()) {
      expect(results[i].ETag).toBe(`"${file.md5}"`);
      expect(await sha256File(out)).toBe(file.sha256);
    }
  });

  it('gets a byte range of the 20 MiB object', async () => {
    const out = workspace.out('range.bin');
    const [got] = await boto3(['get_object', { Bucket: bucket, Key: KEYS.big, Range: 'bytes=5000000-5999999', _OutFile: out }]);
    expect(got.HTTPStatusCode).toBe(206);
    expect(got.ContentRange).toBe(`bytes 5000000-5999999/${workspace.big.size}`);
    expect((await readFile(out)).equals(await fileSlice(workspace.big, 5_000_000, 1_000_000))).toBe(true);
  });

  it('copies an object within the bucket', async () => {
    const out = workspace.out('copy.bin');
    const [copied, got] = await boto3(
      ['copy_object', { Bucket: bucket, Key: KEYS.copy, CopySource: { Bucket: bucket, Key: KEYS.small } }],
      ['get_object', { Bucket: bucket, Key: KEYS.copy, _OutFile: out }],
    );
    expect(copied.CopyObjectResult.ETag).toBe(`"${workspace.small.md5}"`);
    expect(got.ContentType).toBe('application/x-test');
    expect(await sha256File(out)).toBe(workspace.small.sha256);
  });

  it('makes a presigned (SigV4) GET URL that curl fetches', async () => {
    const [url] = await boto3(['generate_presigned_url', { ClientMethod: 'get_object', Params: { Bucket: bucket, Key: KEYS.small }, ExpiresIn: 600 }]);
    expect(url).toContain('X-Amz-Algorithm=AWS4-HMAC-SHA256');
    const fetched = await curlGet(url, workspace);
    expect(fetched.status).toBe(200);
    expect(fetched.body.equals(await readFile(workspace.small.path))).toBe(true);
  });

  it('deletes one object, then several at once (DeleteObjects)', async () => {
    const [deleted, head, batch, left] = await boto3Calls(
      ['delete_object', { Bucket: bucket, Key: KEYS.copy }],
      ['head_object', { Bucket: bucket, Key: KEYS.copy }],
      ['delete_objects', { Bucket: bucket, Delete: { Objects: [{ Key: KEYS.small }, { Key: KEYS.big }] } }],
      ['list_objects_v2', { Bucket: bucket }],
    );
    expect(deleted).toMatchObject({ result: { HTTPStatusCode: 204 } });
    expect(head).toMatchObject({ error: { Code: '404' }, HTTPStatusCode: 404 });
    expect(batch!.result.Deleted.map((d: { Key: string }) => d.Key).sort()).toEqual([KEYS.big, KEYS.small]);
    expect(batch!.result.Errors ?? []).toEqual([]);
    expect(left!.result.Contents.map((o: { Key: string }) => o.Key)).toEqual([KEYS.outside]);
  });
});
