import { Transform, type TransformCallback } from 'node:stream';
import type { Multipart, MultipartFile } from '@fastify/multipart';
import fastifyMultipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HashTap } from '../../auth/hash-tap.js';
import type { AppDeps } from '../../deps.js';
import { HttpError } from '../../http-errors.js';
import { findBucket, findDefaultBucket, type Bucket } from '../../store/buckets.js';
import { assertValidObjectKey } from '../bucket-name.js';
import { putObjectStream } from '../put-pipeline.js';
import { assetDocument } from './assets.js';
import { tenantOf } from './tenant.js';

/**
 * POST /api/storage/upload: a multipart/form-data form whose `file` part streams through the same PUT
 * pipeline as S3's PutObject (size limit, storage reservation, hashing, dedup, one commit), never
 * buffered. `bucket` and `key` decide where the bytes go, so they must come before the file (curl -F
 * sends parts in the order given); sent after it they are refused (400) and nothing is stored. The
 * other fields only describe the object, so they may also follow the file, as cache_key does in the
 * seed's own example: the object is committed once the whole form has arrived.
 */

const TEXT_FIELDS = ['cache_key', 'bucket', 'key', 'ttl_seconds', 'expires_at', 'agentcache_pipeline_id'] as const;
type TextField = (typeof TEXT_FIELDS)[number];
type Fields = Map<TextField, string>;

/** The fields that decide where the file is written, which is settled when the file starts. */
const PLACEMENT_FIELDS: ReadonlySet<TextField> = new Set(['bucket', 'key']);

// Bounds on the form around the file; the file itself is bounded by the account's limits, not here.
const FORM_LIMITS = {
  fieldNameSize: 100,
  fieldSize: 4096,
  fields: TEXT_FIELDS.length,
  // Two, so that a second file reaches us and is refused by name rather than cut off silently.
  files: 2,
  parts: TEXT_FIELDS.length + 2,
  fileSize: Infinity,
  headerPairs: 100,
};

const MAX_TTL_SECONDS = 100 * 365 * 24 * 3600;
const MAX_CACHE_KEY_BYTES = 1024;
const MAX_PIPELINE_ID_BYTES = 255;
// An error that leaves more than this of a body unread closes the connection rather than reading it all.
const DRAIN_LIMIT_BYTES = 1024 * 1024;

function badRequest(code: string, message: string, extra: Record<string, unknown> = {}): HttpError {
  return new HttpError(400, code, message, extra);
}

function isTextField(name: string): name is TextField {
  return (TEXT_FIELDS as readonly string[]).includes(name);
}

/** Checks a text field and adds it to `fields`; `afterFile` says whether the file has already been read. */
function addField(fields: Fields, part: Multipart, afterFile: boolean): void {
  const name = part.fieldname;
  if (part.type === 'file') {
    if (afterFile) throw badRequest('SECOND_FILE', `The form holds a second file ("${name}"); an upload carries one file.`, { field: name });
    throw badRequest('UNEXPECTED_FILE', `Only the "file" field may carry a file; "${name}" did.`, { field: name });
  }
  if (name === 'file') throw badRequest('FILE_REQUIRED', 'The "file" field must be a file (with curl: -F "file=@path").', { field: name });
  if (!isTextField(name)) throw badRequest('UNKNOWN_FIELD', `"${name}" is not a field of an upload; known fields are file, ${TEXT_FIELDS.join(', ')}.`, { field: name });
  if (afterFile && PLACEMENT_FIELDS.has(name)) {
    throw badRequest('FIELD_AFTER_FILE', `"${name}" came after the file, but it decides where the file is stored: send it before the file (with curl, put -F "${name}=…" before -F "file=@…").`, {
      field: name,
    });
  }
  if (fields.has(name)) throw badRequest('DUPLICATE_FIELD', `"${name}" was sent twice.`, { field: name });
  if (part.valueTruncated) throw badRequest('FIELD_TOO_LONG', `"${name}" is longer than ${FORM_LIMITS.fieldSize} bytes.`, { field: name });
  fields.set(name, String(part.value));
}

/** The form's next part. The parser's own errors (a missing boundary, a body cut short) are the client's form's. */
async function nextPart(parts: AsyncIterator<Multipart>): Promise<IteratorResult<Multipart>> {
  try {
    return await parts.next();
  } catch (error) {
    if ((error as { statusCode?: unknown }).statusCode !== undefined) throw error;
    throw badRequest('MALFORMED_FORM', `The multipart/form-data body is malformed: ${(error as Error).message}`);
  }
}

/** Reads the text fields up to the file part; returns them with the file, or the file is null when none came. */
async function readFieldsUntilFile(parts: AsyncIterator<Multipart>): Promise<{ fields: Fields; file: MultipartFile | null }> {
  const fields: Fields = new Map();
  for (;;) {
    const next = await nextPart(parts);
    if (next.done) return { fields, file: null };
    if (next.value.type === 'file' && next.value.fieldname === 'file') return { fields, file: next.value };
    addField(fields, next.value, false);
  }
}

/**
 * Passes the file through and, when it ends, reads the rest of the form into `fields` before letting
 * the end go on: the object is committed only once the whole request arrived and its fields are valid.
 */
class FormEnd extends Transform {
  /** Set once the form has ended: what its fields say about the object. */
  description: Description | undefined;

  constructor(
    private readonly parts: AsyncIterator<Multipart>,
    private readonly fields: Fields,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.readRest().then(
      () => done(),
      (error: unknown) => done(error as Error),
    );
  }

  private async readRest(): Promise<void> {
    for (let next = await nextPart(this.parts); !next.done; next = await nextPart(this.parts)) addField(this.fields, next.value, true);
    this.description = describeFields(this.fields);
  }
}

interface Placement {
  bucket: Bucket;
  key: string;
}

/** What the fields say about the object besides its place. */
interface Description {
  cacheKey: string | null;
  pipelineId: string | null;
  expiresAt: Date | null;
}

function optionalText(fields: Fields, name: TextField, maxBytes: number): string | null {
  const value = fields.get(name);
  if (value === undefined || value === '') return null;
  if (Buffer.byteLength(value) > maxBytes) throw badRequest('VALIDATION_ERROR', `${name} must be at most ${maxBytes} bytes`, { field: name });
  return value;
}

/** ttl_seconds (whole seconds from now) or expires_at (an ISO 8601 time with a zone), never both; in the future. */
function expiryOf(fields: Fields, now: Date): Date | null {
  const ttl = fields.get('ttl_seconds');
  const at = fields.get('expires_at');
  if (ttl !== undefined && at !== undefined) throw badRequest('VALIDATION_ERROR', 'Send ttl_seconds or expires_at, not both', { field: 'ttl_seconds' });
  if (ttl !== undefined) {
    const seconds = /^\d{1,10}$/.test(ttl.trim()) ? Number(ttl.trim()) : NaN;
    if (!(seconds >= 1 && seconds <= MAX_TTL_SECONDS)) {
      throw badRequest('VALIDATION_ERROR', `ttl_seconds must be a whole number of seconds from 1 to ${MAX_TTL_SECONDS}`, { field: 'ttl_seconds' });
    }
    return new Date(now.getTime() + seconds * 1000);
  }
  if (at !== undefined) {
    // A zone is required: a bare local time would mean whatever the server's zone happens to be.
    const time = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i.test(at.trim()) ? Date.parse(at.trim()) : NaN;
    if (Number.isNaN(time)) throw badRequest('VALIDATION_ERROR', 'expires_at must be an ISO 8601 time with a zone, e.g. 2025-01-31T12:00:00Z', { field: 'expires_at' });
    if (time <= now.getTime()) throw badRequest('VALIDATION_ERROR', 'expires_at must be in the future', { field: 'expires_at' });
    return new Date(time);
  }
  return null;
}

/** Reads the descriptive fields; throws the 400 for a bad value. */
function describeFields(fields: Fields, now = new Date()): Description {
  return {
    cacheKey: optionalText(fields, 'cache_key', MAX_CACHE_KEY_BYTES),
    pipelineId: optionalText(fields, 'agentcache_pipeline_id', MAX_PIPELINE_ID_BYTES),
    expiresAt: expiryOf(fields, now),
  };
}

async function placementOf(deps: AppDeps, accountId: string, fields: Fields, filename: string): Promise<Placement> {
  const key = fields.get('key') ?? filename;
  if (key === '') throw badRequest('KEY_REQUIRED', 'The file has no name; send a "key" field before the file.', { field: 'key' });
  assertValidObjectKey(key);
  const bucketName = fields.get('bucket');
  const bucket = bucketName === undefined || bucketName === '' ? await findDefaultBucket(deps.db, accountId) : await findBucket(deps.db, accountId, bucketName);
  if (!bucket) throw new HttpError(404, 'NO_SUCH_BUCKET', `The bucket "${bucketName ?? 'default'}" does not exist`, { bucket: bucketName ?? null });
  return { bucket, key };
}

/**
 * After a failed upload the client may still be sending. A short remainder is read and discarded so the
 * answer reaches it on a connection that stays usable for its next request; a long one is not worth
 * reading: the connection closes after the answer.
 */
function settleUnreadBody(request: FastifyRequest, reply: FastifyReply): void {
  const raw = request.raw;
  if (raw.complete || raw.destroyed) return;
  const length = Number(raw.headers['content-length'] ?? NaN);
  if (Number.isFinite(length) && length <= DRAIN_LIMIT_BYTES) {
    // Away from the form parser, which would otherwise hold the rest back for parts nobody reads.
    raw.unpipe();
    raw.resume();
  } else {
    reply.header('connection', 'close');
  }
}

export async function uploadRoutes(app: FastifyInstance, options: { deps: AppDeps }): Promise<void> {
  const { deps } = options;
  await app.register(fastifyMultipart, { limits: FORM_LIMITS });
  // Any other body is refused by the route with a message about forms, not by the parser's JSON-only one.
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.post('/storage/upload', async (request, reply) => {
    const tenant = tenantOf(request);
    if (!request.isMultipart()) {
      settleUnreadBody(request, reply);
      throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be multipart/form-data, with the file in a field named "file"');
    }
    const abort = new AbortController();
    const raw = request.raw;
    let clientLeft = false;
    // The request closes once its body is read; only a body cut short means the client went away.
    raw.once('close', () => {
      if (raw.complete) return;
      clientLeft = true;
      abort.abort(new Error('client closed the connection'));
    });

    const parts = request.parts({ limits: FORM_LIMITS })[Symbol.asyncIterator]();
    let formFailure: HttpError | undefined;
    try {
      const { fields, file } = await readFieldsUntilFile(parts);
      if (!file) throw badRequest('FILE_REQUIRED', 'The form has no "file" field (with curl: -F "file=@path").', { field: 'file' });
      // The parser may fail the file (a form cut short) while the upload is still being prepared, before
      // the pipeline listens to it: caught from the start, the failure stops the upload as a client
      // leaving does, through the signal.
      const failForm = (error: Error) => {
        if (clientLeft || (error as { code?: unknown }).code === 'FST_MP_PREMATURE_CLOSE') return;
        formFailure ??= badRequest('MALFORMED_FORM', `The multipart/form-data body is malformed: ${error.message}`);
        abort.abort(formFailure);
      };
      file.file.once('error', failForm);
      if (file.file.errored) failForm(file.file.errored);
      // Fields sent before the file are checked before a byte is stored; the rest when the form ends.
      describeFields(fields);
      const placement = await placementOf(deps, tenant.accountId, fields, file.filename);
      const contentType = file.mimetype === '' ? null : file.mimetype;
      const formEnd = new FormEnd(parts, fields);
      const tap = new HashTap();
      const stored = await putObjectStream({
        deps,
        log: request.log,
        signal: abort.signal,
        account: tenant,
        source: file.file,
        transforms: [formEnd, tap],
        tap,
        declaredLength: undefined,
        describe: (digests) => ({
          contentType,
          contentEncoding: null,
          contentDisposition: null,
          contentLanguage: null,
          cacheControl: null,
          expires: null,
          userMetadata: {},
          bucketId: placement.bucket.id,
          key: placement.key,
          etag: digests.md5Hex,
          checksums: {},
          partsCount: null,
          ...formEnd.description!,
          uploadedVia: 'api',
        }),
      });
      const committedAt = stored.object.lastModified;
      const asset = assetDocument({
        id: stored.object.id,
        bucket: placement.bucket.name,
        key: placement.key,
        size: stored.digests.bytes,
        contentType,
        sha256: stored.digests.sha256Hex,
        etag: stored.object.etag,
        ...formEnd.description!,
        createdAt: committedAt,
        lastModified: committedAt,
        hitCount: 0,
        lastAccessed: null,
        uploadedVia: 'api',
      });
      return reply.code(201).send({ ...asset, deduplicated: stored.deduplicated });
    } catch (error) {
      settleUnreadBody(request, reply);
      // What failed after a broken form or a client leaving (the backend write they aborted) is a symptom.
      if (formFailure) throw formFailure;
      if (clientLeft) throw Object.assign(new Error('The client closed the connection before the body ended.'), { code: 'IncompleteBody' });
      throw error;
    }
  });
}
