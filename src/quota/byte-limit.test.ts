import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { ReservedBytes, type ReservedBytesOptions } from './byte-limit.js';

async function run(chunks: Buffer[], options: Partial<ReservedBytesOptions> & Pick<ReservedBytesOptions, 'reserveUpTo'>) {
  const passed: Buffer[] = [];
  const meter = new ReservedBytes({
    maxBytes: 1000,
    tooLarge: () => new Error('too large'),
    reservedBytes: 0,
    renew: async () => undefined,
    renewEveryMs: 60_000,
    ...options,
  });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      passed.push(chunk);
      done();
    },
  });
  const outcome = await pipeline(Readable.from(chunks), meter, sink).then(
    () => null,
    (error: Error) => error,
  );
  return { passed: Buffer.concat(passed), outcome };
}

describe('ReservedBytes', () => {
  it('lets through what the reservation covers without asking for more', async () => {
    const asked: number[] = [];
    const { passed, outcome } = await run([Buffer.alloc(60), Buffer.alloc(40)], { reservedBytes: 100, reserveUpTo: async (total) => (asked.push(total), total) });
    expect(outcome).toBeNull();
    expect(passed.length).toBe(100);
    expect(asked).toEqual([]);
  });

  it('grows the reservation before passing the bytes that need it', async () => {
    const asked: number[] = [];
    let held = 50;
    const { passed, outcome } = await run([Buffer.alloc(40), Buffer.alloc(40), Buffer.alloc(40), Buffer.alloc(40)], {
      reservedBytes: held,
      reserveUpTo: async (total) => {
        asked.push(total);
        held = total + 50;
        return held;
      },
    });
    expect(outcome).toBeNull();
    expect(passed.length).toBe(160);
    expect(asked).toEqual([80, 160]);
  });

  it('passes nothing the quota refused: the stream fails with the quota error', async () => {
    const { passed, outcome } = await run([Buffer.alloc(100), Buffer.alloc(100)], {
      reservedBytes: 100,
      reserveUpTo: async () => {
        throw new Error('quota exceeded');
      },
    });
    expect(outcome?.message).toBe('quota exceeded');
    expect(passed.length).toBe(100);
  });

  it('cuts the body off one byte past the largest object', async () => {
    const { passed, outcome } = await run([Buffer.alloc(1000), Buffer.alloc(1)], { maxBytes: 1000, reservedBytes: 2000, reserveUpTo: async (total) => total });
    expect(outcome?.message).toBe('too large');
    expect(passed.length).toBe(1000);
  });

  it('renews the reservation while bytes flow, at most once per interval', async () => {
    let clock = 0;
    let renewals = 0;
    const chunks = Array.from({ length: 6 }, () => Buffer.alloc(10));
    const source = Readable.from(
      (async function* () {
        for (const chunk of chunks) {
          clock += 400;
          yield chunk;
        }
      })(),
    );
    const meter = new ReservedBytes({
      maxBytes: 1000,
      tooLarge: () => new Error('too large'),
      reservedBytes: 1000,
      reserveUpTo: async (total) => total,
      renew: async () => {
        renewals += 1;
      },
      renewEveryMs: 1000,
      now: () => clock,
    });
    await pipeline(source, meter, new Writable({ write: (_chunk, _encoding, done) => done() }));
    // 2400 ms of streaming: renewed at 1200 and 2400.
    expect(renewals).toBe(2);
  });
});
