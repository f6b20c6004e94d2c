import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ACCESS_KEY_PATTERN, SECRET_PATTERN, generateAccessKey, generateSecret, isAccessKey } from './keys.js';
import { decryptSecret, encryptSecret, masterKeyId, sealedKeyId } from './secret-box.js';

describe('secret box', () => {
  const masterKey = randomBytes(32);

  it('round-trips a secret in the v1.<key id>.<iv>.<tag>.<ciphertext> format', () => {
    const secret = generateSecret();
    const sealed = encryptSecret(secret, masterKey);
    expect(sealed).toMatch(/^v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$/);
    expect(sealedKeyId(sealed)).toBe(masterKeyId(masterKey));
    expect(sealed).not.toContain(secret.slice(4, 12));
    expect(decryptSecret(sealed, masterKey)).toBe(secret);
    expect(encryptSecret(secret, masterKey)).not.toBe(sealed); // a fresh IV each time
  });

  it('names the key when decrypting under the wrong master key', () => {
    const sealed = encryptSecret('jts_x', masterKey);
    const other = randomBytes(32);
    expect(() => decryptSecret(sealed, other)).toThrowError(
      expect.objectContaining({ code: 'SECRET_BOX_WRONG_KEY', message: expect.stringContaining(masterKeyId(masterKey)) as string }) as Error,
    );
  });

  it('refuses tampered values, values bound to another row, malformed values and bad keys', () => {
    const sealed = encryptSecret('jts_x', masterKey, 'jt_live_a');
    expect(decryptSecret(sealed, masterKey, 'jt_live_a')).toBe('jts_x');
    expect(() => decryptSecret(sealed, masterKey, 'jt_live_b')).toThrowError(expect.objectContaining({ code: 'SECRET_BOX_TAMPERED' }) as Error);
    const parts = sealed.split('.');
    const flipped = Buffer.from(parts[4]!, 'base64url');
    flipped[0]! ^= 1;
    parts[4] = flipped.toString('base64url');
    expect(() => decryptSecret(parts.join('.'), masterKey, 'jt_live_a')).toThrowError(expect.objectContaining({ code: 'SECRET_BOX_TAMPERED' }) as Error);
    expect(() => decryptSecret('plaintext', masterKey)).toThrowError(expect.objectContaining({ code: 'SECRET_BOX_MALFORMED' }) as Error);
    expect(() => encryptSecret('x', randomBytes(16))).toThrowError(expect.objectContaining({ code: 'SECRET_BOX_BAD_KEY' }) as Error);
  });
});

describe('keys', () => {
  it('generates live and test access keys and secrets of the documented shape', () => {
    const live = generateAccessKey(true);
    const test = generateAccessKey(false);
    expect(live).toMatch(/^jt_live_[A-Za-z0-9_-]{32}$/);
    expect(test).toMatch(/^jt_test_[A-Za-z0-9_-]{32}$/);
    expect(isAccessKey(live) && ACCESS_KEY_PATTERN.test(test)).toBe(true);
    expect(generateSecret()).toMatch(SECRET_PATTERN);
    expect(new Set(Array.from({ length: 100 }, () => generateSecret())).size).toBe(100);
  });
});
