import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED_PROVISION, SEED_QUOTA } from '../helpers/seed-commands.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const run = promisify(execFile);

/** Runs one of the seed's commands, host, port and credentials substituted, and parses its JSON answer. */
async function shell(command: string): Promise<unknown> {
  const { stdout } = await run('bash', ['-c', `${command} --silent --show-error`]);
  return JSON.parse(stdout);
}

let server: TestServer;
beforeAll(async () => {
  // The seed's own admin secret (long enough for our minimum) and production keys, as its example shows.
  server = await startTestServer({ AGENTCACHE_WEBHOOK_SECRET: 'shared_secret_123', NODE_ENV: 'production' });
});
afterAll(() => server?.close());

describe("the seed's Part 4 curl examples", () => {
  it('provision, then check quota, as printed', async () => {
    const provisioned = (await shell(SEED_PROVISION.replace('https://jettythunder.app', server.adminUrl))) as { success: boolean; account: Record<string, unknown> };
    expect(provisioned).toEqual({
      success: true,
      account: {
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        api_key: expect.stringMatching(/^jt_live_/),
        api_secret: expect.stringMatching(/^jts_/),
        tier: 'pro',
        storage_quota_gb: 20,
        bandwidth_quota_gb: 50,
        jetty_speed_enabled: true,
        created_at: expect.any(String),
      },
    });

    const quotaCommand = SEED_QUOTA.replace('https://jettythunder.app', server.gatewayUrl)
      .replace('jt_live_xxxxxxxx', String(provisioned.account.api_key))
      .replace('jts_xxxxxxxx', String(provisioned.account.api_secret));
    expect(await shell(quotaCommand)).toEqual({
      tier: 'pro',
      storage: { quota_gb: 20, used_gb: 0, available_gb: 20, percent_used: 0 },
      bandwidth: { quota_gb: 50, used_gb: 0, available_gb: 50 },
    });
  });
});
