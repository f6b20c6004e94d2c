import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/index.js';
import { listMigrations } from '../../src/db/migrate.js';
import { createTestDatabase, dbKinds, type TestDatabase } from '../helpers/db.js';

describe.each(dbKinds)('migrations on %s', (kind) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(kind, { migrated: false });
  });
  afterAll(() => t.drop());

  it('applies every migration once, in order, and records each', async () => {
    const all = await listMigrations();
    const applied = await migrate(t.db);
    expect(applied.map((m) => m.version)).toEqual(all.map((m) => m.version));
    const recorded = await t.db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    expect(recorded.rows.map((r) => r.version)).toEqual(all.map((m) => m.version));
  });

  it('changes nothing on a second run', async () => {
    const before = await t.db.query('SELECT version, applied_at FROM schema_migrations ORDER BY version');
    expect(await migrate(t.db)).toEqual([]);
    const after = await t.db.query('SELECT version, applied_at FROM schema_migrations ORDER BY version');
    expect(after.rows).toEqual(before.rows);
  });

  it("seeds the seed's five tiers with its exact values", async () => {
    const tiers = await t.db.query('SELECT * FROM tier_configs ORDER BY storage_quota_gb');
    expect(tiers.rows).toEqual([
      { tier: 'free', storage_quota_gb: 0, bandwidth_quota_gb: 0, jetty_speed_enabled: false, rate_limit_per_minute: 10, max_file_size_mb: 10 },
      { tier: 'starter', storage_quota_gb: 2, bandwidth_quota_gb: 10, jetty_speed_enabled: false, rate_limit_per_minute: 60, max_file_size_mb: 50 },
      { tier: 'pro', storage_quota_gb: 20, bandwidth_quota_gb: 50, jetty_speed_enabled: true, rate_limit_per_minute: 300, max_file_size_mb: 500 },
      { tier: 'business', storage_quota_gb: 100, bandwidth_quota_gb: 200, jetty_speed_enabled: true, rate_limit_per_minute: 1000, max_file_size_mb: 1000 },
      { tier: 'enterprise', storage_quota_gb: 1000, bandwidth_quota_gb: 5000, jetty_speed_enabled: true, rate_limit_per_minute: 10000, max_file_size_mb: 5000 },
    ]);
  });

  const insertAccount = (userId: string) =>
    t.db.query(
      `INSERT INTO agentcache_accounts (agentcache_user_id, agentcache_email, agentcache_tier, api_key, api_secret_encrypted, s3_bucket_name, s3_prefix)
       VALUES ($1, 'a@example.com', 'pro', $2, 'x', 'b', $3) RETURNING id`,
      [userId, `jt_test_${userId}`, `users/${userId}`],
    );

  it("accepts the seed's example id and UUIDs as agentcache_user_id, and nothing that could leave users/<id>/", async () => {
    await insertAccount('test-user-123');
    await insertAccount('6f1c2a8e-4d3b-4f5a-9c7e-2b1d0e9f8a7c');
    for (const bad of ['../other', 'a/b', '', '.hidden', 'a b', 'x'.repeat(129)]) {
      await expect(insertAccount(bad), bad).rejects.toThrow();
    }
  });

  it('derives limits in bytes from the tier, and an override wins', async () => {
    const { rows } = await t.db.query<{ id: string }>("SELECT id FROM agentcache_accounts WHERE agentcache_user_id = 'test-user-123'");
    const id = rows[0]!.id;
    const limits = await t.db.query('SELECT storage_quota_bytes, max_file_size_bytes, rate_limit_per_minute FROM account_limits WHERE account_id = $1', [id]);
    expect(limits.rows[0]).toEqual({ storage_quota_bytes: 20 * 2 ** 30, max_file_size_bytes: 500 * 2 ** 20, rate_limit_per_minute: 300 });
    await t.db.query('UPDATE agentcache_accounts SET storage_quota_bytes_override = 1234 WHERE id = $1', [id]);
    const overridden = await t.db.query<{ storage_quota_bytes: number }>('SELECT storage_quota_bytes FROM account_limits WHERE account_id = $1', [id]);
    expect(overridden.rows[0]!.storage_quota_bytes).toBe(1234);
  });

  it('orders object keys by UTF-8 bytes', async () => {
    const { rows } = await t.db.query<{ id: string }>("SELECT id FROM agentcache_accounts WHERE agentcache_user_id = 'test-user-123'");
    const account = rows[0]!.id;
    const bucket = await t.db.query<{ id: string }>("INSERT INTO buckets (account_id, name) VALUES ($1, 'b') RETURNING id", [account]);
    const blob = await t.db.query<{ id: string }>(
      "INSERT INTO blobs (account_id, sha256, md5, size_bytes, backend_key, refcount) VALUES ($1, repeat('a', 64), repeat('b', 32), 0, 'k', 3) RETURNING id",
      [account],
    );
    for (const key of ['b', 'B', 'é', 'a']) {
      await t.db.query(
        "INSERT INTO agentcache_assets (account_id, bucket_id, object_key, blob_id, filename, size_bytes, content_hash, etag) VALUES ($1, $2, $3, $4, $3, 0, repeat('a', 64), 'e')",
        [account, bucket.rows[0]!.id, key, blob.rows[0]!.id],
      );
    }
    const keys = await t.db.query<{ object_key: string }>('SELECT object_key FROM agentcache_assets ORDER BY object_key');
    expect(keys.rows.map((r) => r.object_key)).toEqual(['B', 'a', 'b', 'é']);
  });
});
