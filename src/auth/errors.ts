/**
 * The one error type of the S3 authentication and payload-integrity surface (SigV4, aws-chunked,
 * checksums). `code` is always a real S3 error code, so the gateway's S3 error writer can render it
 * unchanged: `<Error><Code>{code}</Code><Message>{message}</Message>{details as elements}...</Error>`
 * with `status`. Codes and statuses follow https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
 */

export const AUTH_ERROR_STATUS = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  IncompleteBody: 400,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidDigest: 400,
  InvalidRequest: 400,
  InvalidToken: 400,
  MalformedTrailerError: 400,
  NotImplemented: 501,
  RequestTimeTooSkewed: 403,
  SignatureDoesNotMatch: 403,
  XAmzContentSHA256Mismatch: 400,
} as const;

export type AuthErrorCode = keyof typeof AUTH_ERROR_STATUS;

/**
 * Extra elements S3 puts in the error document after Message, in order (for example AWSAccessKeyId,
 * StringToSign, SignatureProvided, StringToSignBytes, CanonicalRequest, CanonicalRequestBytes for
 * SignatureDoesNotMatch; RequestTime, ServerTime, MaxAllowedSkewMilliseconds for RequestTimeTooSkewed).
 */
export type AuthErrorDetails = Readonly<Record<string, string>>;

export class AuthError extends Error {
  readonly status: number;

  constructor(
    readonly code: AuthErrorCode,
    message: string,
    readonly details: AuthErrorDetails = {},
  ) {
    super(message);
    this.name = 'AuthError';
    this.status = AUTH_ERROR_STATUS[code];
  }
}

export function isAuthError(error: unknown): error is AuthError {
  return error instanceof AuthError;
}

/** S3's `StringToSignBytes` / `CanonicalRequestBytes` form: each UTF-8 byte as two hex digits, space separated. */
export function spacedHexBytes(text: string): string {
  const hex = Buffer.from(text, 'utf8').toString('hex');
  const pairs: string[] = [];
  for (let i = 0; i < hex.length; i += 2) pairs.push(hex.slice(i, i + 2));
  return pairs.join(' ');
}

export const MESSAGES = {
  signatureDoesNotMatch:
    'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
  invalidAccessKeyId: 'The AWS Access Key Id you provided does not exist in our records.',
  incompleteBody: 'You did not provide the number of bytes specified by the Content-Length HTTP header.',
  malformedTrailer:
    'The request contained trailing data that was not well-formed or did not conform to our published schema.',
  notImplemented: 'A header you provided implies functionality that is not implemented.',
} as const;
