import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';

describe('readiness', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.close());

  const readyz = async () => {
    const response = await fetch(`${server.adminUrl}/readyz`);
    return { status: response.status, body: (await response.json()) as Record<string, string> };
  };

  it('answers 503 naming the backend while it cannot be written, and 200 again once it can, without a restart', async () => {
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', database: 'ok', backend: 'ok' } });
    // A file where the fs backend's folder should be: nothing can be written under it.
    const objects = path.join(server.dataDir, 'objects');
    await rm(objects, { recursive: true, force: true });
    await writeFile(objects, 'not a folder');
    expect(await readyz()).toEqual({ status: 503, body: { status: 'unavailable', database: 'ok', backend: 'unavailable' } });
    await rm(objects);
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', database: 'ok', backend: 'ok' } });
  });
});
