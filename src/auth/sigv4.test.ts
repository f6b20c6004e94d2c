import aws4 from 'aws4';
import { describe, expect, it } from 'vitest';
import { EMPTY_SHA256 } from './canonical.js';
import { AuthError } from './errors.js';
import { createSigV4Verifier, parseSigV4, type SigV4Request } from './sigv4.js';

// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html and its siblings.
const AKID = 'AKIAIOSFODNN7EXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const EXAMPLE_NOW = new Date('2013-05-24T00:00:00Z');
const CREDENTIAL = `${AKID}/20130524/us-east-1/s3/aws4_request`;

const verifier = createSigV4Verifier({ lookupSecrets: async (id) => (id === AKID ? [SECRET] : null) });

function authorization(signedHeaders: string, signature: string): string {
  return `AWS4-HMAC-SHA256 Credential=${CREDENTIAL},SignedHeaders=${signedHeaders},Signature=${signature}`;
}

async function rejection(promise: Promise<unknown>): Promise<AuthError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

const getObjectExample = (): SigV4Request => ({
  method: 'GET',
  path: '/test.txt',
  query: '',
  headers: {
    host: 'examplebucket.s3.amazonaws.com',
    range: 'bytes=0-9',
    'x-amz-content-sha256': EMPTY_SHA256,
    'x-amz-date': '20130524T000000Z',
    authorization: authorization('host;range;x-amz-content-sha256;x-amz-date', 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41'),
  },
});

describe('AWS documentation examples', () => {
  it('GET Object with a Range header', async () => {
    const auth = await verifier.verify(getObjectExample(), EXAMPLE_NOW);
    expect(auth).toMatchObject({ accessKeyId: AKID, authType: 'header', region: 'us-east-1', payloadMode: 'SHA256', payloadSha256: EMPTY_SHA256, secretIndex: 0 });
  });

  it('PUT Object with a Date header and a $ in the key', async () => {
    await verifier.verify(
      {
        method: 'PUT',
        path: '/test%24file.text',
        query: '',
        headers: {
          host: 'examplebucket.s3.amazonaws.com',
          date: 'Fri, 24 May 2013 00:00:00 GMT',
          'x-amz-date': '20130524T000000Z',
          'x-amz-storage-class': 'REDUCED_REDUNDANCY',
          'x-amz-content-sha256': '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
          authorization: authorization('date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class', '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd'),
        },
      },
      EXAMPLE_NOW,
    );
  });

  it('GET Bucket lifecycle and ListObjects (sub-resource without value, query sorting)', async () => {
    const headers = { host: 'examplebucket.s3.amazonaws.com', 'x-amz-content-sha256': EMPTY_SHA256, 'x-amz-date': '20130524T000000Z' };
    const signed = 'host;x-amz-content-sha256;x-amz-date';
    await verifier.verify(
      { method: 'GET', path: '/', query: 'lifecycle', headers: { ...headers, authorization: authorization(signed, 'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543') } },
      EXAMPLE_NOW,
    );
    await verifier.verify(
      { method: 'GET', path: '/', query: 'max-keys=2&prefix=J', headers: { ...headers, authorization: authorization(signed, '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7') } },
      EXAMPLE_NOW,
    );
  });

  it('presigned GET Object', async () => {
    const query = `X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${encodeURIComponent(CREDENTIAL)}&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404`;
    const request = { method: 'GET', path: '/test.txt', query, headers: { host: 'examplebucket.s3.amazonaws.com' } };
    const auth = await verifier.verify(request, EXAMPLE_NOW);
    expect(auth).toMatchObject({ authType: 'presigned', payloadMode: 'UNSIGNED-PAYLOAD', expiresAt: new Date('2013-05-25T00:00:00Z') });
    const expired = await rejection(verifier.verify(request, new Date('2013-05-25T00:00:01Z')));
    expect(expired).toMatchObject({ code: 'AccessDenied', message: 'Request has expired', status: 403 });
    expect(expired.details).toMatchObject({ 'X-Amz-Expires': '86400', Expires: '2013-05-25T00:00:00Z' });
  });

  it('seed signatures of the chunked upload examples', async () => {
    const base = {
      host: 's3.amazonaws.com',
      'x-amz-date': '20130524T000000Z',
      'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': '66560',
    };
    const streaming = await verifier.verify(
      {
        method: 'PUT',
        path: '/examplebucket/chunkObject.txt',
        query: '',
        headers: {
          ...base,
          'content-length': '66824',
          'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
          authorization: authorization(
            'content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class',
            '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
          ),
        },
      },
      EXAMPLE_NOW,
    );
    expect(streaming.payloadMode).toBe('STREAMING-AWS4-HMAC-SHA256-PAYLOAD');
    expect(streaming.seedSignature).toBe('4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9');
    const trailer = await verifier.verify(
      {
        method: 'PUT',
        path: '/examplebucket/chunkObject.txt',
        query: '',
        headers: {
          ...base,
          'x-amz-trailer': 'x-amz-checksum-crc32c',
          'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
          authorization: authorization(
            'content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer',
            '106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e',
          ),
        },
      },
      EXAMPLE_NOW,
    );
    expect(trailer.payloadMode).toBe('STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER');
  });
});

describe('failures', () => {
  it('SignatureDoesNotMatch carries what a user needs to debug the client', async () => {
    const request = getObjectExample();
    const error = await rejection(verifier.verify({ ...request, headers: { ...request.headers, range: 'bytes=0-10' } }, EXAMPLE_NOW));
    expect(error.code).toBe('SignatureDoesNotMatch');
    expect(error.status).toBe(403);
    expect(error.details.CanonicalRequest).toBe(`GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-10\nx-amz-content-sha256:${EMPTY_SHA256}\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n${EMPTY_SHA256}`);
    expect(error.details.StringToSign).toMatch(/^AWS4-HMAC-SHA256\n20130524T000000Z\n20130524\/us-east-1\/s3\/aws4_request\n[0-9a-f]{64}$/);
    expect(error.details.StringToSignBytes).toMatch(/^41 57 53 34 2d /);
    expect(error.details.SignatureProvided).toBe('f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41');
    expect(error.details.AWSAccessKeyId).toBe(AKID);
  });

  it('unknown key, wrong secret, and a secret in its rotation grace', async () => {
    const unknown = createSigV4Verifier({ lookupSecrets: async () => null });
    expect((await rejection(unknown.verify(getObjectExample(), EXAMPLE_NOW))).code).toBe('InvalidAccessKeyId');
    const wrong = createSigV4Verifier({ lookupSecrets: async () => ['jts_other'] });
    expect((await rejection(wrong.verify(getObjectExample(), EXAMPLE_NOW))).code).toBe('SignatureDoesNotMatch');
    const rotating = createSigV4Verifier({ lookupSecrets: async () => ['jts_new', SECRET] });
    expect((await rotating.verify(getObjectExample(), EXAMPLE_NOW)).secretIndex).toBe(1);
  });

  it('RequestTimeTooSkewed beyond 15 minutes either way', async () => {
    const minutes = (n: number) => new Date(EXAMPLE_NOW.getTime() + n * 60_000);
    await verifier.verify(getObjectExample(), minutes(14));
    await verifier.verify(getObjectExample(), minutes(-14));
    const late = await rejection(verifier.verify(getObjectExample(), minutes(16)));
    expect(late.code).toBe('RequestTimeTooSkewed');
    expect(late.details.MaxAllowedSkewMilliseconds).toBe('900000');
    expect((await rejection(verifier.verify(getObjectExample(), minutes(-16)))).code).toBe('RequestTimeTooSkewed');
  });

  it('answers each malformed or unsupported request with the S3 code', async () => {
    const base = getObjectExample();
    const withHeaders = (headers: Record<string, string | undefined>): SigV4Request => ({ ...base, headers: { ...base.headers, ...headers } });
    const cases: [SigV4Request, string][] = [
      [withHeaders({ authorization: `AWS ${AKID}:frJIUN8DYpKDtOLCwo//yllqDzg=` }), 'InvalidRequest'],
      [withHeaders({ authorization: `AWS4-ECDSA-P256-SHA256 Credential=${CREDENTIAL}, SignedHeaders=host, Signature=00` }), 'NotImplemented'],
      [withHeaders({ authorization: 'Bearer abc' }), 'InvalidArgument'],
      [withHeaders({ authorization: `AWS4-HMAC-SHA256 Credential=${CREDENTIAL}, SignedHeaders=host` }), 'AuthorizationHeaderMalformed'],
      [withHeaders({ authorization: authorization('host', '0').replace('/s3/', '/ec2/') }), 'AuthorizationHeaderMalformed'],
      [withHeaders({ authorization: authorization('host', '0').replace('20130524/', '20130525/') }), 'AuthorizationHeaderMalformed'],
      [withHeaders({ authorization: authorization('host', '0').replace(`${AKID}/`, '') }), 'AuthorizationHeaderMalformed'],
      [withHeaders({ 'x-amz-date': undefined }), 'AccessDenied'],
      [withHeaders({ 'x-amz-content-sha256': undefined }), 'InvalidRequest'],
      [withHeaders({ 'x-amz-content-sha256': 'STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD' }), 'NotImplemented'],
      [withHeaders({ 'x-amz-content-sha256': 'SOMETHING-ELSE' }), 'InvalidArgument'],
      [withHeaders({ 'x-amz-meta-sneaky': 'unsigned' }), 'AccessDenied'],
      [withHeaders({ 'x-amz-security-token': 'token' }), 'InvalidToken'],
      [{ ...base, query: 'X-Amz-Algorithm=AWS4-HMAC-SHA256' }, 'InvalidArgument'],
    ];
    for (const [request, code] of cases) {
      const error = await rejection(verifier.verify(request, EXAMPLE_NOW));
      expect(error.code, JSON.stringify(request.headers.authorization ?? request.query)).toBe(code);
    }
    const unsignedHeader = await rejection(verifier.verify(withHeaders({ 'x-amz-meta-sneaky': 'unsigned' }), EXAMPLE_NOW));
    expect(unsignedHeader.details.HeadersNotSigned).toBe('x-amz-meta-sneaky');
  });

  it('checks the region when regions are configured', async () => {
    const euOnly = createSigV4Verifier({ lookupSecrets: async () => [SECRET], allowedRegions: ['eu-west-1'] });
    const error = await rejection(euOnly.verify(getObjectExample(), EXAMPLE_NOW));
    expect(error).toMatchObject({ code: 'AuthorizationHeaderMalformed', details: { Region: 'eu-west-1' } });
  });

  it('refuses presigned URLs that are malformed, too long-lived or not yet valid', async () => {
    const presigned = (params: Record<string, string>): SigV4Request => {
      const all: Record<string, string> = {
        'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
        'X-Amz-Credential': CREDENTIAL,
        'X-Amz-Date': '20130524T000000Z',
        'X-Amz-Expires': '86400',
        'X-Amz-SignedHeaders': 'host',
        'X-Amz-Signature': 'aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404',
        ...params,
      };
      const query = Object.entries(all)
        .filter(([, v]) => v !== '')
        .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
        .join('&');
      return { method: 'GET', path: '/test.txt', query, headers: { host: 'examplebucket.s3.amazonaws.com' } };
    };
    const expectCode = async (request: SigV4Request, code: string, message?: string, now = EXAMPLE_NOW) => {
      const error = await rejection(verifier.verify(request, now));
      expect(error.code).toBe(code);
      if (message !== undefined) expect(error.message).toBe(message);
    };
    await expectCode(presigned({ 'X-Amz-Expires': '604801' }), 'AuthorizationQueryParametersError');
    await expectCode(presigned({ 'X-Amz-Expires': '-1' }), 'AuthorizationQueryParametersError', 'X-Amz-Expires must be non-negative');
    await expectCode(presigned({ 'X-Amz-Expires': 'soon' }), 'AuthorizationQueryParametersError', 'X-Amz-Expires should be a number');
    await expectCode(presigned({ 'X-Amz-SignedHeaders': '' }), 'AuthorizationQueryParametersError');
    await expectCode(presigned({ 'X-Amz-Date': '2013-05-24' }), 'AuthorizationQueryParametersError');
    await expectCode(presigned({ 'X-Amz-Algorithm': 'AWS4-HMAC-SHA1' }), 'AuthorizationQueryParametersError');
    await expectCode(presigned({ 'X-Amz-Signature': 'ff'.repeat(32) }), 'SignatureDoesNotMatch');
    await expectCode(presigned({}), 'AccessDenied', 'Request is not yet valid', new Date('2013-05-23T23:44:00Z'));
    await verifier.verify(presigned({}), new Date('2013-05-23T23:46:00Z'));
    const sigV2 = { method: 'GET', path: '/b/k', query: 'AWSAccessKeyId=AKID&Signature=abc&Expires=1795846335', headers: { host: 'h' } };
    await expectCode(sigV2, 'InvalidRequest');
  });

  it('tells anonymous requests apart', async () => {
    const anonymous = { method: 'GET', path: '/b/k', query: 'list-type=2', headers: { host: 'h' } };
    expect(parseSigV4(anonymous)).toBeNull();
    expect((await rejection(verifier.verify(anonymous))).code).toBe('AccessDenied');
  });
});

describe('aws4 (npm) signed requests', () => {
  const now = new Date();
  const aws4Verifier = createSigV4Verifier({ lookupSecrets: async () => ['jts_aws4secret'] });
  const credentials = { accessKeyId: 'jt_test_aws4', secretAccessKey: 'jts_aws4secret' };

  function toRequest(signed: aws4.Request, method: string): SigV4Request {
    const path = signed.path ?? '/';
    const q = path.indexOf('?');
    const headers: Record<string, string> = { host: String(signed.host) };
    for (const [name, value] of Object.entries(signed.headers ?? {})) headers[name.toLowerCase()] = String(value);
    return { method, path: q < 0 ? path : path.slice(0, q), query: q < 0 ? '' : path.slice(q + 1), headers };
  }

  it('verifies header-signed requests, including its + as space in the path', async () => {
    for (const path of ['/bucket/plain.txt', '/bucket/some%20key+plus', '/bucket?list-type=2&prefix=a%20b%2Fc&delimiter=%2F', '/bucket/%E6%97%A5%E6%9C%AC']) {
      for (const method of ['GET', 'PUT']) {
        const body = method === 'PUT' ? 'payload' : undefined;
        const signed = aws4.sign({ host: 'localhost:9000', path, method, service: 's3', region: 'us-east-1', ...(body !== undefined && { body }) }, credentials);
        const auth = await aws4Verifier.verify(toRequest(signed, method), now);
        expect(auth.accessKeyId).toBe('jt_test_aws4');
      }
    }
  });

  it('verifies aws4 presigned URLs', async () => {
    const signed = aws4.sign({ host: 'localhost:9000', path: '/bucket/a%20b.txt', service: 's3', region: 'us-east-1', signQuery: true }, credentials);
    const auth = await aws4Verifier.verify(toRequest(signed, 'GET'), now);
    expect(auth).toMatchObject({ authType: 'presigned', payloadMode: 'UNSIGNED-PAYLOAD' });
  });
});
