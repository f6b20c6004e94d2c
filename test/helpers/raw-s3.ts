import http from 'node:http';
import aws4 from 'aws4';
import type { Provisioned } from './admin.js';
import type { TestServer } from './server.js';

export interface RawRequest {
  method: string;
  /** Sent exactly as given (`..`, `//`, `%2e%2e` kept): node:http does not normalise a request path. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  region?: string;
  /** Sent instead of `body` after signing, to tamper with a signed request. */
  sentBody?: string | Buffer;
  /** The Host header to sign and send (virtual-hosted addressing); the connection still goes to the server. */
  host?: string;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * A SigV4-signed request (aws4, which signs S3 paths without normalising them, as S3 does) for what the
 * SDK would rewrite or refuse to send: dot segments, doubled slashes, bodies with wrong digests.
 */
export async function signedRequest(server: TestServer, account: Pick<Provisioned, 'apiKey' | 'apiSecret'>, request: RawRequest): Promise<RawResponse> {
  const url = new URL(server.gatewayUrl);
  const headers: Record<string, string> = { ...request.headers };
  const signed = aws4.sign(
    {
      host: request.host ?? url.host,
      method: request.method,
      path: request.path,
      service: 's3',
      region: request.region ?? 'us-east-1',
      headers,
      ...(request.body !== undefined && { body: request.body }),
    },
    { accessKeyId: account.apiKey, secretAccessKey: account.apiSecret },
  );
  const body = request.sentBody ?? request.body;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, method: request.method, path: request.path, headers: signed.headers as http.OutgoingHttpHeaders },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The text of one element of an XML answer (the first one), or undefined. */
export function xmlText(xml: string, element: string): string | undefined {
  return new RegExp(`<${element}>([^<]*)</${element}>`).exec(xml)?.[1];
}
