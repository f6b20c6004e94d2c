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

// A refused or dropped connection, a server shutting down or starting up (SQLSTATE class 08, 57P01-57P03):
// the database cannot answer now, but may in a moment.
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const UNAVAILABLE_SQLSTATES = /^(08...|57P0[123])$/;
// What pg and pg-pool report by message only: a connection lost, a connect or query that timed out.
const UNAVAILABLE_MESSAGES = /timeout exceeded when trying to connect|Connection terminated|Query read timeout|not queryable/i;

/**
 * Gives every failure that means "the database cannot be reached" one code, DB_UNAVAILABLE, which every
 * surface answers with 503; the original error stays as the cause, for logs. Anything else (a constraint,
 * a statement timeout, too many connections) passes through with its own code.
 */
export function classifyDbError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  if (code === DB_UNAVAILABLE) return error;
  const unavailable =
    typeof code === 'string' ? UNREACHABLE_CODES.has(code) || UNAVAILABLE_SQLSTATES.test(code) : UNAVAILABLE_MESSAGES.test(error.message);
  if (!unavailable) return error;
  return Object.assign(new Error(`database unavailable: ${error.message}`, { cause: error }), { code: DB_UNAVAILABLE });
}

function isUnavailable(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === DB_UNAVAILABLE;
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
        throw classifyDbError(error);
      });
      return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length };
    },
    async exec(sql: string): Promise<void> {
      // Scripts (migrations) may rightly run long: no query timeout for them.
      const script: pg.QueryConfig & { query_timeout: number } = { text: sql, query_timeout: NO_QUERY_TIMEOUT_MS };
      await client.query(script).catch((error: unknown) => {
        throw classifyDbError(error);
      });
    },
  };
}

/** setTimeout's ceiling: what "no query timeout" means to pg, whose 0 falls back to the pool's setting. */
const NO_QUERY_TIMEOUT_MS = 2_147_483_647;
const LISTEN_RETRY_FIRST_MS = 250;
const LISTEN_RETRY_MAX_MS = 5_000;

export interface PostgresOptions {
  connectionString: string;
  max?: number;
  /** How long opening a connection may take before the caller gets DB_UNAVAILABLE. Default 5 s. */
  connectTimeoutMs?: number;
  /**
   * How long a statement may go unanswered before the caller gets DB_UNAVAILABLE and its connection is
   * dropped: a server that stopped answering without closing the socket. Default 30 s; 0 turns it off.
   */
  queryTimeoutMs?: number;
  onError?: (error: Error) => void;
}

export function openPostgres(options: PostgresOptions): Db {
  const queryTimeoutMs = options.queryTimeoutMs ?? 30_000;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 20,
    types: typeParsers,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    // Keepalives let the kernel notice a peer that vanished without closing the connection.
    keepAlive: true,
    ...(queryTimeoutMs > 0 && { query_timeout: queryTimeoutMs }),
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', (error) => options.onError?.(error));
  const base = wrap(pool);
  const listeners = new Map<string, Set<(payload: string) => void>>();
  const gapHandlers = new Set<() => void>();
  let listenClient: Promise<pg.Client> | null = null;
  let retryTimer: NodeJS.Timeout | null = null;
  let retryDelayMs = LISTEN_RETRY_FIRST_MS;
  let closed = false;

  // One connection carries every LISTEN. When it drops, a new one is tried with a growing pause (up to
  // LISTEN_RETRY_MAX_MS) until the server is back, and every channel is listened to again; notifications
  // sent in between are lost, which callers bound with a cache TTL.
  function scheduleListenReconnect(): void {
    if (closed || listeners.size === 0 || retryTimer !== null) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      listenConnection().then(
        () => {
          retryDelayMs = LISTEN_RETRY_FIRST_MS;
          for (const onGap of gapHandlers) onGap();
        },
        (error: Error) => {
          options.onError?.(error);
          retryDelayMs = Math.min(retryDelayMs * 2, LISTEN_RETRY_MAX_MS);
          scheduleListenReconnect();
        },
      );
    }, retryDelayMs);
    retryTimer.unref();
  }

  function listenConnection(): Promise<pg.Client> {
    if (listenClient) return listenClient;
    const client = new pg.Client({ connectionString: options.connectionString, types: typeParsers, keepAlive: true });
    let dropped = false;
    const connecting = (async () => {
      await client.connect();
      for (const channel of listeners.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      return client;
    })();
    const drop = (error?: Error) => {
      if (dropped) return;
      dropped = true;
      if (listenClient === current) listenClient = null;
      void client.end().catch(() => undefined);
      if (error) options.onError?.(error);
      scheduleListenReconnect();
    };
    // Stays attached after a drop: a late 'error' from a dead client must not be an uncaught event.
    client.on('error', (error) => drop(error));
    client.on('end', () => drop());
    client.on('notification', (message) => {
      for (const handler of listeners.get(message.channel) ?? []) handler(message.payload ?? '');
    });
    const current: Promise<pg.Client> = connecting.catch((error: unknown) => {
      // The caller (listen, or the retry loop) reports this one and decides whether to retry.
      dropped = true;
      if (listenClient === current) listenClient = null;
      void client.end().catch(() => undefined);
      throw classifyDbError(error);
    });
    listenClient = current;
    return current;
  }

  return {
    kind: 'postgres',
    ...base,
    async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect().catch((error: unknown) => {
        throw classifyDbError(error);
      });
      // A checked-out client has no listener of the pool's: without this one, a connection lost between
      // two statements would be an uncaught 'error' event, which ends the process.
      let lost: Error | undefined;
      const onLost = (error: Error) => {
        lost = error;
      };
      client.on('error', onLost);
      const q = wrap(client);
      let failure: unknown;
      try {
        await q.query('BEGIN');
        const result = await fn(q);
        await q.query('COMMIT');
        return result;
      } catch (error) {
        failure = error;
        if (!lost && !isUnavailable(error)) await client.query('ROLLBACK').catch((rollbackError: Error) => (lost = rollbackError));
        throw error;
      } finally {
        client.off('error', onLost);
        // A connection in doubt (lost, timed out, or whose ROLLBACK failed) is closed, not pooled again.
        client.release(lost ?? (isUnavailable(failure) ? (failure as Error) : undefined));
      }
    },
    async listen(channel, onPayload, onGap) {
      let handlers = listeners.get(channel);
      if (!handlers) {
        handlers = new Set();
        listeners.set(channel, handlers);
        try {
          const client = await listenConnection();
          await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
        } catch (error) {
          listeners.delete(channel);
          throw classifyDbError(error);
        }
      }
      handlers.add(onPayload);
      if (onGap) gapHandlers.add(onGap);
      return async () => {
        handlers.delete(onPayload);
        if (onGap) gapHandlers.delete(onGap);
        if (handlers.size > 0) return;
        listeners.delete(channel);
        const client = await listenClient?.catch(() => null);
        await client?.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => undefined);
      };
    },
    async close() {
      closed = true;
      if (retryTimer !== null) clearTimeout(retryTimer);
      retryTimer = null;
      const client = await listenClient?.catch(() => null);
      listenClient = null;
      client?.removeAllListeners('end');
      await client?.end().catch(() => undefined);
      await pool.end();
    },
  };
}
