import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { computeChecksum } from './checksums.js';
import { combineCrcs, type CombinableAlgorithm } from './crc-combine.js';

const ALGORITHMS: CombinableAlgorithm[] = ['CRC32', 'CRC32C', 'CRC64NVME'];

describe('combineCrcs', () => {
  it.each(ALGORITHMS)('gives the %s of the concatenation from the pieces\' CRCs', async (algorithm) => {
    const pieces = [randomBytes(5 * 1024 * 1024 + 3), randomBytes(1), randomBytes(70_001), randomBytes(0), randomBytes(4096)];
    const combined = combineCrcs(
      algorithm,
      await Promise.all(pieces.map(async (piece) => ({ checksum: await computeChecksum(algorithm, piece), size: piece.length }))),
    );
    expect(combined).toBe(await computeChecksum(algorithm, Buffer.concat(pieces)));
  });

  it.each(ALGORITHMS)('gives the %s of nothing for no pieces, and a single piece unchanged', async (algorithm) => {
    expect(combineCrcs(algorithm, [])).toBe(await computeChecksum(algorithm, Buffer.alloc(0)));
    const piece = randomBytes(1000);
    const checksum = await computeChecksum(algorithm, piece);
    expect(combineCrcs(algorithm, [{ checksum, size: piece.length }])).toBe(checksum);
  });
});
