import { describe, expect, it } from 'vitest';
import { commonPrefixOf, compareUtf8, prefixSuccessor } from './listing.js';

describe('prefixSuccessor', () => {
  it('increments the last code point', () => {
    expect(prefixSuccessor('photos/')).toBe('photos0');
    expect(prefixSuccessor('a%')).toBe('a&');
    expect(prefixSuccessor('é')).toBe('ê');
    expect(prefixSuccessor('\u007F')).toBe('\u0080'); // one UTF-8 byte to two: still the next code point
  });

  it('skips the surrogate range and drops trailing U+10FFFF', () => {
    expect(prefixSuccessor('x\uD7FF')).toBe('x\uE000');
    expect(prefixSuccessor('ab\u{10FFFF}')).toBe('ac');
    expect(prefixSuccessor('\u{10FFFF}\u{10FFFF}')).toBeNull();
    expect(prefixSuccessor('😀')).toBe('😁');
  });

  it('bounds every string with the prefix, and nothing without it', () => {
    const prefix = 'logs/é';
    const upper = prefixSuccessor(prefix)!;
    for (const key of ['logs/é', 'logs/é/', 'logs/é\u{10FFFF}\u{10FFFF}', 'logs/é😀']) {
      expect(compareUtf8(key, prefix)).toBeGreaterThanOrEqual(0);
      expect(compareUtf8(key, upper)).toBeLessThan(0);
    }
    for (const key of ['logs/ê', 'logs/f', 'logs/', 'logt', 'logs/e\u{10FFFF}']) {
      expect(compareUtf8(key, prefix) < 0 || compareUtf8(key, upper) >= 0).toBe(true);
    }
  });
});

describe('compareUtf8', () => {
  it('orders by UTF-8 bytes, not UTF-16 code units', () => {
    const keys = ['😀', '\uFF5E', 'é', 'a', 'B', '~'];
    expect([...keys].sort(compareUtf8)).toEqual(['B', 'a', '~', 'é', '\uFF5E', '😀']);
    expect('😀' < '\uFF5E').toBe(true); // what JavaScript's own comparison would say
  });
});

describe('commonPrefixOf', () => {
  it('looks for the delimiter only after the prefix', () => {
    expect(commonPrefixOf('a/b/c', 'a/', '/')).toBe('a/b/');
    expect(commonPrefixOf('a/b', 'a/', '/')).toBeNull();
    expect(commonPrefixOf('a//d', 'a/', '/')).toBe('a//');
    expect(commonPrefixOf('2024--01--x', '', '--')).toBe('2024--');
  });
});
