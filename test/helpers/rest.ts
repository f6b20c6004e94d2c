import type { Provisioned } from './admin.js';
import type { TestServer } from './server.js';

/** A field of an upload form, in the order it is sent; a Blob is a file part. */
export type FormPart = [name: string, value: string] | [name: string, file: Blob, filename: string];

export interface RestResponse<T = any> {
  status: number;
  headers: Headers;
  /** Parsed JSON when the answer is JSON, else null (read `bytes`). */
  body: T;
  bytes: Buffer;
}

/** The tenant REST API as a user calls it: `Authorization: Bearer jt_…` and `X-API-Secret: jts_…`. */
export function restClient(server: TestServer, account: Pick<Provisioned, 'apiKey' | 'apiSecret'>) {
  const credentials = { authorization: `Bearer ${account.apiKey}`, 'x-api-secret': account.apiSecret };

  async function call<T = any>(method: string, path: string, init: { headers?: Record<string, string>; body?: BodyInit } = {}): Promise<RestResponse<T>> {
    const response = await fetch(`${server.gatewayUrl}/api${path}`, {
      method,
      headers: { ...credentials, ...init.headers },
      ...(init.body !== undefined && { body: init.body }),
    });
    const bytes = Buffer.from(await response.arrayBuffer());
    const json = response.headers.get('content-type')?.startsWith('application/json') ?? false;
    return { status: response.status, headers: response.headers, body: (json && bytes.length > 0 ? JSON.parse(bytes.toString('utf8')) : null) as T, bytes };
  }

  return {
    call,
    upload<T = any>(parts: FormPart[]): Promise<RestResponse<T>> {
      const form = new FormData();
      for (const part of parts) {
        if (part.length === 3) form.append(part[0], part[1], part[2]);
        else form.append(part[0], part[1]);
      }
      return call<T>('POST', '/storage/upload', { body: form });
    },
    /** Uploads bytes as `file` after the given fields (fields first, as the API requires). */
    uploadBytes<T = any>(bytes: Buffer, filename: string, fields: Record<string, string> = {}, contentType = 'application/octet-stream'): Promise<RestResponse<T>> {
      return this.upload<T>([...Object.entries(fields), ['file', new Blob([new Uint8Array(bytes)], { type: contentType }), filename]]);
    },
  };
}

export type RestClient = ReturnType<typeof restClient>;
