import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackendErrorCode } from '../../src/backend/backend.js';
import { createFsBackend, FS_STAGING_DIR } from '../../src/backend/fs.js';
import { digestStream, generatedMd5, generatedStream } from '../fixtures/generated-data.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const slowWriter = fileURLToPath(new URL('../fixtures/fs-slow-writer.ts', import.meta.url));

/** Starts a child that writes `key` slowly, waits until its temp file holds data, SIGKILLs it. */
async function killMidWrite(root: string, key: string): Promise<{ tempFile: string; tempBytes: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', slowWriter, root, key], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let childExited = false;
  void exited.then(() => (childExited = true));

  const tempDir = path.join(root, FS_STAGING_DIR, 'tmp');
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (childExited) throw new Error(`the writer exited before it was killed:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the writer's temp file never grew:\n${output}`);
    }
    const names = await readdir(tempDir).catch(() => []);
    const sizes = await Promise.all(names.map((name) => stat(path.join(tempDir, name)).then((info) => info.size, () => 0)));
    if (names.length === 1 && sizes[0]! > 1024 * 1024) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  child.kill('SIGKILL');
  expect(await exited).toEqual({ code: null, signal: 'SIGKILL' });
  const [tempName] = await readdir(tempDir);
  const tempFile = path.join(tempDir, tempName!);
  return { tempFile, tempBytes: (await stat(tempFile)).size };
}

describe('fs backend killed during a write', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'jt-fs-crash-'));
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('leaves no readable object under the key, and the backend keeps working', async () => {
    const key = 'users/u1/blobs/interrupted';
    const { tempBytes } = await killMidWrite(root, key);
    expect(tempBytes).toBeGreaterThan(1024 * 1024); // the partial bytes exist, but only in staging

    const backend = createFsBackend({ root });
    expect(await backend.head({ key })).toBeNull();
    await expect(backend.get({ key })).rejects.toMatchObject({ code: BackendErrorCode.NotFound });
    expect((await backend.list({ prefix: '' })).objects).toEqual([]);

    const size = 2 * 1024 * 1024;
    const put = await backend.put({ key, body: generatedStream('after-crash', size), contentLength: size });
    expect(await digestStream((await backend.get({ key })).body)).toEqual({ md5: put.etag, length: size });
    expect((await backend.list({ prefix: '' })).objects.map((object) => object.key)).toEqual([key]);
  });

  it('leaves the previous version of an overwritten key whole', async () => {
    const key = 'users/u1/blobs/overwritten';
    const size = 3 * 1024 * 1024;
    const backend = createFsBackend({ root });
    const before = await backend.put({ key, body: generatedStream('before', size), contentLength: size });

    await killMidWrite(root, key);

    expect(await backend.head({ key })).toMatchObject({ size, etag: before.etag });
    expect(await digestStream((await backend.get({ key })).body)).toEqual({ md5: generatedMd5('before', size), length: size });
  });
});
