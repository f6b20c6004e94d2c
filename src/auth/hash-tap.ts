import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { createChecksum, type ChecksumAlgorithm, type StreamingChecksum } from './checksums.js';
import { AuthError } from './errors.js';

/**
 * A pass-through that digests the (decoded) body once on its way to the backend: SHA-256 (the blob's
 * content address and the x-amz-content-sha256 check), MD5 (ETag, Content-MD5) and any flexible
 * checksums, plus the byte count. When the body ends it compares what the client declared and fails
 * the stream before letting the end through, so the backend write is aborted rather than completed.
 */

export interface DeclaredDigests {
  /** x-amz-content-sha256 when it is a hex digest (lower-case). */
  sha256Hex?: string;
  /** Content-MD5, base64 (already checked well-formed with parseContentMd5). */
  contentMd5Base64?: string;
  /** Declared flexible checksums, base64, from a header or an aws-chunked trailer. */
  checksums?: Partial<Record<ChecksumAlgorithm, string>>;
}

export interface HashTapOptions {
  /** Flexible checksums to compute (those declared are added automatically when given statically). */
  checksumAlgorithms?: readonly ChecksumAlgorithm[];
  /**
   * What to verify at the end. A function is called when the body has ended, which is when an
   * aws-chunked decoder upstream has read its trailers.
   */
  declared?: DeclaredDigests | (() => DeclaredDigests);
}

export interface HashTapResult {
  bytes: number;
  sha256Hex: string;
  md5Hex: string;
  md5Base64: string;
  /** The quoted MD5 that S3 returns as the ETag of a single-part object. */
  etag: string;
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
}

export class HashTap extends Transform {
  private readonly sha256: Hash = createHash('sha256');
  private readonly md5: Hash = createHash('md5');
  private readonly checksums = new Map<ChecksumAlgorithm, StreamingChecksum>();
  private bytes = 0;
  private finished: HashTapResult | undefined;

  constructor(private readonly options: HashTapOptions = {}) {
    super();
    const declared = typeof options.declared === 'function' ? undefined : options.declared;
    const algorithms = new Set<ChecksumAlgorithm>(options.checksumAlgorithms);
    for (const algorithm of Object.keys(declared?.checksums ?? {}) as ChecksumAlgorithm[]) algorithms.add(algorithm);
    for (const algorithm of algorithms) this.checksums.set(algorithm, createChecksum(algorithm));
  }

  /** Digests of the whole body; throws before the stream has finished. */
  get result(): HashTapResult {
    if (this.finished === undefined) throw new Error('HashTap: the body has not ended yet');
    return this.finished;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.sha256.update(chunk);
    this.md5.update(chunk);
    for (const checksum of this.checksums.values()) checksum.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.finish().then(
      () => callback(),
      (error: unknown) => callback(error as Error),
    );
  }

  private async finish(): Promise<void> {
    const declared = typeof this.options.declared === 'function' ? this.options.declared() : (this.options.declared ?? {});
    const md5 = this.md5.digest();
    const sha256Hex = this.sha256.digest('hex');
    // A checksum declared only in a trailer is not known up front; it is computed late from nothing,
    // so it has to have been asked for through checksumAlgorithms (createPayloadVerifier does that).
    for (const algorithm of Object.keys(declared.checksums ?? {}) as ChecksumAlgorithm[]) {
      if (!this.checksums.has(algorithm)) {
        throw new Error(`HashTap: ${algorithm} was declared at the end but not computed; list it in checksumAlgorithms`);
      }
    }
    const checksums: Partial<Record<ChecksumAlgorithm, string>> = {};
    for (const [algorithm, checksum] of this.checksums) checksums[algorithm] = await checksum.digestBase64();
    this.finished = {
      bytes: this.bytes,
      sha256Hex,
      md5Hex: md5.toString('hex'),
      md5Base64: md5.toString('base64'),
      etag: `"${md5.toString('hex')}"`,
      checksums,
    };
    verifyDeclared(this.finished, declared);
  }
}

/** Throws the S3 error for the first declared digest the body does not match. */
export function verifyDeclared(result: HashTapResult, declared: DeclaredDigests): void {
  if (declared.sha256Hex !== undefined && declared.sha256Hex.toLowerCase() !== result.sha256Hex) {
    throw new AuthError('XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.", {
      ClientComputedContentSHA256: declared.sha256Hex,
      S3ComputedContentSHA256: result.sha256Hex,
    });
  }
  if (declared.contentMd5Base64 !== undefined && declared.contentMd5Base64 !== result.md5Base64) {
    throw new AuthError('BadDigest', 'The Content-MD5 you specified did not match what we received.', {
      ExpectedDigest: declared.contentMd5Base64,
      CalculatedDigest: result.md5Base64,
    });
  }
  for (const [algorithm, expected] of Object.entries(declared.checksums ?? {}) as [ChecksumAlgorithm, string][]) {
    if (expected !== result.checksums[algorithm]) {
      throw new AuthError('BadDigest', `The ${algorithm} you specified did not match the calculated checksum.`);
    }
  }
}
