import type { Queryable } from '../db/index.js';
import { VISIBLE } from './objects.js';

/**
 * ListObjects / ListObjectsV2 over one bucket, in UTF-8 byte order (object_key is COLLATE "C", so
 * Postgres compares the UTF-8 bytes, which is also code point order; the column's collation governs
 * every comparison below, and the (bucket_id, object_key) unique index serves them).
 *
 * The page is read by index range scans on (bucket_id, object_key): the prefix becomes the range
 * `prefix <= key < successor(prefix)` (no LIKE, so `%` and `_` in a prefix are plain characters), and
 * with a delimiter, once a common prefix is decided the next scan seeks past every key under it
 * instead of reading them. A bucket holding a million keys under `logs/` costs one short scan to
 * answer `CommonPrefixes: logs/`, not a million rows.
 *
 * Position semantics (shared by v1 `marker`, v2 `start-after` and continuation tokens): an entry (a key,
 * or a common prefix) is listed only when it sorts after `after`. So a marker that is itself a common
 * prefix (`boo/`, what NextMarker holds after a page that ended on it) skips all of `boo/...`, which is
 * how S3 pages through delimited listings (ceph/s3-tests test_bucket_list_delimiter_prefix).
 */

export interface ListedKey {
  key: string;
  etag: string;
  size: number;
  lastModified: Date;
}

export interface ListingRequest {
  bucketId: string;
  prefix: string;
  /** '' for none. */
  delimiter: string;
  /** List only entries after this one; '' lists from the start. */
  after: string;
  /** 0 to 1,000. */
  maxKeys: number;
}

export interface ListingPage {
  contents: ListedKey[];
  commonPrefixes: string[];
  isTruncated: boolean;
  /** The last entry returned (key or common prefix): where the next page starts after. */
  lastEntry?: string;
}

/**
 * Rows per scan. Without a delimiter one scan of max-keys + 1 rows answers the page. With one, rows may
 * collapse into common prefixes, so scans start small, double while keys come one by one, and halve
 * when a scan ends inside a common prefix (its rows past the first were read for nothing).
 */
const MAX_SCAN_ROWS = 1000;
const MIN_SCAN_ROWS = 16;
const FIRST_DELIMITED_SCAN_ROWS = 64;

interface LowerBound {
  key: string;
  inclusive: boolean;
}

interface KeyRow {
  object_key: string;
  etag: string;
  size_bytes: number;
  last_modified: Date;
}

export async function listObjectPage(q: Queryable, request: ListingRequest): Promise<ListingPage> {
  const page: ListingPage = { contents: [], commonPrefixes: [], isTruncated: false };
  // Postgres text cannot hold U+0000, so no key contains one: a prefix with it matches nothing, a
  // delimiter with it never occurs, and a position "a\0..." is the same as "a" (nothing sorts between).
  if (request.maxKeys === 0 || request.prefix.includes('\u0000')) return page;
  const delimiter = request.delimiter.includes('\u0000') ? '' : request.delimiter;
  const after = request.after.split('\u0000', 1)[0]!;
  const { prefix, maxKeys } = request;

  const upper = prefix === '' ? null : prefixSuccessor(prefix);
  let lower: LowerBound = compareUtf8(after, prefix) >= 0 ? { key: after, inclusive: false } : { key: prefix, inclusive: true };
  let scanRows = Math.min(maxKeys + 1, FIRST_DELIMITED_SCAN_ROWS);
  // The common prefix of the last row seen: rows under it are already accounted for.
  let group: string | null = null;

  for (;;) {
    const limit = delimiter === '' ? maxKeys - page.contents.length + 1 : scanRows;
    const rows = await scan(q, request.bucketId, lower, upper, limit);
    for (const row of rows) {
      if (group !== null && row.object_key.startsWith(group)) continue;
      group = delimiter === '' ? null : commonPrefixOf(row.object_key, prefix, delimiter);
      // A common prefix at or before the position was listed on an earlier page.
      if (group !== null && compareUtf8(group, after) <= 0) continue;
      if (page.contents.length + page.commonPrefixes.length === maxKeys) {
        page.isTruncated = true;
        return page;
      }
      if (group !== null) {
        page.commonPrefixes.push(group);
        page.lastEntry = group;
      } else {
        page.contents.push({ key: row.object_key, etag: row.etag, size: Number(row.size_bytes), lastModified: new Date(row.last_modified) });
        page.lastEntry = row.object_key;
      }
    }
    if (rows.length < limit) return page; // the range is exhausted

    const last = rows[rows.length - 1]!.object_key;
    if (group !== null && last.startsWith(group)) {
      // The scan ended inside a common prefix: seek past all of it.
      const next = prefixSuccessor(group);
      if (next === null) return page;
      lower = { key: next, inclusive: true };
      scanRows = Math.max(MIN_SCAN_ROWS, scanRows >> 1);
    } else {
      lower = { key: last, inclusive: false };
      scanRows = Math.min(MAX_SCAN_ROWS, scanRows * 2);
    }
  }
}

async function scan(q: Queryable, bucketId: string, lower: LowerBound, upper: string | null, limit: number): Promise<KeyRow[]> {
  const params: unknown[] = [bucketId, lower.key, limit];
  if (upper !== null) params.push(upper);
  const { rows } = await q.query<KeyRow>(
    `SELECT o.object_key, o.etag, o.size_bytes, o.last_modified
       FROM agentcache_assets o
      WHERE o.bucket_id = $1 AND ${VISIBLE}
        AND o.object_key ${lower.inclusive ? '>=' : '>'} $2::text
        ${upper === null ? '' : 'AND o.object_key < $4::text'}
      ORDER BY o.object_key
      LIMIT $3`,
    params,
  );
  return rows;
}

/** `prefix` + the rest of `key` up to and including the first delimiter after the prefix, or null. */
export function commonPrefixOf(key: string, prefix: string, delimiter: string): string | null {
  const at = key.indexOf(delimiter, prefix.length);
  return at === -1 ? null : key.slice(0, at + delimiter.length);
}

/**
 * The smallest string greater than every string that starts with `prefix`, in code point order, or
 * null when there is none (the prefix is all U+10FFFF). Incrementing the last code point rather than the
 * last UTF-8 byte keeps the bound valid UTF-8, which Postgres requires of text; surrogates are no
 * characters, so U+D7FF's successor is U+E000.
 */
export function prefixSuccessor(prefix: string): string | null {
  const codePoints = Array.from(prefix, (char) => char.codePointAt(0)!);
  while (codePoints.length > 0 && codePoints[codePoints.length - 1] === 0x10ffff) codePoints.pop();
  if (codePoints.length === 0) return null;
  let last = codePoints[codePoints.length - 1]! + 1;
  if (last === 0xd800) last = 0xe000;
  codePoints[codePoints.length - 1] = last;
  return String.fromCodePoint(...codePoints);
}

/**
 * Compares in UTF-8 byte order, as S3 and `COLLATE "C"` do. JavaScript's `<` compares UTF-16 code
 * units, which puts U+1F600 (the surrogate pair D83D DE00) before U+FF5E; UTF-8 order puts it after.
 */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
