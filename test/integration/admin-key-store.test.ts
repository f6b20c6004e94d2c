import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyStore } from '../../src/auth/key-store.js';
import { encryptSecret } from '../../src/auth/secret-box.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const masterKey = randomBytes(32);
let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database?.drop());

async function insertAccount(apiKey: string, secret: string): Promise<string> {
  const user = `ks-${randomBytes(4).toString('hex')}`;
  const { rows } = await database.db.query<{ id: string }>(
    `INSERT INTO agentcache_accounts (agentcache_user_id, agentcache_email, agentcache_tier, api_key, api_secret_encrypted, s3_bucket_name, s3_prefix)
     VALUES ($1, 'ks@example.com', 'pro', $2, $3, 'b', $4) RETURNING id`,
    [user, apiKey, encryptSecret(secret, masterKey, apiKey), `users/${user}/`],
  );
  return rows[0]!.id;
}

const newKey = () => `jt_test_${randomBytes(24).toString('base64url')}`;

describe('key store', () => {
  it('finds an access key with its decrypted secret, and null for an unknown key', async () => {
    const keys = createKeyStore({ db: database.db, masterKey });
    const apiKey = newKey();
    const accountId = await insertAccount(apiKey, 'jts_one');
    expect(await keys.lookup(apiKey)).toEqual({
      accountId,
      agentcacheUserId: expect.stringMatching(/^ks-/),
      status: 'active',
      secrets: ['jts_one'],
      // The pro tier's limits as seeded, in bytes.
      limits: {
        tier: 'pro',
        storageQuotaBytes: 20 * 1024 ** 3,
        bandwidthQuotaBytes: 50 * 1024 ** 3,
        rateLimitPerMinute: 300,
        maxFileSizeBytes: 500 * 1024 ** 2,
        jettySpeedEnabled: true,
      },
    });
    expect(await keys.lookup(newKey())).toBeNull();
  });

  it('serves from its cache until invalidated, by key or by account', async () => {
    const keys = createKeyStore({ db: database.db, masterKey });
    const apiKey = newKey();
    const accountId = await insertAccount(apiKey, 'jts_one');
    await keys.lookup(apiKey);
    await database.db.query(`UPDATE agentcache_accounts SET status = 'suspended' WHERE id = $1`, [accountId]);
    expect((await keys.lookup(apiKey))?.status).toBe('active');
    keys.invalidate(apiKey);
    expect((await keys.lookup(apiKey))?.status).toBe('suspended');
    await database.db.query(`UPDATE agentcache_accounts SET status = 'active' WHERE id = $1`, [accountId]);
    keys.invalidateAccount(accountId);
    expect((await keys.lookup(apiKey))?.status).toBe('active');
  });

  it('forgets an unknown key after the short negative TTL', async () => {
    const keys = createKeyStore({ db: database.db, masterKey, negativeTtlMs: 100 });
    const apiKey = newKey();
    expect(await keys.lookup(apiKey)).toBeNull();
    await insertAccount(apiKey, 'jts_late');
    expect(await keys.lookup(apiKey)).toBeNull();
    await sleep(150);
    expect((await keys.lookup(apiKey))?.secrets).toEqual(['jts_late']);
  });

  it('includes the previous secret during its grace, and a cached entry never outlives the grace', async () => {
    const keys = createKeyStore({ db: database.db, masterKey, ttlMs: 60_000 });
    const apiKey = newKey();
    const accountId = await insertAccount(apiKey, 'jts_old');
    await database.db.query(
      `UPDATE agentcache_accounts SET previous_secret_encrypted = api_secret_encrypted, api_secret_encrypted = $2,
              previous_secret_expires_at = now() + interval '300 milliseconds' WHERE id = $1`,
      [accountId, encryptSecret('jts_new', masterKey, apiKey)],
    );
    expect((await keys.lookup(apiKey))?.secrets).toEqual(['jts_new', 'jts_old']);
    await sleep(400);
    expect((await keys.lookup(apiKey))?.secrets).toEqual(['jts_new']);
  });

  it('shares one query between concurrent lookups of a key', async () => {
    let queries = 0;
    const counting = { ...database.db, query: ((sql: string, params?: readonly unknown[]) => (queries++, database.db.query(sql, params))) as typeof database.db.query };
    const keys = createKeyStore({ db: counting, masterKey });
    const apiKey = newKey();
    await insertAccount(apiKey, 'jts_one');
    await Promise.all(Array.from({ length: 10 }, () => keys.lookup(apiKey)));
    expect(queries).toBe(1);
  });

  it('refuses a sealed secret copied onto another account row', async () => {
    const keys = createKeyStore({ db: database.db, masterKey });
    const victimKey = newKey();
    const attackerKey = newKey();
    await insertAccount(victimKey, 'jts_victim');
    const attacker = await insertAccount(attackerKey, 'jts_attacker');
    await database.db.query(
      `UPDATE agentcache_accounts SET api_secret_encrypted = (SELECT api_secret_encrypted FROM agentcache_accounts WHERE api_key = $2) WHERE id = $1`,
      [attacker, victimKey],
    );
    await expect(keys.lookup(attackerKey)).rejects.toMatchObject({ code: 'SECRET_BOX_TAMPERED' });
  });
});
