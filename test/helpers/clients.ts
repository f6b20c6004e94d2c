import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeEach } from 'vitest';
import { generatedBytes } from '../fixtures/generated-data.js';
import type { Provisioned } from './admin.js';
import type { TestServer } from './server.js';

/**
 * Shared pieces of the real-client tests (test/integration/clients-*.test.ts): a temp workspace with
 * deterministic data files, a hermetic environment for the client processes, and a runner that fails
 * with the client's own stderr.
 */

/** Debian's builds, which .ci/run installs; absolute so that a pyenv or pip shim earlier on PATH never wins. */
export const TOOLS = {
  aws: '/usr/bin/aws',
  s3cmd: '/usr/bin/s3cmd',
  rclone: '/usr/bin/rclone',
  python3: '/usr/bin/python3',
  curl: '/usr/bin/curl',
} as const;

export const MiB = 1024 * 1024;
export const REGION = 'us-east-1';

export interface DataFile {
  path: string;
  size: number;
  sha256: string;
  /** Hex MD5: the object's ETag, quoted, once stored in a single part. */
  md5: string;
}

export const sha256Of = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');
export const md5Of = (data: Uint8Array): string => createHash('md5').update(data).digest('hex');

/** SHA-256 of a file, read as a stream. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** `size` deterministic pseudo-random bytes of `seed` written to `file`, with their digests. */
export async function writeDataFile(file: string, seed: string, size: number): Promise<DataFile> {
  await mkdir(path.dirname(file), { recursive: true });
  const sha256 = createHash('sha256');
  const md5 = createHash('md5');
  const handle = await open(file, 'w');
  try {
    for (let offset = 0; offset < size; offset += MiB) {
      const slice = generatedBytes(seed, offset, Math.min(MiB, size - offset));
      sha256.update(slice);
      md5.update(slice);
      await handle.write(slice);
    }
  } finally {
    await handle.close();
  }
  return { path: file, size, sha256: sha256.digest('hex'), md5: md5.digest('hex') };
}

/** Bytes [start, start + length) of a data file, for checking a ranged read. */
export async function fileSlice(file: DataFile, start: number, length: number): Promise<Buffer> {
  const handle = await open(file.path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, start);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** A bucket name of the client's own, unique per run (S3 rules: lower case, digits, hyphens). */
export function uniqueBucket(client: string): string {
  return `${client}-${randomBytes(4).toString('hex')}`;
}

/**
 * The objects every client test writes. The small key has a space, a `+` and a non-ASCII letter on
 * purpose: how each client encodes them in the path and the signature is where gateways go wrong.
 */
export const KEYS = {
  small: 'docs/small file+ü.bin',
  big: 'docs/nested/big.bin',
  /** The small bytes again, outside the listed prefix. */
  outside: 'elsewhere.bin',
  copy: 'copies/small-copy.bin',
} as const;

export interface Workspace {
  dir: string;
  /** HOME of every client process: nothing from the real home (~/.aws, ~/.s3cfg, rclone.conf) is read. */
  home: string;
  small: DataFile;
  /** 20 MiB: above the 8 MiB default multipart thresholds, below the 64 MiB each test configures. */
  big: DataFile;
  /** A fresh path for a download. */
  out(name: string): string;
  cleanup(): Promise<void>;
}

export async function createWorkspace(client: string): Promise<Workspace> {
  const dir = await mkdtemp(path.join(tmpdir(), `jt-${client}-`));
  const home = path.join(dir, 'home');
  await mkdir(home, { recursive: true });
  await mkdir(path.join(dir, 'out'), { recursive: true });
  const small = await writeDataFile(path.join(dir, 'data', 'small.bin'), `${client}-small`, 70_001);
  const big = await writeDataFile(path.join(dir, 'data', 'big.bin'), `${client}-big`, 20 * MiB);
  let outputs = 0;
  return {
    dir,
    home,
    small,
    big,
    out: (name) => path.join(dir, 'out', `${++outputs}-${name}`),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export interface TreeFile {
  /** Path relative to the tree's root, with `/`. */
  relative: string;
  file: DataFile;
}

/**
 * A small directory tree (nested folders, a name with a space) for `aws s3 sync`. Modification times
 * are set a day back: sync compares them with the objects' LastModified, which S3 keeps to the second.
 */
export async function writeTree(root: string, seed: string): Promise<TreeFile[]> {
  const layout: [string, number][] = [
    ['readme.txt', 1_200],
    ['assets/logo one.png', 33_333],
    ['assets/icons/a.svg', 512],
    ['assets/icons/b.svg', 0],
    ['data/2024/01/run.jsonl', 250_000],
  ];
  const dayAgo = new Date(Date.now() - 24 * 3600 * 1000);
  const files: TreeFile[] = [];
  for (const [relative, size] of layout) {
    const file = await writeDataFile(path.join(root, ...relative.split('/')), `${seed}:${relative}`, size);
    await utimes(file.path, dayAgo, dayAgo);
    files.push({ relative, file });
  }
  return files;
}

// --------------------------------------------------------------------------------- running clients

export interface RunResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export interface RunOptions {
  env: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
}

/**
 * The environment of a client process: a temp HOME, Debian's PATH, no proxy and nothing AWS_* from
 * ours (an AWS_CA_BUNDLE or AWS_PROFILE leaking in changes what a client does), plus `extra`.
 */
export function hermeticEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    HOME: home,
    PATH: '/usr/bin:/bin',
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    TMPDIR: tmpdir(),
    NO_PROXY: '*',
    no_proxy: '*',
    // Credentials and region always come from the test's own files; never ask an instance metadata service.
    AWS_EC2_METADATA_DISABLED: 'true',
    PYTHONDONTWRITEBYTECODE: '1',
    ...extra,
  };
}

function describeCommand(file: string, args: readonly string[]): string {
  return [file, ...args].map((part) => (/^[\w@%+=:,./-]+$/.test(part) ? part : `'${part.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Runs a client to its end (killed after `timeoutMs`) and returns what it said, whatever its exit code. */
export function run(file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  const command = describeCommand(file, args);
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env: options.env, cwd: options.cwd, timeout: options.timeoutMs ?? 45_000, killSignal: 'SIGKILL', maxBuffer: 64 * MiB, encoding: 'buffer' },
      (error, stdout, stderr) => {
        if (error && typeof (error as { code?: unknown }).code === 'string') {
          // ENOENT and the like: the tool itself is missing, which .ci/run should have prevented.
          reject(new Error(`${command}: ${error.message}`));
          return;
        }
        const exit = error as (Error & { code?: number; signal?: NodeJS.Signals | null; killed?: boolean }) | null;
        resolve({
          command,
          code: exit ? (exit.code ?? null) : 0,
          signal: exit?.signal ?? null,
          stdout,
          stderr: stderr.toString('utf8'),
        });
      },
    );
  });
}

/** What a failed run said, for the test's failure message. */
export function formatRun(result: RunResult): string {
  const stdout = result.stdout.toString('utf8');
  return [
    `$ ${result.command}`,
    `exit ${result.code ?? `signal ${result.signal}`}`,
    `--- stderr\n${result.stderr.trim()}`,
    `--- stdout\n${stdout.length > 4000 ? `${stdout.slice(0, 4000)}...` : stdout.trim()}`,
  ].join('\n');
}

/** Runs a client and fails, showing its stderr, unless it exits 0. */
export async function runOk(file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  const result = await run(file, args, options);
  if (result.code !== 0) throw new Error(`client failed\n${formatRun(result)}`);
  return result;
}

export function stdoutText(result: RunResult): string {
  return result.stdout.toString('utf8');
}

export function stdoutJson<T = any>(result: RunResult): T {
  return JSON.parse(stdoutText(result)) as T;
}

export interface CurlResult {
  status: number;
  body: Buffer;
}

/** GETs a URL with curl exactly as given (`--globoff`: no `[]{}` expansion), never through a proxy. */
export async function curlGet(url: string, workspace: Workspace): Promise<CurlResult> {
  const bodyFile = workspace.out('curl-body');
  const result = await runOk(TOOLS.curl, ['-q', '--silent', '--show-error', '--globoff', '--noproxy', '*', '--output', bodyFile, '--write-out', '%{http_code}', url], {
    env: hermeticEnv(workspace.home),
    timeoutMs: 30_000,
  });
  return { status: Number(stdoutText(result)), body: await readFile(bodyFile) };
}

// ------------------------------------------------------------------------------------ client config

export interface Endpoint {
  url: string;
  /** host:port */
  hostPort: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export function endpointOf(server: TestServer, account: Pick<Provisioned, 'apiKey' | 'apiSecret'>): Endpoint {
  return { url: server.gatewayUrl, hostPort: new URL(server.gatewayUrl).host, accessKeyId: account.apiKey, secretAccessKey: account.apiSecret };
}

/**
 * AWS CLI and botocore files: SigV4 everywhere (presigning included: botocore presigns SigV2 against a
 * custom endpoint otherwise), path-style, and a 64 MB multipart threshold so 20 MiB stays one PUT, unless
 * `defaultMultipart` keeps the CLI's own (8 MB threshold and parts).
 */
export async function writeAwsConfig(workspace: Workspace, endpoint: Endpoint, options: { defaultMultipart?: boolean } = {}): Promise<Record<string, string>> {
  const configFile = path.join(workspace.home, 'aws-config');
  const credentialsFile = path.join(workspace.home, 'aws-credentials');
  await writeFile(
    configFile,
    [
      '[default]',
      `region = ${REGION}`,
      'output = json',
      'retry_mode = standard',
      'max_attempts = 1',
      's3 =',
      '  signature_version = s3v4',
      '  addressing_style = path',
      ...(options.defaultMultipart ? [] : ['  multipart_threshold = 64MB', '  multipart_chunksize = 64MB']),
      '',
    ].join('\n'),
  );
  await writeFile(credentialsFile, ['[default]', `aws_access_key_id = ${endpoint.accessKeyId}`, `aws_secret_access_key = ${endpoint.secretAccessKey}`, ''].join('\n'));
  return { AWS_CONFIG_FILE: configFile, AWS_SHARED_CREDENTIALS_FILE: credentialsFile, AWS_PAGER: '' };
}

/** An s3cmd config file: path-style on the gateway's host:port, plain HTTP, SigV4. */
export async function writeS3cmdConfig(workspace: Workspace, endpoint: Endpoint): Promise<string> {
  const file = path.join(workspace.home, 's3cfg');
  await writeFile(
    file,
    [
      '[default]',
      `access_key = ${endpoint.accessKeyId}`,
      `secret_key = ${endpoint.secretAccessKey}`,
      `host_base = ${endpoint.hostPort}`,
      // No %(bucket)s in host_bucket: path-style addressing.
      `host_bucket = ${endpoint.hostPort}`,
      `bucket_location = ${REGION}`,
      'use_https = False',
      'signature_v2 = False',
      'check_ssl_certificate = False',
      'proxy_host =',
      'proxy_port = 0',
      'max_retries = 1',
      'progress_meter = False',
      '',
    ].join('\n'),
  );
  return file;
}

/** rclone, configured only through RCLONE_CONFIG_<REMOTE>_* variables (and an empty config file). */
export async function rcloneEnv(workspace: Workspace, endpoint: Endpoint, remote: string): Promise<Record<string, string>> {
  const configFile = path.join(workspace.home, 'rclone.conf');
  await writeFile(configFile, '');
  const prefix = `RCLONE_CONFIG_${remote.toUpperCase()}_`;
  return {
    RCLONE_CONFIG: configFile,
    [`${prefix}TYPE`]: 's3',
    [`${prefix}PROVIDER`]: 'Other',
    [`${prefix}ENV_AUTH`]: 'false',
    [`${prefix}ACCESS_KEY_ID`]: endpoint.accessKeyId,
    [`${prefix}SECRET_ACCESS_KEY`]: endpoint.secretAccessKey,
    [`${prefix}ENDPOINT`]: endpoint.url,
    [`${prefix}REGION`]: REGION,
    [`${prefix}FORCE_PATH_STYLE`]: 'true',
    // Single-part up to 64 MiB; multipart uploads are a later issue.
    [`${prefix}UPLOAD_CUTOFF`]: '64M',
    [`${prefix}CHUNK_SIZE`]: '64M',
    RCLONE_LOW_LEVEL_RETRIES: '1',
    RCLONE_RETRIES: '1',
  };
}

/** The gateway's error-level log lines (a 500's cause), the last `limit` of them. */
export function gatewayErrors(server: TestServer | undefined, limit = 5): string {
  if (!server) return '';
  return server.logs
    .filter((line) => typeof line.level === 'number' && line.level >= 50)
    .slice(-limit)
    .map((line) => JSON.stringify(line).slice(0, 4000))
    .join('\n');
}

/**
 * When a test of the file fails, prints what the gateway logged as errors: a client only shows
 * "InternalError", the cause is on the server's side.
 */
export function printGatewayErrorsOnFailure(getServer: () => TestServer | undefined): void {
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      const errors = gatewayErrors(getServer());
      if (errors !== '') console.error(`gateway errors:\n${errors}`);
    });
  });
}

// --------------------------------------------------------------------------------- database checks

/** Rows and bytes the account holds, to show that a refused request left nothing behind. */
export interface AccountFootprint {
  objects: string[];
  blobs: { sha256: string; refcount: number }[];
  stagedWrites: number;
  reservedBytes: number;
  reservations: number;
  usedBytes: number;
  backendBlobKeys: string[];
}

export async function accountFootprint(server: TestServer, account: Pick<Provisioned, 'id' | 'agentcacheUserId'>): Promise<AccountFootprint> {
  const objects = await server.db.query<{ key: string }>(
    'SELECT b.name || \'/\' || o.object_key AS key FROM agentcache_assets o JOIN buckets b ON b.id = o.bucket_id WHERE o.account_id = $1 ORDER BY 1',
    [account.id],
  );
  const blobs = await server.db.query<{ sha256: string; refcount: number }>('SELECT sha256, refcount FROM blobs WHERE account_id = $1 ORDER BY sha256', [account.id]);
  const staged = await server.db.query<{ n: number }>('SELECT count(*)::int AS n FROM staged_writes WHERE account_id = $1', [account.id]);
  const usage = await server.db.query<{ used: number; reserved: number }>(
    'SELECT storage_used_bytes::float8 AS used, storage_reserved_bytes::float8 AS reserved FROM agentcache_accounts WHERE id = $1',
    [account.id],
  );
  const reservations = await server.db.query<{ n: number }>('SELECT count(*)::int AS n FROM storage_reservations WHERE account_id = $1', [account.id]);
  const listed = await server.backend.list({ prefix: `users/${account.agentcacheUserId}/blobs/` });
  return {
    objects: objects.rows.map((row) => row.key),
    blobs: blobs.rows.map((row) => ({ sha256: row.sha256.trim(), refcount: Number(row.refcount) })),
    stagedWrites: staged.rows[0]!.n,
    reservedBytes: usage.rows[0]!.reserved,
    reservations: reservations.rows[0]!.n,
    usedBytes: usage.rows[0]!.used,
    backendBlobKeys: listed.objects.map((object) => object.key).sort(),
  };
}
