import { createHash, type Hash } from 'node:crypto';

/**
 * Upload bodies of any size without allocating them: a body is one reused 1 MiB block repeated, with its
 * last 32 bytes replaced by a tail unique to the request. The unique tail keeps every upload distinct
 * content, so the gateway's content-addressed dedup never turns a measured write into a link; putting it
 * at the end lets the SHA-256 of the shared prefix be computed once per size (Hash.copy) before timing.
 */

export const BLOCK_SIZE = 1024 * 1024;
export const TAIL_SIZE = 32;

/** Deterministic pseudo-random bytes (SHA-256 in counter mode), the same on every run. */
const BLOCK: Buffer = (() => {
  const block = Buffer.allocUnsafe(BLOCK_SIZE);
  for (let offset = 0, counter = 0; offset < BLOCK_SIZE; offset += 32, counter++) {
    createHash('sha256').update(`jettythunder-bench-${counter}`).digest().copy(block, offset);
  }
  return block;
})();

export function uniqueTail(label: string): Buffer {
  return createHash('sha256').update(label).digest();
}

export class BenchBody {
  readonly prefixLength: number;

  constructor(readonly size: number, readonly tail: Buffer) {
    if (size < TAIL_SIZE || tail.length !== TAIL_SIZE) throw new Error(`a bench body is at least ${TAIL_SIZE} bytes`);
    this.prefixLength = size - TAIL_SIZE;
  }

  /** The bytes [start, end) as slices of the shared block and the tail; nothing is copied. */
  slices(start: number, end: number): Buffer[] {
    const out: Buffer[] = [];
    let offset = start;
    while (offset < end) {
      if (offset < this.prefixLength) {
        const inBlock = offset % BLOCK_SIZE;
        const count = Math.min(BLOCK_SIZE - inBlock, this.prefixLength - offset, end - offset);
        out.push(BLOCK.subarray(inBlock, inBlock + count));
        offset += count;
      } else {
        out.push(this.tail.subarray(offset - this.prefixLength, end - this.prefixLength));
        offset = end;
      }
    }
    return out;
  }

  /** The whole body in one buffer: for small objects only. */
  toBuffer(): Buffer {
    return Buffer.concat(this.slices(0, this.size));
  }
}

const prefixStates = new Map<number, Hash>();

/**
 * Hashes the shared prefix of a body of this size once (about 0.5 s per GiB with SHA-NI); later calls
 * are free. Call it before timing starts.
 */
export function preparePrefixHash(size: number): Hash {
  let state = prefixStates.get(size);
  if (!state) {
    state = createHash('sha256');
    const prefix = new BenchBody(size, Buffer.alloc(TAIL_SIZE));
    for (let offset = 0; offset < prefix.prefixLength; offset += BLOCK_SIZE) {
      for (const slice of prefix.slices(offset, Math.min(offset + BLOCK_SIZE, prefix.prefixLength))) state.update(slice);
    }
    prefixStates.set(size, state);
  }
  return state;
}

/** Hex SHA-256 of the whole body, from the prepared prefix state. */
export function bodySha256Hex(body: BenchBody): string {
  return preparePrefixHash(body.size).copy().update(body.tail).digest('hex');
}

const blockChunkHashes = new Map<number, string[]>();

/**
 * Hex SHA-256 of the aws-chunked chunk [start, end). Chunks lie on multiples of chunkSize, which divides
 * the block size, so every full chunk inside the prefix is one of BLOCK_SIZE / chunkSize distinct slices
 * whose hashes are computed once; only the chunk holding the tail is hashed per request.
 */
export function chunkSha256Hex(body: BenchBody, start: number, end: number, chunkSize: number): string {
  if (BLOCK_SIZE % chunkSize !== 0) throw new Error('chunk size must divide the block size');
  if (end - start === chunkSize && end <= body.prefixLength) {
    let hashes = blockChunkHashes.get(chunkSize);
    if (!hashes) {
      hashes = [];
      for (let offset = 0; offset < BLOCK_SIZE; offset += chunkSize) hashes.push(createHash('sha256').update(BLOCK.subarray(offset, offset + chunkSize)).digest('hex'));
      blockChunkHashes.set(chunkSize, hashes);
    }
    return hashes[(start % BLOCK_SIZE) / chunkSize]!;
  }
  const hash = createHash('sha256');
  for (const slice of body.slices(start, end)) hash.update(slice);
  return hash.digest('hex');
}
