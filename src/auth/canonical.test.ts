import { describe, expect, it } from 'vitest';
import {
  SigningKeyCache,
  canonicalHeaderValue,
  canonicalHeadersBlock,
  canonicalQueryString,
  canonicalUri,
  deriveSigningKey,
  parseQuery,
  uriEncode,
} from './canonical.js';

describe('canonicalUri', () => {
  it('keeps a path that is already canonical, including //, . and .. (S3 does not normalize)', () => {
    expect(canonicalUri('/bucket/a//b/./c/../d')).toBe('/bucket/a//b/./c/../d');
    expect(canonicalUri('')).toBe('/');
    expect(canonicalUri('/')).toBe('/');
  });

  it("re-encodes what clients leave raw or escape differently to AWS's UriEncode of the decoded key", () => {
    // Go's PathEscape (rclone, minio-go) leaves these raw; the JS SDK and botocore escape them.
    expect(canonicalUri("/b/a+b!*'()")).toBe('/b/a%2Bb%21%2A%27%28%29');
    expect(canonicalUri('/b/a%2Bb%21%2A%27%28%29')).toBe('/b/a%2Bb%21%2A%27%28%29');
    // Old clients escape the unreserved '~' and use lower-case hex.
    expect(canonicalUri('/b/%7Euser/%c3%a9')).toBe('/b/~user/%C3%A9');
    expect(canonicalUri('/b/a b/é')).toBe('/b/a%20b/%C3%A9');
    expect(canonicalUri('/b/100%25')).toBe('/b/100%25');
    // A '%' that starts no escape is a literal percent sign.
    expect(canonicalUri('/b/100%')).toBe('/b/100%25');
  });

  it('reads %2F as a slash, as S3 does, and + as a space only when asked', () => {
    expect(canonicalUri('/b/a%2Fb')).toBe('/b/a/b');
    expect(canonicalUri('/b/a+b', true)).toBe('/b/a%20b');
  });
});

describe('canonicalQueryString', () => {
  it('sorts by name then value, gives bare names an empty value and encodes from the decoded form', () => {
    expect(canonicalQueryString('prefix=J&max-keys=2')).toBe('max-keys=2&prefix=J');
    expect(canonicalQueryString('lifecycle')).toBe('lifecycle=');
    expect(canonicalQueryString('a=2&a=1&b&&c=')).toBe('a=1&a=2&b=&c=');
    expect(canonicalQueryString('prefix=a+b%2fc%7E*')).toBe('prefix=a%20b%2Fc~%2A');
    expect(canonicalQueryString('prefix=a+b', undefined, false)).toBe('prefix=a%2Bb');
  });

  it('drops X-Amz-Signature when asked', () => {
    expect(canonicalQueryString('X-Amz-Signature=abc&X-Amz-Date=1', 'X-Amz-Signature')).toBe('X-Amz-Date=1');
  });

  it('parses decoded parameters in order', () => {
    expect(parseQuery('a=1%202&b&c=x+y')).toEqual([
      { name: 'a', value: '1 2' },
      { name: 'b', value: '' },
      { name: 'c', value: 'x y' },
    ]);
  });
});

describe('canonical headers', () => {
  it('trims, folds inner whitespace and joins repeated headers with commas', () => {
    expect(canonicalHeaderValue('  a   b \t c ')).toBe('a b c');
    expect(canonicalHeaderValue(['x ', ' y  z'])).toBe('x,y z');
    expect(canonicalHeaderValue(undefined)).toBe('');
    expect(canonicalHeadersBlock({ host: 'h:9000', 'x-amz-meta-a': ' 1  2 ' }, ['host', 'x-amz-meta-a'])).toBe('host:h:9000\nx-amz-meta-a:1 2\n');
  });
});

describe('signing keys', () => {
  it('derives the key of the AWS SigV4 documentation example', () => {
    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html (iam, 20150830)
    const key = deriveSigningKey('wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', '20150830', 'us-east-1', 'iam');
    expect(key.toString('hex')).toBe('c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9');
  });

  it('caches per secret, date, region and service', () => {
    const cache = new SigningKeyCache(2);
    const first = cache.get('s1', '20240101', 'us-east-1', 's3');
    expect(cache.get('s1', '20240101', 'us-east-1', 's3')).toBe(first);
    expect(cache.get('s2', '20240101', 'us-east-1', 's3')).not.toBe(first);
    expect(cache.get('s1', '20240102', 'us-east-1', 's3').equals(first)).toBe(false);
  });

  it('encodes like the SDKs', () => {
    expect(uriEncode("a b+c!*'()~é/x")).toBe('a%20b%2Bc%21%2A%27%28%29~%C3%A9%2Fx');
    expect(uriEncode('a/b', true)).toBe('a/b');
  });
});
