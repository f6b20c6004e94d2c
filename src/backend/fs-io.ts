import { open, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/** The Node error code (ENOENT...) of a failed fs call. */
export function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Makes a directory entry change (rename, create) durable, not just the file's data. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes a stream into an open file from `start`. FileHandle.createWriteStream would do, but its
 * stream owns the handle: it closes it when destroyed and, left open, makes handle.close() wait forever,
 * while a write here must still add the header, fsync and close through the same handle.
 */
export function fileWriter(handle: FileHandle, start: number): Writable {
  let position = start;
  return new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _encoding, done) {
      const writeAll = async () => {
        for (let offset = 0; offset < chunk.length; ) {
          const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset, position + offset);
          offset += bytesWritten;
        }
        position += chunk.length;
      };
      writeAll().then(() => done(), done);
    },
  });
}
