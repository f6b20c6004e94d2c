import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeHeader, keyPath } from '../../src/backend/fs-layout.js';
import { provisionAccount, type Provisioned } from '../helpers/admin.js';
import { runCli, type CliProcess } from '../helpers/cli.js';
import { testDatabaseUrl } from '../helpers/db.js';
import { backendListing, storeObject } from '../helpers/jobs.js';
import { startTestServer, TEST_ADMIN_SECRET, TEST_MASTER_KEY, type TestServer } from '../helpers/server.js';

/**
 * `jettythunder jobs run <name>` as an operator runs it, killed with SIGKILL (no handler, no safe point)
 * part-way through thousands of deletes, then run again: it must end where one uninterrupted run ends.
 * PostgreSQL only: the job runs in a process of its own, which PGlite cannot share a database with.
 */

let server: TestServer;
let fsRoot: string;

beforeAll(async () => {
  if (!testDatabaseUrl) return;
  server = await startTestServer();
  fsRoot = path.join(server.config.dataDir, 'objects', server.config.bucketName);
});
afterAll(async () => {
  await server?.close();
});

/** `jettythunder jobs run <job>` on the test server's database and backend folder. */
function runJobProcess(job: string): CliProcess {
  return runCli(['jobs', 'run', job], {
    env: {
      DATABASE_URL: server.config.databaseUrl!,
      DATA_DIR: server.dataDir,
      STORAGE_BACKEND: 'fs',
      JT_MASTER_KEY: TEST_MASTER_KEY,
      AGENTCACHE_WEBHOOK_SECRET: TEST_ADMIN_SECRET,
      LOG_LEVEL: 'warn',
    },
  });
}

async function runToCompletion(job: string): Promise<string> {
  const cli = runJobProcess(job);
  const { code } = await cli.exited;
  expect(code, cli.stderr()).toBe(0);
  return cli.stdout();
}

/** Polls `condition` while the job runs; fails if the job ends first. */
async function whileRunning(cli: CliProcess, what: string, condition: () => Promise<boolean>): Promise<void> {
  let exited = false;
  void cli.exited.then(() => (exited = true));
  const deadline = Date.now() + 30_000;
  while (!(await condition())) {
    if (exited || Date.now() > deadline) {
      throw new Error(`${exited ? 'the job ended' : 'timed out'} before ${what}\nstdout:\n${cli.stdout()}\nstderr:\n${cli.stderr()}`);
    }
    await sleep(5);
  }
}

async function sigkill(cli: CliProcess): Promise<void> {
  cli.child.kill('SIGKILL');
  expect(await cli.exited).toEqual({ code: null, signal: 'SIGKILL' });
}

/** The killed run's job lock goes with its connection once PostgreSQL sees it closed; the next run needs it. */
async function killedLockReleased(): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await count(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'jettythunder-job-locks' AND datname = current_database()`, [])) > 0) {
    if (Date.now() > deadline) throw new Error("the killed job's lock connection is still open");
    await sleep(10);
  }
}

/**
 * Starts the job and SIGKILLs it once `remaining()` has dropped to `killAt` or below, so the kill lands while
 * it is deleting; returns what was left then.
 */
async function killMidway(job: string, remaining: () => Promise<number>, killAt: number): Promise<number> {
  const cli = runJobProcess(job);
  await whileRunning(cli, `${job} got down to ${killAt}`, async () => (await remaining()) <= killAt);
  await sigkill(cli);
  await killedLockReleased();
  return remaining();
}

async function count(sql: string, params: unknown[]): Promise<number> {
  const { rows } = await server.db.query<{ n: number }>(sql, params);
  return Number(rows[0]!.n);
}

/** Files in the account's blobs folder of the fs backend: its objects, counted without a listing. */
async function blobFiles(account: Provisioned): Promise<number> {
  try {
    return (await readdir(path.join(fsRoot, 'users', account.agentcacheUserId, 'blobs'))).length;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0; // the backend prunes an emptied folder
    throw error;
  }
}

/**
 * Writes backend objects straight into the fs backend's layout (fs-layout.ts): through put, each one's
 * fsyncs would make thousands of them slow to set up.
 */
async function writeBackendObjects(keys: string[]): Promise<void> {
  const body = Buffer.from('bytes');
  const file = Buffer.concat([encodeHeader('0'.repeat(32)), body]);
  for (let i = 0; i < keys.length; i += 256) {
    const chunk = keys.slice(i, i + 256);
    await Promise.all(
      chunk.map(async (key) => {
        const target = keyPath(fsRoot, key);
        await mkdir(path.dirname(target), { recursive: true });
        await writeFile(target, file);
      }),
    );
  }
}

/** `howMany` blob rows of the account (refcount 1, as an object would hold them), with their backend objects. */
async function insertBlobs(account: Provisioned, label: string, howMany: number): Promise<string[]> {
  const { rows } = await server.db.query<{ backend_key: string }>(
    `INSERT INTO blobs (account_id, sha256, md5, size_bytes, backend_key, refcount)
     SELECT $1, encode(sha256(convert_to($3 || i, 'UTF8')), 'hex'), md5($3 || i), 5, $2 || gen_random_uuid(), 1
       FROM generate_series(1, $4::int) AS i
     RETURNING backend_key`,
    [account.id, `users/${account.agentcacheUserId}/blobs/`, `${account.id}-${label}-`, howMany],
  );
  const keys = rows.map((row) => row.backend_key);
  await writeBackendObjects(keys);
  return keys;
}

/** Staged writes of the account created `age` ago, with their backend objects. */
async function insertStagedWrites(account: Provisioned, howMany: number, age: string): Promise<void> {
  const { rows } = await server.db.query<{ backend_key: string }>(
    `INSERT INTO staged_writes (backend_key, account_id, created_at)
     SELECT $2 || gen_random_uuid(), $1, now() - $3::interval FROM generate_series(1, $4::int)
     RETURNING backend_key`,
    [account.id, `users/${account.agentcacheUserId}/blobs/`, age, howMany],
  );
  await writeBackendObjects(rows.map((row) => row.backend_key));
}

const ACCOUNT_TABLES = ['buckets', 'blobs', 'agentcache_assets', 'multipart_uploads', 'staged_writes', 'storage_reservations', 'bandwidth_usage'];

async function rowCounts(account: Provisioned): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of ACCOUNT_TABLES) counts[table] = await count(`SELECT count(*) AS n FROM ${table} WHERE account_id = $1`, [account.id]);
  return counts;
}

describe.runIf(testDatabaseUrl)('jobs run purge, killed with SIGKILL and run again', () => {
  const OBJECTS = 6_000;

  /** An account with OBJECTS objects, staged bytes and bandwidth usage, deleted as the admin API deletes it. */
  async function deletedAccount(): Promise<Provisioned> {
    const account = await provisionAccount(server);
    await insertBlobs(account, 'object', OBJECTS);
    await server.db.query(
      `INSERT INTO agentcache_assets (account_id, bucket_id, object_key, blob_id, filename, size_bytes, content_hash, etag)
       SELECT b.account_id, k.id, 'file-' || b.sha256, b.id, 'file-' || b.sha256, b.size_bytes, b.sha256, b.md5
         FROM blobs b JOIN buckets k ON k.account_id = b.account_id AND k.is_default
        WHERE b.account_id = $1`,
      [account.id],
    );
    await server.db.query('UPDATE agentcache_accounts SET storage_used_bytes = $2 WHERE id = $1', [account.id, OBJECTS * 5]);
    await insertStagedWrites(account, 3, '1 minute');
    await server.db.query(`INSERT INTO bandwidth_usage (account_id, period_start, bytes) VALUES ($1, date_trunc('month', now())::date, 123)`, [account.id]);
    // POST /api/agentcache/delete's own UPDATE (admin/accounts.ts markDeleted): the endpoint would also start
    // the purge in the server's process, and the purge under test is the CLI's.
    await server.db.query(
      `UPDATE agentcache_accounts
          SET status = 'deleted', deleted_at = COALESCE(deleted_at, now()), purge_state = COALESCE(purge_state, 'pending'),
              api_secret_encrypted = '', previous_secret_encrypted = NULL, previous_secret_expires_at = NULL, updated_at = now()
        WHERE id = $1`,
      [account.id],
    );
    return account;
  }

  async function state(account: Provisioned) {
    const { rows } = await server.db.query(
      `SELECT status, purge_state, storage_used_bytes::int AS used, storage_reserved_bytes::int AS reserved, agentcache_email, api_secret_encrypted, webhook_url
         FROM agentcache_accounts WHERE id = $1`,
      [account.id],
    );
    return { account: rows[0], rows: await rowCounts(account), backend: await backendListing(server, account.agentcacheUserId) };
  }

  it('ends where one clean run ends: no rows but the tombstone, no backend objects, the neighbour untouched', async () => {
    const neighbour = await provisionAccount(server);
    await storeObject(server, neighbour, 'stays', Buffer.from('neighbour bytes'));
    const neighbourBefore = { rows: await rowCounts(neighbour), backend: await backendListing(server, neighbour.agentcacheUserId) };

    const killed = await deletedAccount();
    const total = await blobFiles(killed);
    expect(total).toBe(OBJECTS + 3);
    const left = await killMidway('purge', () => blobFiles(killed), Math.floor(total / 2));
    // Killed while deleting backend objects: the rows go only once they are all gone, in one transaction.
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(total);
    expect((await state(killed)).account).toMatchObject({ purge_state: 'running' });
    expect(await rowCounts(killed)).toMatchObject({ blobs: OBJECTS, agentcache_assets: OBJECTS, staged_writes: 3 });

    expect(await runToCompletion('purge')).toMatch(/purge: ok .*purged=1/);
    const afterKill = await state(killed);

    const clean = await deletedAccount();
    expect(await runToCompletion('purge')).toMatch(/purge: ok .*purged=1/);
    const afterClean = await state(clean);

    expect(afterKill).toEqual(afterClean);
    expect(afterKill).toEqual({
      account: { status: 'deleted', purge_state: 'done', used: 0, reserved: 0, agentcache_email: '', api_secret_encrypted: '', webhook_url: null },
      rows: Object.fromEntries(ACCOUNT_TABLES.map((table) => [table, 0])),
      backend: [],
    });
    expect({ rows: await rowCounts(neighbour), backend: await backendListing(server, neighbour.agentcacheUserId) }).toEqual(neighbourBefore);
  });
});

describe.runIf(testDatabaseUrl)('jobs run gc, killed with SIGKILL and run again', () => {
  const UNREFERENCED = 400;
  const STAGED = 1_000;

  /** Kept objects and in-flight staged bytes, among hundreds of unreferenced blobs and long-dead staged bytes. */
  async function litter(account: Provisioned): Promise<void> {
    for (const key of ['kept-1', 'kept-2']) await storeObject(server, account, key, Buffer.from(`${account.id} ${key}`));
    // No object points at these: drift gc repairs (a real write keeps refcount and objects in step).
    await insertBlobs(account, 'orphan', UNREFERENCED);
    await insertStagedWrites(account, STAGED, '2 days');
    await insertStagedWrites(account, 2, '1 minute');
  }

  const unreferencedBlobs = (account: Provisioned) =>
    count('SELECT count(*) AS n FROM blobs b WHERE account_id = $1 AND NOT EXISTS (SELECT 1 FROM agentcache_assets o WHERE o.blob_id = b.id)', [account.id]);
  const deadStagedWrites = (account: Provisioned) =>
    count(`SELECT count(*) AS n FROM staged_writes WHERE account_id = $1 AND created_at < now() - interval '1 hour'`, [account.id]);

  /** The account's rows and backend objects, without the ids that differ between two accounts. */
  async function state(account: Provisioned) {
    const { rows: blobs } = await server.db.query<{ object_key: string; refcount: number }>(
      'SELECT o.object_key, b.refcount FROM blobs b LEFT JOIN agentcache_assets o ON o.blob_id = b.id WHERE b.account_id = $1 ORDER BY 1',
      [account.id],
    );
    const { rows: staged } = await server.db.query<{ fresh: boolean }>(
      `SELECT created_at > now() - interval '1 hour' AS fresh FROM staged_writes WHERE account_id = $1 ORDER BY 1`,
      [account.id],
    );
    const { rows: usage } = await server.db.query(
      'SELECT storage_used_bytes::int AS used, storage_reserved_bytes::int AS reserved FROM agentcache_accounts WHERE id = $1',
      [account.id],
    );
    const backend = await backendListing(server, account.agentcacheUserId);
    return {
      blobs,
      staged,
      usage: usage[0],
      // The kept objects' blobs, the in-flight staged bytes and the .keep marker.
      backendObjects: backend.length,
      stagedWithoutBackendObject: (
        await server.db.query<{ backend_key: string }>('SELECT backend_key FROM staged_writes WHERE account_id = $1', [account.id])
      ).rows.filter((row) => !backend.includes(row.backend_key.replace(account.agentcacheUserId, '<user>'))).length,
    };
  }

  /**
   * Makes the job's next DELETE FROM staged_writes wait, with a trigger of this test's database (nothing of
   * the gateway's) and a lock the test takes, so the kill lands exactly between an unreferenced blob's
   * commit and the delete of its staged row: a moment a kill at random hits only now and then.
   */
  async function stagedDeleteGate() {
    const key = 7_401_001;
    await server.db.query(`CREATE FUNCTION wait_at_gate() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_advisory_xact_lock_shared(${key}); RETURN NULL; END $$`);
    await server.db.query('CREATE TRIGGER staged_delete_gate BEFORE DELETE ON staged_writes FOR EACH STATEMENT EXECUTE FUNCTION wait_at_gate()');
    const holder = new pg.Client({ connectionString: server.config.databaseUrl! });
    await holder.connect();
    const waiting = `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = ${key} AND NOT granted`;
    return {
      shut: () => holder.query('SELECT pg_advisory_lock($1)', [key]),
      jobWaits: async () => (await server.db.query(waiting)).rowCount > 0,
      async remove() {
        // A backend waiting for a lock does not notice its client died: granted the lock, it would still
        // delete the row. Ended first, the statement is undone, as if the kill came just before it was sent.
        await server.db.query(`SELECT pg_terminate_backend(pid) FROM (${waiting}) AS w`);
        await holder.end();
        await server.db.query('DROP TRIGGER staged_delete_gate ON staged_writes');
        await server.db.query('DROP FUNCTION wait_at_gate()');
      },
    };
  }

  it('ends, killed between a blob commit and its staged row delete, then among the staged bytes, where one clean run ends', async () => {
    const killed = await provisionAccount(server);
    await litter(killed);

    const gate = await stagedDeleteGate();
    let blobsLeft: number;
    try {
      const first = runJobProcess('gc');
      await whileRunning(first, 'half the unreferenced blobs were gone', async () => (await unreferencedBlobs(killed)) <= UNREFERENCED / 2);
      await gate.shut();
      await whileRunning(first, 'gc waited to delete a staged row', gate.jobWaits);
      await sigkill(first);
      blobsLeft = await unreferencedBlobs(killed);
    } finally {
      await gate.remove();
    }
    await killedLockReleased();
    expect(blobsLeft).toBeGreaterThan(0);
    expect(blobsLeft).toBeLessThan(UNREFERENCED);
    // The blob cut short: its row and backend object gone, its staged row left.
    expect((await state(killed)).stagedWithoutBackendObject).toBe(1);

    // The second run first finishes the blobs, then is killed among the staged bytes, wherever it is.
    const stagedLeft = await killMidway('gc', () => deadStagedWrites(killed), STAGED / 2);
    expect(await unreferencedBlobs(killed)).toBe(0);
    expect(stagedLeft).toBeGreaterThan(0);
    expect(stagedLeft).toBeLessThan(STAGED);

    await runToCompletion('gc');
    const afterKill = await state(killed);

    const clean = await provisionAccount(server);
    await litter(clean);
    await runToCompletion('gc');
    const afterClean = await state(clean);

    expect(afterKill).toEqual(afterClean);
    expect(afterKill).toEqual({
      blobs: [
        { object_key: 'kept-1', refcount: 1 },
        { object_key: 'kept-2', refcount: 1 },
      ],
      staged: [{ fresh: true }, { fresh: true }],
      usage: { used: 2 * `${killed.id} kept-1`.length, reserved: 0 },
      backendObjects: 2 + 2 + 1,
      stagedWithoutBackendObject: 0,
    });
  });
});
