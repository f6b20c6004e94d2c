import { Readable } from 'node:stream';
import { generateAccessKey, generateSecret } from '../auth/keys.js';
import { notifyAccountChanged, type AccountStatus } from '../auth/key-store.js';
import { encryptSecret } from '../auth/secret-box.js';
import type { AppDeps } from '../deps.js';
import type { PurgeRunner, PurgeState } from '../jobs/purge.js';
import { accountPrefix, prefixMarkerKey } from '../storage-layout.js';
import { selectAccountPage, selectAccountView, type AccountView } from './account-view.js';

/**
 * What AgentCache can do to a storage account. The admin routes and the webhook handler both call these,
 * so an event does exactly what the matching endpoint does. Inputs and results are the API's own
 * documents (snake_case, as on the wire); the callers only choose the HTTP status.
 */

export interface AccountDeps extends AppDeps {
  purges: PurgeRunner;
}

export type AccountErrorCode = 'ACCOUNT_NOT_FOUND' | 'ACCOUNT_EXISTS' | 'ACCOUNT_DELETED' | 'INVALID_TIER' | 'VALIDATION_ERROR';

export class AccountError extends Error {
  constructor(
    readonly code: AccountErrorCode,
    message: string,
    /** Extra fields of the error document, e.g. the existing account's id on ACCOUNT_EXISTS. */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'AccountError';
  }
}

export interface AccountRef {
  agentcache_user_id: string;
}

export interface ProvisionInput extends AccountRef {
  agentcache_email: string;
  tier: string;
  webhook_url?: string | null;
}

export interface ProvisionResult {
  success: true;
  account: {
    id: string;
    api_key: string;
    api_secret: string;
    tier: string;
    storage_quota_gb: number;
    bandwidth_quota_gb: number;
    jetty_speed_enabled: boolean;
    created_at: Date;
  };
}

interface TierRow {
  storage_quota_gb: number;
  bandwidth_quota_gb: number;
  jetty_speed_enabled: boolean;
}

async function findTier(deps: AppDeps, tier: string, field: string): Promise<TierRow> {
  const { rows } = await deps.db.query<TierRow>(
    'SELECT storage_quota_gb, bandwidth_quota_gb, jetty_speed_enabled FROM tier_configs WHERE tier = $1',
    [tier],
  );
  if (!rows[0]) throw new AccountError('INVALID_TIER', 'Invalid tier', { field });
  return rows[0];
}

async function existingAccountConflict(deps: AppDeps, agentcacheUserId: string): Promise<AccountError | null> {
  const { rows } = await deps.db.query<{ id: string; status: AccountStatus }>(
    'SELECT id, status FROM agentcache_accounts WHERE agentcache_user_id = $1',
    [agentcacheUserId],
  );
  // The existing id lets AgentCache link its user to the account; the secret is only ever given by rotation.
  return rows[0] ? new AccountError('ACCOUNT_EXISTS', 'Account already exists', { account_id: rows[0].id, status: rows[0].status }) : null;
}

/**
 * The access key is the associated data: a sealed secret copied onto another account's row does not
 * decrypt there (the key store decrypts with the same binding).
 */
function sealAccountSecret(deps: AppDeps, secret: string, apiKey: string): string {
  return encryptSecret(secret, deps.config.masterKey, apiKey);
}

function isUniqueViolation(error: unknown, constraint: string): boolean {
  const pgError = error as { code?: unknown; constraint?: unknown };
  return pgError.code === '23505' && pgError.constraint === constraint;
}

/**
 * Every change to an account's keys, status or limits ends here: this process forgets what it cached at
 * once, and every other gateway process sharing the database hears it through NOTIFY.
 */
async function keysChanged(deps: AppDeps, accountId: string): Promise<void> {
  deps.keys.invalidateAccount(accountId);
  await notifyAccountChanged(deps.db, accountId);
}

export async function provision(deps: AppDeps, input: ProvisionInput): Promise<ProvisionResult> {
  const tier = await findTier(deps, input.tier, 'tier');
  // A fast answer for the common retry; the UNIQUE constraint below settles a race between two requests.
  const existing = await existingAccountConflict(deps, input.agentcache_user_id);
  if (existing) throw existing;

  const apiKey = generateAccessKey(deps.config.production);
  const apiSecret = generateSecret();
  const prefix = accountPrefix(input.agentcache_user_id);
  let created: { id: string; created_at: Date };
  try {
    created = await deps.db.tx(async (q) => {
      const { rows } = await q.query<{ id: string; created_at: Date }>(
        `INSERT INTO agentcache_accounts
           (agentcache_user_id, agentcache_email, agentcache_tier, api_key, api_secret_encrypted, s3_bucket_name, s3_prefix, webhook_url)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, created_at`,
        [
          input.agentcache_user_id,
          input.agentcache_email,
          input.tier,
          apiKey,
          sealAccountSecret(deps, apiSecret, apiKey),
          deps.config.bucketName,
          prefix,
          input.webhook_url ?? null,
        ],
      );
      const row = rows[0]!;
      await q.query(`INSERT INTO buckets (account_id, name, is_default) VALUES ($1, 'default', true)`, [row.id]);
      return row;
    });
  } catch (error) {
    if (isUniqueViolation(error, 'agentcache_accounts_agentcache_user_id_key')) {
      const winner = await existingAccountConflict(deps, input.agentcache_user_id);
      if (winner) throw winner;
    }
    throw error;
  }

  try {
    await deps.backend.put({ key: prefixMarkerKey(input.agentcache_user_id), body: Readable.from([]), contentLength: 0, contentType: 'text/plain' });
  } catch (error) {
    // Without its prefix the account is not provisioned: undo, so AgentCache's retry starts clean.
    await deps.db.query('DELETE FROM agentcache_accounts WHERE id = $1', [created.id]).catch((undoError: unknown) => {
      deps.logger.error({ err: undoError, accountId: created.id }, 'could not undo a provision whose prefix marker failed');
    });
    throw error;
  }

  deps.logger.info({ accountId: created.id, agentcacheUserId: input.agentcache_user_id, tier: input.tier }, 'account provisioned');
  return {
    success: true,
    account: {
      id: created.id,
      api_key: apiKey,
      api_secret: apiSecret,
      tier: input.tier,
      storage_quota_gb: tier.storage_quota_gb,
      bandwidth_quota_gb: tier.bandwidth_quota_gb,
      jetty_speed_enabled: tier.jetty_speed_enabled,
      created_at: created.created_at,
    },
  };
}

/**
 * Runs an UPDATE that leaves deleted accounts alone and returns its row; when none changed, tells a
 * missing account (404) from a deleted one (409).
 */
async function updateLiveAccount<R>(deps: AppDeps, agentcacheUserId: string, sql: string, params: unknown[]): Promise<R> {
  const { rows } = await deps.db.query<R>(sql, [agentcacheUserId, ...params]);
  if (rows[0]) return rows[0];
  const { rows: found } = await deps.db.query<{ status: AccountStatus }>(
    'SELECT status FROM agentcache_accounts WHERE agentcache_user_id = $1',
    [agentcacheUserId],
  );
  if (found[0]) throw new AccountError('ACCOUNT_DELETED', 'Account is deleted');
  throw new AccountError('ACCOUNT_NOT_FOUND', 'Account not found');
}

export interface ChangeTierInput extends AccountRef {
  new_tier: string;
}

export interface ChangeTierResult {
  success: true;
  account: { id: string; tier: string; storage_quota_gb: number };
}

/** Any tier to any tier. A downgrade below current usage keeps the data; uploads fail until it fits. */
export async function changeTier(deps: AppDeps, input: ChangeTierInput): Promise<ChangeTierResult> {
  const tier = await findTier(deps, input.new_tier, 'new_tier');
  const row = await updateLiveAccount<{ id: string }>(
    deps,
    input.agentcache_user_id,
    `UPDATE agentcache_accounts SET agentcache_tier = $2, updated_at = now()
      WHERE agentcache_user_id = $1 AND status <> 'deleted' RETURNING id`,
    [input.new_tier],
  );
  await keysChanged(deps, row.id);
  deps.logger.info({ accountId: row.id, tier: input.new_tier }, 'account tier changed');
  return { success: true, account: { id: row.id, tier: input.new_tier, storage_quota_gb: tier.storage_quota_gb } };
}

export interface StatusResult {
  success: true;
  account: { id: string; agentcache_user_id: string; status: AccountStatus };
}

async function setStatus(deps: AppDeps, input: AccountRef, status: 'active' | 'suspended'): Promise<StatusResult> {
  const row = await updateLiveAccount<{ id: string }>(
    deps,
    input.agentcache_user_id,
    `UPDATE agentcache_accounts SET status = $2, updated_at = now()
      WHERE agentcache_user_id = $1 AND status <> 'deleted' RETURNING id`,
    [status],
  );
  await keysChanged(deps, row.id);
  deps.logger.info({ accountId: row.id, status }, 'account status changed');
  return { success: true, account: { id: row.id, agentcache_user_id: input.agentcache_user_id, status } };
}

/** Refuses the account's keys on every request; its data stays. Suspending twice is harmless. */
export function suspend(deps: AppDeps, input: AccountRef): Promise<StatusResult> {
  return setStatus(deps, input, 'suspended');
}

export function reactivate(deps: AppDeps, input: AccountRef): Promise<StatusResult> {
  return setStatus(deps, input, 'active');
}

export interface DeleteResult {
  success: true;
  account: { id: string; agentcache_user_id: string; status: 'deleted'; purge_state: PurgeState };
}

/**
 * Marks the account deleted and wipes its secrets at once, so its keys stop working, then starts the
 * purge of its objects and rows in the background. Repeating it resumes an unfinished purge.
 */
export async function markDeleted(deps: AccountDeps, input: AccountRef): Promise<DeleteResult> {
  const { rows } = await deps.db.query<{ id: string; purge_state: PurgeState }>(
    `UPDATE agentcache_accounts
        SET status = 'deleted', deleted_at = COALESCE(deleted_at, now()), purge_state = COALESCE(purge_state, 'pending'),
            api_secret_encrypted = '', previous_secret_encrypted = NULL, previous_secret_expires_at = NULL, updated_at = now()
      WHERE agentcache_user_id = $1
      RETURNING id, purge_state`,
    [input.agentcache_user_id],
  );
  const row = rows[0];
  if (!row) throw new AccountError('ACCOUNT_NOT_FOUND', 'Account not found');
  await keysChanged(deps, row.id);
  if (row.purge_state !== 'done') deps.purges.start(row.id);
  deps.logger.info({ accountId: row.id, purgeState: row.purge_state }, 'account deleted');
  return { success: true, account: { id: row.id, agentcache_user_id: input.agentcache_user_id, status: 'deleted', purge_state: row.purge_state } };
}

export interface RotateResult {
  success: true;
  account: { id: string; api_key: string; api_secret: string; previous_secret_expires_at: Date };
}

/**
 * A new secret, returned here once. The previous one keeps working until previous_secret_expires_at
 * (SECRET_ROTATION_GRACE_SECONDS), so AgentCache can roll it out; a second rotation within the grace
 * ends the older secret's grace at once.
 */
export async function rotateSecret(deps: AppDeps, input: AccountRef): Promise<RotateResult> {
  const { rows } = await deps.db.query<{ api_key: string; status: AccountStatus }>(
    'SELECT api_key, status FROM agentcache_accounts WHERE agentcache_user_id = $1',
    [input.agentcache_user_id],
  );
  const current = rows[0];
  if (!current) throw new AccountError('ACCOUNT_NOT_FOUND', 'Account not found');
  if (current.status === 'deleted') throw new AccountError('ACCOUNT_DELETED', 'Account is deleted');
  const apiSecret = generateSecret();
  const row = await updateLiveAccount<{ id: string; previous_secret_expires_at: Date }>(
    deps,
    input.agentcache_user_id,
    `UPDATE agentcache_accounts
        SET previous_secret_encrypted = api_secret_encrypted,
            previous_secret_expires_at = now() + $3::integer * interval '1 second',
            api_secret_encrypted = $2, updated_at = now()
      WHERE agentcache_user_id = $1 AND status <> 'deleted'
      RETURNING id, previous_secret_expires_at`,
    [sealAccountSecret(deps, apiSecret, current.api_key), deps.config.secretRotationGraceSeconds],
  );
  await keysChanged(deps, row.id);
  deps.logger.info({ accountId: row.id, previousSecretExpiresAt: row.previous_secret_expires_at }, 'account secret rotated');
  return { success: true, account: { id: row.id, api_key: current.api_key, api_secret: apiSecret, previous_secret_expires_at: row.previous_secret_expires_at } };
}

/** Each limit an account may hold apart from its tier, and the column that holds it. */
const OVERRIDE_COLUMNS = {
  storage_quota_bytes: 'storage_quota_bytes_override',
  bandwidth_quota_bytes: 'bandwidth_quota_bytes_override',
  rate_limit_per_minute: 'rate_limit_per_minute_override',
  max_file_size_bytes: 'max_file_size_bytes_override',
} as const;

export type OverrideField = keyof typeof OVERRIDE_COLUMNS;
export const OVERRIDE_FIELDS = Object.keys(OVERRIDE_COLUMNS) as OverrideField[];

/** A number replaces the tier's figure; null returns to it; an absent field is left as it is. */
export type OverridesInput = AccountRef & Partial<Record<OverrideField, number | null>>;

export interface OverridesResult {
  success: true;
  account: AccountView;
}

export async function setOverrides(deps: AppDeps, input: OverridesInput): Promise<OverridesResult> {
  const given = OVERRIDE_FIELDS.filter((field) => input[field] !== undefined);
  if (given.length === 0) {
    throw new AccountError('VALIDATION_ERROR', `Give at least one of ${OVERRIDE_FIELDS.join(', ')} (null returns a limit to the tier's)`);
  }
  // Column names come from the fixed table above; only values travel as parameters.
  const assignments = given.map((field, i) => `${OVERRIDE_COLUMNS[field]} = $${i + 2}`);
  const row = await updateLiveAccount<{ id: string }>(
    deps,
    input.agentcache_user_id,
    `UPDATE agentcache_accounts SET ${assignments.join(', ')}, updated_at = now()
      WHERE agentcache_user_id = $1 AND status <> 'deleted' RETURNING id`,
    given.map((field) => input[field]),
  );
  await keysChanged(deps, row.id);
  deps.logger.info({ accountId: row.id, overrides: Object.fromEntries(given.map((f) => [f, input[f]])) }, 'account limits overridden');
  return { success: true, account: await getAccount(deps, input) };
}

export async function getAccount(deps: AppDeps, input: AccountRef): Promise<AccountView> {
  const view = await selectAccountView(deps.db, input.agentcache_user_id);
  if (!view) throw new AccountError('ACCOUNT_NOT_FOUND', 'Account not found');
  return view;
}

export interface ListAccountsInput {
  tier?: string;
  status?: AccountStatus;
  /** Opaque, from a previous page's next_cursor. */
  cursor?: string;
  limit?: number;
}

export interface ListAccountsResult {
  accounts: AccountView[];
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
}

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export async function listAccounts(deps: AppDeps, input: ListAccountsInput): Promise<ListAccountsResult> {
  const limit = input.limit ?? 50;
  let after: string | undefined;
  if (input.cursor !== undefined) {
    after = Buffer.from(input.cursor, 'base64url').toString('utf8');
    if (!ID_PATTERN.test(after)) throw new AccountError('VALIDATION_ERROR', 'cursor is not one this API gave', { field: 'cursor' });
  }
  // One row more than asked tells whether another page follows without a second query.
  const rows = await selectAccountPage(deps.db, { tier: input.tier, status: input.status, after, limit: limit + 1 });
  const accounts = rows.slice(0, limit);
  const last = accounts.at(-1);
  return {
    accounts,
    next_cursor: rows.length > limit && last ? Buffer.from(last.agentcache_user_id, 'utf8').toString('base64url') : null,
  };
}
