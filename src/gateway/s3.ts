import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AuthError } from '../auth/errors.js';
import type { KeyRecord } from '../auth/key-store.js';
import { createSigV4Verifier } from '../auth/sigv4.js';
import type { AppDeps } from '../deps.js';
import { QuotaError } from '../quota/errors.js';
import { noteError } from '../observability/request-summary.js';
import { findBucket } from '../store/buckets.js';
import type { OperationTable, RequestContext, S3Result } from './context.js';
import { S3Error, toS3Error } from './errors.js';
import { restNotFound } from './rest/index.js';
import { operations } from './ops/index.js';
import { route, type S3Operation } from './router.js';
import { errorXml } from './xml.js';

const S3_METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS'] as const;

// Bodies larger than this that an error leaves unread are not drained: the connection is closed instead.
const DRAIN_LIMIT_BYTES = 1024 * 1024;

// S3 names the answering host in x-amz-id-2; one opaque id per process serves the same purpose.
const HOST_ID = randomBytes(24).toString('base64');

declare module 'fastify' {
  interface FastifyRequest {
    /** Set once the S3 router has named the operation, for the request log line. */
    s3Operation?: string;
    accountId?: string;
  }
}

function splitUrl(url: string): { path: string; query: string } {
  const at = url.indexOf('?');
  return at === -1 ? { path: url, query: '' } : { path: url.slice(0, at), query: url.slice(at + 1) };
}

function resourceOf(op: S3Operation | undefined, path: string): string {
  if (op && 'bucket' in op && op.bucket !== undefined) return 'key' in op && op.key !== undefined ? `/${op.bucket}/${op.key}` : `/${op.bucket}`;
  return path;
}

function bodyLeftUnread(request: FastifyRequest): boolean {
  const raw = request.raw;
  if (raw.readableEnded || raw.complete) return false;
  const length = Number(raw.headers['content-length'] ?? NaN);
  return !(Number.isFinite(length) && length <= DRAIN_LIMIT_BYTES);
}

function send(reply: FastifyReply, result: S3Result): FastifyReply {
  reply.code(result.status ?? 200);
  for (const [name, value] of Object.entries(result.headers ?? {})) {
    if (value !== undefined) reply.header(name, value);
  }
  const body = result.body;
  if (body === undefined) return reply.send();
  if (body instanceof Readable) return reply.send(body);
  return reply.type(body.contentType).send(body.body);
}

function sendError(request: FastifyRequest, reply: FastifyReply, error: unknown, resource: string): FastifyReply {
  const s3Error = toS3Error(error);
  noteError(request, s3Error.code, error);
  // 501 is a refusal of what we do not serve, and a rate limit's 503 one of what we will not serve yet:
  // neither is a failure of ours.
  const refusal = s3Error.status === 501 || error instanceof QuotaError;
  if (s3Error.status >= 500 && !refusal) request.log.error({ err: error }, 's3 request failed');
  else request.log.info({ code: s3Error.code, reason: s3Error.message }, 's3 request refused');
  if (reply.sent || reply.raw.headersSent) {
    // The status line is gone: the only honest signal left is to cut the connection short.
    request.raw.socket.destroy();
    return reply;
  }
  reply.code(s3Error.status);
  for (const [name, value] of Object.entries(s3Error.headers)) reply.header(name, value);
  if (bodyLeftUnread(request)) reply.header('connection', 'close');
  // HEAD errors carry the status and headers only, as S3's do.
  if (request.method === 'HEAD') return reply.send();
  const xml = errorXml(s3Error, { requestId: request.id, hostId: HOST_ID, resource });
  return reply.type(xml.contentType).send(xml.body);
}

/**
 * The S3 data plane: every path not claimed by another route. Authentication is done here once, for all
 * operations; each operation is a module in ops/ that returns data for this file to send.
 */
export async function registerS3(app: FastifyInstance, deps: AppDeps, table: OperationTable = operations): Promise<void> {
  const verifier = createSigV4Verifier({
    lookupSecrets: async (accessKeyId) => (await deps.keys.lookup(accessKeyId))?.secrets ?? null,
  });

  await app.register(async (s3) => {
    // Object bodies stay streams: nothing is parsed or buffered by the framework.
    s3.removeAllContentTypeParsers();
    s3.addContentTypeParser('*', (_request, _payload, done) => done(null));

    s3.addHook('onRequest', async (request, reply) => {
      reply.header('x-amz-request-id', request.id);
      reply.header('x-amz-id-2', HOST_ID);
      reply.header('server', 'JettyThunder');
    });

    const handler = async (request: FastifyRequest, reply: FastifyReply) => {
      const raw = request.raw;
      const { path, query } = splitUrl(raw.url ?? '/');
      let op: S3Operation | undefined;
      try {
        const searchParams = new URLSearchParams(query);
        op = route({ method: raw.method ?? 'GET', path, query: searchParams, headers: raw.headers, host: raw.headers.host }, { s3Domain: deps.config.s3Domain });
        request.s3Operation = op.name === 'NotImplemented' ? op.operation : op.name;
        // /api/... that no REST route claimed: the REST API's own 404, not an S3 error.
        if (op.name === 'NotS3') return restNotFound(request, reply);

        let auth: Awaited<ReturnType<typeof verifier.verify>>;
        let account: KeyRecord | null;
        try {
          auth = await verifier.verify({ method: raw.method ?? 'GET', path, query, headers: raw.headersDistinct });
          account = await deps.keys.lookup(auth.accessKeyId);
          if (!account) throw new S3Error('InvalidAccessKeyId');
        } catch (error) {
          // No account vouches for a request that failed authentication: its address is counted instead.
          if (error instanceof AuthError || error instanceof S3Error) await deps.rateLimits.consumeAddress('gateway', request.ip);
          throw error;
        }
        request.accountId = account.accountId;
        request.log = request.log.child({ op: request.s3Operation, account: account.agentcacheUserId });
        if (account.status !== 'active') {
          request.limitRefusal = 'account_status';
          throw new S3Error('AccessDenied', { message: account.status === 'suspended' ? 'The account is suspended.' : 'The account has been deleted.' });
        }
        await deps.rateLimits.consumeAccount(account.accountId, account.limits.rateLimitPerMinute);

        const operation = table[op.name] as ((op: S3Operation, ctx: RequestContext) => Promise<S3Result>) | undefined;
        if (op.name === 'NotImplemented' || !operation) {
          throw new S3Error('NotImplemented', { message: `${request.s3Operation} is not implemented by this gateway.` });
        }

        const abort = new AbortController();
        // The request closes once its body is read; only a body cut short, or a response closed before it
        // finished, means the client went away.
        raw.once('close', () => {
          if (!raw.complete) abort.abort(new Error('client closed the connection'));
        });
        reply.raw.once('close', () => {
          if (!reply.raw.writableFinished) abort.abort(new Error('client closed the connection'));
        });
        const ctx: RequestContext = {
          deps,
          requestId: request.id,
          log: request.log,
          account,
          auth,
          request: raw,
          headers: raw.headersDistinct,
          query: searchParams,
          signal: abort.signal,
          async bucket(name) {
            const bucket = await findBucket(deps.db, account.accountId, name);
            if (!bucket) throw new S3Error('NoSuchBucket', { resource: `/${name}`, extra: { BucketName: name } });
            return bucket;
          },
        };
        return send(reply, await operation(op, ctx));
      } catch (error) {
        return sendError(request, reply, error, resourceOf(op, path));
      }
    };

    s3.route({ method: [...S3_METHODS], url: '/', handler, exposeHeadRoute: false });
    s3.route({ method: [...S3_METHODS], url: '/*', handler, exposeHeadRoute: false });
  });
}
