import { describe, expect, it } from 'vitest';
import { hourSlices, monthOf, spread } from './usage-rollup.js';

const t = (iso: string) => Date.parse(iso);

describe('hourSlices', () => {
  it('splits an interval at UTC hour boundaries', () => {
    expect(hourSlices(t('2030-01-31T22:30:00Z'), t('2030-02-01T00:10:00Z'))).toEqual([
      { startMs: t('2030-01-31T22:00:00Z'), ms: 30 * 60_000 },
      { startMs: t('2030-01-31T23:00:00Z'), ms: 60 * 60_000 },
      { startMs: t('2030-02-01T00:00:00Z'), ms: 10 * 60_000 },
    ]);
    expect(hourSlices(t('2030-01-01T10:00:00Z'), t('2030-01-01T11:00:00Z'))).toEqual([{ startMs: t('2030-01-01T10:00:00Z'), ms: 3_600_000 }]);
    expect(hourSlices(5, 5)).toEqual([]);
  });
});

describe('spread', () => {
  it('splits whole bytes in proportion and loses none', () => {
    expect(spread(10, [1, 1, 1])).toEqual([3, 3, 4]);
    expect(spread(7, [0, 2, 0])).toEqual([0, 7, 0]);
    // Weights of zero (hours of another month) never receive the rounding remainder.
    expect(spread(7, [1, 1, 0])).toEqual([3, 4, 0]);
    expect(spread(5, [0, 0])).toEqual([0, 0]);
  });
});

describe('monthOf', () => {
  it('is the first day of the UTC month', () => {
    expect(monthOf(new Date('2030-01-31T23:59:59Z'))).toBe('2030-01-01');
    expect(monthOf(t('2030-12-01T00:00:00Z'))).toBe('2030-12-01');
  });
});
