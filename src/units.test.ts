import { describe, expect, it } from 'vitest';
import { bytesToGb, GIB, percentUsed } from './units.js';

describe('GB figures', () => {
  it('rounds bytes to GB of 2^30 with 2 decimals', () => {
    expect(bytesToGb(0)).toBe(0);
    expect(bytesToGb(20 * GIB)).toBe(20);
    expect(bytesToGb(1.2 * GIB)).toBe(1.2);
    expect(bytesToGb(1)).toBe(0);
    expect(bytesToGb(GIB - 1)).toBe(1);
  });

  it('gives percent used to 1 decimal, and handles a zero quota', () => {
    expect(percentUsed(1.2 * GIB, 20 * GIB)).toBe(6);
    expect(percentUsed(1, 3)).toBe(33.3);
    expect(percentUsed(0, 0)).toBe(0);
    expect(percentUsed(5, 0)).toBe(100);
  });
});
