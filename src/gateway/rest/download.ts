import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { bearerToken } from '../../auth/constant-time.js';
import { presignGetUrl } from '../../auth/presign.js';
import type { AppDeps } from '../../deps.js';
import { HttpError } from '../../http-errors.js';
import { jettySpeedUrl } from '../../jettyspeed.js';
import { evaluatePreconditions, objectResponseHeaders, parseRange } from '../object-headers.js';
import { quoteEtag } from '../xml.js';
import { findAsset, type AssetSelector, type RestAsset } from './assets.js';
import type { HitRecorder } from './hits.js';
import { tenantOf } from './tenant.js';

/**
 * GET /api/storage/download/:id and GET /api/storage/download?cache_key=…: the object's bytes (Range and
 * conditional requests as on S3's GetObject, bandwidth admitted and counted the same way), or with
 * ?redirect=1 a URL to fetch them from instead: JettySpeed's when the account's tier has it and
 * JettySpeed answered its last health probe, else a presigned URL of the gateway itself.
 */

export interface DownloadUrl {
  url: string;
  via: 'jettyspeed' | 'gateway';
  expires_at: string;
}

const downloadQuery = {
  type: 'object',
  properties: {
    cache_key: { type: 'string', minLength: 1 },
    redirect: { type: 'string', enum: ['0', '1', 'false', 'true'] },
  },
} as const;

interface DownloadQuery {
  cache_key?: string;
  redirect?: '0' | '1' | 'false' | 'true';
}

const WELL_FORMED_HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/** Where the client reaches the gateway: GATEWAY_PUBLIC_URL, else the scheme and Host of this request. */
function gatewayOrigin(deps: AppDeps, request: FastifyRequest): string {
  if (deps.config.gatewayPublicUrl) return deps.config.gatewayPublicUrl;
  if (!WELL_FORMED_HOST.test(request.host)) throw new HttpError(400, 'BAD_REQUEST', 'The Host header is not a host name and port');
  return `${request.protocol}://${request.host}`;
}

export function downloadUrl(deps: AppDeps, request: FastifyRequest, asset: RestAsset, now = new Date()): DownloadUrl {
  const tenant = tenantOf(request);
  const { jettySpeed, downloadUrlExpiresSeconds } = deps.config;
  // An object past its TTL is gone from either address, so no URL is given a longer life than the object.
  const until = (urlExpiry: Date) => (asset.expiresAt !== null && asset.expiresAt < urlExpiry ? asset.expiresAt : urlExpiry).toISOString();
  if (tenant.limits.jettySpeedEnabled && jettySpeed.enabled && jettySpeed.cdnUrl !== null && deps.jettySpeed.healthy()) {
    return { url: jettySpeedUrl(jettySpeed.cdnUrl, asset.backendKey), via: 'jettyspeed', expires_at: until(new Date(now.getTime() + downloadUrlExpiresSeconds * 1000)) };
  }
  const accessKeyId = bearerToken(request.headers.authorization);
  if (accessKeyId === null) throw new Error('REST request authenticated without a bearer access key');
  const presigned = presignGetUrl({
    origin: gatewayOrigin(deps, request),
    bucket: asset.bucket,
    key: asset.key,
    accessKeyId,
    // The current secret: a URL signed with one in its rotation grace would die with the grace.
    secret: tenant.secrets[0]!,
    expiresInSeconds: downloadUrlExpiresSeconds,
    now,
  });
  return { url: presigned.url, via: 'gateway', expires_at: until(presigned.expiresAt) };
}

async function sendObject(deps: AppDeps, request: FastifyRequest, reply: FastifyReply, asset: RestAsset, signal: AbortSignal): Promise<FastifyReply> {
  if (evaluatePreconditions(request.raw.headersDistinct, asset) === 304) {
    return reply.code(304).headers({ etag: quoteEtag(asset.etag), 'last-modified': asset.lastModified.toUTCString() }).send();
  }
  const range = parseRange(request.headers.range, asset.size);
  const headers = objectResponseHeaders(asset, { checksumMode: false });
  if (range) {
    headers['content-length'] = range.end - range.start + 1;
    headers['content-range'] = `bytes ${range.start}-${range.end}/${asset.size}`;
  }
  // The body's length is known before a byte is fetched, so the bandwidth quota is checked for all of it
  // first; only the bytes that then reach the client are charged.
  const length = range ? range.end - range.start + 1 : asset.size;
  const grant = await deps.bandwidth.admit(tenantOf(request), length);
  try {
    const { body } = await deps.backend.get({ key: asset.backendKey, signal, ...(range && { range }) });
    reply.code(range ? 206 : 200);
    for (const [name, value] of Object.entries(headers)) if (value !== undefined) reply.header(name, value);
    return reply.send(grant.meter(body));
  } catch (error) {
    grant.release();
    throw error;
  }
}

/** Aborted when the client leaves before the answer was written, so the backend read stops with it. */
function clientGone(reply: FastifyReply): AbortSignal {
  const abort = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) abort.abort(new Error('client closed the connection'));
  });
  return abort.signal;
}

export async function downloadRoutes(app: FastifyInstance, options: { deps: AppDeps; hits: HitRecorder }): Promise<void> {
  const { deps, hits } = options;

  async function download(request: FastifyRequest<{ Querystring: DownloadQuery }>, reply: FastifyReply, selector: AssetSelector): Promise<FastifyReply> {
    const asset = await findAsset(deps.db, tenantOf(request).accountId, selector);
    if (!asset) {
      const what = 'id' in selector ? `id ${selector.id}` : `cache_key ${selector.cacheKey}`;
      throw new HttpError(404, 'NOT_FOUND', `No stored object has ${what}`);
    }
    const redirect = request.query.redirect === '1' || request.query.redirect === 'true';
    const answer = redirect ? reply.send(downloadUrl(deps, request, asset)) : await sendObject(deps, request, reply, asset, clientGone(reply));
    // Counted behind the answer: a statistic must not delay the bytes.
    hits.record(asset.id);
    return answer;
  }

  app.get<{ Params: { id: string }; Querystring: DownloadQuery }>(
    '/storage/download/:id',
    { schema: { querystring: downloadQuery }, exposeHeadRoute: false },
    (request, reply) => download(request, reply, { id: request.params.id }),
  );
  app.get<{ Querystring: DownloadQuery }>('/storage/download', { schema: { querystring: downloadQuery }, exposeHeadRoute: false }, (request, reply) => {
    const cacheKey = request.query.cache_key;
    if (cacheKey === undefined) throw new HttpError(400, 'VALIDATION_ERROR', 'cache_key is required (or download by id: /api/storage/download/<id>)', { field: 'cache_key' });
    return download(request, reply, { cacheKey });
  });
}
