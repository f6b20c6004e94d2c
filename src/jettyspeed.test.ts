import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jettySpeedUrl, startJettySpeedProbe, type JettySpeedProbe } from './jettyspeed.js';

/** A stand-in JettySpeed whose /health answers as told: a status, or never. */
let answer: number | 'hang' = 200;
let probes = 0;
let cdn: Server;
let cdnUrl: string;

beforeAll(async () => {
  cdn = createServer((request, response) => {
    if (request.url !== '/health') return void response.writeHead(404).end();
    probes++;
    if (answer === 'hang') return; // never answers
    response.writeHead(answer).end('ok');
  });
  await new Promise<void>((resolve) => cdn.listen(0, '127.0.0.1', resolve));
  cdnUrl = `http://127.0.0.1:${(cdn.address() as AddressInfo).port}`;
});
afterAll(async () => {
  cdn.closeAllConnections();
  await new Promise((resolve) => cdn.close(resolve));
});

const logger = { info: () => undefined, warn: () => undefined };
let probe: JettySpeedProbe | undefined;
afterEach(async () => {
  await probe?.stop();
  probe = undefined;
});

function start(overrides: { enabled?: boolean; cdnUrl?: string | null } = {}): JettySpeedProbe {
  probe = startJettySpeedProbe({ cdnUrl, enabled: true, intervalMs: 20, timeoutMs: 100, logger, ...overrides });
  return probe;
}

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('the JettySpeed health probe', () => {
  it('is healthy only after a 2xx, and follows the endpoint down and up again', async () => {
    answer = 200;
    const running = start();
    expect(running.healthy()).toBe(false); // nothing has answered yet
    await until('healthy', () => running.healthy());
    for (const failure of [503, 302, 'hang'] as const) {
      answer = failure;
      await until(`unhealthy on ${failure}`, () => !running.healthy());
      answer = 200;
      await until('healthy again', () => running.healthy());
    }
  });

  it('counts an unreachable endpoint as down', async () => {
    const running = start({ cdnUrl: 'http://127.0.0.1:1' });
    const before = probes;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(running.healthy()).toBe(false);
    expect(probes).toBe(before);
  });

  it('probes nothing when disabled or without a URL', async () => {
    const before = probes;
    answer = 200;
    for (const disabled of [start({ enabled: false }), start({ cdnUrl: null })]) {
      await new Promise((resolve) => setTimeout(resolve, 60));
      expect(disabled.healthy()).toBe(false);
    }
    expect(probes).toBe(before);
  });

  it('stops probing once stopped, even with a probe in flight', async () => {
    answer = 'hang';
    const before = probes;
    const running = start();
    await until('a probe in flight', () => probes > before);
    await running.stop();
    const after = probes;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(probes).toBe(after);
    expect(running.healthy()).toBe(false);
  });
});

describe('jettySpeedUrl', () => {
  it('is the CDN followed by the backend key', () => {
    expect(jettySpeedUrl('http://localhost:53777', 'users/test-user-123/blobs/0f8c1c1e-2b5a-4a63-9d1e-3c0b7a9f1e2d')).toBe(
      'http://localhost:53777/users/test-user-123/blobs/0f8c1c1e-2b5a-4a63-9d1e-3c0b7a9f1e2d',
    );
  });
});
