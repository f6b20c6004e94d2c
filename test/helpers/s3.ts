import { S3Client } from '@aws-sdk/client-s3';
import type { Provisioned } from './admin.js';
import type { TestServer } from './server.js';

/** The real SDK at its defaults (aws-chunked bodies with CRC32 trailers), pointed at the test gateway. */
export function s3Client(server: TestServer, account: Pick<Provisioned, 'apiKey' | 'apiSecret'>, options: { forcePathStyle?: boolean } = {}): S3Client {
  return new S3Client({
    endpoint: server.gatewayUrl,
    region: 'us-east-1',
    forcePathStyle: options.forcePathStyle ?? true,
    credentials: { accessKeyId: account.apiKey, secretAccessKey: account.apiSecret },
    maxAttempts: 1,
  });
}

export async function readAll(body: AsyncIterable<Uint8Array> | undefined): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body ?? []) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}
