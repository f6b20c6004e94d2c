/**
 * Parsers for the XML request bodies S3 operations take: Delete, CompleteMultipartUpload and
 * CreateBucketConfiguration. The caller reads the body into a Buffer with the matching limit below
 * (read at most limit + 1 bytes, so an oversized body is seen and refused here).
 *
 * Text is kept exactly: no trimming, no number coercion ("0001" stays "0001"), only XML 1.0's five
 * predefined entities and numeric character references are expanded, and a DTD is refused, so a key
 * means the same to us as to the client that wrote it.
 */
import { XMLParser } from 'fast-xml-parser';
import { S3Error } from './errors.js';
import { CHECKSUM_ELEMENTS, type Checksums } from './xml.js';

/** DeleteObjects takes at most 1,000 keys (API reference, DeleteObjects). */
export const DELETE_OBJECTS_MAX_KEYS = 1000;
/**
 * 1,000 keys of up to 1,024 bytes with their XML fit in about 1.1 MiB; 2 MiB leaves room for
 * whitespace, VersionIds and escaped characters.
 */
export const DELETE_OBJECTS_MAX_BODY_BYTES = 2 * 1024 * 1024;
/** 10,000 parts at about 250 bytes each (PartNumber, quoted ETag, one checksum, indentation). */
export const COMPLETE_MULTIPART_MAX_BODY_BYTES = 5 * 1024 * 1024;
/** A CreateBucketConfiguration is a few hundred bytes. */
export const CREATE_BUCKET_MAX_BODY_BYTES = 64 * 1024;

export interface ObjectToDelete {
  key: string;
  versionId?: string;
}

export interface DeleteRequest {
  quiet: boolean;
  objects: ObjectToDelete[];
}

export interface CompletedPart {
  partNumber: number;
  /** As the client sent it, quoted or not: compare with unquoteEtag. */
  etag: string;
  checksums: Checksums;
}

export interface CreateBucketConfiguration {
  /** Absent when the body is empty or names no location. */
  locationConstraint?: string;
}

const XML_PREDEFINED_ENTITIES: Readonly<Record<string, string>> = {
  lt: '<',
  gt: '>',
  amp: '&',
  quot: '"',
  apos: "'",
};

/** A Char in XML 1.0's sense (section 2.2): a reference to anything else is not well-formed. */
function isXmlChar(codePoint: number): boolean {
  return (
    codePoint === 0x9 ||
    codePoint === 0xa ||
    codePoint === 0xd ||
    (codePoint >= 0x20 && codePoint <= 0xd7ff) ||
    (codePoint >= 0xe000 && codePoint <= 0xfffd) ||
    (codePoint >= 0x10000 && codePoint <= 0x10ffff)
  );
}

class MalformedInput extends Error {}

/**
 * Expands exactly what XML 1.0 defines: the five predefined entities and `&#N;` / `&#xH;` references to
 * legal characters. S3 refuses `&#x1;` in a Delete body with MalformedXML (basho/riak_cs#974), and so
 * do we. HTML names such as `&nbsp;` are not XML and are refused too.
 */
const strictXmlEntityDecoder = {
  decode(text: string): string {
    return text.replace(/&([^;]*);/g, (_reference, name: string) => {
      const numeric = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(name);
      if (numeric !== null) {
        const codePoint = numeric[1] !== undefined ? parseInt(numeric[1], 16) : Number(numeric[2]);
        if (!isXmlChar(codePoint)) throw new MalformedInput(`&${name}; is not a character XML 1.0 allows`);
        return String.fromCodePoint(codePoint);
      }
      const expansion = XML_PREDEFINED_ENTITIES[name];
      if (expansion === undefined) throw new MalformedInput(`undefined entity &${name};`);
      return expansion;
    });
  },
  addInputEntities(entities: Record<string, string>): void {
    if (Object.keys(entities).length > 0) throw new MalformedInput('entity declarations are not accepted');
  },
  setExternalEntities(): void {},
  reset(): void {},
  setXmlVersion(): void {},
};

const REPEATED_ELEMENTS = new Set(['Object', 'Part']);

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: false,
  processEntities: true,
  entityDecoder: strictXmlEntityDecoder,
  ignoreDeclaration: true,
  ignorePiTags: true,
  isArray: (name) => REPEATED_ELEMENTS.has(name),
});

type XmlObject = Record<string, unknown>;

function malformed(cause?: unknown): S3Error {
  return new S3Error('MalformedXML', { cause });
}

/** Decodes, size-checks and parses a body; returns the named root element's content. */
function parseRoot(body: Buffer, maxBytes: number, rootName: string): XmlObject | string {
  if (body.length > maxBytes) throw new S3Error('MaxMessageLengthExceeded');
  let text: string;
  try {
    // ignoreBOM keeps a byte order mark in the text, so that exactly one is dropped below.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
  } catch (err) {
    throw malformed(err);
  }
  // End-of-line handling (XML 1.0 section 2.11): CRLF and lone CR become LF before parsing, so a
  // carriage return survives only when written as &#13;, as S3 requires of keys.
  text = text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
  let document: unknown;
  try {
    document = parser.parse(text, true);
  } catch (err) {
    throw malformed(err);
  }
  if (!isXmlObject(document)) throw malformed();
  const roots = Object.keys(document);
  const root = document[rootName];
  if (roots.length !== 1 || root === undefined) throw malformed();
  if (typeof root !== 'string' && !isXmlObject(root)) throw malformed();
  return root;
}

function isXmlObject(value: unknown): value is XmlObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A child element's text: undefined when absent; MalformedXML when repeated or holding elements. */
function childText(parent: XmlObject, name: string): string | undefined {
  const value = parent[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw malformed();
  return value;
}

function requiredChildText(parent: XmlObject, name: string): string {
  const text = childText(parent, name);
  if (text === undefined) throw malformed();
  return text;
}

/** Children of a repeated element (Object, Part); an element with only whitespace inside is still one. */
function repeatedChildren(parent: XmlObject, name: string): XmlObject[] {
  const value = parent[name];
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw malformed();
  return value.map((child) => {
    if (isXmlObject(child)) return child;
    if (typeof child === 'string') return {};
    throw malformed();
  });
}

/**
 * The DeleteObjects body: `<Delete><Quiet>true</Quiet><Object><Key>k</Key><VersionId>v</VersionId></Object>...`.
 * Empty -> MissingRequestBodyError; no Object, more than 1,000, or an Object without one Key -> MalformedXML.
 * A key is returned exactly, even empty: the operation answers for each key.
 */
export function parseDeleteRequest(body: Buffer): DeleteRequest {
  if (body.length === 0) throw new S3Error('MissingRequestBodyError');
  const root = parseRoot(body, DELETE_OBJECTS_MAX_BODY_BYTES, 'Delete');
  if (typeof root === 'string') throw malformed();
  const objects = repeatedChildren(root, 'Object').map((object) => {
    const versionId = childText(object, 'VersionId');
    const key = requiredChildText(object, 'Key');
    return versionId === undefined ? { key } : { key, versionId };
  });
  if (objects.length === 0 || objects.length > DELETE_OBJECTS_MAX_KEYS) throw malformed();
  return { quiet: parseBoolean(childText(root, 'Quiet')), objects };
}

function parseBoolean(text: string | undefined): boolean {
  if (text === undefined) return false;
  const value = text.trim().toLowerCase();
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw malformed();
}

/**
 * The CompleteMultipartUpload body: `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"..."</ETag>
 * <ChecksumCRC32>...</ChecksumCRC32></Part>...`. Parts are returned in the order sent: checking that they
 * ascend (InvalidPartOrder) and exist (InvalidPart) is the operation's job, with the upload at hand.
 */
export function parseCompleteMultipartUpload(body: Buffer): CompletedPart[] {
  if (body.length === 0) throw new S3Error('MissingRequestBodyError');
  const root = parseRoot(body, COMPLETE_MULTIPART_MAX_BODY_BYTES, 'CompleteMultipartUpload');
  if (typeof root === 'string') throw malformed();
  const parts = repeatedChildren(root, 'Part').map((part) => {
    const checksums: Checksums = {};
    for (const [field, element] of CHECKSUM_ELEMENTS) {
      const value = childText(part, element);
      if (value !== undefined) checksums[field] = value.trim();
    }
    return {
      partNumber: parsePartNumber(requiredChildText(part, 'PartNumber')),
      etag: requiredChildText(part, 'ETag').trim(),
      checksums,
    };
  });
  if (parts.length === 0) throw malformed();
  return parts;
}

/** A whole number; its range (1 to 10,000) is checked by the operation, which answers InvalidPart. */
function parsePartNumber(text: string): number {
  const digits = text.trim();
  if (!/^[0-9]{1,9}$/.test(digits)) throw malformed();
  return Number(digits);
}

/**
 * The optional CreateBucket body: `<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint>`.
 * An empty body is the common case (us-east-1 and most S3-compatible clients).
 */
export function parseCreateBucketConfiguration(body: Buffer): CreateBucketConfiguration {
  if (body.length === 0) return {};
  const root = parseRoot(body, CREATE_BUCKET_MAX_BODY_BYTES, 'CreateBucketConfiguration');
  if (typeof root === 'string') return {};
  const locationConstraint = childText(root, 'LocationConstraint');
  return locationConstraint === undefined ? {} : { locationConstraint: locationConstraint.trim() };
}
