import { describe, expect, it } from 'vitest';
import { decodeContinuationToken, encodeContinuationToken, parseEncodingType, parseMaxKeys } from './list-query.js';

const query = (text: string) => new URLSearchParams(text);

describe('parseMaxKeys', () => {
  it('defaults to 1,000, accepts 0, and clamps larger values', () => {
    expect(parseMaxKeys(query(''))).toBe(1000);
    expect(parseMaxKeys(query('max-keys=0'))).toBe(0);
    expect(parseMaxKeys(query('max-keys=7'))).toBe(7);
    expect(parseMaxKeys(query('max-keys=2147483647'))).toBe(1000);
  });

  it.each(['-1', '', 'abc', '1.5', '2147483648', '0x10', ' 5'])('refuses %j with InvalidArgument', (value) => {
    expect(() => parseMaxKeys(query(`max-keys=${encodeURIComponent(value)}`))).toThrow(
      expect.objectContaining({ code: 'InvalidArgument', extra: { ArgumentName: 'maxKeys', ArgumentValue: value } }),
    );
  });
});

describe('parseEncodingType', () => {
  it('knows only url', () => {
    expect(parseEncodingType(query(''))).toBeUndefined();
    expect(parseEncodingType(query('encoding-type=url'))).toBe('url');
    expect(() => parseEncodingType(query('encoding-type=base64'))).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
  });
});

describe('continuation tokens', () => {
  it.each(['a', 'photos/2024/', 'é 😀 \t&<>', 'x'.repeat(1024)])('round-trips %j', (position) => {
    const token = encodeContinuationToken(position);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(decodeContinuationToken(token)).toBe(position);
  });

  it.each(['', '.', 'abc', 'YQ', 'YQ.xxxxxxxx', `${encodeContinuationToken('a')}x`, encodeContinuationToken('a').replace(/^YQ/, 'Yg'), '_w.AAAAAAAA'])(
    'refuses %j',
    (token) => {
      expect(() => decodeContinuationToken(token)).toThrow(expect.objectContaining({ code: 'InvalidArgument', message: 'The continuation token provided is incorrect' }));
    },
  );
});
