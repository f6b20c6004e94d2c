import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhook } from './webhook-signature.js';

const secret = 'webhook-secret-0123456789';
const body = Buffer.from('{"id":"evt_1","type":"user.suspended"}');
const now = 1_750_000_000;

function verify(overrides: Partial<Parameters<typeof verifyWebhook>[0]> = {}) {
  return verifyWebhook({ secret, timestamp: String(now), signature: signWebhook(secret, now, body), rawBody: body, nowSeconds: now, ...overrides });
}

describe('webhook signatures', () => {
  it('is hex HMAC-SHA256 over "<timestamp>.<raw body>", prefixed v1=', () => {
    const expected = createHmac('sha256', secret).update(`${now}.${body.toString()}`).digest('hex');
    expect(signWebhook(secret, now, body)).toBe(`v1=${expected}`);
    expect(verify()).toBe('valid');
  });

  it('allows 5 minutes of clock difference either way, and no more', () => {
    expect(verify({ nowSeconds: now + 300 })).toBe('valid');
    expect(verify({ nowSeconds: now - 300 })).toBe('valid');
    expect(verify({ nowSeconds: now + 301 })).toBe('stale');
    expect(verify({ nowSeconds: now - 301 })).toBe('stale');
  });

  it('refuses other secrets, bodies, timestamps and malformed headers as bad signatures', () => {
    expect(verify({ signature: signWebhook('other-secret', now, body) })).toBe('bad-signature');
    expect(verify({ rawBody: Buffer.from(`${body.toString()} `) })).toBe('bad-signature');
    expect(verify({ timestamp: String(now + 1) })).toBe('bad-signature');
    expect(verify({ timestamp: undefined })).toBe('bad-signature');
    expect(verify({ timestamp: '1e9' })).toBe('bad-signature');
    expect(verify({ signature: undefined })).toBe('bad-signature');
    expect(verify({ signature: signWebhook(secret, now, body).replace('v1=', 'v0=') })).toBe('bad-signature');
    expect(verify({ signature: signWebhook(secret, now, body).slice(0, -2) })).toBe('bad-signature');
  });

  it('an old signature stays a bad signature, not a stale one: only holders of the secret learn about the clock', () => {
    expect(verify({ signature: signWebhook('other-secret', now, body), nowSeconds: now + 10_000 })).toBe('bad-signature');
  });

  it('accepts a list of signatures when any one matches', () => {
    const list = `${signWebhook('old-secret', now, body)}, ${signWebhook(secret, now, body)}`;
    expect(verify({ signature: list })).toBe('valid');
  });
});
