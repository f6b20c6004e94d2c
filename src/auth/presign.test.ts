import { describe, expect, it } from 'vitest';
import { AuthError } from './errors.js';
import { presignGetUrl } from './presign.js';
import { createSigV4Verifier, type SigV4Request } from './sigv4.js';

const ACCESS_KEY = 'jt_test_presign';
const SECRET = 'jts_presign-secret';
const verifier = createSigV4Verifier({ lookupSecrets: async (id) => (id === ACCESS_KEY ? [SECRET] : null) });
const SIGNED_AT = new Date('2025-01-25T10:15:00.750Z');

/** The request a client makes when it follows the URL: the path and query as sent, Host from the URL. */
function requestFor(url: string): SigV4Request {
  const parsed = new URL(url);
  return { method: 'GET', path: parsed.pathname, query: parsed.search.slice(1), headers: { host: parsed.host } };
}

function presign(key: string, origin = 'http://127.0.0.1:9000') {
  return presignGetUrl({ origin, bucket: 'default', key, accessKeyId: ACCESS_KEY, secret: SECRET, expiresInSeconds: 3600, now: SIGNED_AT });
}

describe('presignGetUrl', () => {
  it.each(['image.png', 'images/2025/sunset beach.jpg', "odd !*'()+=&?#%~ key", 'ünïcødé/😀.txt', 'a//b'])('signs a URL the verifier accepts: %s', async (key) => {
    const { url, expiresAt } = presign(key);
    const verified = await verifier.verify(requestFor(url), new Date(SIGNED_AT.getTime() + 60_000));
    expect(verified).toMatchObject({ authType: 'presigned', accessKeyId: ACCESS_KEY, signedHeaders: ['host'], payloadMode: 'UNSIGNED-PAYLOAD' });
    expect(expiresAt.toISOString()).toBe('2025-01-25T11:15:00.000Z');
    // The key survives the trip through the URL unchanged.
    expect(decodeURIComponent(new URL(url).pathname)).toBe(`/default/${key}`);
  });

  it('leaves a default port out of the signed host, as clients send it', async () => {
    const { url } = presign('a.txt', 'https://gateway.example.com:443');
    expect(url.startsWith('https://gateway.example.com/default/a.txt?')).toBe(true);
    await verifier.verify(requestFor(url), SIGNED_AT);
  });

  it('stops working once it expires, and for any other host', async () => {
    const { url } = presign('a.txt');
    await expect(verifier.verify(requestFor(url), new Date(SIGNED_AT.getTime() + 3601_000))).rejects.toThrow('Request has expired');
    const elsewhere = { ...requestFor(url), headers: { host: 'other.example.com' } };
    await expect(verifier.verify(elsewhere, SIGNED_AT)).rejects.toBeInstanceOf(AuthError);
  });

  it('refuses an expiry S3 would refuse', () => {
    expect(() => presignGetUrl({ origin: 'http://h', bucket: 'b', key: 'k', accessKeyId: 'a', secret: 's', expiresInSeconds: 604_801 })).toThrow(RangeError);
  });
});
