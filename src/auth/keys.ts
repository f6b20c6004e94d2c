import { randomBytes } from 'node:crypto';

/**
 * Credentials an account signs with: the access key id names the account (and tells live keys from
 * test keys at a glance, like Stripe's sk_live_/sk_test_); the secret is the SigV4 signing secret.
 * Both are URL- and shell-safe (base64url) and fit S3 clients' limits (access key ids up to 128 chars).
 */

export const ACCESS_KEY_PATTERN = /^jt_(live|test)_[A-Za-z0-9_-]{32}$/;
export const SECRET_PATTERN = /^jts_[A-Za-z0-9_-]{43}$/;

/** `jt_live_` or `jt_test_` + 24 random bytes, base64url (32 characters). */
export function generateAccessKey(production: boolean): string {
  return `${production ? 'jt_live_' : 'jt_test_'}${randomBytes(24).toString('base64url')}`;
}

/** `jts_` + 32 random bytes (256 bits), base64url (43 characters). */
export function generateSecret(): string {
  return `jts_${randomBytes(32).toString('base64url')}`;
}

export function isAccessKey(value: string): boolean {
  return ACCESS_KEY_PATTERN.test(value);
}
