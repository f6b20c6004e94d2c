import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type ListObjectsV2CommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listObjectPage } from '../../src/store/listing.js';
import type { Queryable } from '../../src/db/index.js';
import { provisionAccount, type Provisioned } from '../helpers/admin.js';
import { signedRequest, xmlText } from '../helpers/raw-s3.js';
import { s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

// Folders, keys equal to a folder name, empty path segments, LIKE wildcards, and characters whose UTF-8
// order differs from JavaScript's UTF-16 order (U+FF5E sorts before U+1F600 in UTF-8, after it in UTF-16).
const KEYS = [
  'B', 'a', 'é', '~', '\uFF5E', '😀', '😀/x', 'a/', 'a/1', 'a/2', 'a/b/c', 'a//d', 'b', 'b/', 'b//x',
  'c%/x', 'c%d', 'c_/y', 'cxd', 'photos/2024/jan.jpg', 'photos/2024/feb.jpg', 'photos/2025/mar.jpg', 'photos/index.html',
  ...Array.from({ length: 25 }, (_, i) => `logs/2026-01-${String(i + 1).padStart(2, '0')}.log`),
  ...Array.from({ length: 12 }, (_, i) => `flat-${String(i).padStart(2, '0')}`),
];

/** What S3 lists for a prefix and delimiter, in order: keys and common prefixes as one sequence. */
function expectedEntries(keys: readonly string[], prefix: string, delimiter: string): string[] {
  const entries: string[] = [];
  for (const key of [...keys].sort(utf8Order)) {
    if (!key.startsWith(prefix)) continue;
    const at = delimiter === '' ? -1 : key.indexOf(delimiter, prefix.length);
    const entry = at === -1 ? key : key.slice(0, at + delimiter.length);
    if (entries[entries.length - 1] !== entry) entries.push(entry);
  }
  return entries;
}

describe('ListObjects and ListObjectsV2', () => {
  let server: TestServer;
  let account: Provisioned;
  let s3: S3Client;
  const bucket = `list-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    server = await startTestServer();
    account = await provisionAccount(server);
    s3 = s3Client(server, account);
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    for (const key of KEYS) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key }));
  });
  afterAll(async () => {
    s3?.destroy();
    await server?.close();
  });

  async function walkV2(input: Omit<ListObjectsV2CommandInput, 'Bucket'>): Promise<{ entries: string[]; pages: number }> {
    const entries: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ...input, ...(token && { ContinuationToken: token }) }));
      pages++;
      const got = [...(page.Contents ?? []).map((o) => o.Key!), ...(page.CommonPrefixes ?? []).map((p) => p.Prefix!)].sort(utf8Order);
      expect(got.length).toBe(page.KeyCount);
      expect(got.length).toBeLessThanOrEqual(input.MaxKeys ?? 1000);
      entries.push(...got);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated) expect(token).toBeTruthy();
    } while (token);
    return { entries, pages };
  }

  it('lists every key in UTF-8 byte order, with sizes and ETags', async () => {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(page.Contents!.map((o) => o.Key)).toEqual([...KEYS].sort(utf8Order));
    expect(page.Contents!.slice(0, 3).map((o) => o.Key)).toEqual(['B', 'a', 'a/']);
    expect(page.Contents!.map((o) => o.Key).slice(-5)).toEqual(['~', 'é', '\uFF5E', '😀', '😀/x']);
    const first = page.Contents![0]!;
    expect(first).toMatchObject({ Key: 'B', Size: 1, StorageClass: 'STANDARD' });
    expect(first.ETag).toMatch(/^"[0-9a-f]{32}"$/);
    expect(first.Owner).toBeUndefined();
    expect(page).toMatchObject({ IsTruncated: false, KeyCount: KEYS.length, MaxKeys: 1000, Name: bucket });
  });

  it.each([
    ['', '/', 1],
    ['', '/', 3],
    ['', '/', 7],
    ['a', '/', 2],
    ['photos/', '/', 1],
    ['logs/', '', 4],
    ['', '', 5],
    ['b/', '/', 1],
    ['', '-', 2],
  ])('pages through prefix %j delimiter %j with max-keys %i, continuing with tokens', async (prefix, delimiter, maxKeys) => {
    const { entries, pages } = await walkV2({ Prefix: prefix, Delimiter: delimiter || undefined, MaxKeys: maxKeys });
    const expected = expectedEntries(KEYS, prefix, delimiter);
    expect(entries).toEqual(expected);
    expect(pages).toBe(Math.max(1, Math.ceil(expected.length / maxKeys)));
  });

  it('rolls keys under a delimiter into CommonPrefixes, a key equal to the folder included', async () => {
    const root = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Delimiter: '/' }));
    expect(root.CommonPrefixes!.map((p) => p.Prefix)).toEqual(['a/', 'b/', 'c%/', 'c_/', 'logs/', 'photos/', '😀/']);
    expect(root.Contents!.map((o) => o.Key)).toEqual(['B', 'a', 'b', 'c%d', 'cxd', ...KEYS.filter((k) => k.startsWith('flat-')), '~', 'é', '\uFF5E', '😀']);
    const photos = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'photos/', Delimiter: '/' }));
    expect(photos.CommonPrefixes!.map((p) => p.Prefix)).toEqual(['photos/2024/', 'photos/2025/']);
    expect(photos.Contents!.map((o) => o.Key)).toEqual(['photos/index.html']);
    const empty = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'a/', Delimiter: '/' }));
    expect(empty.CommonPrefixes!.map((p) => p.Prefix)).toEqual(['a//', 'a/b/']);
    expect(empty.Contents!.map((o) => o.Key)).toEqual(['a/', 'a/1', 'a/2']);
  });

  it('treats % and _ in a prefix as characters, not wildcards', async () => {
    const percent = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'c%' }));
    expect(percent.Contents!.map((o) => o.Key)).toEqual(['c%/x', 'c%d']);
    const underscore = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'c_' }));
    expect(underscore.Contents!.map((o) => o.Key)).toEqual(['c_/y']);
    const emoji = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: '😀' }));
    expect(emoji.Contents!.map((o) => o.Key)).toEqual(['😀', '😀/x']);
  });

  it('starts after start-after, which is echoed, and ignores it once a token is given', async () => {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, StartAfter: 'photos/2024/jan.jpg', MaxKeys: 2 }));
    expect(page.StartAfter).toBe('photos/2024/jan.jpg');
    expect(page.Contents!.map((o) => o.Key)).toEqual(['photos/2025/mar.jpg', 'photos/index.html']);
    const next = await s3.send(new ListObjectsV2Command({ Bucket: bucket, StartAfter: 'a', ContinuationToken: page.NextContinuationToken, MaxKeys: 1 }));
    expect(next.ContinuationToken).toBe(page.NextContinuationToken);
    expect(next.Contents!.map((o) => o.Key)).toEqual(['~']);
    // A start-after inside a folder does not list that folder again: it sorts before the position.
    const inside = await s3.send(new ListObjectsV2Command({ Bucket: bucket, StartAfter: 'logs/2026-01-05.log', Delimiter: '/' }));
    expect(inside.CommonPrefixes!.map((p) => p.Prefix)).toEqual(['photos/', '😀/']);
  });

  it('refuses a continuation token it did not issue with InvalidArgument', async () => {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 }));
    const token = page.NextContinuationToken!;
    for (const bad of ['not-a-token', `${token}x`, token.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')), Buffer.from('a').toString('base64url')]) {
      const error = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: bad })).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'InvalidArgument', $metadata: { httpStatusCode: 400 } });
      expect((error as Error).message).toBe('The continuation token provided is incorrect');
    }
  });

  it('encodes keys, prefixes and markers with encoding-type=url', async () => {
    const odd = ['odd/a b+c&d<e>', 'odd/100%', 'odd/tab\there', 'odd/ctl\u0001x', 'odd/é'];
    for (const key of odd) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }));
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'odd/', StartAfter: 'odd/100%', EncodingType: 'url', Delimiter: ' ' }));
    expect(page.EncodingType).toBe('url');
    expect(page.Prefix).toBe('odd/');
    expect(page.StartAfter).toBe('odd/100%25');
    expect(page.Delimiter).toBe('+');
    expect(page.CommonPrefixes!.map((p) => p.Prefix)).toEqual(['odd/a+']);
    expect(page.Contents!.map((o) => o.Key)).toEqual(['odd/ctl%01x', 'odd/tab%09here', 'odd/%C3%A9']);
    expect(page.Contents!.map((o) => decodeURIComponent(o.Key!.replace(/\+/g, ' ')))).toEqual(['odd/ctl\u0001x', 'odd/tab\there', 'odd/é']);
    // Without encoding, the control character travels as an XML character reference.
    const raw = await signedRequest(server, account, { method: 'GET', path: `/${bucket}?list-type=2&prefix=odd%2Fctl` });
    expect(raw.body).toContain('<Key>odd/ctl&#x1;x</Key>');
  });

  it('answers max-keys 0 with an empty, untruncated page, clamps values over 1,000, and refuses invalid ones', async () => {
    const zero = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 0 }));
    expect(zero).toMatchObject({ KeyCount: 0, IsTruncated: false, MaxKeys: 0 });
    expect(zero.Contents).toBeUndefined();
    const many = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 5000 }));
    expect(many.MaxKeys).toBe(1000);
    for (const bad of ['-1', 'abc', '2147483648', '1.5']) {
      const response = await signedRequest(server, account, { method: 'GET', path: `/${bucket}?list-type=2&max-keys=${bad}` });
      expect(response.status).toBe(400);
      expect(xmlText(response.body, 'Code')).toBe('InvalidArgument');
      expect(xmlText(response.body, 'ArgumentName')).toBe('maxKeys');
      expect(xmlText(response.body, 'Message')).toBe('Argument maxKeys must be an integer between 0 and 2147483647');
    }
    const badEncoding = await signedRequest(server, account, { method: 'GET', path: `/${bucket}?list-type=2&encoding-type=base64` });
    expect(xmlText(badEncoding.body, 'Code')).toBe('InvalidArgument');
  });

  it('lists owners with fetch-owner=true only', async () => {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1, FetchOwner: true }));
    expect(page.Contents![0]!.Owner).toEqual({ ID: account.id, DisplayName: account.agentcacheUserId });
  });

  it('v1: marker, NextMarker only when truncated with a delimiter, owners always', async () => {
    const flat = await s3.send(new ListObjectsCommand({ Bucket: bucket, MaxKeys: 2, Marker: 'a/' }));
    expect(flat.Contents!.map((o) => o.Key)).toEqual(['a//d', 'a/1']);
    expect(flat).toMatchObject({ IsTruncated: true, Marker: 'a/' });
    expect(flat.NextMarker).toBeUndefined();
    expect(flat.Contents![0]!.Owner).toEqual({ ID: account.id, DisplayName: account.agentcacheUserId });

    // Walk the delimited listing as a v1 client does: NextMarker, else the last key.
    const entries: string[] = [];
    let marker = '';
    for (;;) {
      const page = await s3.send(new ListObjectsCommand({ Bucket: bucket, Delimiter: '/', MaxKeys: 3, Marker: marker }));
      const got = [...(page.Contents ?? []).map((o) => o.Key!), ...(page.CommonPrefixes ?? []).map((p) => p.Prefix!)].sort(utf8Order);
      entries.push(...got);
      if (!page.IsTruncated) break;
      expect(page.NextMarker).toBe(got[got.length - 1]);
      marker = page.NextMarker!;
    }
    expect(entries).toEqual(expectedEntries([...KEYS, 'odd/x'], '', '/'));
  });

  it('hides objects past their TTL', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'ttl/expired', Body: 'x' }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'ttl/live', Body: 'y' }));
    await server.db.query(`UPDATE agentcache_assets SET expires_at = now() - interval '1 second' WHERE object_key = 'ttl/expired'`);
    await server.db.query(`UPDATE agentcache_assets SET expires_at = now() + interval '1 hour' WHERE object_key = 'ttl/live'`);
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'ttl/' }));
    expect(page.Contents!.map((o) => o.Key)).toEqual(['ttl/live']);
    const folders = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'ttl/expired', Delimiter: '/' }));
    expect(folders.KeyCount).toBe(0);
  });

  it('answers NoSuchBucket for a bucket the account does not own', async () => {
    await expect(s3.send(new ListObjectsV2Command({ Bucket: 'not-mine-at-all' }))).rejects.toMatchObject({ name: 'NoSuchBucket' });
    await expect(s3.send(new ListObjectsCommand({ Bucket: 'not-mine-at-all' }))).rejects.toMatchObject({ name: 'NoSuchBucket' });
  });

  it('seeks past the keys under a common prefix instead of reading them', async () => {
    const { rows } = await server.db.query<{ id: string }>('SELECT id FROM buckets WHERE account_id = $1 AND name = $2', [account.id, bucket]);
    const deep = (await server.db.query<{ id: string }>(`INSERT INTO buckets (account_id, name) VALUES ($1, $2) RETURNING id`, [account.id, `deep-${bucket}`])).rows[0]!.id;
    expect(rows).toHaveLength(1);
    // 5 folders of 2,000 keys each, pointing at one existing blob (only the listing reads these rows).
    await server.db.query(
      `INSERT INTO agentcache_assets (account_id, bucket_id, object_key, blob_id, filename, size_bytes, content_hash, etag)
       SELECT o.account_id, $2, 'g' || g || '/k' || lpad(k::text, 5, '0'), o.blob_id, 'k', o.size_bytes, o.content_hash, o.etag
         FROM (SELECT * FROM agentcache_assets WHERE bucket_id = $1 LIMIT 1) o, generate_series(0, 4) g, generate_series(0, 1999) k`,
      [rows[0]!.id, deep],
    );
    let rowsRead = 0;
    let scans = 0;
    const counting: Queryable = {
      query: async <R,>(sql: string, params?: readonly unknown[]) => {
        const result = await server.db.query<R>(sql, params);
        rowsRead += result.rows.length;
        scans++;
        return result;
      },
      exec: (sql) => server.db.exec(sql),
    };
    const page = await listObjectPage(counting, { bucketId: deep, prefix: '', delimiter: '/', after: '', maxKeys: 1000 });
    expect(page.commonPrefixes).toEqual(['g0/', 'g1/', 'g2/', 'g3/', 'g4/']);
    expect(page.isTruncated).toBe(false);
    expect(rowsRead).toBeLessThan(200);
    expect(scans).toBeLessThanOrEqual(6);

    const resumed = await listObjectPage(counting, { bucketId: deep, prefix: '', delimiter: '/', after: 'g2/', maxKeys: 1 });
    expect(resumed).toMatchObject({ commonPrefixes: ['g3/'], isTruncated: true, lastEntry: 'g3/' });
  });
});
