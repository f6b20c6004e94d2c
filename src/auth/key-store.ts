import { LRUCache } from 'lru-cache';
import type { Db, Queryable } from '../db/index.js';
import { LIMIT_COLUMNS, toLimits, type Limits, type LimitsRow } from '../quota/limits.js';
import { decryptSecret } from './secret-box.js';

export type AccountStatus = 'active' | 'suspended' | 'deleted';

/** What a request needs to authenticate an access key and to decide whether it may proceed. */
export interface KeyRecord {
  accountId: string;
  agentcacheUserId: string;
  status: AccountStatus;
  /** The current secret first, then the previous one while its rotation grace lasts. */
  secrets: string[];
  /** The limits in force (overrides, else the tier's), refreshed with the record on every account change. */
  limits: Limits;
}


export interface KeyStore {
  /** null for an unknown access key. */
  lookup(accessKeyId: string): Promise<KeyRecord | null>;
  invalidate(accessKeyId: string): void;
  invalidateAccount(accountId: string): void;
  /** Forgets every cached key, for when changes may have been missed. */
  invalidateAll(): void;
}

export interface KeyStoreOptions {
  db: Queryable;
  masterKey: Buffer;
  /** Most access keys kept in memory. */
  max?: number;
  /** How long a found key is trusted without asking the database again. */
  ttlMs?: number;
  /** How long an unknown key is remembered as unknown; short, so a just-provisioned key works at once. */
  negativeTtlMs?: number;
}

interface KeyRow extends LimitsRow {
  account_id: string;
  agentcache_user_id: string;
  status: AccountStatus;
  api_secret_encrypted: string;
  previous_secret_encrypted: string | null;
  previous_secret_expires_at: Date | null;
}

// Values must be objects for lru-cache; `record: null` is a remembered miss.
interface CacheEntry {
  record: KeyRecord | null;
}

/**
 * Access key -> account and decrypted secrets, with a short-lived LRU cache in front of the database:
 * every signed request needs the secret, and decrypting it per request would cost a query and an AES
 * operation each time. Admin changes call invalidate so they take effect at once in this process; the
 * TTL bounds how long another process may act on an old answer.
 */
export function createKeyStore(options: KeyStoreOptions): KeyStore {
  const ttlMs = options.ttlMs ?? 60_000;
  const negativeTtlMs = options.negativeTtlMs ?? 5_000;
  const cache = new LRUCache<string, CacheEntry>({ max: options.max ?? 10_000, ttl: ttlMs });
  const inflight = new Map<string, Promise<KeyRecord | null>>();
  // Bumped by every invalidation: a lookup that started before one must not cache what it read.
  let generation = 0;

  async function load(accessKeyId: string): Promise<{ record: KeyRecord | null; ttl: number }> {
    // The grace test uses the database's clock, which every gateway process shares.
    const { rows } = await options.db.query<KeyRow>(
      `SELECT a.id AS account_id, agentcache_user_id, status, api_secret_encrypted,
              CASE WHEN previous_secret_expires_at > now() THEN previous_secret_encrypted END AS previous_secret_encrypted,
              CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END AS previous_secret_expires_at,
              ${LIMIT_COLUMNS}
         FROM agentcache_accounts a JOIN account_limits l ON l.account_id = a.id WHERE a.api_key = $1`,
      [accessKeyId],
    );
    const row = rows[0];
    if (!row) return { record: null, ttl: negativeTtlMs };
    const secrets: string[] = [];
    // A deleted account's secrets are wiped (empty): it has none left to match.
    // Sealed with the access key as associated data, so a ciphertext moved to another row fails here.
    if (row.api_secret_encrypted !== '') secrets.push(decryptSecret(row.api_secret_encrypted, options.masterKey, accessKeyId));
    let ttl = ttlMs;
    if (row.previous_secret_encrypted && row.previous_secret_expires_at) {
      secrets.push(decryptSecret(row.previous_secret_encrypted, options.masterKey, accessKeyId));
      // The cached entry must not outlive the previous secret's grace.
      ttl = Math.max(1, Math.min(ttlMs, new Date(row.previous_secret_expires_at).getTime() - Date.now()));
    }
    return { record: { accountId: row.account_id, agentcacheUserId: row.agentcache_user_id, status: row.status, secrets, limits: toLimits(row) }, ttl };
  }

  return {
    lookup(accessKeyId) {
      const cached = cache.get(accessKeyId);
      if (cached) return Promise.resolve(cached.record);
      // Concurrent requests with one key share a single query.
      const pending = inflight.get(accessKeyId);
      if (pending) return pending;
      const startedAt = generation;
      const loading = load(accessKeyId)
        .then(({ record, ttl }) => {
          if (generation === startedAt) cache.set(accessKeyId, { record }, { ttl });
          return record;
        })
        .finally(() => {
          if (inflight.get(accessKeyId) === loading) inflight.delete(accessKeyId);
        });
      inflight.set(accessKeyId, loading);
      return loading;
    },
    invalidate(accessKeyId) {
      generation++;
      cache.delete(accessKeyId);
      inflight.delete(accessKeyId);
    },
    invalidateAccount(accountId) {
      generation++;
      for (const [accessKeyId, entry] of cache.entries()) {
        if (entry.record?.accountId === accountId) cache.delete(accessKeyId);
      }
      // The account's keys are not known for lookups still in flight; dropping all of them is cheap and safe.
      inflight.clear();
    },
    invalidateAll() {
      generation++;
      cache.clear();
      inflight.clear();
    },
  };
}

/** The NOTIFY channel on which an account id announces that its keys, status or limits changed. */
export const ACCOUNT_CHANGED_CHANNEL = 'jt_account_changed';

export async function notifyAccountChanged(db: Queryable, accountId: string): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [ACCOUNT_CHANGED_CHANNEL, accountId]);
}

/**
 * Makes this process's key store forget an account whenever any process announces a change to it. When
 * the listening connection comes back after a drop, announcements may have been missed: it forgets all.
 */
export function followAccountChanges(db: Pick<Db, 'listen'>, keys: KeyStore): Promise<() => Promise<void>> {
  return db.listen(ACCOUNT_CHANGED_CHANNEL, (accountId) => keys.invalidateAccount(accountId), () => keys.invalidateAll());
}
