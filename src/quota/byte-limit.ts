import { Transform, type TransformCallback } from 'node:stream';

/**
 * Passes bytes through until `limit`, then fails the stream with the error `tooMany()` builds: how a body
 * of unknown length is held to the largest object allowed and to the storage it reserved.
 */
export class ByteLimit extends Transform {
  private seen = 0;

  constructor(private readonly limit: number, private readonly tooMany: () => Error) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) {
      done(this.tooMany());
      return;
    }
    done(null, chunk);
  }
}
