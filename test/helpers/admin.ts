import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { signWebhook } from '../../src/auth/webhook-signature.js';
import type { TestServer } from './server.js';

export interface JsonResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

async function asJson<T>(response: Response): Promise<JsonResponse<T>> {
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text === '' ? null : JSON.parse(text)) as T };
}

/** A request to the admin listener with the admin bearer (unless `authorization` says otherwise). */
export async function admin<T = any>(
  server: TestServer,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  options: { authorization?: string | null; rawBody?: string; contentType?: string } = {},
): Promise<JsonResponse<T>> {
  const headers: Record<string, string> = {};
  const authorization = options.authorization === undefined ? `Bearer ${server.adminSecret}` : options.authorization;
  if (authorization !== null) headers.authorization = authorization;
  const payload = options.rawBody ?? (body === undefined ? undefined : JSON.stringify(body));
  if (payload !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  return asJson<T>(await fetch(`${server.adminUrl}${path}`, { method, headers, ...(payload !== undefined ? { body: payload } : {}) }));
}

/** A fresh id, so tests in one file never collide. */
export function userId(label = 'user'): string {
  return `${label}-${randomBytes(6).toString('hex')}`;
}

export interface Provisioned {
  id: string;
  agentcacheUserId: string;
  apiKey: string;
  apiSecret: string;
}

export async function provisionAccount(server: TestServer, agentcacheUserId = userId(), tier = 'pro'): Promise<Provisioned> {
  const response = await admin(server, 'POST', '/api/agentcache/provision', {
    agentcache_user_id: agentcacheUserId,
    agentcache_email: `${agentcacheUserId}@example.com`,
    tier,
  });
  if (response.status !== 201) throw new Error(`provision answered ${response.status}: ${JSON.stringify(response.body)}`);
  const { account } = response.body;
  return { id: account.id, agentcacheUserId, apiKey: account.api_key, apiSecret: account.api_secret };
}

/** GET /api/agentcache/quota on the gateway with the seed's REST credentials. */
export async function quota<T = any>(server: TestServer, apiKey: string | null, apiSecret: string | null): Promise<JsonResponse<T>> {
  const headers: Record<string, string> = {};
  if (apiKey !== null) headers.authorization = `Bearer ${apiKey}`;
  if (apiSecret !== null) headers['x-api-secret'] = apiSecret;
  return asJson<T>(await fetch(`${server.gatewayUrl}/api/agentcache/quota`, { headers }));
}

export interface WebhookOptions {
  timestamp?: number;
  secret?: string;
  signature?: string | null;
  rawBody?: string;
}

export async function sendWebhook<T = any>(server: TestServer, event: unknown, options: WebhookOptions = {}): Promise<JsonResponse<T>> {
  const rawBody = options.rawBody ?? JSON.stringify(event);
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const signature = options.signature === undefined ? signWebhook(options.secret ?? server.adminSecret, timestamp, rawBody) : options.signature;
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-agentcache-timestamp': String(timestamp) };
  if (signature !== null) headers['x-agentcache-signature'] = signature;
  return asJson<T>(await fetch(`${server.adminUrl}/api/webhook/agentcache`, { method: 'POST', headers, body: rawBody }));
}

export function webhookEvent(type: string, data: Record<string, unknown>, id = `evt_${randomBytes(8).toString('hex')}`) {
  return { id, type, created_at: new Date().toISOString(), data };
}

/** Polls until `check` returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Every row of every table in the schema, as text: what a database dump would hold. The request counters
 * (rate_limits: account ids and client addresses, no secrets) are left out, because every request
 * changes them, the dump's own included.
 */
export async function dumpDatabase(server: TestServer): Promise<string> {
  const { rows: tables } = await server.db.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const parts: string[] = [];
  for (const { table_name: table } of tables) {
    if (table === 'rate_limits') continue;
    const { rows } = await server.db.query<{ row: string }>(`SELECT t::text AS row FROM "${table}" t`);
    parts.push(`-- ${table}`, ...rows.map((r) => r.row));
  }
  return parts.join('\n');
}
