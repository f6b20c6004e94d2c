import { Transform, type TransformCallback } from 'node:stream';

export interface ReservedBytesOptions {
  /** The largest body allowed; one byte more fails the stream with `tooLarge()`. */
  maxBytes: number;
  tooLarge: () => Error;
  /** Bytes the upload's storage reservation holds when the body starts. */
  reservedBytes: number;
  /**
   * Grows the reservation to cover at least `total` bytes and returns what it holds now; rejects (with
   * the quota error) when the quota cannot cover them.
   */
  reserveUpTo(total: number): Promise<number>;
  /** Renews the reservation's expiry; called while bytes flow, at most once per `renewEveryMs`. */
  renew(): Promise<void>;
  renewEveryMs: number;
  now?: () => number;
}

/**
 * Counts a body's bytes as they stream and lets none through that the upload's storage reservation does
 * not cover: a body of unknown length grows its reservation ahead of itself and is cut off at the quota
 * or at the largest object allowed, whichever comes first. While bytes flow the reservation is renewed,
 * so only an upload whose process died ever sees its reservation expire.
 */
export class ReservedBytes extends Transform {
  private seen = 0;
  private reserved: number;
  private lastRenewal: number;
  private pending: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;

  constructor(private readonly options: ReservedBytesOptions) {
    super();
    this.reserved = options.reservedBytes;
    this.now = options.now ?? Date.now;
    this.lastRenewal = this.now();
  }

  /** Resolves once no reservation change this stream started is still in flight. */
  async idle(): Promise<void> {
    await this.pending.catch(() => undefined);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.options.maxBytes) {
      done(this.options.tooLarge());
      return;
    }
    let change: Promise<unknown> | null = null;
    if (this.seen > this.reserved) {
      change = this.options.reserveUpTo(this.seen).then((reserved) => {
        this.reserved = reserved;
        this.lastRenewal = this.now();
      });
    } else if (this.now() - this.lastRenewal >= this.options.renewEveryMs) {
      this.lastRenewal = this.now();
      change = this.options.renew();
    }
    if (change === null) {
      done(null, chunk);
      return;
    }
    this.pending = change;
    change.then(
      () => done(null, chunk),
      (error: unknown) => done(error as Error),
    );
  }
}
