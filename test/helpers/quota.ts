import { readdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import aws4 from 'aws4';
import type { Queryable } from '../../src/db/index.js';
import { FS_STAGING_DIR } from '../../src/backend/fs-layout.js';
import { accountPrefix } from '../../src/storage-layout.js';
import type { Provisioned } from './admin.js';

export const MiB = 1024 * 1024;

export interface StreamedPut {
  status: number;
  /** True when the server asked for the body with 100 Continue before answering. */
  continued: boolean;
  body: string;
  /** Body bytes this client wrote before the answer came (or the connection closed). */
  bytesSent: number;
}

export interface StreamedPutOptions {
  /** Sent one write each; with `contentLength` unset the body goes with Transfer-Encoding: chunked. */
  chunks: Buffer[];
  contentLength?: number;
  expectContinue?: boolean;
  /** Resolves when the client may write the next chunk (to hold an upload mid-body); default at once. */
  beforeChunk?: (index: number) => Promise<void>;
}

/**
 * A PutObject signed with UNSIGNED-PAYLOAD and written chunk by chunk, as a client with a body of unknown
 * length sends it. Stops writing as soon as an answer arrives, the way a client seeing an early error does.
 */
export function streamedPut(gatewayUrl: string, account: Pick<Provisioned, 'apiKey' | 'apiSecret'>, objectPath: string, options: StreamedPutOptions): Promise<StreamedPut> {
  const url = new URL(gatewayUrl);
  const headers: Record<string, string> = { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' };
  if (options.contentLength !== undefined) headers['content-length'] = String(options.contentLength);
  if (options.expectContinue) headers.expect = '100-continue';
  const signed = aws4.sign({ host: url.host, method: 'PUT', path: objectPath, service: 's3', region: 'us-east-1', headers }, {
    accessKeyId: account.apiKey,
    secretAccessKey: account.apiSecret,
  });
  return new Promise((resolve, reject) => {
    let continued = false;
    let answered = false;
    let bytesSent = 0;
    const request = http.request({ host: url.hostname, port: url.port, method: 'PUT', path: objectPath, headers: signed.headers as http.OutgoingHttpHeaders });
    const writeBody = async () => {
      for (const [index, chunk] of options.chunks.entries()) {
        await options.beforeChunk?.(index);
        if (answered || request.destroyed) return;
        bytesSent += chunk.length;
        if (!request.write(chunk)) await new Promise((drained) => request.once('drain', drained));
      }
      if (!answered) request.end();
    };
    request.on('continue', () => {
      continued = true;
      writeBody().catch(() => undefined);
    });
    request.on('response', (response) => {
      answered = true;
      const parts: Buffer[] = [];
      response.on('data', (part: Buffer) => parts.push(part));
      response.on('end', () => {
        resolve({ status: response.statusCode ?? 0, continued, body: Buffer.concat(parts).toString('utf8'), bytesSent });
        request.destroy();
      });
      response.on('error', reject);
    });
    request.on('error', (error) => {
      if (!answered) reject(error);
    });
    request.flushHeaders();
    if (!options.expectContinue) writeBody().catch(() => undefined);
  });
}

export function xmlElement(xml: string, element: string): string | undefined {
  return new RegExp(`<${element}>([^<]*)</${element}>`).exec(xml)?.[1];
}

export interface StorageState {
  quota: number;
  used: number;
  reserved: number;
  reservations: number;
  /** Sum and count of the account's object rows. */
  objectBytes: number;
  objects: number;
  blobs: number;
  stagedWrites: number;
}

export async function storageState(db: Queryable, accountId: string): Promise<StorageState> {
  const { rows } = await db.query<Record<keyof StorageState, string | number>>(
    `SELECT l.storage_quota_bytes AS quota, a.storage_used_bytes AS used, a.storage_reserved_bytes AS reserved,
            (SELECT COUNT(*) FROM storage_reservations r WHERE r.account_id = a.id) AS reservations,
            (SELECT COALESCE(SUM(size_bytes), 0) FROM agentcache_assets o WHERE o.account_id = a.id) AS "objectBytes",
            (SELECT COUNT(*) FROM agentcache_assets o WHERE o.account_id = a.id) AS objects,
            (SELECT COUNT(*) FROM blobs b WHERE b.account_id = a.id) AS blobs,
            (SELECT COUNT(*) FROM staged_writes s WHERE s.account_id = a.id) AS "stagedWrites"
       FROM agentcache_accounts a JOIN account_limits l ON l.account_id = a.id WHERE a.id = $1`,
    [accountId],
  );
  const row = rows[0]!;
  return Object.fromEntries(Object.entries(row).map(([name, value]) => [name, Number(value)])) as unknown as StorageState;
}

async function filesUnder(folder: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(folder, { withFileTypes: true, recursive: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return entries.filter((entry) => entry.isFile()).map((entry) => path.join(entry.parentPath, entry.name));
}

/**
 * What the fs backend under `dataDir` holds for an account: its object files (the prefix marker aside)
 * and every file being written (staging is shared, so only meaningful while one account writes).
 */
export async function backendFiles(dataDir: string, agentcacheUserId: string, bucketName = 'agentcache-assets'): Promise<{ objects: string[]; staging: string[] }> {
  const root = path.join(dataDir, 'objects', bucketName);
  const objects = (await filesUnder(path.join(root, accountPrefix(agentcacheUserId)))).filter((file) => path.basename(file) !== '.keep');
  return { objects, staging: await filesUnder(path.join(root, FS_STAGING_DIR)) };
}
