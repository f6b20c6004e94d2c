import { describe, expect, it } from 'vitest';
import type { KeyRecord, KeyStore } from './key-store.js';
import { authenticateRest, RestAuthError } from './rest-auth.js';

const limits: KeyRecord['limits'] = {
  tier: 'pro',
  storageQuotaBytes: 20 * 1024 ** 3,
  bandwidthQuotaBytes: 50 * 1024 ** 3,
  rateLimitPerMinute: 300,
  maxFileSizeBytes: 500 * 1024 ** 2,
  jettySpeedEnabled: true,
};

const records: Record<string, KeyRecord> = {
  jt_test_active: { accountId: 'a1', agentcacheUserId: 'u1', status: 'active', secrets: ['jts_current', 'jts_previous'], limits },
  jt_test_suspended: { accountId: 'a2', agentcacheUserId: 'u2', status: 'suspended', secrets: ['jts_s'], limits },
  jt_test_deleted: { accountId: 'a3', agentcacheUserId: 'u3', status: 'deleted', secrets: [], limits },
};

const keys: KeyStore = {
  lookup: async (accessKeyId) => records[accessKeyId] ?? null,
  invalidate: () => undefined,
  invalidateAccount: () => undefined,
  invalidateAll: () => undefined,
};

async function failure(authorization: string | string[] | undefined, secret: string | string[] | undefined): Promise<RestAuthError> {
  try {
    await authenticateRest(keys, authorization, secret);
  } catch (error) {
    if (error instanceof RestAuthError) return error;
    throw error;
  }
  throw new Error('expected a RestAuthError');
}

describe('authenticateRest', () => {
  it('accepts the current and the previous secret', async () => {
    expect((await authenticateRest(keys, 'Bearer jt_test_active', 'jts_current')).accountId).toBe('a1');
    expect((await authenticateRest(keys, 'Bearer jt_test_active', 'jts_previous')).accountId).toBe('a1');
  });

  it('answers 401 for anything that does not prove the key', async () => {
    for (const [authorization, secret] of [
      [undefined, 'jts_current'],
      ['Bearer jt_test_active', undefined],
      ['Bearer jt_test_active', 'jts_wrong'],
      ['Bearer jt_test_unknown', 'jts_current'],
      ['Basic jt_test_active', 'jts_current'],
      ['Bearer jt_test_active', ['jts_current', 'jts_current']],
      ['Bearer jt_test_deleted', ''],
    ] as const) {
      const error = await failure(authorization, secret as string | string[] | undefined);
      expect(error.statusCode).toBe(401);
      expect(error.code).toBe('UNAUTHORIZED');
    }
  });

  it('answers 403 for a proven key whose account is suspended', async () => {
    const error = await failure('Bearer jt_test_suspended', 'jts_s');
    expect([error.statusCode, error.code]).toEqual([403, 'ACCOUNT_SUSPENDED']);
  });
});
