import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli, waitForListening } from '../helpers/cli.js';
import { readAll } from '../helpers/s3.js';
import { createPostgresDatabase, dbKinds } from '../helpers/db.js';

// Each test starts real processes; embedded PGlite's first start (initdb) alone takes seconds on a busy machine.
vi.setConfig({ testTimeout: 240_000 });

const MASTER_KEY = 'b'.repeat(64);
const ADMIN_SECRET = 'startup-test-admin-secret';

describe.each(dbKinds)('serve and migrate on %s', (kind) => {
  let env: Record<string, string>;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'jt-startup-'));
    env = { DATA_DIR: dataDir, GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: '0', ADMIN_PORT: '0', JT_MASTER_KEY: MASTER_KEY, AGENTCACHE_WEBHOOK_SECRET: ADMIN_SECRET };
    let dropDatabase = async () => {};
    if (kind === 'postgres') {
      const database = await createPostgresDatabase();
      env.DATABASE_URL = database.url;
      dropDatabase = database.drop;
    }
    cleanup = async () => {
      await dropDatabase();
      await rm(dataDir, { recursive: true, force: true });
    };
  });
  afterAll(() => cleanup());

  it('migrate applies the migrations, and a second run changes nothing', async () => {
    const first = runCli(['migrate'], { env });
    expect((await first.exited).code).toBe(0);
    expect(first.stdout()).toMatch(/applied 1_accounts/);
    const second = runCli(['migrate'], { env });
    expect((await second.exited).code).toBe(0);
    expect(second.stdout().trim()).toBe('database is up to date');
  });

  it('serve answers health and readiness on both listeners, and SIGTERM stops it cleanly', async () => {
    const cli = runCli(['serve'], { env });
    try {
      const { gatewayUrl, adminUrl } = await waitForListening(cli);
      expect((await fetch(`${gatewayUrl}/healthz`)).status).toBe(200);
      expect((await fetch(`${adminUrl}/healthz`)).status).toBe(200);
      const ready = await fetch(`${adminUrl}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ready', database: 'ok', backend: 'ok' });

      cli.child.kill('SIGTERM');
      expect(await cli.exited).toEqual({ code: 0, signal: null });
      expect(cli.stdout()).toMatch(/"msg":"stopped"/);
      await expect(fetch(`${gatewayUrl}/healthz`)).rejects.toThrow();
    } finally {
      cli.child.kill('SIGKILL');
    }
  });

  it('lets an upload in flight at SIGTERM finish, and the object is there after a restart', async () => {
    const part = Buffer.alloc(256 * 1024, 7);
    const whole = Buffer.concat([part, part]);
    let cli = runCli(['serve'], { env });
    try {
      const first = await waitForListening(cli);
      const provisioned = await fetch(`${first.adminUrl}/api/agentcache/provision`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_SECRET}`, 'content-type': 'application/json' },
        body: JSON.stringify({ agentcache_user_id: 'sigterm-user', agentcache_email: 's@example.com', tier: 'pro' }),
      });
      const { account } = (await provisioned.json()) as { account: { api_key: string; api_secret: string } };
      const credentials = { accessKeyId: account.api_key, secretAccessKey: account.api_secret };
      const client = (endpoint: string) => new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, maxAttempts: 1 });

      let releaseSecondHalf!: () => void;
      const secondHalf = new Promise<void>((resolve) => (releaseSecondHalf = resolve));
      let firstHalfRead!: () => void;
      const firstHalfSent = new Promise<void>((resolve) => (firstHalfRead = resolve));
      const body = Readable.from(
        (async function* () {
          yield part;
          firstHalfRead();
          await secondHalf;
          yield part;
        })(),
      );
      const s3 = client(first.gatewayUrl);
      const upload = s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'in-flight', Body: body, ContentLength: whole.length }));
      await firstHalfSent;
      // The upload is in flight once the gateway has reserved its bytes.
      const reserved = async () => {
        const response = await fetch(`${first.adminUrl}/api/agentcache/accounts/sigterm-user`, { headers: { authorization: `Bearer ${ADMIN_SECRET}` } });
        return ((await response.json()) as { usage: { storage_reserved_bytes: number } }).usage.storage_reserved_bytes;
      };
      await expect.poll(reserved, { timeout: 60_000 }).toBe(whole.length);
      cli.child.kill('SIGTERM');
      await cli.waitFor(/received SIGTERM/);
      releaseSecondHalf();
      const put = await upload;
      expect(put.ETag).toBe(`"${createHash('md5').update(whole).digest('hex')}"`);
      expect(await cli.exited).toEqual({ code: 0, signal: null });
      s3.destroy();

      cli = runCli(['serve'], { env });
      const second = await waitForListening(cli);
      const again = client(second.gatewayUrl);
      const got = await again.send(new GetObjectCommand({ Bucket: 'default', Key: 'in-flight' }));
      expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(whole)).toBe(true);
      again.destroy();
      cli.child.kill('SIGTERM');
      await cli.exited;
    } finally {
      cli.child.kill('SIGKILL');
    }
  });
});

describe('start-up errors', () => {
  it.each([
    [{ GATEWAY_PORT: 'abc' }, 'GATEWAY_PORT'],
    [{ DATABASE_URL: 'postgres://127.0.0.1/x' }, 'JT_MASTER_KEY'],
    [{ STORAGE_BACKEND: 's3' }, 'LYVE_ENDPOINT'],
  ])('a bad setting %o stops start-up with one line naming %s', async (env, variable) => {
    const cli = runCli(['serve'], { env });
    const { code } = await cli.exited;
    expect(code).toBe(2);
    const lines = cli.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^jettythunder: configuration error: ${variable}: `));
  });

  it('an unknown command prints usage and fails', async () => {
    const cli = runCli(['frobnicate']);
    expect((await cli.exited).code).toBe(2);
    expect(cli.stderr()).toMatch(/unknown command "frobnicate"/);
  });
});

describe('embedded mode with no settings at all', () => {
  it('creates ./data with a master key and admin secret, and prints the endpoints and a provisioning curl', async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'jt-embedded-'));
    const cli = runCli(['serve'], { cwd });
    try {
      await cli.waitFor(/Provision a first account/);
      await cli.waitFor(/-d '\{"agentcache_user_id"/);
      const secret = (await readFile(path.join(cwd, 'data', 'admin.secret'), 'utf8')).trim();
      const out = cli.stdout();
      expect(out).toContain('S3 endpoint:     http://127.0.0.1:9000');
      expect(out).toContain('Admin endpoint:  http://127.0.0.1:9001');
      expect(out).toContain('curl -X POST http://127.0.0.1:9001/api/agentcache/provision');
      expect(out).toContain(`-H "Authorization: Bearer ${secret}"`);
      expect((await fetch('http://127.0.0.1:9000/healthz')).status).toBe(200);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
