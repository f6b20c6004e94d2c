import { describe, expect, it } from 'vitest';
import { INTERNAL_CODE_TO_S3, S3Error, S3_ERRORS, isS3ErrorCode, toS3Error, type S3ErrorCode } from './errors.js';
import { errorXml } from './xml.js';

/** Pinned here so that changing a status is a deliberate edit in two places. */
const EXPECTED_STATUS: Record<S3ErrorCode, number> = {
  AccessDenied: 403,
  AccountProblem: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  BucketAlreadyExists: 409,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  ExpiredToken: 400,
  IllegalLocationConstraintException: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidDigest: 400,
  InvalidLocationConstraint: 400,
  InvalidObjectState: 403,
  InvalidPart: 400,
  InvalidPartNumber: 416,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  InvalidStorageClass: 400,
  InvalidToken: 400,
  InvalidURI: 400,
  KeyTooLongError: 400,
  MalformedTrailerError: 400,
  MalformedXML: 400,
  MaxMessageLengthExceeded: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  MissingRequestBodyError: 400,
  MissingSecurityHeader: 400,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NoSuchVersion: 404,
  NotImplemented: 501,
  NotModified: 304,
  OperationAborted: 409,
  PreconditionFailed: 412,
  QuotaExceeded: 403,
  RequestTimeTooSkewed: 403,
  RequestTimeout: 400,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  SlowDown: 503,
  TooManyBuckets: 400,
  UnexpectedContent: 400,
  XAmzContentSHA256Mismatch: 400,
};

const DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';

describe('S3_ERRORS', () => {
  it('has_the_pinned_status_for_every_code', () => {
    const actual = Object.fromEntries(Object.entries(S3_ERRORS).map(([code, { status }]) => [code, status]));
    expect(actual).toEqual(EXPECTED_STATUS);
  });

  it.each(Object.keys(S3_ERRORS) as S3ErrorCode[])('renders_%s_as_s3_error_xml', (code) => {
    const error = new S3Error(code);
    const escapedMessage = S3_ERRORS[code].message.replaceAll('"', '&quot;');
    expect(errorXml(error, { requestId: 'REQ1', resource: '/b/k' }).body).toBe(
      `${DECLARATION}<Error><Code>${code}</Code><Message>${escapedMessage}</Message>` +
        '<Resource>/b/k</Resource><RequestId>REQ1</RequestId></Error>',
    );
    expect(error.status).toBe(EXPECTED_STATUS[code]);
  });

  it('maps_every_internal_code_to_a_real_code', () => {
    for (const mapping of Object.values(INTERNAL_CODE_TO_S3)) expect(isS3ErrorCode(mapping.code)).toBe(true);
  });
});

describe('S3Error', () => {
  it('defaults_message_and_status_from_the_table', () => {
    const error = new S3Error('NoSuchKey', { extra: { Key: 'a.txt' } });
    expect(error.message).toBe('The specified key does not exist.');
    expect(error.status).toBe(404);
    expect(error.extra).toEqual({ Key: 'a.txt' });
    expect(error.code).toBe('NoSuchKey');
  });

  it('takes_an_override_message_status_and_resource', () => {
    const error = new S3Error('AccessDenied', { message: 'Request has expired', status: 400, resource: '/b' });
    expect([error.message, error.status, error.resource]).toEqual(['Request has expired', 400, '/b']);
  });
});

describe('toS3Error', () => {
  it('passes_an_s3_error_through', () => {
    const error = new S3Error('NoSuchBucket');
    expect(toS3Error(error)).toBe(error);
  });

  it('turns_an_auth_error_with_an_aws_code_into_that_error_with_its_extra_fields', () => {
    const thrown = Object.assign(new Error('The request signature we calculated does not match'), {
      code: 'SignatureDoesNotMatch',
      AWSAccessKeyId: 'jt_abc',
      StringToSign: 'AWS4-HMAC-SHA256\n20260101T000000Z',
      CanonicalRequest: 'GET\n/\n\nhost:x\n\nhost\nUNSIGNED-PAYLOAD',
      SignatureProvided: 'abc',
      internalDetail: 'never rendered: not PascalCase',
    });
    const error = toS3Error(thrown);
    expect(error.code).toBe('SignatureDoesNotMatch');
    expect(error.status).toBe(403);
    expect(error.message).toBe('The request signature we calculated does not match');
    expect(error.extra).toEqual({
      AWSAccessKeyId: 'jt_abc',
      StringToSign: 'AWS4-HMAC-SHA256\n20260101T000000Z',
      CanonicalRequest: 'GET\n/\n\nhost:x\n\nhost\nUNSIGNED-PAYLOAD',
      SignatureProvided: 'abc',
    });
    expect(error.cause).toBe(thrown);
  });

  // The shape src/auth/errors.ts throws: extra elements under `details`, in S3's order.
  it('renders_the_details_of_an_auth_error_as_extra_elements', () => {
    const thrown = Object.assign(new Error('The authorization header is malformed; the region is wrong; expecting eu-west-1'), {
      name: 'AuthError',
      code: 'AuthorizationHeaderMalformed',
      status: 400,
      details: { Region: 'eu-west-1' },
    });
    const error = toS3Error(thrown);
    expect([error.code, error.status, error.extra]).toEqual(['AuthorizationHeaderMalformed', 400, { Region: 'eu-west-1' }]);
    expect(toS3Error({ code: 'MalformedTrailerError', status: 400, message: 'm', details: {} }).code).toBe('MalformedTrailerError');
    expect(toS3Error({ code: 'InvalidToken', status: 400, message: 'm' }).code).toBe('InvalidToken');
  });

  it('keeps_a_status_the_thrower_chose_for_an_aws_code', () => {
    const error = toS3Error({ code: 'AccessDenied', status: 400, message: 'There were headers present in the request which were not signed' });
    expect([error.code, error.status]).toEqual(['AccessDenied', 400]);
  });

  it('uses_the_default_message_when_an_aws_coded_error_has_none', () => {
    expect(toS3Error({ code: 'RequestTimeTooSkewed' }).message).toBe(S3_ERRORS.RequestTimeTooSkewed.message);
  });

  it.each([
    ['QUOTA_STORAGE_EXCEEDED', 'QuotaExceeded', 403],
    ['QUOTA_BANDWIDTH_EXCEEDED', 'QuotaExceeded', 403],
    ['RATE_LIMITED', 'SlowDown', 503],
    ['ENTITY_TOO_LARGE', 'EntityTooLarge', 400],
    ['BACKEND_UNAVAILABLE', 'ServiceUnavailable', 503],
    ['DB_UNAVAILABLE', 'ServiceUnavailable', 503],
    ['BACKEND_NOT_FOUND', 'InternalError', 500],
    ['BACKEND_INVALID_RANGE', 'InvalidRange', 416],
    ['ACCOUNT_SUSPENDED', 'AccessDenied', 403],
    ['ECONNREFUSED', 'ServiceUnavailable', 503],
    ['57P01', 'ServiceUnavailable', 503],
    ['08006', 'ServiceUnavailable', 503],
    ['53300', 'SlowDown', 503],
  ])('maps_internal_code_%s_to_%s', (internal, code, status) => {
    const error = toS3Error({ code: internal, message: 'detail' });
    expect([error.code, error.status]).toEqual([code, status]);
  });

  it('keeps_the_message_of_a_quota_error_written_for_the_tenant', () => {
    const error = toS3Error({ code: 'QUOTA_STORAGE_EXCEEDED', message: 'Storage quota exceeded: 10 GB used of 10 GB' });
    expect(error.message).toBe('Storage quota exceeded: 10 GB used of 10 GB');
  });

  it('hides_the_message_of_an_infrastructure_error', () => {
    const error = toS3Error({ code: 'BACKEND_UNAVAILABLE', message: 'connect ECONNREFUSED 10.0.0.7:443' });
    expect(error.message).toBe(S3_ERRORS.ServiceUnavailable.message);
    const pg = toS3Error(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }));
    expect(pg.message).not.toContain('administrator');
  });

  it('adds_retry_after_to_a_rate_limit', () => {
    expect(toS3Error({ code: 'RATE_LIMITED', message: 'x', retryAfterSeconds: 1.2 }).headers).toEqual({ 'Retry-After': '2' });
    // The shape src/quota/errors.ts throws.
    const quota = Object.assign(new Error('Rate limit exceeded'), { code: 'RATE_LIMITED', details: { limit: 100, retryAfterSeconds: 30 } });
    expect(toS3Error(quota).headers).toEqual({ 'Retry-After': '30' });
    expect(toS3Error(quota).extra).toEqual({});
    expect(toS3Error({ code: 'QUOTA_STORAGE_EXCEEDED', message: 'x', retryAfterSeconds: 3 }).headers).toEqual({});
  });

  it('never_passes_an_upstream_sdk_error_through_even_with_an_aws_code', () => {
    const upstream = Object.assign(new Error('Access Denied'), {
      name: 'AccessDenied',
      code: 'AccessDenied',
      $metadata: { httpStatusCode: 403 },
      $fault: 'client',
    });
    const error = toS3Error(upstream);
    expect([error.code, error.status, error.message]).toEqual(['InternalError', 500, S3_ERRORS.InternalError.message]);
  });

  it.each([
    ['a plain Error', new Error('relation "objects" does not exist')],
    ['an unknown code', { code: 'SOMETHING_NEW', message: 'secret detail' }],
    ['a string', 'boom'],
    ['null', null],
    ['a non-string code', { code: 42, message: 'x' }],
  ])('turns_%s_into_a_generic_internal_error', (_label, thrown) => {
    const error = toS3Error(thrown);
    expect([error.code, error.status, error.message]).toEqual(['InternalError', 500, S3_ERRORS.InternalError.message]);
    expect(error.cause).toBe(thrown);
  });

  it('does_not_take_codes_from_the_object_prototype', () => {
    expect(toS3Error({ code: 'toString' }).code).toBe('InternalError');
    expect(toS3Error({ code: '__proto__' }).code).toBe('InternalError');
  });
});
