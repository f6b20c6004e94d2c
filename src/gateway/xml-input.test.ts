import { describe, expect, it } from 'vitest';
import { S3Error } from './errors.js';
import {
  COMPLETE_MULTIPART_MAX_BODY_BYTES,
  DELETE_OBJECTS_MAX_BODY_BYTES,
  parseCompleteMultipartUpload,
  parseCreateBucketConfiguration,
  parseDeleteRequest,
} from './xml-input.js';

const body = (text: string): Buffer => Buffer.from(text, 'utf8');

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof S3Error) return err.code;
    throw err;
  }
  throw new Error('expected an S3Error');
}

const deleteOf = (...objects: string[]): Buffer =>
  body(`<Delete>${objects.map((object) => `<Object>${object}</Object>`).join('')}</Delete>`);

describe('parseDeleteRequest', () => {
  it('parses_the_api_reference_example', () => {
    const request = parseDeleteRequest(
      body(
        '<?xml version="1.0" encoding="UTF-8"?>\n<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\n' +
          '  <Quiet>true</Quiet>\n  <Object>\n    <Key>sample1.txt</Key>\n  </Object>\n' +
          '  <Object>\n    <Key>sample2.txt</Key>\n    <VersionId>OYcLXagmS.WaD..oyH4KRguB95_YhLs7</VersionId>\n  </Object>\n</Delete>',
      ),
    );
    expect(request).toEqual({
      quiet: true,
      objects: [{ key: 'sample1.txt' }, { key: 'sample2.txt', versionId: 'OYcLXagmS.WaD..oyH4KRguB95_YhLs7' }],
    });
  });

  it('keeps_keys_exactly', () => {
    const request = parseDeleteRequest(
      deleteOf(
        '<Key>0001</Key>',
        '<Key>1e5</Key>',
        '<Key>true</Key>',
        '<Key>  spaced  </Key>',
        '<Key>a&amp;b&lt;c&gt;&quot;&apos;</Key>',
        '<Key>line&#13;break&#x0A;x</Key>',
        '<Key>../..//x</Key>',
        '<Key>日本語/ü</Key>',
        '<Key><![CDATA[<raw>&amp;]]></Key>',
        '<Key>__proto__</Key>',
      ),
    );
    expect(request.quiet).toBe(false);
    expect(request.objects.map((object) => object.key)).toEqual([
      '0001',
      '1e5',
      'true',
      '  spaced  ',
      `a&b<c>"'`,
      'line\rbreak\nx',
      '../..//x',
      '日本語/ü',
      '<raw>&amp;',
      '__proto__',
    ]);
  });

  it('normalizes_raw_line_endings_as_xml_requires', () => {
    expect(parseDeleteRequest(deleteOf('<Key>a\r\nb\rc</Key>')).objects[0]?.key).toBe('a\nb\nc');
  });

  it('returns_an_empty_key_for_the_operation_to_answer', () => {
    expect(parseDeleteRequest(deleteOf('<Key></Key>', '<Key/>')).objects).toEqual([{ key: '' }, { key: '' }]);
  });

  it('accepts_a_byte_order_mark_and_a_quiet_false', () => {
    const request = parseDeleteRequest(body('\uFEFF<Delete><Quiet>False</Quiet><Object><Key>k</Key></Object></Delete>'));
    expect(request).toEqual({ quiet: false, objects: [{ key: 'k' }] });
  });

  it('accepts_one_thousand_keys_and_refuses_one_more', () => {
    const keys = Array.from({ length: 1000 }, (_, i) => `<Key>k${i}</Key>`);
    expect(parseDeleteRequest(deleteOf(...keys)).objects).toHaveLength(1000);
    expect(codeOf(() => parseDeleteRequest(deleteOf(...keys, '<Key>one-more</Key>')))).toBe('MalformedXML');
  });

  it.each([
    ['not xml', 'hello'],
    ['an unclosed element', '<Delete><Object><Key>k</Key></Object>'],
    ['a wrong root', '<Remove><Object><Key>k</Key></Object></Remove>'],
    ['no objects', '<Delete><Quiet>true</Quiet></Delete>'],
    ['an object without a key', '<Delete><Object><VersionId>v</VersionId></Object></Delete>'],
    ['an object with two keys', '<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>'],
    ['a key holding an element', '<Delete><Object><Key><b>x</b></Key></Object></Delete>'],
    ['a bad quiet value', '<Delete><Quiet>yes</Quiet><Object><Key>k</Key></Object></Delete>'],
    ['an html entity', '<Delete><Object><Key>a&nbsp;</Key></Object></Delete>'],
    ['a reference to a control character', '<Delete><Object><Key>&#x1;</Key></Object></Delete>'],
    ['a reference to a surrogate', '<Delete><Object><Key>&#xD800;</Key></Object></Delete>'],
    ['a bare ampersand', '<Delete><Object><Key>a&b</Key></Object></Delete>'],
    ['a declared entity', '<!DOCTYPE Delete [<!ENTITY x "boom">]><Delete><Object><Key>&x;</Key></Object></Delete>'],
    ['two roots', '<Delete><Object><Key>k</Key></Object></Delete><Delete/>'],
  ])('refuses_%s_as_malformed_xml', (_label, text) => {
    expect(codeOf(() => parseDeleteRequest(body(text)))).toBe('MalformedXML');
  });

  it('refuses_invalid_utf8_as_malformed_xml', () => {
    const bytes = Buffer.concat([body('<Delete><Object><Key>'), Buffer.from([0xff, 0xfe]), body('</Key></Object></Delete>')]);
    expect(codeOf(() => parseDeleteRequest(bytes))).toBe('MalformedXML');
  });

  it('answers_an_empty_body_with_missing_request_body_error', () => {
    expect(codeOf(() => parseDeleteRequest(Buffer.alloc(0)))).toBe('MissingRequestBodyError');
  });

  it('answers_an_oversized_body_with_max_message_length_exceeded', () => {
    expect(codeOf(() => parseDeleteRequest(Buffer.alloc(DELETE_OBJECTS_MAX_BODY_BYTES + 1, 0x20)))).toBe('MaxMessageLengthExceeded');
  });
});

describe('parseCompleteMultipartUpload', () => {
  it('parses_parts_in_the_order_sent_with_etags_and_checksums', () => {
    const parts = parseCompleteMultipartUpload(
      body(
        '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\n' +
          '  <Part><ETag>"a54357aff0632cce46d942af68356b38"</ETag><PartNumber>2</PartNumber>' +
          '<ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>\n' +
          '  <Part><PartNumber> 1 </PartNumber><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag>' +
          '<ChecksumSHA256>47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=</ChecksumSHA256><ChecksumCRC64NVME>AAAAAAAAAAA=</ChecksumCRC64NVME></Part>\n' +
          '</CompleteMultipartUpload>',
      ),
    );
    expect(parts).toEqual([
      { partNumber: 2, etag: '"a54357aff0632cce46d942af68356b38"', checksums: { crc32: 'AAAAAA==' } },
      {
        partNumber: 1,
        etag: '"0c78aef83f66abc1fa1e8477f296d394"',
        checksums: { sha256: '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', crc64nvme: 'AAAAAAAAAAA=' },
      },
    ]);
  });

  it('leaves_the_part_number_range_to_the_operation', () => {
    const parts = parseCompleteMultipartUpload(
      body('<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>e</ETag></Part>' +
        '<Part><PartNumber>10001</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>'),
    );
    expect(parts.map((part) => part.partNumber)).toEqual([0, 10001]);
  });

  it.each([
    ['no parts', '<CompleteMultipartUpload></CompleteMultipartUpload>'],
    ['a part without a number', '<CompleteMultipartUpload><Part><ETag>e</ETag></Part></CompleteMultipartUpload>'],
    ['a part without an etag', '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>'],
    ['a part number that is not a whole number', '<CompleteMultipartUpload><Part><PartNumber>1.5</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>'],
    ['a negative part number', '<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>'],
    ['a wrong root', '<Complete><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></Complete>'],
  ])('refuses_%s_as_malformed_xml', (_label, text) => {
    expect(codeOf(() => parseCompleteMultipartUpload(body(text)))).toBe('MalformedXML');
  });

  it('answers_an_empty_or_oversized_body', () => {
    expect(codeOf(() => parseCompleteMultipartUpload(Buffer.alloc(0)))).toBe('MissingRequestBodyError');
    expect(codeOf(() => parseCompleteMultipartUpload(Buffer.alloc(COMPLETE_MULTIPART_MAX_BODY_BYTES + 1, 0x20)))).toBe(
      'MaxMessageLengthExceeded',
    );
  });

  it('parses_ten_thousand_parts_within_the_limit', () => {
    const parts = Array.from(
      { length: 10_000 },
      (_, i) => `  <Part>\n    <ETag>"${'0'.repeat(32)}"</ETag>\n    <PartNumber>${i + 1}</PartNumber>\n` +
        `    <ChecksumSHA256>${'A'.repeat(43)}=</ChecksumSHA256>\n  </Part>\n`,
    );
    const bytes = body(`<CompleteMultipartUpload>\n${parts.join('')}</CompleteMultipartUpload>`);
    expect(bytes.length).toBeLessThan(COMPLETE_MULTIPART_MAX_BODY_BYTES);
    expect(parseCompleteMultipartUpload(bytes)).toHaveLength(10_000);
  }, 20_000);
});

describe('parseCreateBucketConfiguration', () => {
  it('reads_the_location_constraint', () => {
    expect(
      parseCreateBucketConfiguration(
        body('<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>'),
      ),
    ).toEqual({ locationConstraint: 'eu-west-1' });
  });

  it('accepts_an_empty_body_or_configuration', () => {
    expect(parseCreateBucketConfiguration(Buffer.alloc(0))).toEqual({});
    expect(parseCreateBucketConfiguration(body('<CreateBucketConfiguration/>'))).toEqual({});
    expect(parseCreateBucketConfiguration(body('<CreateBucketConfiguration>\n</CreateBucketConfiguration>'))).toEqual({});
  });

  it('refuses_another_document', () => {
    expect(codeOf(() => parseCreateBucketConfiguration(body('<Delete/>')))).toBe('MalformedXML');
    expect(codeOf(() => parseCreateBucketConfiguration(body('<CreateBucketConfiguration>')))).toBe('MalformedXML');
  });
});
