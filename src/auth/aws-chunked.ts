import { createHash, timingSafeEqual, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { EMPTY_SHA256, hmacSha256, sha256Hex } from './canonical.js';
import { AuthError, MESSAGES } from './errors.js';
import type { ChunkSigningContext, StreamingPayloadMode } from './sigv4.js';

/**
 * Decoder for `Content-Encoding: aws-chunked` bodies.
 *
 * Signed (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html):
 *   <hex size>;chunk-signature=<sig>\r\n<data>\r\n ... 0;chunk-signature=<sig>\r\n\r\n
 * each signature = HMAC(kSigning, "AWS4-HMAC-SHA256-PAYLOAD\n<amz date>\n<scope>\n<previous signature>\n
 * <sha256 of ''>\n<sha256 of data>"), the chain starting at the request's seed signature.
 *
 * With trailers (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html), the final
 * 0-size chunk is followed by `name:value\r\n` lines, then (signed mode) `x-amz-trailer-signature:<sig>\r\n`,
 * then `\r\n`. The trailer signature = HMAC(kSigning, "AWS4-HMAC-SHA256-TRAILER\n<amz date>\n<scope>\n
 * <final chunk signature>\n<sha256 of the trailers as 'name:value\n' lines>"). In
 * STREAMING-UNSIGNED-PAYLOAD-TRAILER the chunks carry no signature (`<hex size>\r\n<data>\r\n`).
 *
 * Chunk boundaries may fall anywhere across reads. Data of an unsigned chunk streams straight through;
 * data of a signed chunk is held (at most one chunk, up to maxSignedChunkBytes) until its signature is
 * verified, so nothing unverified reaches the consumer.
 */

export interface AwsChunkedDecoderOptions {
  mode: StreamingPayloadMode;
  /** Required for the two signed modes (a VerifiedSigV4 will do). */
  signing?: ChunkSigningContext;
  /** x-amz-decoded-content-length, when sent: the decoded body must be exactly this long. */
  decodedContentLength?: number;
  /** Trailer names announced in x-amz-trailer, lower-case: these and only these may appear. */
  declaredTrailers?: readonly string[];
  /** The largest signed chunk held while its signature is checked. */
  maxSignedChunkBytes?: number;
}

// Clients that sign chunks use 64 KiB (minio-go) to 128 KiB (Java SDK v2); S3 documents an 8 KiB
// minimum and no maximum, so the cap only bounds memory.
export const DEFAULT_MAX_SIGNED_CHUNK_BYTES = 8 * 1024 * 1024;
/** S3's largest single PUT; no chunk of one object can be bigger. */
const MAX_CHUNK_BYTES = 5 * 1024 ** 3;
const MAX_CHUNK_HEADER_BYTES = 1024;
const MAX_TRAILER_BYTES = 16 * 1024;
const TRAILER_SIGNATURE = 'x-amz-trailer-signature';
const CR = 0x0d;
const LF = 0x0a;

const enum State {
  ChunkHeader,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  Done,
}

function malformed(message: string): AuthError {
  return new AuthError('InvalidRequest', `Malformed aws-chunked body: ${message}`);
}

function malformedTrailer(reason: string): AuthError {
  return new AuthError('MalformedTrailerError', `${MESSAGES.malformedTrailer} (${reason})`);
}

export class AwsChunkedDecoder extends Transform {
  private readonly signing: ChunkSigningContext | undefined;
  private readonly trailersAllowed: boolean;
  private readonly maxSignedChunkBytes: number;
  private state = State.ChunkHeader;
  /** Bytes of a line (chunk header or trailer) split across reads. */
  private partialLine: Buffer[] = [];
  private partialLineBytes = 0;
  private chunkRemaining = 0;
  private crlfSeen = 0;
  private chunkSignature = '';
  private chunkHash: Hash | null = null;
  private held: Buffer[] = [];
  private previousSignature: string;
  private decoded = 0;
  private trailerBytes = 0;
  private skippedBlankBeforeTrailers = false;
  private trailerSignature: string | undefined;
  private readonly trailerValues = new Map<string, string>();

  constructor(private readonly options: AwsChunkedDecoderOptions) {
    super();
    const signed = options.mode !== 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
    if (signed && options.signing === undefined) throw new Error(`AwsChunkedDecoder: ${options.mode} needs the signing context`);
    this.signing = signed ? options.signing : undefined;
    this.trailersAllowed = options.mode !== 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
    this.maxSignedChunkBytes = options.maxSignedChunkBytes ?? DEFAULT_MAX_SIGNED_CHUNK_BYTES;
    this.previousSignature = options.signing?.seedSignature ?? '';
  }

  /** Trailer name (lower-case) -> value, without the trailer signature; complete once the stream ends. */
  get trailers(): ReadonlyMap<string, string> {
    return this.trailerValues;
  }

  /** Decoded bytes so far. */
  get decodedBytes(): number {
    return this.decoded;
  }

  override _transform(input: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.consume(input);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      // Lenient about a missing final CRLF once every trailer line is complete.
      if (this.state === State.Trailers && this.partialLineBytes === 0) this.finishTrailers();
      if (this.state !== State.Done) throw new AuthError('IncompleteBody', `${MESSAGES.incompleteBody} (the aws-chunked body ended early)`);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  private consume(input: Buffer): void {
    let offset = 0;
    while (offset < input.length) {
      switch (this.state) {
        case State.ChunkHeader:
        case State.Trailers: {
          const lineEnd = input.indexOf(LF, offset);
          if (lineEnd < 0) {
            this.keepPartialLine(input.subarray(offset));
            return;
          }
          const line = this.completeLine(input.subarray(offset, lineEnd + 1));
          offset = lineEnd + 1;
          if (this.state === State.ChunkHeader) this.onChunkHeader(line);
          else this.onTrailerLine(line);
          break;
        }
        case State.ChunkData: {
          const take = Math.min(this.chunkRemaining, input.length - offset);
          const piece = input.subarray(offset, offset + take);
          offset += take;
          this.chunkRemaining -= take;
          this.decoded += take;
          if (this.chunkHash !== null) {
            this.chunkHash.update(piece);
            this.held.push(piece);
          } else {
            this.push(piece);
          }
          if (this.chunkRemaining === 0) {
            this.state = State.ChunkDataEnd;
            this.crlfSeen = 0;
          }
          break;
        }
        case State.ChunkDataEnd: {
          const expected = this.crlfSeen === 0 ? CR : LF;
          if (input[offset] !== expected) throw malformed('chunk data is longer than its declared size');
          offset++;
          if (++this.crlfSeen === 2) this.onChunkEnd();
          break;
        }
        case State.Done: {
          // Tolerate stray line ends after the body; anything else is not ours to ignore.
          const byte = input[offset]!;
          if (byte !== CR && byte !== LF) throw malformed('data after the final chunk');
          offset++;
          break;
        }
      }
    }
  }

  private keepPartialLine(bytes: Buffer): void {
    this.partialLineBytes += bytes.length;
    const limit = this.state === State.ChunkHeader ? MAX_CHUNK_HEADER_BYTES : MAX_TRAILER_BYTES;
    if (this.partialLineBytes > limit) throw this.state === State.ChunkHeader ? malformed('chunk header too long') : malformedTrailer('trailer too long');
    // Copied: the line is short, and a view would pin the whole network buffer.
    this.partialLine.push(Buffer.from(bytes));
  }

  /** The line without its CRLF, joined with any part kept from earlier reads. */
  private completeLine(tail: Buffer): string {
    let line = tail;
    if (this.partialLineBytes > 0) {
      line = Buffer.concat([...this.partialLine, tail]);
      this.partialLine = [];
      this.partialLineBytes = 0;
    }
    if (line.length < 2 || line[line.length - 2] !== CR) throw malformed('line not terminated by CRLF');
    if (this.state === State.ChunkHeader && line.length > MAX_CHUNK_HEADER_BYTES) throw malformed('chunk header too long');
    return line.toString('latin1', 0, line.length - 2);
  }

  private onChunkHeader(line: string): void {
    const semicolon = line.indexOf(';');
    const sizeText = semicolon < 0 ? line : line.slice(0, semicolon);
    if (!/^[0-9a-fA-F]{1,10}$/.test(sizeText)) throw malformed(`bad chunk size "${sizeText.slice(0, 32)}"`);
    const size = parseInt(sizeText, 16);
    if (size > MAX_CHUNK_BYTES) throw malformed(`chunk of ${size} bytes`);
    const declared = this.options.decodedContentLength;
    if (declared !== undefined && this.decoded + size > declared) {
      throw new AuthError('IncompleteBody', `${MESSAGES.incompleteBody} (the body is longer than x-amz-decoded-content-length ${declared})`);
    }
    if (this.signing !== undefined) {
      const extension = semicolon < 0 ? '' : line.slice(semicolon + 1);
      if (!extension.startsWith('chunk-signature=')) throw malformed('chunk without chunk-signature');
      this.chunkSignature = extension.slice('chunk-signature='.length);
      if (size > this.maxSignedChunkBytes) throw malformed(`signed chunk of ${size} bytes exceeds ${this.maxSignedChunkBytes}`);
    }
    if (size === 0) {
      if (declared !== undefined && this.decoded !== declared) {
        throw new AuthError('IncompleteBody', `${MESSAGES.incompleteBody} (${this.decoded} of ${declared} bytes)`);
      }
      if (this.signing !== undefined) this.verifyChunkSignature(EMPTY_SHA256);
      this.state = State.Trailers;
      return;
    }
    this.chunkRemaining = size;
    this.chunkHash = this.signing !== undefined ? createHash('sha256') : null;
    this.state = State.ChunkData;
  }

  private onChunkEnd(): void {
    if (this.chunkHash !== null) {
      this.verifyChunkSignature(this.chunkHash.digest('hex'));
      this.chunkHash = null;
      for (const piece of this.held) this.push(piece);
      this.held = [];
    }
    this.state = State.ChunkHeader;
  }

  private verifyChunkSignature(dataSha256: string): void {
    const { amzDate, scope } = this.signing!;
    const stringToSign = `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${this.previousSignature}\n${EMPTY_SHA256}\n${dataSha256}`;
    this.previousSignature = this.checkSignature(stringToSign, this.chunkSignature);
  }

  /** Compares in constant time; returns the signature (lower-case) to chain the next one from. */
  private checkSignature(stringToSign: string, provided: string): string {
    const expected = hmacSha256(this.signing!.signingKey, stringToSign);
    const providedBytes = /^[0-9a-fA-F]{64}$/.test(provided) ? Buffer.from(provided, 'hex') : null;
    if (providedBytes === null || !timingSafeEqual(expected, providedBytes)) {
      throw new AuthError('SignatureDoesNotMatch', MESSAGES.signatureDoesNotMatch, {
        StringToSign: stringToSign,
        SignatureProvided: provided,
      });
    }
    return expected.toString('hex');
  }

  private onTrailerLine(line: string): void {
    this.trailerBytes += line.length + 2;
    if (this.trailerBytes > MAX_TRAILER_BYTES) throw malformedTrailer('trailers too long');
    if (line === '') {
      // AWS's own example puts a blank line between the final chunk and the trailers: skip one there.
      const expectingTrailers = this.trailersAllowed && (this.options.declaredTrailers?.length ?? 0) > 0;
      if (expectingTrailers && this.trailerValues.size === 0 && !this.skippedBlankBeforeTrailers) {
        this.skippedBlankBeforeTrailers = true;
        return;
      }
      this.finishTrailers();
      return;
    }
    if (!this.trailersAllowed) throw malformedTrailer(`${this.options.mode} carries no trailers`);
    if (this.trailerSignature !== undefined) throw malformedTrailer('trailer after x-amz-trailer-signature');
    const colon = line.indexOf(':');
    if (colon <= 0) throw malformedTrailer('trailer line without a name');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === TRAILER_SIGNATURE) {
      if (this.signing === undefined) throw malformedTrailer(`${TRAILER_SIGNATURE} in an unsigned payload`);
      this.trailerSignature = value;
      return;
    }
    const declared = this.options.declaredTrailers;
    if (declared !== undefined && !declared.includes(name)) throw malformedTrailer(`${name} was not announced in x-amz-trailer`);
    if (this.trailerValues.has(name)) throw malformedTrailer(`${name} sent twice`);
    this.trailerValues.set(name, value);
  }

  private finishTrailers(): void {
    for (const name of this.options.declaredTrailers ?? []) {
      if (!this.trailerValues.has(name)) throw malformedTrailer(`${name} was announced in x-amz-trailer but not sent`);
    }
    if (this.signing !== undefined && this.trailersAllowed) {
      if (this.trailerSignature === undefined) throw malformedTrailer(`${TRAILER_SIGNATURE} missing`);
      const { amzDate, scope } = this.signing;
      const names = [...this.trailerValues.keys()].sort();
      const canonical = names.map((name) => `${name}:${this.trailerValues.get(name)}\n`).join('');
      const stringToSign = `AWS4-HMAC-SHA256-TRAILER\n${amzDate}\n${scope}\n${this.previousSignature}\n${sha256Hex(canonical)}`;
      this.previousSignature = this.checkSignature(stringToSign, this.trailerSignature);
    }
    this.state = State.Done;
  }
}

/** Content-Encoding to store: S3 drops `aws-chunked`, which only describes the transfer. */
export function contentEncodingWithoutAwsChunked(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const rest = value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '' && part.toLowerCase() !== 'aws-chunked');
  return rest.length > 0 ? rest.join(',') : undefined;
}
