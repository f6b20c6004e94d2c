import { createHash } from 'node:crypto';
import pg from 'pg';
import { DB_UNAVAILABLE, type Db, type Queryable, type QueryResult } from './db.js';

// BIGINT byte counts stay far below 2^53, so numbers are safe and simpler than strings everywhere.
const INT8_OID = 20;
const NUMERIC_OID = 1700;
const typeParsers = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID || oid === NUMERIC_OID) return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

/**
 * pg-pool reports a pool that could not hand out a connection in time by message only; give it the code
 * the surfaces answer 503 to, as they do for a refused connection.
 */
function withAvailabilityCode(error: unknown): unknown {
  if (error instanceof Error && !('code' in error) && /timeout exceeded when trying to connect|Connection terminated/i.test(error.message)) {
    return Object.assign(error, { code: DB_UNAVAILABLE });
  }
  return error;
}

/**
 * Parameterised queries run as named prepared statements, so PostgreSQL parses and plans each hot
 * statement once per connection instead of on every request; the name is derived from the text.
 */
const statementNames = new Map<string, string>();
function statementName(sql: string): string {
  let name = statementNames.get(sql);
  if (name === undefined) {
    name = `jt_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`;
    statementNames.set(sql, name);
  }
  return name;
}

function wrap(client: pg.PoolClient | pg.Pool): Queryable {
  return {
    async query<R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      const config = params === undefined ? { text: sql } : { name: statementName(sql), text: sql, values: params as unknown[] };
      const result = await client.query(config).catch((error: unknown) => {
        throw withAvailabilityCode(error);
      });
      return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await client.query(sql);
    },
  };
}

export interface PostgresOptions {
  connectionString: string;
  max?: number;
  onError?: (error: Error) => void;
}

export function openPostgres(options: PostgresOptions): Db {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 20,
    types: typeParsers,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', (error) => options.onError?.(error));
  const base = wrap(pool);
  const listeners = new Map<string, Set<(payload: string) => void>>();
  let listenClient: Promise<pg.Client> | null = null;
  let closed = false;

  // One connection carries every LISTEN. When it drops it is replaced after a pause and every channel
  // is listened to again; notifications sent in between are lost, which callers bound with a cache TTL.
  function listenConnection(): Promise<pg.Client> {
    listenClient ??= (async () => {
      const client = new pg.Client({ connectionString: options.connectionString, types: typeParsers });
      let replaced = false;
      const reconnect = (error?: Error) => {
        if (error) options.onError?.(error);
        if (replaced) return;
        replaced = true;
        client.removeAllListeners('end');
        listenClient = null;
        if (closed || listeners.size === 0) return;
        setTimeout(() => void listenConnection().catch((e: Error) => reconnect(e)), 1_000).unref();
      };
      client.on('error', reconnect);
      client.on('end', () => reconnect());
      client.on('notification', (message) => {
        for (const handler of listeners.get(message.channel) ?? []) handler(message.payload ?? '');
      });
      try {
        await client.connect();
        for (const channel of listeners.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      } catch (error) {
        listenClient = null;
        await client.end().catch(() => undefined);
        throw error;
      }
      return client;
    })();
    return listenClient;
  }

  return {
    kind: 'postgres',
    ...base,
    async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect().catch((error: unknown) => {
        throw withAvailabilityCode(error);
      });
      try {
        await client.query('BEGIN');
        const result = await fn(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    async listen(channel, onPayload) {
      let handlers = listeners.get(channel);
      if (!handlers) {
        handlers = new Set();
        listeners.set(channel, handlers);
        const client = await listenConnection();
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      }
      handlers.add(onPayload);
      return async () => {
        handlers.delete(onPayload);
        if (handlers.size > 0) return;
        listeners.delete(channel);
        const client = await listenClient?.catch(() => null);
        await client?.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => undefined);
      };
    },
    async close() {
      closed = true;
      const client = await listenClient?.catch(() => null);
      listenClient = null;
      client?.removeAllListeners('end');
      await client?.end().catch(() => undefined);
      await pool.end();
    },
  };
}
