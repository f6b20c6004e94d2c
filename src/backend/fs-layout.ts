import { readdir, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { BackendError, BackendErrorCode } from './backend.js';

/**
 * How the fs backend lays objects out under its root:
 *
 *   <root>/<key>                  one file per object: a HEADER_BYTES header, then the object's bytes
 *   <root>/.jt-staging/tmp/       files being written; renamed to their key only once complete and fsync'd
 *   <root>/.jt-staging/uploads/   one folder per multipart upload, one file per part
 *
 * The ETag lives in the object's own file because a multipart ETag cannot be recomputed from the bytes,
 * and a separate metadata file could not be replaced in the same atomic rename as the data.
 */
export const FS_STAGING_DIR = '.jt-staging';
export const HEADER_BYTES = 64;
const HEADER_MAGIC = 'jtobj v1 etag=';

const MAX_KEY_BYTES = 1024;
// Most filesystems (ext4, xfs, apfs) cap a single name at 255 bytes.
const MAX_SEGMENT_BYTES = 255;

function invalidKey(key: string, problem: string): BackendError {
  return new BackendError(BackendErrorCode.Failed, `key ${JSON.stringify(key)} ${problem}`);
}

/**
 * The key's path segments, refusing any key that could leave the root or that two keys could share a
 * file for (`a//b` and `a/b`, `a/./b` and `a/b`). Keys are chosen by the gateway, so a refusal is a bug.
 */
export function keySegments(key: string): string[] {
  if (key.length === 0) throw invalidKey(key, 'is empty');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw invalidKey(key, `is longer than ${MAX_KEY_BYTES} bytes`);
  if (key.includes('\0')) throw invalidKey(key, 'contains NUL');
  if (key.includes('\\')) throw invalidKey(key, 'contains a backslash');
  if (key.startsWith('/')) throw invalidKey(key, 'is absolute');
  // A lone surrogate would be written as U+FFFD and read back as a different key.
  if (Buffer.from(key, 'utf8').toString('utf8') !== key) throw invalidKey(key, 'is not valid Unicode');
  const segments = key.split('/');
  for (const segment of segments) {
    if (segment === '') throw invalidKey(key, 'has an empty segment');
    if (segment === '.' || segment === '..') throw invalidKey(key, `has a "${segment}" segment`);
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) throw invalidKey(key, `has a segment longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  if (segments[0] === FS_STAGING_DIR) throw invalidKey(key, `starts with the reserved "${FS_STAGING_DIR}"`);
  return segments;
}

export function keyPath(root: string, key: string): string {
  const file = path.join(root, ...keySegments(key));
  if (!file.startsWith(root + path.sep)) throw invalidKey(key, 'leaves the root');
  return file;
}

export function encodeHeader(etag: string): Buffer {
  const header = Buffer.from(`${HEADER_MAGIC}${etag}`.padEnd(HEADER_BYTES - 1, ' ') + '\n', 'latin1');
  if (header.length !== HEADER_BYTES) throw new Error(`ETag ${etag} does not fit the object header`);
  return header;
}

/** Reads the ETag from an open object file, or fails when the file is not one the backend wrote. */
export async function readHeader(file: FileHandle, fileSize: number, key: string): Promise<string> {
  const header = Buffer.alloc(HEADER_BYTES);
  const { bytesRead } = fileSize >= HEADER_BYTES ? await file.read(header, 0, HEADER_BYTES, 0) : { bytesRead: 0 };
  const text = header.toString('latin1');
  if (bytesRead !== HEADER_BYTES || !text.startsWith(HEADER_MAGIC) || !text.endsWith('\n')) {
    throw new BackendError(BackendErrorCode.Failed, `the file for key ${JSON.stringify(key)} is not an object written by the fs backend`);
  }
  return text.slice(HEADER_MAGIC.length, -1).trimEnd();
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Keys under `prefix` that sort after `startAfter`, in UTF-8 byte order (S3's), read lazily.
 *
 * A folder's entries are sorted as `name/` for folders and `name` for files: every key below folder `a`
 * starts with `a/`, so comparing `a/` with a sibling such as `a-b` orders the whole subtree correctly.
 */
export async function* walkKeys(root: string, prefix: string, startAfter: string | undefined): AsyncGenerator<string> {
  const folderKey = prefix.slice(0, prefix.lastIndexOf('/') + 1);
  if (folderKey !== '') {
    try {
      keySegments(folderKey.slice(0, -1));
    } catch {
      return; // no valid key can start with this prefix
    }
  }
  yield* walkFolder(root, folderKey, prefix.slice(folderKey.length), startAfter);
}

async function* walkFolder(root: string, folderKey: string, namePrefix: string, startAfter: string | undefined): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(path.join(root, ...folderKey.split('/')), { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    throw error;
  }
  const candidates = entries
    .filter((entry) => (entry.isFile() || entry.isDirectory()) && entry.name.startsWith(namePrefix))
    .filter((entry) => !(folderKey === '' && entry.name === FS_STAGING_DIR))
    .map((entry) => ({ key: folderKey + entry.name + (entry.isDirectory() ? '/' : ''), isFolder: entry.isDirectory() }))
    .sort((a, b) => compareBytes(a.key, b.key));
  for (const { key, isFolder } of candidates) {
    if (isFolder) {
      // Every key below sorts before startAfter unless startAfter itself lies below.
      if (startAfter !== undefined && compareBytes(key, startAfter) < 0 && !startAfter.startsWith(key)) continue;
      yield* walkFolder(root, key, '', startAfter);
    } else {
      if (startAfter !== undefined && compareBytes(key, startAfter) <= 0) continue;
      yield key;
    }
  }
}

export function encodeContinuationToken(lastKey: string): string {
  return Buffer.from(lastKey, 'utf8').toString('base64url');
}

export function decodeContinuationToken(token: string): string {
  const key = Buffer.from(token, 'base64url').toString('utf8');
  if (key === '' || encodeContinuationToken(key) !== token) {
    throw new BackendError(BackendErrorCode.Failed, 'continuation token is not one the fs backend issued');
  }
  return key;
}
