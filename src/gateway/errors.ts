/**
 * S3 errors on the data plane: one class, one table of real AWS codes, one translation function.
 *
 * Statuses and default messages follow "Error responses - Amazon S3"
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html); where S3's wire message differs
 * from the documentation's description, the wire message is used, minus mentions of "AWS accounts".
 * Only codes in this table ever go out, so a client's retry and error handling keep working.
 */

export const S3_ERRORS = {
  AccessDenied: { status: 403, message: 'Access Denied' },
  AccountProblem: {
    status: 403,
    message: 'There is a problem with your account that prevents the action from completing successfully.',
  },
  AuthorizationHeaderMalformed: { status: 400, message: 'The authorization header is malformed.' },
  AuthorizationQueryParametersError: {
    status: 400,
    message: 'The query-string authentication parameters are not valid.',
  },
  BadDigest: { status: 400, message: 'The Content-MD5 you specified did not match what we received.' },
  BucketAlreadyExists: {
    status: 409,
    message:
      'The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.',
  },
  BucketAlreadyOwnedByYou: {
    status: 409,
    message: 'Your previous request to create the named bucket succeeded and you already own it.',
  },
  BucketNotEmpty: { status: 409, message: 'The bucket you tried to delete is not empty' },
  EntityTooLarge: { status: 400, message: 'Your proposed upload exceeds the maximum allowed object size.' },
  EntityTooSmall: { status: 400, message: 'Your proposed upload is smaller than the minimum allowed object size.' },
  ExpiredToken: { status: 400, message: 'The provided token has expired.' },
  IllegalLocationConstraintException: {
    status: 400,
    message: 'The unspecified location constraint is incompatible for the region specific endpoint this request was sent to.',
  },
  IncompleteBody: {
    status: 400,
    message: 'You did not provide the number of bytes specified by the Content-Length HTTP header',
  },
  InternalError: { status: 500, message: 'We encountered an internal error. Please try again.' },
  InvalidAccessKeyId: { status: 403, message: 'The Access Key Id you provided does not exist in our records.' },
  InvalidArgument: { status: 400, message: 'Invalid Argument' },
  InvalidBucketName: { status: 400, message: 'The specified bucket is not valid.' },
  InvalidDigest: { status: 400, message: 'The Content-MD5 you specified is not valid.' },
  InvalidLocationConstraint: { status: 400, message: 'The specified location-constraint is not valid' },
  InvalidObjectState: { status: 403, message: 'The operation is not valid for the current state of the object.' },
  InvalidPart: {
    status: 400,
    message:
      "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
  },
  InvalidPartNumber: { status: 416, message: 'The requested partnumber is not satisfiable' },
  InvalidPartOrder: {
    status: 400,
    message: 'The list of parts was not in ascending order. Parts must be ordered by part number.',
  },
  InvalidRange: { status: 416, message: 'The requested range is not satisfiable' },
  InvalidRequest: { status: 400, message: 'Invalid Request' },
  InvalidStorageClass: { status: 400, message: 'The storage class you specified is not valid' },
  InvalidToken: { status: 400, message: 'The provided token is malformed or otherwise invalid.' },
  InvalidURI: { status: 400, message: "Couldn't parse the specified URI." },
  KeyTooLongError: { status: 400, message: 'Your key is too long' },
  MalformedTrailerError: {
    status: 400,
    message: 'The request contained trailing data that was not well-formed or did not conform to our published schema.',
  },
  MalformedXML: {
    status: 400,
    message: 'The XML you provided was not well-formed or did not validate against our published schema',
  },
  MaxMessageLengthExceeded: { status: 400, message: 'Your request was too big.' },
  MetadataTooLarge: { status: 400, message: 'Your metadata headers exceed the maximum allowed metadata size.' },
  MethodNotAllowed: { status: 405, message: 'The specified method is not allowed against this resource.' },
  MissingContentLength: { status: 411, message: 'You must provide the Content-Length HTTP header.' },
  MissingRequestBodyError: { status: 400, message: 'Request Body is empty' },
  MissingSecurityHeader: { status: 400, message: 'Your request is missing a required header.' },
  NoSuchBucket: { status: 404, message: 'The specified bucket does not exist' },
  NoSuchKey: { status: 404, message: 'The specified key does not exist.' },
  NoSuchUpload: {
    status: 404,
    message:
      'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
  },
  NoSuchVersion: { status: 404, message: 'The specified version does not exist.' },
  NotImplemented: { status: 501, message: 'A header you provided implies functionality that is not implemented' },
  NotModified: { status: 304, message: 'Not Modified' },
  OperationAborted: {
    status: 409,
    message: 'A conflicting conditional operation is currently in progress against this resource. Try again.',
  },
  PreconditionFailed: { status: 412, message: 'At least one of the pre-conditions you specified did not hold' },
  // Not an AWS code: the product's documented answer to a storage or bandwidth quota. 403 keeps the SDKs
  // from retrying it.
  QuotaExceeded: { status: 403, message: 'Your storage or bandwidth quota has been exceeded.' },
  RequestTimeTooSkewed: {
    status: 403,
    message: 'The difference between the request time and the current time is too large.',
  },
  RequestTimeout: {
    status: 400,
    message:
      'Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.',
  },
  ServiceUnavailable: { status: 503, message: 'The service is temporarily unavailable. Please try again.' },
  SignatureDoesNotMatch: {
    status: 403,
    message:
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
  },
  SlowDown: { status: 503, message: 'Please reduce your request rate.' },
  TooManyBuckets: { status: 400, message: 'You have attempted to create more buckets than allowed' },
  UnexpectedContent: { status: 400, message: 'This request does not support content' },
  XAmzContentSHA256Mismatch: {
    status: 400,
    message: "The provided 'x-amz-content-sha256' header does not match what was computed.",
  },
} as const satisfies Record<string, { status: number; message: string }>;

export type S3ErrorCode = keyof typeof S3_ERRORS;

export function isS3ErrorCode(code: string): code is S3ErrorCode {
  return Object.hasOwn(S3_ERRORS, code);
}

/** Values of extra XML elements, e.g. `{ Key: 'a.txt' }` or `{ ArgumentName: 'partNumber', ArgumentValue: '0' }`. */
export type S3ErrorExtra = Readonly<Record<string, string | number>>;

export interface S3ErrorOptions {
  /** Defaults to the table's message for the code. */
  message?: string;
  /** Defaults to the table's status; an override exists because S3 itself sends a few codes with two statuses. */
  status?: number;
  resource?: string;
  /** Rendered after Message as `<Name>value</Name>`, in insertion order. Names are PascalCase, as S3's are. */
  extra?: S3ErrorExtra;
  /** Response headers the error implies, e.g. `Retry-After` on SlowDown. */
  headers?: Readonly<Record<string, string>>;
  cause?: unknown;
}

export class S3Error extends Error {
  readonly code: S3ErrorCode;
  readonly status: number;
  readonly resource: string | undefined;
  readonly extra: S3ErrorExtra;
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: S3ErrorCode, options: S3ErrorOptions = {}) {
    const message = options.message ?? S3_ERRORS[code].message;
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'S3Error';
    this.code = code;
    this.status = options.status ?? S3_ERRORS[code].status;
    this.resource = options.resource;
    this.extra = options.extra ?? {};
    this.headers = options.headers ?? {};
  }
}

interface InternalCodeMapping {
  code: S3ErrorCode;
  /** True when the internal message was written for the tenant (quota figures); false hides it. */
  keepMessage: boolean;
}

const hidden = (code: S3ErrorCode): InternalCodeMapping => ({ code, keepMessage: false });
const shown = (code: S3ErrorCode): InternalCodeMapping => ({ code, keepMessage: true });

/**
 * Internal error codes (stable strings modules throw) and the S3 answer each one gets. Anything not listed here and
 * not an AWS code becomes InternalError with the generic message.
 */
export const INTERNAL_CODE_TO_S3 = {
  QUOTA_STORAGE_EXCEEDED: shown('QuotaExceeded'),
  QUOTA_BANDWIDTH_EXCEEDED: shown('QuotaExceeded'),
  ENTITY_TOO_LARGE: shown('EntityTooLarge'),
  RATE_LIMITED: hidden('SlowDown'),
  ACCOUNT_SUSPENDED: hidden('AccessDenied'),
  DB_UNAVAILABLE: hidden('ServiceUnavailable'),
  BACKEND_UNAVAILABLE: hidden('ServiceUnavailable'),
  BACKEND_INVALID_RANGE: hidden('InvalidRange'),
  // The object's row exists but its bytes are gone: our fault, not the client's, so not NoSuchKey.
  BACKEND_NOT_FOUND: hidden('InternalError'),
  BACKEND_ABORTED: hidden('InternalError'),
  BACKEND_FAILED: hidden('InternalError'),

  // A dependency that cannot be reached (Node socket errors raised by pg or the backend's HTTP client).
  ECONNREFUSED: hidden('ServiceUnavailable'),
  ECONNRESET: hidden('ServiceUnavailable'),
  ECONNABORTED: hidden('ServiceUnavailable'),
  ETIMEDOUT: hidden('ServiceUnavailable'),
  EPIPE: hidden('ServiceUnavailable'),
  EHOSTUNREACH: hidden('ServiceUnavailable'),
  ENETUNREACH: hidden('ServiceUnavailable'),
  ENOTFOUND: hidden('ServiceUnavailable'),
  EAI_AGAIN: hidden('ServiceUnavailable'),

  // PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html).
  // Class 08, connection exception, and 57P01-57P03, the server shutting down or starting: unavailable.
  '08000': hidden('ServiceUnavailable'),
  '08001': hidden('ServiceUnavailable'),
  '08003': hidden('ServiceUnavailable'),
  '08004': hidden('ServiceUnavailable'),
  '08006': hidden('ServiceUnavailable'),
  '08P01': hidden('ServiceUnavailable'),
  '57P01': hidden('ServiceUnavailable'),
  '57P02': hidden('ServiceUnavailable'),
  '57P03': hidden('ServiceUnavailable'),
  // Overload: too_many_connections, configuration_limit_exceeded, query_canceled (statement timeout).
  // SlowDown makes the SDKs back off before retrying.
  '53300': hidden('SlowDown'),
  '53400': hidden('SlowDown'),
  '57014': hidden('SlowDown'),
} as const satisfies Record<string, InternalCodeMapping>;

const EXTRA_ELEMENT_NAME = /^[A-Z][A-Za-z0-9]*$/;

/**
 * The one translation to S3 at the gateway edge. Matches on `.code`, never on the
 * class, so errors from any module translate. Upstream SDK errors (they carry `$metadata`) never pass
 * through: our backend's AccessDenied means our own credentials failed, which is a 500 to the tenant.
 */
export function toS3Error(err: unknown): S3Error {
  if (err instanceof S3Error) return err;
  if (typeof err !== 'object' || err === null) return internalError(err);
  const record = err as Record<string, unknown>;
  const code = record['code'];
  if (typeof code !== 'string' || '$metadata' in record || '$fault' in record) return internalError(err);

  const message = typeof record['message'] === 'string' && record['message'] !== '' ? record['message'] : undefined;
  if (isS3ErrorCode(code)) {
    const status = record['status'];
    const resource = record['resource'];
    const validStatus = typeof status === 'number' && Number.isInteger(status) && status >= 300 && status <= 599;
    return new S3Error(code, {
      message,
      status: validStatus ? status : undefined,
      resource: typeof resource === 'string' ? resource : undefined,
      extra: extraElements(record),
      headers: retryAfterHeader(record, S3_ERRORS[code].status),
      cause: err,
    });
  }
  if (Object.hasOwn(INTERNAL_CODE_TO_S3, code)) {
    const mapping: InternalCodeMapping = INTERNAL_CODE_TO_S3[code as keyof typeof INTERNAL_CODE_TO_S3];
    return new S3Error(mapping.code, {
      message: mapping.keepMessage ? message : undefined,
      headers: retryAfterHeader(record, S3_ERRORS[mapping.code].status),
      cause: err,
    });
  }
  return internalError(err);
}

function internalError(cause: unknown): S3Error {
  return new S3Error('InternalError', { cause });
}

/**
 * The extra elements of an error thrown with an AWS code: the PascalCase string or number entries of its
 * `details` (AuthError's StringToSign, CanonicalRequest, Region...) and of the error itself. Lower-case
 * fields are internal and never rendered.
 */
function extraElements(record: Record<string, unknown>): S3ErrorExtra {
  const extra: Record<string, string | number> = {};
  for (const source of [detailsOf(record), record]) {
    for (const [name, value] of Object.entries(source)) {
      if (!EXTRA_ELEMENT_NAME.test(name)) continue;
      if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))) extra[name] = value;
    }
  }
  return extra;
}

/**
 * A 503 tells the client when to come back if the thrower knew: `retryAfterSeconds` on the error or in
 * its `details` (QuotaError from the rate limiter).
 */
function retryAfterHeader(record: Record<string, unknown>, status: number): Record<string, string> | undefined {
  const seconds = record['retryAfterSeconds'] ?? detailsOf(record)['retryAfterSeconds'];
  if (status !== 503 || typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return undefined;
  return { 'Retry-After': String(Math.ceil(seconds)) };
}

function detailsOf(record: Record<string, unknown>): Record<string, unknown> {
  const details = record['details'];
  return typeof details === 'object' && details !== null ? (details as Record<string, unknown>) : {};
}
