import http from 'node:http';
import { BLOCK_SIZE, chunkSha256Hex, type BenchBody } from './body.js';
import { chunkSignature, objectPath, SigV4Signer, type Credentials, type SignedRequest } from './sigv4-client.js';

/** One S3 endpoint as the load generator sees it: where, which bucket, whose keys. */
export interface TargetEndpoint {
  url: string;
  bucket: string;
  credentials: Credentials;
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Response body bytes received. */
  bytes: number;
  /** The start of the body (64 KiB at most), kept for error responses and XML answers. */
  text: string;
}

export interface RequestSpec {
  method: 'GET' | 'PUT' | 'HEAD' | 'POST' | 'DELETE';
  key: string;
  query?: Record<string, string>;
  payloadHash: string;
  /** Headers to sign with the request (lower-case names). */
  signedHeaders?: Record<string, string>;
  contentLength?: number;
  /** A small body sent whole, or a writer that streams one. */
  body?: Buffer | ((sink: BodySink) => Promise<void>);
  /** Keep the response text even on success (XML answers). */
  keepText?: boolean;
  timeoutMs: number;
}

/** Writes with backpressure; `stopped` turns true once the response arrived early or the request died. */
export interface BodySink {
  write(data: Buffer): Promise<void>;
  stopped(): boolean;
  /** The request's signing context, for aws-chunked chunk signatures. */
  signed: SignedRequest;
}

const KEEP_TEXT_LIMIT = 64 * 1024;

/** `PUT answered 501 NotImplemented`, from the status and S3's error XML when there is one. */
export function describeFailure(method: string, result: HttpResult): string {
  const code = /<Code>([^<]+)<\/Code>/.exec(result.text)?.[1] ?? result.headers['x-amz-error-code'] ?? /"code"\s*:\s*"([^"]+)"/.exec(result.text)?.[1];
  const message = /<Message>([^<]{0,120})/.exec(result.text)?.[1];
  return `${method} answered ${result.status}${code ? ` ${String(code)}` : ''}${message && message !== code ? `: ${message}` : ''}`;
}

export class S3Requester {
  private readonly signer: SigV4Signer;
  private readonly host: string;
  private readonly port: number;
  private readonly hostHeader: string;

  constructor(private readonly target: TargetEndpoint, private readonly agent: http.Agent) {
    this.signer = new SigV4Signer(target.credentials);
    const url = new URL(target.url);
    this.host = url.hostname;
    this.port = Number(url.port);
    this.hostHeader = url.host;
  }

  request(spec: RequestSpec): Promise<HttpResult> {
    const signed = this.signer.sign({
      method: spec.method,
      path: objectPath(this.target.bucket, spec.key),
      ...(spec.query ? { query: spec.query } : {}),
      host: this.hostHeader,
      payloadHash: spec.payloadHash,
      ...(spec.signedHeaders ? { headers: spec.signedHeaders } : {}),
    });
    const headers: Record<string, string | number> = { ...signed.headers };
    const length = spec.contentLength ?? (Buffer.isBuffer(spec.body) ? spec.body.length : spec.body ? undefined : 0);
    if (length !== undefined && (length > 0 || spec.method === 'PUT' || spec.method === 'POST')) headers['content-length'] = length;

    return new Promise<HttpResult>((resolve, reject) => {
      let settled = false;
      let bodyDone = spec.body === undefined;
      const req = http.request({ host: this.host, port: this.port, method: spec.method, path: signed.pathWithQuery, headers, agent: this.agent });
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${spec.timeoutMs} ms`)), spec.timeoutMs);
      const finish = (error: Error | undefined, result?: HttpResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(result!);
      };
      req.once('error', (error) => finish(error));
      req.once('response', (res) => {
        let bytes = 0;
        const kept: Buffer[] = [];
        let keptBytes = 0;
        const keep = spec.keepText === true || (res.statusCode ?? 0) >= 300;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (keep && keptBytes < KEEP_TEXT_LIMIT) {
            kept.push(chunk.subarray(0, KEEP_TEXT_LIMIT - keptBytes));
            keptBytes += Math.min(chunk.length, KEEP_TEXT_LIMIT - keptBytes);
          }
        });
        res.once('error', (error) => finish(error));
        res.once('end', () => {
          // An answer that came before the whole body was sent leaves the connection unusable.
          if (!bodyDone) req.destroy();
          finish(undefined, { status: res.statusCode ?? 0, headers: res.headers, bytes, text: Buffer.concat(kept).toString('utf8') });
        });
      });

      if (spec.body === undefined) {
        req.end();
      } else if (Buffer.isBuffer(spec.body)) {
        bodyDone = true;
        req.end(spec.body);
      } else {
        const stopped = (): boolean => settled || req.destroyed;
        const sink: BodySink = {
          signed,
          stopped,
          write: (data) => {
            if (stopped() || req.write(data)) return Promise.resolve();
            return new Promise<void>((resume) => {
              const done = (): void => {
                req.off('drain', done);
                req.off('close', done);
                resume();
              };
              req.once('drain', done);
              req.once('close', done);
            });
          },
        };
        spec.body(sink).then(
          () => {
            bodyDone = true;
            if (!stopped()) req.end();
          },
          (error: unknown) => req.destroy(error instanceof Error ? error : new Error(String(error))),
        );
      }
    });
  }
}

/** Streams a body's bytes in block-sized slices. */
export function plainBodyWriter(body: BenchBody, start = 0, end = body.size): (sink: BodySink) => Promise<void> {
  return async (sink) => {
    for (let offset = start; offset < end && !sink.stopped(); ) {
      const next = Math.min(end, (Math.floor(offset / BLOCK_SIZE) + 1) * BLOCK_SIZE);
      for (const slice of body.slices(offset, next)) await sink.write(slice);
      offset = next;
    }
  };
}

const CRLF = Buffer.from('\r\n');

/** Streams a body as signed aws-chunked (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), each chunk signed in turn. */
export function signedChunkedWriter(body: BenchBody, chunkSize: number): (sink: BodySink) => Promise<void> {
  return async (sink) => {
    let previous = sink.signed.signature;
    const frame = async (start: number, end: number): Promise<void> => {
      previous = chunkSignature(sink.signed, previous, chunkSha256Hex(body, start, end, chunkSize));
      await sink.write(Buffer.from(`${(end - start).toString(16)};chunk-signature=${previous}\r\n`, 'latin1'));
      for (const slice of body.slices(start, end)) await sink.write(slice);
      await sink.write(CRLF);
    };
    for (let start = 0; start < body.size && !sink.stopped(); start += chunkSize) await frame(start, Math.min(start + chunkSize, body.size));
    if (!sink.stopped()) await frame(body.size, body.size);
  };
}
