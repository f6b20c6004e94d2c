import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * Account secrets at rest. SigV4 needs the secret itself to recompute signatures, so it is encrypted,
 * not hashed: AES-256-GCM under the 32-byte master key (JT_MASTER_KEY), stored as
 *
 *   v1.<key id>.<iv>.<tag>.<ciphertext>     (iv 12 bytes, tag 16 bytes, all base64url)
 *
 * where the key id is the first 8 hex digits of SHA-256(master key): it names the key a value was
 * sealed with, so a wrong or rotated key is reported as such instead of as a corrupt value. GCM's tag
 * makes any tampering fail decryption. Optional associated data (e.g. the access key id) binds a value
 * to its row, so a ciphertext copied onto another account does not decrypt there.
 */

export type SecretBoxErrorCode = 'SECRET_BOX_MALFORMED' | 'SECRET_BOX_WRONG_KEY' | 'SECRET_BOX_TAMPERED' | 'SECRET_BOX_BAD_KEY';

export class SecretBoxError extends Error {
  constructor(
    readonly code: SecretBoxErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SecretBoxError';
  }
}

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

function checkMasterKey(masterKey: Buffer): void {
  if (masterKey.length !== 32) throw new SecretBoxError('SECRET_BOX_BAD_KEY', `master key must be 32 bytes, got ${masterKey.length}`);
}

/** First 8 hex digits of SHA-256(master key): identifies the key without revealing it. */
export function masterKeyId(masterKey: Buffer): string {
  return createHash('sha256').update(masterKey).digest('hex').slice(0, 8);
}

export function encryptSecret(plaintext: string, masterKey: Buffer, associatedData?: string): string {
  checkMasterKey(masterKey);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', masterKey, iv);
  if (associatedData !== undefined) cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [VERSION, masterKeyId(masterKey), iv.toString('base64url'), tag.toString('base64url'), ciphertext.toString('base64url')].join('.');
}

/** The key id a stored value was sealed with, or null if it is not in our format. */
export function sealedKeyId(sealed: string): string | null {
  const parts = sealed.split('.');
  return parts.length === 5 && parts[0] === VERSION ? parts[1]! : null;
}

export function decryptSecret(sealed: string, masterKey: Buffer, associatedData?: string): string {
  checkMasterKey(masterKey);
  const parts = sealed.split('.');
  if (parts.length !== 5 || parts[0] !== VERSION) throw new SecretBoxError('SECRET_BOX_MALFORMED', 'not a v1 sealed secret');
  const [, keyId, ivText, tagText, ciphertextText] = parts as [string, string, string, string, string];
  const expectedKeyId = masterKeyId(masterKey);
  if (keyId !== expectedKeyId) {
    throw new SecretBoxError('SECRET_BOX_WRONG_KEY', `secret was sealed with master key ${keyId}, but the configured master key is ${expectedKeyId}`);
  }
  const iv = Buffer.from(ivText, 'base64url');
  const tag = Buffer.from(tagText, 'base64url');
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new SecretBoxError('SECRET_BOX_MALFORMED', 'bad iv or tag length');
  const decipher = createDecipheriv('aes-256-gcm', masterKey, iv, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(tag);
  if (associatedData !== undefined) decipher.setAAD(Buffer.from(associatedData, 'utf8'));
  try {
    return Buffer.concat([decipher.update(Buffer.from(ciphertextText, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new SecretBoxError('SECRET_BOX_TAMPERED', 'sealed secret failed authentication (altered, or sealed for another row)');
  }
}
