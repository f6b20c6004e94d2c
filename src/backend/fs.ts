import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { addAbortSignal, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BackendError,
  BackendErrorCode,
  type Backend,
  type CompleteMultipartInput,
  type GetInput,
  type GetOutput,
  type HeadOutput,
  type ListInput,
  type ListOutput,
  type PutInput,
  type PutOutput,
  type UploadPartInput,
} from './backend.js';
import { BodyMeter, meterBody, throwIfAborted, writeFailure } from './body.js';
import { errorCode, fileWriter, fsyncDir } from './fs-io.js';
import {
  decodeContinuationToken,
  encodeContinuationToken,
  encodeHeader,
  FS_STAGING_DIR,
  HEADER_BYTES,
  keyPath,
  readHeader,
  walkKeys,
} from './fs-layout.js';

export { FS_STAGING_DIR } from './fs-layout.js';

export interface FsBackendOptions {
  /** The folder objects live in; the app passes `<DATA_DIR>/objects/<bucketName>`. */
  root: string;
}

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const MAX_LIST_KEYS = 1000;
/** S3's minimum size for every part but the last; enforced here too so fs never accepts what S3 refuses. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
const MAX_PART_NUMBER = 10_000;

const UNAVAILABLE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY']);

function toBackendError(error: unknown, action: string): BackendError {
  if (error instanceof BackendError) return error;
  const code = errorCode(error);
  const backendCode = code !== undefined && UNAVAILABLE_CODES.has(code) ? BackendErrorCode.Unavailable : BackendErrorCode.Failed;
  return new BackendError(backendCode, `fs backend could not ${action}${code ? ` (${code})` : ''}`, { cause: error });
}

interface TempFile {
  path: string;
  handle: FileHandle;
  discard(): Promise<void>;
}

/** Stores objects as files under `root`; see fs-layout.ts for the layout. */
export function createFsBackend(options: FsBackendOptions): Backend {
  const root = path.resolve(options.root);
  const tempDir = path.join(root, FS_STAGING_DIR, 'tmp');
  const uploadsDir = path.join(root, FS_STAGING_DIR, 'uploads');

  async function createTempFile(): Promise<TempFile> {
    await mkdir(tempDir, { recursive: true, mode: DIR_MODE });
    const file = path.join(tempDir, `${randomUUID()}.tmp`);
    const handle = await open(file, 'wx', FILE_MODE);
    return {
      path: file,
      handle,
      async discard() {
        await handle.close().catch(() => undefined);
        await rm(file, { force: true });
      },
    };
  }

  /** Gives a complete temp file its final name: header, fsync, rename, fsync of every folder touched. */
  async function publish(temp: TempFile, etag: string, finalPath: string): Promise<void> {
    await temp.handle.write(encodeHeader(etag), 0, HEADER_BYTES, 0);
    await temp.handle.sync();
    await temp.handle.close();
    const dir = path.dirname(finalPath);
    for (let attempt = 1; ; attempt++) {
      const firstCreated = await mkdir(dir, { recursive: true, mode: DIR_MODE });
      try {
        await rename(temp.path, finalPath);
      } catch (error) {
        // A concurrent delete may prune the folder between mkdir and rename.
        if (errorCode(error) === 'ENOENT' && attempt < 3) continue;
        throw error;
      }
      // A folder mkdir just created is itself a new entry in its parent.
      const changed = [dir];
      if (firstCreated !== undefined) {
        for (let folder = dir; folder !== firstCreated; folder = path.dirname(folder)) changed.push(path.dirname(folder));
        changed.push(path.dirname(firstCreated));
      }
      for (const folder of changed) await fsyncDir(folder);
      return;
    }
  }

  /** Writes a metered body into a new temp file from `start` (past the header for an object, 0 for a part). */
  async function writeBody(body: Readable, meter: BodyMeter, signal: AbortSignal | undefined, start: number): Promise<TempFile> {
    const metered = meterBody(body, meter);
    let temp: TempFile | undefined;
    try {
      throwIfAborted(signal);
      temp = await createTempFile();
      await pipeline(meter, fileWriter(temp.handle, start), signal ? { signal } : {});
      return temp;
    } catch (error) {
      await temp?.discard();
      throw writeFailure(error, metered, signal, (e) => toBackendError(e, 'write the body'));
    } finally {
      metered.release();
    }
  }

  /** Opens an object's file; null when there is none (a folder is not an object). */
  async function openObject(key: string): Promise<{ handle: FileHandle; size: number; etag: string; mtime: Date } | null> {
    let handle: FileHandle;
    try {
      handle = await open(keyPath(root, key), 'r');
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw toBackendError(error, 'open the object');
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) {
        await handle.close();
        return null;
      }
      const etag = await readHeader(handle, info.size, key);
      return { handle, size: info.size - HEADER_BYTES, etag, mtime: info.mtime };
    } catch (error) {
      await handle.close();
      throw toBackendError(error, 'read the object');
    }
  }

  async function pruneEmptyFolders(from: string): Promise<void> {
    for (let folder = from; folder.startsWith(root + path.sep); folder = path.dirname(folder)) {
      try {
        await rmdir(folder);
      } catch {
        return; // not empty (or already gone): the folders above are not empty either
      }
    }
  }

  function uploadDir(key: string, uploadId: string): string {
    if (!/^[0-9a-f]{32}$/.test(uploadId)) throw new BackendError(BackendErrorCode.NotFound, `no multipart upload ${JSON.stringify(uploadId)}`);
    // Naming the folder after the key too makes an upload id used with another key simply not found, as in S3.
    const keyHash = createHash('sha256').update(key).digest('hex').slice(0, 32);
    return path.join(uploadsDir, `${keyHash}-${uploadId}`);
  }

  async function requireUpload(key: string, uploadId: string): Promise<string> {
    const dir = uploadDir(key, uploadId);
    try {
      await stat(dir);
      return dir;
    } catch (error) {
      if (errorCode(error) === 'ENOENT') throw new BackendError(BackendErrorCode.NotFound, `no multipart upload ${uploadId} for this key`);
      throw toBackendError(error, 'read the multipart upload');
    }
  }

  async function deleteObject(key: string): Promise<void> {
    const file = keyPath(root, key);
    try {
      await unlink(file);
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return;
      throw toBackendError(error, 'delete the object');
    }
    await pruneEmptyFolders(path.dirname(file));
  }

  return {
    kind: 'fs',

    async put({ key, body, contentLength, signal }: PutInput): Promise<PutOutput> {
      const finalPath = keyPath(root, key);
      const meter = new BodyMeter(contentLength, { md5: true });
      const temp = await writeBody(body, meter, signal, HEADER_BYTES);
      const etag = meter.md5().toString('hex');
      try {
        await publish(temp, etag, finalPath);
      } catch (error) {
        await temp.discard();
        throw toBackendError(error, 'publish the object');
      }
      return { etag, size: meter.bytes };
    },

    async get({ key, range, signal }: GetInput): Promise<GetOutput> {
      throwIfAborted(signal);
      const object = await openObject(key);
      if (!object) throw new BackendError(BackendErrorCode.NotFound, `no object ${JSON.stringify(key)}`);
      let start = 0;
      let end = object.size - 1;
      if (range) {
        const rangeEnd = range.end ?? end;
        if (!Number.isInteger(range.start) || !Number.isInteger(rangeEnd) || range.start < 0 || range.start >= object.size || rangeEnd < range.start) {
          await object.handle.close();
          throw new BackendError(BackendErrorCode.InvalidRange, `range ${range.start}-${range.end ?? ''} is outside an object of ${object.size} bytes`);
        }
        start = range.start;
        end = Math.min(rangeEnd, end);
      }
      if (object.size === 0) {
        await object.handle.close();
        return { body: Readable.from([]), contentLength: 0, size: 0 };
      }
      // Reading through the handle opened above keeps a concurrent overwrite or delete from mixing versions.
      const stream = object.handle.createReadStream({ start: HEADER_BYTES + start, end: HEADER_BYTES + end });
      return { body: signal ? addAbortSignal(signal, stream) : stream, contentLength: end - start + 1, size: object.size };
    },

    async head({ key }): Promise<HeadOutput | null> {
      const object = await openObject(key);
      if (!object) return null;
      await object.handle.close();
      return { size: object.size, etag: object.etag, lastModified: object.mtime };
    },

    async delete({ key }) {
      await deleteObject(key);
    },

    async deleteMany({ keys }) {
      const errors: { key: string; message: string }[] = [];
      for (const key of keys) {
        try {
          await deleteObject(key);
        } catch (error) {
          errors.push({ key, message: error instanceof Error ? error.message : String(error) });
        }
      }
      return { errors };
    },

    async list({ prefix, continuationToken, maxKeys }: ListInput): Promise<ListOutput> {
      const limit = Math.min(maxKeys ?? MAX_LIST_KEYS, MAX_LIST_KEYS);
      if (limit <= 0) return { objects: [] };
      const startAfter = continuationToken === undefined ? undefined : decodeContinuationToken(continuationToken);
      const objects: ListOutput['objects'] = [];
      let more = false;
      try {
        for await (const key of walkKeys(root, prefix, startAfter)) {
          if (objects.length === limit) {
            more = true;
            break;
          }
          const info = await stat(path.join(root, ...key.split('/'))).catch(() => null); // deleted meanwhile
          if (info && info.size >= HEADER_BYTES) objects.push({ key, size: info.size - HEADER_BYTES, lastModified: info.mtime });
        }
      } catch (error) {
        throw toBackendError(error, 'list objects');
      }
      const last = objects.at(-1);
      return more && last ? { objects, continuationToken: encodeContinuationToken(last.key) } : { objects };
    },

    async createMultipart({ key }) {
      keyPath(root, key);
      const uploadId = randomBytes(16).toString('hex');
      try {
        await mkdir(uploadDir(key, uploadId), { recursive: true, mode: DIR_MODE });
      } catch (error) {
        throw toBackendError(error, 'create the multipart upload');
      }
      return { uploadId };
    },

    async uploadPart({ key, uploadId, partNumber, body, contentLength, signal }: UploadPartInput) {
      if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PART_NUMBER) {
        throw new BackendError(BackendErrorCode.Failed, `part number ${partNumber} is not from 1 to ${MAX_PART_NUMBER}`);
      }
      const dir = await requireUpload(key, uploadId);
      const meter = new BodyMeter(contentLength, { md5: true });
      const temp = await writeBody(body, meter, signal, 0);
      try {
        await temp.handle.sync();
        await temp.handle.close();
        await rename(temp.path, path.join(dir, `part-${partNumber}`));
      } catch (error) {
        await temp.discard();
        if (errorCode(error) === 'ENOENT') throw new BackendError(BackendErrorCode.NotFound, `multipart upload ${uploadId} was completed or aborted`);
        throw toBackendError(error, 'store the part');
      }
      return { etag: meter.md5().toString('hex') };
    },

    async completeMultipart({ key, uploadId, parts }: CompleteMultipartInput) {
      const finalPath = keyPath(root, key);
      const dir = await requireUpload(key, uploadId);
      if (parts.length === 0) throw new BackendError(BackendErrorCode.Failed, 'a multipart upload needs at least one part');
      parts.forEach((part, index) => {
        if (index > 0 && part.partNumber <= parts[index - 1]!.partNumber) {
          throw new BackendError(BackendErrorCode.Failed, 'parts must be listed in ascending part number order');
        }
      });
      const temp = await createTempFile();
      let etag: string;
      try {
        const partMd5s: Buffer[] = [];
        let position = HEADER_BYTES;
        for (const [index, part] of parts.entries()) {
          const partPath = path.join(dir, `part-${part.partNumber}`);
          const info = await stat(partPath).catch(() => null);
          if (!info) throw new BackendError(BackendErrorCode.Failed, `part ${part.partNumber} was not uploaded`);
          if (index < parts.length - 1 && info.size < MIN_PART_BYTES) {
            throw new BackendError(BackendErrorCode.Failed, `part ${part.partNumber} is smaller than ${MIN_PART_BYTES} bytes and is not the last`);
          }
          const meter = new BodyMeter(info.size, { md5: true });
          await pipeline(createReadStream(partPath), meter, fileWriter(temp.handle, position));
          const md5 = meter.md5();
          if (md5.toString('hex') !== part.etag.replaceAll('"', '').toLowerCase()) {
            throw new BackendError(BackendErrorCode.Failed, `part ${part.partNumber}'s ETag does not match the uploaded part`);
          }
          partMd5s.push(md5);
          position += info.size;
        }
        // S3's multipart ETag: the MD5 of the parts' binary MD5s, then the part count.
        etag = `${createHash('md5').update(Buffer.concat(partMd5s)).digest('hex')}-${parts.length}`;
        await publish(temp, etag, finalPath);
      } catch (error) {
        await temp.discard();
        throw toBackendError(error, 'complete the multipart upload');
      }
      // The object is already published; parts left behind by a failure here only take space.
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      return { etag };
    },

    async abortMultipart({ key, uploadId }) {
      let dir: string;
      try {
        dir = uploadDir(key, uploadId);
      } catch {
        return; // not an id this backend issued, so there is nothing to abort
      }
      try {
        await rm(dir, { recursive: true, force: true });
      } catch (error) {
        throw toBackendError(error, 'abort the multipart upload');
      }
    },

    async ping() {
      try {
        const temp = await createTempFile();
        await temp.discard();
      } catch (error) {
        throw new BackendError(BackendErrorCode.Unavailable, `fs backend root ${root} is not writable`, { cause: error });
      }
    },

    async close() {},
  };
}
