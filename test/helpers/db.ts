import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openPglite } from '../../src/db/pglite.js';
import { openPostgres } from '../../src/db/postgres.js';
import { migrate, type Db } from '../../src/db/index.js';

/**
 * TEST_DATABASE_URL points at a PostgreSQL server where the tests may create databases (CI sets it).
 * Without it, the tests run on embedded PGlite, so `npm test` passes on a fresh machine too.
 */
export const testDatabaseUrl = process.env.TEST_DATABASE_URL?.trim() || null;

/** The database kinds this run covers: PGlite always, PostgreSQL when a server is configured. */
export const dbKinds: Array<'pglite' | 'postgres'> = testDatabaseUrl ? ['pglite', 'postgres'] : ['pglite'];

/** The kind integration tests run on: PostgreSQL when configured. */
export const primaryDbKind: 'pglite' | 'postgres' = testDatabaseUrl ? 'postgres' : 'pglite';

export interface TestDatabase {
  kind: 'pglite' | 'postgres';
  /** For PostgreSQL, the fresh database's URL (to hand to a child process); null for PGlite. */
  url: string | null;
  db: Db;
  drop(): Promise<void>;
}

/** Creates an empty PostgreSQL database of its own for one test file and returns its URL. */
export async function createPostgresDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  if (!testDatabaseUrl) throw new Error('TEST_DATABASE_URL is not set');
  const name = `jt_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: testDatabaseUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(testDatabaseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: testDatabaseUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A fresh, migrated database of the given kind, for one test file. */
export async function createTestDatabase(kind: 'pglite' | 'postgres' = primaryDbKind, options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  let result: TestDatabase;
  if (kind === 'pglite') {
    const db = await openPglite(null);
    result = { kind, url: null, db, drop: () => db.close() };
  } else {
    const created = await createPostgresDatabase();
    const db = openPostgres({ connectionString: created.url, max: 10 });
    result = {
      kind,
      url: created.url,
      db,
      async drop() {
        await db.close();
        await created.drop();
      },
    };
  }
  if (options.migrated !== false) await migrate(result.db);
  return result;
}
