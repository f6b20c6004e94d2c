import { describe, expect, it } from 'vitest';
import { S3Error } from './errors.js';
import {
  completeMultipartUploadResultXml,
  copyObjectResultXml,
  copyPartResultXml,
  deleteResultXml,
  errorXml,
  escapeXmlText,
  initiateMultipartUploadResultXml,
  listAllMyBucketsResultXml,
  listBucketResultV1Xml,
  listBucketResultV2Xml,
  listMultipartUploadsResultXml,
  listPartsResultXml,
  locationConstraintXml,
  quoteEtag,
  s3UrlEncode,
  unquoteEtag,
  versioningConfigurationXml,
} from './xml.js';
import { XmlWriter } from './xml-writer.js';

const DECL = '<?xml version="1.0" encoding="UTF-8"?>\n';
const NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';
const T1 = new Date('2009-10-12T17:50:30Z');
const T2 = new Date('2026-01-02T03:04:05.678Z');
const OWNER = { id: 'acct-1', displayName: 'alice' };

describe('escapeXmlText', () => {
  it('escapes_markup_and_quotes', () => {
    expect(escapeXmlText(`a&b<c>d"e'f`)).toBe(`a&amp;b&lt;c&gt;d&quot;e'f`);
  });

  it('writes_characters_xml_1_0_cannot_carry_as_numeric_references_like_s3', () => {
    // S3 lists a key "a\x19\x07" as <Key>a&#x19;&#x7;</Key> (minio/minio-py#716).
    expect(escapeXmlText('a\u0019\u0007')).toBe('a&#x19;&#x7;');
    expect(escapeXmlText('\u0000\uFFFE\uFFFF')).toBe('&#x0;&#xfffe;&#xffff;');
  });

  it('keeps_a_carriage_return_as_a_reference_so_parsers_do_not_fold_it', () => {
    expect(escapeXmlText('a\rb\nc\td')).toBe('a&#xd;b\nc\td');
  });

  it('keeps_paired_surrogates_and_references_lone_ones', () => {
    expect(escapeXmlText('😀')).toBe('😀');
    expect(escapeXmlText('x\uD800y')).toBe('x&#xd800;y');
  });
});

describe('s3UrlEncode', () => {
  it.each([
    ['a b.txt', 'a+b.txt'],
    ['a+b.txt', 'a%2Bb.txt'],
    ['100%.csv', '100%25.csv'],
    ['한글/x.txt', '%ED%95%9C%EA%B8%80/x.txt'],
    ['test_file(3).png', 'test_file%283%29.png'],
    ['a\u0001b', 'a%01b'],
    ['safe-._*/AZaz09', 'safe-._*/AZaz09'],
  ])('encodes_%j_as_s3_does', (text, encoded) => {
    expect(s3UrlEncode(text)).toBe(encoded);
  });
});

describe('etags', () => {
  it('quotes_once_and_unquotes', () => {
    expect(quoteEtag('abc')).toBe('"abc"');
    expect(quoteEtag('"abc"')).toBe('"abc"');
    expect(unquoteEtag('"abc-2"')).toBe('abc-2');
    expect(unquoteEtag('abc')).toBe('abc');
  });
});

describe('XmlWriter', () => {
  it('refuses_to_finish_with_an_open_element', () => {
    expect(() => new XmlWriter().start('A').finish()).toThrow(/<A> open/);
    expect(() => new XmlWriter().end()).toThrow();
  });
});

describe('errorXml', () => {
  it('renders_extra_elements_after_the_message_then_resource_request_id_host_id', () => {
    const error = new S3Error('NoSuchKey', { extra: { Key: 'photos/a&b.jpg' } });
    expect(errorXml(error, { requestId: '4442587FB7D0A2F9', hostId: 'host-1', resource: '/mybucket/photos/a&b.jpg' }).body).toBe(
      `${DECL}<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>` +
        '<Key>photos/a&amp;b.jpg</Key><Resource>/mybucket/photos/a&amp;b.jpg</Resource>' +
        '<RequestId>4442587FB7D0A2F9</RequestId><HostId>host-1</HostId></Error>',
    );
  });

  it('renders_signature_debugging_fields_with_newlines_kept', () => {
    const error = new S3Error('SignatureDoesNotMatch', {
      extra: {
        AWSAccessKeyId: 'jt_key',
        StringToSign: 'AWS4-HMAC-SHA256\n20260101T000000Z\n20260101/us-east-1/s3/aws4_request\nabc',
        SignatureProvided: 'f00',
        CanonicalRequest: 'GET\n/b/k\n\nhost:h\n\nhost\nUNSIGNED-PAYLOAD',
      },
    });
    expect(errorXml(error, { requestId: 'R' }).body).toBe(
      `${DECL}<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message>` +
        '<AWSAccessKeyId>jt_key</AWSAccessKeyId>' +
        '<StringToSign>AWS4-HMAC-SHA256\n20260101T000000Z\n20260101/us-east-1/s3/aws4_request\nabc</StringToSign>' +
        '<SignatureProvided>f00</SignatureProvided>' +
        '<CanonicalRequest>GET\n/b/k\n\nhost:h\n\nhost\nUNSIGNED-PAYLOAD</CanonicalRequest>' +
        '<RequestId>R</RequestId></Error>',
    );
  });

  it('prefers_the_error_resource_over_the_request_path', () => {
    const error = new S3Error('NoSuchUpload', { resource: '/b/k', extra: { UploadId: 'u1' } });
    expect(errorXml(error, { requestId: 'R', resource: '/other' }).body).toBe(
      `${DECL}<Error><Code>NoSuchUpload</Code><Message>${error.message}</Message><UploadId>u1</UploadId>` +
        '<Resource>/b/k</Resource><RequestId>R</RequestId></Error>',
    );
  });
});

describe('bucket documents', () => {
  it('list_all_my_buckets_result', () => {
    const doc = listAllMyBucketsResultXml({
      owner: OWNER,
      buckets: [
        { name: 'images', creationDate: T1 },
        { name: 'logs', creationDate: T2 },
      ],
    });
    expect(doc.contentType).toBe('application/xml');
    expect(doc.body).toBe(
      `${DECL}<ListAllMyBucketsResult ${NS}><Owner><ID>acct-1</ID><DisplayName>alice</DisplayName></Owner>` +
        '<Buckets><Bucket><Name>images</Name><CreationDate>2009-10-12T17:50:30.000Z</CreationDate></Bucket>' +
        '<Bucket><Name>logs</Name><CreationDate>2026-01-02T03:04:05.678Z</CreationDate></Bucket></Buckets>' +
        '</ListAllMyBucketsResult>',
    );
  });

  it('list_all_my_buckets_result_with_none_and_no_display_name', () => {
    expect(listAllMyBucketsResultXml({ owner: { id: 'acct-1' }, buckets: [] }).body).toBe(
      `${DECL}<ListAllMyBucketsResult ${NS}><Owner><ID>acct-1</ID></Owner><Buckets></Buckets></ListAllMyBucketsResult>`,
    );
  });

  it('location_constraint', () => {
    expect(locationConstraintXml('eu-west-1').body).toBe(`${DECL}<LocationConstraint ${NS}>eu-west-1</LocationConstraint>`);
    expect(locationConstraintXml('us-east-1').body).toBe(`${DECL}<LocationConstraint ${NS}/>`);
    expect(locationConstraintXml('').body).toBe(`${DECL}<LocationConstraint ${NS}/>`);
  });

  it('versioning_configuration_of_a_never_versioned_bucket', () => {
    expect(versioningConfigurationXml().body).toBe(`${DECL}<VersioningConfiguration ${NS}/>`);
  });
});

describe('listBucketResultV1Xml', () => {
  it('lists_contents_with_owner_and_common_prefixes', () => {
    const doc = listBucketResultV1Xml({
      bucket: 'images',
      prefix: 'photos/',
      delimiter: '/',
      marker: '',
      nextMarker: 'photos/b.jpg',
      maxKeys: 2,
      isTruncated: true,
      contents: [{ key: 'photos/b.jpg', lastModified: T1, etag: 'fba9dede5f27731c9771645a39863328', size: 434234, owner: OWNER }],
      commonPrefixes: ['photos/2006/'],
    });
    expect(doc.body).toBe(
      `${DECL}<ListBucketResult ${NS}><Name>images</Name><Prefix>photos/</Prefix><Marker></Marker>` +
        '<NextMarker>photos/b.jpg</NextMarker><MaxKeys>2</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>' +
        '<Contents><Key>photos/b.jpg</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>' +
        '<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>' +
        '<Owner><ID>acct-1</ID><DisplayName>alice</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents>' +
        '<CommonPrefixes><Prefix>photos/2006/</Prefix></CommonPrefixes></ListBucketResult>',
    );
  });

  it('url_encodes_keys_prefixes_markers_and_delimiter_when_asked', () => {
    const doc = listBucketResultV1Xml({
      bucket: 'b',
      prefix: 'a b/',
      delimiter: '+',
      marker: 'a b/0',
      maxKeys: 1000,
      isTruncated: false,
      encodingType: 'url',
      contents: [{ key: 'a b/1\u0001', lastModified: T1, etag: 'e', size: 1 }],
      commonPrefixes: ['a b/c+'],
    });
    expect(doc.body).toBe(
      `${DECL}<ListBucketResult ${NS}><Name>b</Name><Prefix>a+b/</Prefix><Marker>a+b/0</Marker><MaxKeys>1000</MaxKeys>` +
        '<Delimiter>%2B</Delimiter><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>' +
        '<Contents><Key>a+b/1%01</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified><ETag>&quot;e&quot;</ETag>' +
        '<Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>' +
        '<CommonPrefixes><Prefix>a+b/c%2B</Prefix></CommonPrefixes></ListBucketResult>',
    );
  });
});

describe('listBucketResultV2Xml', () => {
  it('lists_an_empty_bucket', () => {
    const doc = listBucketResultV2Xml({ bucket: 'b', prefix: '', maxKeys: 1000, isTruncated: false, contents: [], commonPrefixes: [] });
    expect(doc.body).toBe(
      `${DECL}<ListBucketResult ${NS}><Name>b</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>` +
        '<IsTruncated>false</IsTruncated></ListBucketResult>',
    );
  });

  it('pages_with_tokens_start_after_and_counts_prefixes_in_key_count', () => {
    const doc = listBucketResultV2Xml({
      bucket: 'b',
      prefix: 'p/',
      delimiter: '/',
      startAfter: 'p/a',
      continuationToken: 'tok+/=1',
      nextContinuationToken: 'tok&2',
      maxKeys: 2,
      isTruncated: true,
      contents: [{ key: 'p/b<1>', lastModified: T2, etag: '9b2cf535f27731c974343645a3985328-3', size: 0, storageClass: 'STANDARD_IA' }],
      commonPrefixes: ['p/c/'],
    });
    expect(doc.body).toBe(
      `${DECL}<ListBucketResult ${NS}><Name>b</Name><Prefix>p/</Prefix><StartAfter>p/a</StartAfter>` +
        '<ContinuationToken>tok+/=1</ContinuationToken><NextContinuationToken>tok&amp;2</NextContinuationToken>' +
        '<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>' +
        '<Contents><Key>p/b&lt;1&gt;</Key><LastModified>2026-01-02T03:04:05.678Z</LastModified>' +
        '<ETag>&quot;9b2cf535f27731c974343645a3985328-3&quot;</ETag><Size>0</Size><StorageClass>STANDARD_IA</StorageClass></Contents>' +
        '<CommonPrefixes><Prefix>p/c/</Prefix></CommonPrefixes></ListBucketResult>',
    );
  });

  it('writes_control_characters_in_keys_as_references_without_encoding_type', () => {
    const doc = listBucketResultV2Xml({
      bucket: 'b',
      prefix: '',
      maxKeys: 1000,
      isTruncated: false,
      contents: [{ key: 'a\u0019\u0007', lastModified: T1, etag: 'e', size: 0 }],
      commonPrefixes: [],
    });
    expect(doc.body).toContain('<Key>a&#x19;&#x7;</Key>');
  });

  it('leaves_out_an_empty_delimiter_and_url_encodes_start_after_but_not_tokens', () => {
    const doc = listBucketResultV2Xml({
      bucket: 'b',
      prefix: '',
      delimiter: '',
      startAfter: 'x y',
      continuationToken: 'a+b',
      maxKeys: 1,
      isTruncated: false,
      encodingType: 'url',
      contents: [],
      commonPrefixes: [],
    });
    expect(doc.body).toBe(
      `${DECL}<ListBucketResult ${NS}><Name>b</Name><Prefix></Prefix><StartAfter>x+y</StartAfter>` +
        '<ContinuationToken>a+b</ContinuationToken><KeyCount>0</KeyCount><MaxKeys>1</MaxKeys>' +
        '<EncodingType>url</EncodingType><IsTruncated>false</IsTruncated></ListBucketResult>',
    );
  });
});

describe('copy results', () => {
  it('copy_object_result', () => {
    expect(copyObjectResultXml({ lastModified: T1, etag: '9b2cf535f27731c974343645a3985328' }).body).toBe(
      `${DECL}<CopyObjectResult ${NS}><LastModified>2009-10-12T17:50:30.000Z</LastModified>` +
        '<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyObjectResult>',
    );
  });

  it('copy_part_result_with_a_checksum', () => {
    expect(copyPartResultXml({ lastModified: T1, etag: 'abc', checksums: { crc32: 'AAAAAA==' } }).body).toBe(
      `${DECL}<CopyPartResult ${NS}><LastModified>2009-10-12T17:50:30.000Z</LastModified>` +
        '<ETag>&quot;abc&quot;</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></CopyPartResult>',
    );
  });
});

describe('deleteResultXml', () => {
  const outcomes = [
    { key: 'sample1.txt' },
    { key: 'sample2.txt', error: { code: 'AccessDenied', message: 'Access Denied' } },
    { key: 'a&b', versionId: 'null' },
  ];

  it('reports_deleted_keys_and_errors_in_request_order', () => {
    expect(deleteResultXml({ quiet: false, outcomes }).body).toBe(
      `${DECL}<DeleteResult ${NS}><Deleted><Key>sample1.txt</Key></Deleted>` +
        '<Error><Key>sample2.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>' +
        '<Deleted><Key>a&amp;b</Key><VersionId>null</VersionId></Deleted></DeleteResult>',
    );
  });

  it('reports_only_errors_in_quiet_mode', () => {
    expect(deleteResultXml({ quiet: true, outcomes }).body).toBe(
      `${DECL}<DeleteResult ${NS}><Error><Key>sample2.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>`,
    );
    expect(deleteResultXml({ quiet: true, outcomes: [{ key: 'k' }] }).body).toBe(`${DECL}<DeleteResult ${NS}></DeleteResult>`);
  });
});

describe('multipart documents', () => {
  it('initiate_multipart_upload_result', () => {
    expect(initiateMultipartUploadResultXml({ bucket: 'example-bucket', key: 'example-object', uploadId: 'VXBsb2FkIElE' }).body).toBe(
      `${DECL}<InitiateMultipartUploadResult ${NS}><Bucket>example-bucket</Bucket><Key>example-object</Key>` +
        '<UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>',
    );
  });

  it('complete_multipart_upload_result', () => {
    expect(
      completeMultipartUploadResultXml({
        location: 'http://s3.example.com/example-bucket/example-object',
        bucket: 'example-bucket',
        key: 'example-object',
        etag: '3858f62230ac3c915f300c664312c11f-9',
      }).body,
    ).toBe(
      `${DECL}<CompleteMultipartUploadResult ${NS}><Location>http://s3.example.com/example-bucket/example-object</Location>` +
        '<Bucket>example-bucket</Bucket><Key>example-object</Key><ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>' +
        '</CompleteMultipartUploadResult>',
    );
  });

  it('complete_multipart_upload_result_with_checksums_in_s3_order', () => {
    const body = completeMultipartUploadResultXml({
      location: 'l',
      bucket: 'b',
      key: 'k',
      etag: 'e-2',
      checksums: { sha256: 'S==', crc32: 'C==', crc64nvme: 'N==' },
      checksumType: 'COMPOSITE',
    }).body;
    expect(body).toBe(
      `${DECL}<CompleteMultipartUploadResult ${NS}><Location>l</Location><Bucket>b</Bucket><Key>k</Key>` +
        '<ETag>&quot;e-2&quot;</ETag><ChecksumCRC32>C==</ChecksumCRC32><ChecksumCRC64NVME>N==</ChecksumCRC64NVME>' +
        '<ChecksumSHA256>S==</ChecksumSHA256><ChecksumType>COMPOSITE</ChecksumType></CompleteMultipartUploadResult>',
    );
  });

  it('list_parts_result', () => {
    const body = listPartsResultXml({
      bucket: 'example-bucket',
      key: 'example-object',
      uploadId: 'XXBsb2FkIElE',
      initiator: OWNER,
      owner: OWNER,
      partNumberMarker: 1,
      nextPartNumberMarker: 3,
      maxParts: 2,
      isTruncated: true,
      parts: [
        { partNumber: 2, lastModified: T1, etag: '7778aef83f66abc1fa1e8477f296d394', size: 10485760 },
        { partNumber: 3, lastModified: T2, etag: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', size: 5, checksums: { crc32c: 'K==' } },
      ],
    }).body;
    expect(body).toBe(
      `${DECL}<ListPartsResult ${NS}><Bucket>example-bucket</Bucket><Key>example-object</Key><UploadId>XXBsb2FkIElE</UploadId>` +
        '<Initiator><ID>acct-1</ID><DisplayName>alice</DisplayName></Initiator>' +
        '<Owner><ID>acct-1</ID><DisplayName>alice</DisplayName></Owner><StorageClass>STANDARD</StorageClass>' +
        '<PartNumberMarker>1</PartNumberMarker><NextPartNumberMarker>3</NextPartNumberMarker><MaxParts>2</MaxParts>' +
        '<IsTruncated>true</IsTruncated>' +
        '<Part><PartNumber>2</PartNumber><LastModified>2009-10-12T17:50:30.000Z</LastModified>' +
        '<ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag><Size>10485760</Size></Part>' +
        '<Part><PartNumber>3</PartNumber><LastModified>2026-01-02T03:04:05.678Z</LastModified>' +
        '<ETag>&quot;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&quot;</ETag><ChecksumCRC32C>K==</ChecksumCRC32C><Size>5</Size></Part>' +
        '</ListPartsResult>',
    );
  });

  it('list_multipart_uploads_result', () => {
    const body = listMultipartUploadsResultXml({
      bucket: 'bucket',
      keyMarker: '',
      uploadIdMarker: '',
      nextKeyMarker: 'my-movie.m2ts',
      nextUploadIdMarker: 'YW55IGlkZWE',
      delimiter: '/',
      prefix: '',
      maxUploads: 3,
      isTruncated: true,
      uploads: [{ key: 'my-divisor', uploadId: 'XMgbGlr', initiator: OWNER, owner: OWNER, initiated: T1 }],
      commonPrefixes: ['photos/'],
    }).body;
    expect(body).toBe(
      `${DECL}<ListMultipartUploadsResult ${NS}><Bucket>bucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>` +
        '<NextKeyMarker>my-movie.m2ts</NextKeyMarker><NextUploadIdMarker>YW55IGlkZWE</NextUploadIdMarker>' +
        '<Delimiter>/</Delimiter><Prefix></Prefix><MaxUploads>3</MaxUploads><IsTruncated>true</IsTruncated>' +
        '<Upload><Key>my-divisor</Key><UploadId>XMgbGlr</UploadId>' +
        '<Initiator><ID>acct-1</ID><DisplayName>alice</DisplayName></Initiator>' +
        '<Owner><ID>acct-1</ID><DisplayName>alice</DisplayName></Owner>' +
        '<StorageClass>STANDARD</StorageClass><Initiated>2009-10-12T17:50:30.000Z</Initiated></Upload>' +
        '<CommonPrefixes><Prefix>photos/</Prefix></CommonPrefixes></ListMultipartUploadsResult>',
    );
  });

  it('list_multipart_uploads_result_url_encoded', () => {
    const body = listMultipartUploadsResultXml({
      bucket: 'b',
      keyMarker: 'a b',
      uploadIdMarker: 'u+1',
      prefix: 'a ',
      maxUploads: 1000,
      isTruncated: false,
      encodingType: 'url',
      uploads: [{ key: 'a b', uploadId: 'u+2', initiator: { id: 'i' }, owner: { id: 'o' }, initiated: T1 }],
      commonPrefixes: [],
    }).body;
    expect(body).toBe(
      `${DECL}<ListMultipartUploadsResult ${NS}><Bucket>b</Bucket><KeyMarker>a+b</KeyMarker><UploadIdMarker>u+1</UploadIdMarker>` +
        '<NextKeyMarker></NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker><Prefix>a+</Prefix>' +
        '<MaxUploads>1000</MaxUploads><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>' +
        '<Upload><Key>a+b</Key><UploadId>u+2</UploadId><Initiator><ID>i</ID></Initiator><Owner><ID>o</ID></Owner>' +
        '<StorageClass>STANDARD</StorageClass><Initiated>2009-10-12T17:50:30.000Z</Initiated></Upload>' +
        '</ListMultipartUploadsResult>',
    );
  });
});
