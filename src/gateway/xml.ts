/**
 * One builder per S3 response document. Element order is S3's wire order (what S3 sends, which is not
 * always the alphabetical order of the API reference's "Response Syntax"); each builder is pinned by a
 * golden test in xml.test.ts. ETags are given unquoted and written quoted, escaped as `&quot;`.
 */
import type { S3Error } from './errors.js';
import { S3_XMLNS, XmlWriter, s3UrlEncode, type XmlDoc } from './xml-writer.js';

export { S3_XMLNS, XML_DECLARATION, escapeXmlText, s3UrlEncode, type XmlDoc } from './xml-writer.js';

export interface Owner {
  id: string;
  /** S3 has been dropping DisplayName from responses; written only when given. */
  displayName?: string;
}

/** Base64 checksums, as in the `x-amz-checksum-*` headers. */
export interface Checksums {
  crc32?: string;
  crc32c?: string;
  crc64nvme?: string;
  sha1?: string;
  sha256?: string;
}

export type ChecksumType = 'COMPOSITE' | 'FULL_OBJECT';

/** `encoding-type=url` when the client asked for it; absent otherwise. */
export type EncodingType = 'url';

export const CHECKSUM_ELEMENTS = [
  ['crc32', 'ChecksumCRC32'],
  ['crc32c', 'ChecksumCRC32C'],
  ['crc64nvme', 'ChecksumCRC64NVME'],
  ['sha1', 'ChecksumSHA1'],
  ['sha256', 'ChecksumSHA256'],
] as const satisfies readonly (readonly [keyof Checksums, string])[];

/** `"<etag>"`; an ETag that already carries its quotes is left as it is. */
export function quoteEtag(etag: string): string {
  return etag.startsWith('"') ? etag : `"${etag}"`;
}

/** The ETag without surrounding quotes; clients send it back either way in CompleteMultipartUpload. */
export function unquoteEtag(etag: string): string {
  return etag.length >= 2 && etag.startsWith('"') && etag.endsWith('"') ? etag.slice(1, -1) : etag;
}

function writeOwner(w: XmlWriter, element: 'Owner' | 'Initiator', owner: Owner): void {
  w.start(element).element('ID', owner.id).optionalElement('DisplayName', owner.displayName).end();
}

function writeChecksums(w: XmlWriter, checksums: Checksums | undefined, checksumType?: ChecksumType): void {
  if (checksums !== undefined) {
    for (const [field, element] of CHECKSUM_ELEMENTS) w.optionalElement(element, checksums[field]);
  }
  w.optionalElement('ChecksumType', checksumType);
}

function keyEncoder(encodingType: EncodingType | undefined): (text: string) => string {
  return encodingType === 'url' ? s3UrlEncode : (text) => text;
}

function encodeOptional(encode: (text: string) => string, text: string | undefined): string | undefined {
  return text === undefined ? undefined : encode(text);
}

// ------------------------------------------------------------------------------------------------- Error

export interface ErrorContext {
  requestId: string;
  hostId?: string;
  /** Used when the error carries no resource of its own: the request's path, e.g. `/bucket/key`. */
  resource?: string;
}

/**
 * `<Error>`: Code, Message, the error's extra elements (Key, BucketName, StringToSign...), Resource,
 * RequestId, HostId. S3 sends the Error root without a namespace, so this one has none.
 */
export function errorXml(error: S3Error, context: ErrorContext): XmlDoc {
  const w = new XmlWriter().start('Error').element('Code', error.code).element('Message', error.message);
  for (const [name, value] of Object.entries(error.extra)) w.element(name, value);
  return w
    .optionalElement('Resource', error.resource ?? context.resource)
    .element('RequestId', context.requestId)
    .optionalElement('HostId', context.hostId)
    .end()
    .finish();
}

// ----------------------------------------------------------------------------------------------- Buckets

export interface ListAllMyBucketsInput {
  owner: Owner;
  buckets: readonly { name: string; creationDate: Date }[];
}

/** ListBuckets: Owner first, then Buckets with Name and CreationDate, as S3 sends them. */
export function listAllMyBucketsResultXml(input: ListAllMyBucketsInput): XmlDoc {
  const w = new XmlWriter().start('ListAllMyBucketsResult', S3_XMLNS);
  writeOwner(w, 'Owner', input.owner);
  w.start('Buckets');
  for (const bucket of input.buckets) {
    w.start('Bucket').element('Name', bucket.name).element('CreationDate', bucket.creationDate).end();
  }
  return w.end().end().finish();
}

/**
 * GetBucketLocation. Buckets in us-east-1 "have a LocationConstraint of null" (API reference), which S3
 * sends as an empty element, so '' and 'us-east-1' both give `<LocationConstraint .../>`.
 */
export function locationConstraintXml(region: string): XmlDoc {
  const w = new XmlWriter();
  if (region === '' || region === 'us-east-1') return w.emptyElement('LocationConstraint', S3_XMLNS).finish();
  return w.element('LocationConstraint', region, S3_XMLNS).finish();
}

/** GetBucketVersioning on a bucket that was never versioned: an empty configuration, as S3 answers. */
export function versioningConfigurationXml(): XmlDoc {
  return new XmlWriter().emptyElement('VersioningConfiguration', S3_XMLNS).finish();
}

// ------------------------------------------------------------------------------------------- ListObjects

export interface ListedObject {
  key: string;
  lastModified: Date;
  /** Unquoted: an MD5 hex, or `<hex>-<parts>` for a multipart object. */
  etag: string;
  size: number;
  /** Defaults to STANDARD. */
  storageClass?: string;
  /** ListObjects (v1) always lists owners; ListObjectsV2 only with `fetch-owner=true`. */
  owner?: Owner;
}

interface ListObjectsCommon {
  bucket: string;
  prefix: string;
  /** Written only when the request had a non-empty delimiter. */
  delimiter?: string;
  maxKeys: number;
  isTruncated: boolean;
  encodingType?: EncodingType;
  contents: readonly ListedObject[];
  commonPrefixes: readonly string[];
}

export interface ListObjectsV1Input extends ListObjectsCommon {
  marker: string;
  /** S3 returns it only for a truncated listing with a delimiter. */
  nextMarker?: string;
}

export interface ListObjectsV2Input extends ListObjectsCommon {
  continuationToken?: string;
  nextContinuationToken?: string;
  startAfter?: string;
}

/**
 * ListObjects (v1). With `encoding-type=url`, S3 encodes Delimiter, Marker, Prefix, NextMarker, Key and
 * CommonPrefixes; continuation tokens are opaque and never encoded.
 */
export function listBucketResultV1Xml(input: ListObjectsV1Input): XmlDoc {
  const encode = keyEncoder(input.encodingType);
  const w = new XmlWriter()
    .start('ListBucketResult', S3_XMLNS)
    .element('Name', input.bucket)
    .element('Prefix', encode(input.prefix))
    .element('Marker', encode(input.marker))
    .optionalElement('NextMarker', encodeOptional(encode, input.nextMarker))
    .element('MaxKeys', input.maxKeys);
  writeListTail(w, input, encode);
  return w.finish();
}

/** ListObjectsV2. KeyCount counts both Contents and CommonPrefixes, as S3 counts them. */
export function listBucketResultV2Xml(input: ListObjectsV2Input): XmlDoc {
  const encode = keyEncoder(input.encodingType);
  const w = new XmlWriter()
    .start('ListBucketResult', S3_XMLNS)
    .element('Name', input.bucket)
    .element('Prefix', encode(input.prefix))
    .optionalElement('StartAfter', encodeOptional(encode, input.startAfter))
    .optionalElement('ContinuationToken', input.continuationToken)
    .optionalElement('NextContinuationToken', input.nextContinuationToken)
    .element('KeyCount', input.contents.length + input.commonPrefixes.length)
    .element('MaxKeys', input.maxKeys);
  writeListTail(w, input, encode);
  return w.finish();
}

function writeListTail(w: XmlWriter, input: ListObjectsCommon, encode: (text: string) => string): void {
  w.optionalElement('Delimiter', input.delimiter ? encode(input.delimiter) : undefined)
    .optionalElement('EncodingType', input.encodingType)
    .element('IsTruncated', input.isTruncated);
  for (const object of input.contents) {
    w.start('Contents')
      .element('Key', encode(object.key))
      .element('LastModified', object.lastModified)
      .element('ETag', quoteEtag(object.etag))
      .element('Size', object.size);
    if (object.owner !== undefined) writeOwner(w, 'Owner', object.owner);
    w.element('StorageClass', object.storageClass ?? 'STANDARD').end();
  }
  for (const prefix of input.commonPrefixes) w.start('CommonPrefixes').element('Prefix', encode(prefix)).end();
  w.end();
}

// ------------------------------------------------------------------------------------------------- Copy

export interface CopyResultInput {
  lastModified: Date;
  etag: string;
  checksums?: Checksums;
}

/** CopyObject: LastModified, ETag, then any checksums. */
export function copyObjectResultXml(input: CopyResultInput): XmlDoc {
  return copyResult('CopyObjectResult', input);
}

/** UploadPartCopy: same shape as CopyObjectResult under another root. */
export function copyPartResultXml(input: CopyResultInput): XmlDoc {
  return copyResult('CopyPartResult', input);
}

function copyResult(root: 'CopyObjectResult' | 'CopyPartResult', input: CopyResultInput): XmlDoc {
  const w = new XmlWriter()
    .start(root, S3_XMLNS)
    .element('LastModified', input.lastModified)
    .element('ETag', quoteEtag(input.etag));
  writeChecksums(w, input.checksums);
  return w.end().finish();
}

// -------------------------------------------------------------------------------------------- DeleteObjects

/** One requested key's outcome, in request order; `error` makes it an `<Error>` entry. */
export interface DeleteOutcome {
  key: string;
  versionId?: string;
  error?: { code: string; message: string };
}

/** DeleteObjects. Quiet mode reports only the errors ("only the errors are returned", API reference). */
export function deleteResultXml(input: { quiet: boolean; outcomes: readonly DeleteOutcome[] }): XmlDoc {
  const w = new XmlWriter().start('DeleteResult', S3_XMLNS);
  for (const outcome of input.outcomes) {
    if (outcome.error === undefined) {
      if (input.quiet) continue;
      w.start('Deleted').element('Key', outcome.key).optionalElement('VersionId', outcome.versionId).end();
    } else {
      w.start('Error')
        .element('Key', outcome.key)
        .optionalElement('VersionId', outcome.versionId)
        .element('Code', outcome.error.code)
        .element('Message', outcome.error.message)
        .end();
    }
  }
  return w.end().finish();
}

// ---------------------------------------------------------------------------------------------- Multipart

export function initiateMultipartUploadResultXml(input: { bucket: string; key: string; uploadId: string }): XmlDoc {
  return new XmlWriter()
    .start('InitiateMultipartUploadResult', S3_XMLNS)
    .element('Bucket', input.bucket)
    .element('Key', input.key)
    .element('UploadId', input.uploadId)
    .end()
    .finish();
}

export interface CompleteMultipartUploadInput {
  /** The object's URL, e.g. `https://s3.example.com/bucket/key`. */
  location: string;
  bucket: string;
  key: string;
  /** Unquoted `<md5 of part md5s>-<part count>`. */
  etag: string;
  checksums?: Checksums;
  checksumType?: ChecksumType;
}

export function completeMultipartUploadResultXml(input: CompleteMultipartUploadInput): XmlDoc {
  const w = new XmlWriter()
    .start('CompleteMultipartUploadResult', S3_XMLNS)
    .element('Location', input.location)
    .element('Bucket', input.bucket)
    .element('Key', input.key)
    .element('ETag', quoteEtag(input.etag));
  writeChecksums(w, input.checksums, input.checksumType);
  return w.end().finish();
}

export interface ListedPart {
  partNumber: number;
  lastModified: Date;
  etag: string;
  size: number;
  checksums?: Checksums;
}

export interface ListPartsInput {
  bucket: string;
  key: string;
  uploadId: string;
  initiator: Owner;
  owner: Owner;
  storageClass?: string;
  partNumberMarker: number;
  nextPartNumberMarker?: number;
  maxParts: number;
  isTruncated: boolean;
  parts: readonly ListedPart[];
}

/** ListParts, in the order of the API reference's example: the upload's identity, then paging, then parts. */
export function listPartsResultXml(input: ListPartsInput): XmlDoc {
  const w = new XmlWriter()
    .start('ListPartsResult', S3_XMLNS)
    .element('Bucket', input.bucket)
    .element('Key', input.key)
    .element('UploadId', input.uploadId);
  writeOwner(w, 'Initiator', input.initiator);
  writeOwner(w, 'Owner', input.owner);
  w.element('StorageClass', input.storageClass ?? 'STANDARD')
    .element('PartNumberMarker', input.partNumberMarker)
    .optionalElement('NextPartNumberMarker', input.nextPartNumberMarker)
    .element('MaxParts', input.maxParts)
    .element('IsTruncated', input.isTruncated);
  for (const part of input.parts) {
    w.start('Part')
      .element('PartNumber', part.partNumber)
      .element('LastModified', part.lastModified)
      .element('ETag', quoteEtag(part.etag));
    writeChecksums(w, part.checksums);
    w.element('Size', part.size).end();
  }
  return w.end().finish();
}

export interface ListedUpload {
  key: string;
  uploadId: string;
  initiator: Owner;
  owner: Owner;
  storageClass?: string;
  initiated: Date;
}

export interface ListMultipartUploadsInput {
  bucket: string;
  keyMarker: string;
  uploadIdMarker: string;
  nextKeyMarker?: string;
  nextUploadIdMarker?: string;
  delimiter?: string;
  prefix: string;
  maxUploads: number;
  isTruncated: boolean;
  encodingType?: EncodingType;
  uploads: readonly ListedUpload[];
  commonPrefixes: readonly string[];
}

/**
 * ListMultipartUploads, in the order of the API reference's examples (markers, Delimiter, Prefix,
 * MaxUploads, IsTruncated, Upload, CommonPrefixes). The examples show no EncodingType; it is written
 * before IsTruncated, where ListBucketResult has it. With `encoding-type=url`, S3 encodes Delimiter,
 * KeyMarker, Prefix, NextKeyMarker and Key.
 */
export function listMultipartUploadsResultXml(input: ListMultipartUploadsInput): XmlDoc {
  const encode = keyEncoder(input.encodingType);
  const w = new XmlWriter()
    .start('ListMultipartUploadsResult', S3_XMLNS)
    .element('Bucket', input.bucket)
    .element('KeyMarker', encode(input.keyMarker))
    .element('UploadIdMarker', input.uploadIdMarker)
    .element('NextKeyMarker', encode(input.nextKeyMarker ?? ''))
    .element('NextUploadIdMarker', input.nextUploadIdMarker ?? '')
    .optionalElement('Delimiter', input.delimiter ? encode(input.delimiter) : undefined)
    .element('Prefix', encode(input.prefix))
    .element('MaxUploads', input.maxUploads)
    .optionalElement('EncodingType', input.encodingType)
    .element('IsTruncated', input.isTruncated);
  for (const upload of input.uploads) {
    w.start('Upload').element('Key', encode(upload.key)).element('UploadId', upload.uploadId);
    writeOwner(w, 'Initiator', upload.initiator);
    writeOwner(w, 'Owner', upload.owner);
    w.element('StorageClass', upload.storageClass ?? 'STANDARD').element('Initiated', upload.initiated).end();
  }
  for (const prefix of input.commonPrefixes) w.start('CommonPrefixes').element('Prefix', encode(prefix)).end();
  return w.end().finish();
}
