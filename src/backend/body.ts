import { createHash, type Hash } from 'node:crypto';
import { finished, Transform, type Readable, type TransformCallback } from 'node:stream';
import { BackendError, BackendErrorCode } from './backend.js';

/**
 * Passes a body through unchanged while counting it (and hashing it, for the fs backend), and fails a
 * body whose length differs from the declared one: a short body would otherwise leave an upstream
 * request waiting for bytes that never come, and a long one would be cut silently.
 */
export class BodyMeter extends Transform {
  bytes = 0;
  readonly #hash: Hash | null;

  constructor(readonly expectedLength: number | undefined, options: { md5?: boolean } = {}) {
    super();
    this.#hash = options.md5 ? createHash('md5') : null;
  }

  override _transform(chunk: Buffer | string, encoding: BufferEncoding, callback: TransformCallback): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    this.bytes += bytes.length;
    if (this.expectedLength !== undefined && this.bytes > this.expectedLength) {
      callback(lengthMismatch(this.expectedLength, 'more'));
      return;
    }
    this.#hash?.update(bytes);
    callback(null, bytes);
  }

  override _flush(callback: TransformCallback): void {
    if (this.expectedLength !== undefined && this.bytes !== this.expectedLength) {
      callback(lengthMismatch(this.expectedLength, `${this.bytes}`));
      return;
    }
    callback();
  }

  /** The MD5 of everything that passed; only once the body has ended. */
  md5(): Buffer {
    if (!this.#hash) throw new Error('BodyMeter was created without md5');
    return this.#hash.digest();
  }
}

function lengthMismatch(expected: number, actual: string): BackendError {
  return new BackendError(BackendErrorCode.Failed, `body was ${actual} bytes where ${expected} were declared`);
}

export interface MeteredBody {
  /** The first error the caller's body raised (including a premature close), if any. */
  readonly bodyError: unknown;
  /** The first error the meter itself raised (a length mismatch), if any. */
  readonly meterError: unknown;
  /** Stops reading the caller's body without destroying it: the caller owns it. */
  release(): void;
}

/** Pipes `body` into `meter`, remembering whose error stopped the flow. */
export function meterBody(body: Readable, meter: BodyMeter): MeteredBody {
  let bodyError: unknown;
  let meterError: unknown;
  // `pipe` forwards neither errors nor a premature close, so without this a dead body would hang the put.
  const stopWatching = finished(body, { writable: false }, (error) => {
    if (!error) return;
    bodyError ??= error;
    meter.destroy(error);
  });
  meter.once('error', (error) => {
    if (bodyError === undefined) meterError ??= error;
  });
  body.pipe(meter);
  return {
    get bodyError() {
      return bodyError;
    },
    get meterError() {
      return meterError;
    },
    release() {
      stopWatching();
      body.unpipe(meter);
      if (!meter.writableFinished) meter.destroy();
    },
  };
}

export function abortedError(signal: AbortSignal): BackendError {
  return new BackendError(BackendErrorCode.Aborted, 'the request was aborted', { cause: signal.reason });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortedError(signal);
}

/**
 * The error a failed write rejects with, in order of who caused it: the caller's abort, the caller's own
 * body error unchanged (so its code survives), a length mismatch, else the backend's failure mapped.
 */
export function writeFailure(
  error: unknown,
  metered: MeteredBody,
  signal: AbortSignal | undefined,
  mapBackendError: (error: unknown) => BackendError,
): unknown {
  if (signal?.aborted) return abortedError(signal);
  if (metered.bodyError !== undefined) return metered.bodyError;
  if (metered.meterError instanceof BackendError) return metered.meterError;
  return error instanceof BackendError ? error : mapBackendError(error);
}

/** Calls `onAbort` when `signal` fires; returns the function that stops listening. */
export function onAbort(signal: AbortSignal | undefined, onAbort: () => void): () => void {
  if (!signal) return () => undefined;
  if (signal.aborted) {
    onAbort();
    return () => undefined;
  }
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
