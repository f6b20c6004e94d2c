import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { waitFor } from '../helpers/admin.js';
import { createTestDatabase, testDatabaseUrl, type TestDatabase } from '../helpers/db.js';

// Only PostgreSQL has a listening connection that can drop; PGlite's notifications live in-process.
describe.runIf(testDatabaseUrl)('LISTEN across a dropped connection', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
  });

  afterAll(async () => {
    await database?.drop();
  });

  it('reports the gap once the connection is back, and hears notifications again', async () => {
    const payloads: string[] = [];
    let gaps = 0;
    const unsubscribe = await database.db.listen('jt_test_channel', (payload) => payloads.push(payload), () => gaps++);
    await database.db.query(`SELECT pg_notify('jt_test_channel', 'before')`);
    await waitFor('the first notification', async () => (payloads.includes('before') ? true : undefined));
    expect(gaps).toBe(0);

    // The server ends the listening session, as a restart or a network cut would.
    const admin = new pg.Client({ connectionString: database.url! });
    await admin.connect();
    try {
      const { rowCount } = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'`,
      );
      expect(rowCount).toBe(1);
      // Sent while nobody listens: lost, which is what the gap callback is for.
      await admin.query(`SELECT pg_notify('jt_test_channel', 'during')`);
    } finally {
      await admin.end();
    }

    await waitFor('the gap to be reported', async () => (gaps > 0 ? true : undefined));
    await database.db.query(`SELECT pg_notify('jt_test_channel', 'after')`);
    await waitFor('a notification after the reconnect', async () => (payloads.includes('after') ? true : undefined));
    expect(gaps).toBe(1);
    expect(payloads).not.toContain('during');
    await unsubscribe();
  });
});
