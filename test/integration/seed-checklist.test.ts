import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, waitFor } from '../helpers/admin.js';
import { restClient } from '../helpers/rest.js';
import { SEED_PROVISION, SEED_QUOTA, SEED_UPLOAD } from '../helpers/seed-commands.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const run = promisify(execFile);

/**
 * The seed's "Testing" checklist, in its order, against a running gateway: provision a test account,
 * upload a test file, download it, delete it, check the quota, upgrade the tier, verify the JettySpeed
 * fallback. The Part 4 commands run as printed there, through the real curl; only the host, the port and
 * the credentials are substituted, and output flags are added so the test can read the status.
 */

/** A stand-in JettySpeed: /health answers as told, and any other path serves that backend key's bytes. */
let health: number | 'hang' = 200;
let jettySpeed: Server;
let jettySpeedUrl: string;
let server: TestServer;
let workDir: string;

beforeAll(async () => {
  jettySpeed = createServer((request, response) => {
    if (request.url === '/health') {
      if (health !== 'hang') response.writeHead(health).end();
      return;
    }
    const key = decodeURIComponent((request.url ?? '/').slice(1));
    server.backend.get({ key }).then(
      ({ body }) => pipeline(body, response.writeHead(200)),
      () => response.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => jettySpeed.listen(0, '127.0.0.1', resolve));
  jettySpeedUrl = `http://127.0.0.1:${(jettySpeed.address() as AddressInfo).port}`;
  server = await startTestServer({
    // The seed's own admin secret and production keys, as its example shows.
    AGENTCACHE_WEBHOOK_SECRET: 'shared_secret_123',
    NODE_ENV: 'production',
    JETTYSPEED_ENABLED: 'true',
    JETTYSPEED_CDN_URL: jettySpeedUrl,
    JETTYSPEED_HEALTH_INTERVAL_MS: '50',
    JETTYSPEED_HEALTH_TIMEOUT_MS: '200',
  });
  workDir = await mkdtemp(path.join(tmpdir(), 'jt-seed-'));
});
afterAll(async () => {
  await server?.close();
  jettySpeed?.closeAllConnections();
  await new Promise((resolve) => jettySpeed?.close(resolve));
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** Runs a seed command in the work folder; returns curl's status and the parsed JSON it printed. */
async function curl(command: string): Promise<{ status: number; body: any }> {
  const { stdout } = await run('bash', ['-c', `${command} --silent --show-error --write-out '\\n%{http_code}'`], { cwd: workDir });
  const at = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(at + 1)), body: JSON.parse(stdout.slice(0, at)) };
}

describe("the seed's testing checklist", () => {
  it('provision, upload, download, delete, quota, tier upgrade, JettySpeed fallback', async () => {
    // 1. Provision a test account.
    const provisioned = await curl(SEED_PROVISION.replace('https://jettythunder.app', server.adminUrl));
    expect(provisioned.status).toBe(201);
    expect(provisioned.body.account).toMatchObject({ api_key: expect.stringMatching(/^jt_live_/), api_secret: expect.stringMatching(/^jts_/), tier: 'pro', jetty_speed_enabled: true });
    const credentials = { apiKey: provisioned.body.account.api_key as string, apiSecret: provisioned.body.account.api_secret as string };
    const withCredentials = (command: string) =>
      command.replace('https://jettythunder.app', server.gatewayUrl).replace('jt_live_xxxxxxxx', credentials.apiKey).replace('jts_xxxxxxxx', credentials.apiSecret);
    const rest = restClient(server, credentials);

    // 2. Upload a test file, with the seed's command.
    const image = randomBytes(6 * 1024 * 1024);
    await writeFile(path.join(workDir, 'test-image.jpg'), image);
    const uploaded = await curl(withCredentials(SEED_UPLOAD));
    expect(uploaded.status).toBe(201);
    expect(uploaded.body).toMatchObject({
      bucket: 'default',
      key: 'test-image.jpg',
      size_bytes: image.length,
      content_type: 'image/jpeg',
      cache_key: 'dalle_image_sunset_beach',
      expires_at: null,
      deduplicated: false,
    });
    const id: string = uploaded.body.id;

    // 3. Download it, by id and by its cache key.
    expect((await rest.call('GET', `/storage/download/${id}`)).bytes.equals(image)).toBe(true);
    expect((await rest.call('GET', '/storage/download?cache_key=dalle_image_sunset_beach')).bytes.equals(image)).toBe(true);

    // 5 (while it is stored). Check the quota, with the seed's command: 6 MiB of 20 GB.
    const quotaWhileStored = await curl(withCredentials(SEED_QUOTA));
    expect(quotaWhileStored).toEqual({
      status: 200,
      body: { tier: 'pro', storage: { quota_gb: 20, used_gb: 0.01, available_gb: 19.99, percent_used: 0 }, bandwidth: { quota_gb: 50, used_gb: 0.01, available_gb: 49.99 } },
    });

    // 4. Delete it: the storage is free again and the file is gone.
    const deleted = await rest.call('DELETE', `/storage/${id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body.freed_bytes).toBe(image.length);
    expect((await rest.call('GET', `/storage/download/${id}`)).status).toBe(404);
    const quotaAfterDelete = await curl(withCredentials(SEED_QUOTA));
    expect(quotaAfterDelete.body.storage).toEqual({ quota_gb: 20, used_gb: 0, available_gb: 20, percent_used: 0 });

    // 6. Upgrade the tier: the new limits apply to the same credentials at once.
    const upgraded = await admin(server, 'POST', '/api/agentcache/upgrade', { agentcache_user_id: 'test-user-123', new_tier: 'business' });
    expect(upgraded.status).toBe(200);
    expect((await curl(withCredentials(SEED_QUOTA))).body).toMatchObject({ tier: 'business', storage: { quota_gb: 100 }, bandwidth: { quota_gb: 200 } });

    // 7. Verify the JettySpeed fallback: downloads point at JettySpeed only while the tier has it and it is up.
    const cached = await rest.uploadBytes(randomBytes(50_000), 'cached.png', { cache_key: 'fallback' }, 'image/png');
    const original = (await rest.call('GET', `/storage/download/${cached.body.id}`)).bytes;
    const redirect = async () => {
      const answer = await rest.call('GET', `/storage/download/${cached.body.id}?redirect=1`);
      expect(answer.status).toBe(200);
      return answer.body as { url: string; via: 'jettyspeed' | 'gateway'; expires_at: string };
    };
    const fetched = async (url: string) => Buffer.from(await (await fetch(url)).arrayBuffer());

    const viaJettySpeed = await waitFor('JettySpeed to be used', async () => {
      const answer = await redirect();
      return answer.via === 'jettyspeed' ? answer : undefined;
    });
    expect(viaJettySpeed.url.startsWith(`${jettySpeedUrl}/users/test-user-123/`)).toBe(true);
    expect(Date.parse(viaJettySpeed.expires_at)).toBeGreaterThan(Date.now());
    expect((await fetched(viaJettySpeed.url)).equals(original)).toBe(true);

    for (const outage of [503, 'hang'] as const) {
      health = outage;
      const viaGateway = await waitFor(`the gateway to take over from JettySpeed answering ${outage}`, async () => {
        const answer = await redirect();
        return answer.via === 'gateway' ? answer : undefined;
      });
      expect(viaGateway.url.startsWith(`${server.gatewayUrl}/default/cached.png?X-Amz-`)).toBe(true);
      expect((await fetched(viaGateway.url)).equals(original)).toBe(true);
      // Plain downloads never depended on JettySpeed.
      expect((await rest.call('GET', '/storage/download?cache_key=fallback')).bytes.equals(original)).toBe(true);
      health = 200;
      await waitFor('JettySpeed to be used again', async () => ((await redirect()).via === 'jettyspeed' ? true : undefined));
    }

    // A tier without JettySpeed is always served by the gateway, however healthy JettySpeed is.
    await admin(server, 'POST', '/api/agentcache/upgrade', { agentcache_user_id: 'test-user-123', new_tier: 'starter' });
    expect((await redirect()).via).toBe('gateway');
  });
});
