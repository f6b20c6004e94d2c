import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exitWithParent, isMainModule } from './processes.js';

/**
 * The floor any Node gateway pays: a plain node:http proxy that streams each request to the upstream and
 * hashes every uploaded body with SHA-256 and MD5 on the way (what a gateway needs for content
 * addressing and the ETag). A declared hex x-amz-content-sha256 is checked before the upstream request is
 * finished, as a gateway must, so a mismatch stores nothing. No auth, no database: requests go through
 * as they came (the null endpoint does not check signatures).
 */

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'expect', 'upgrade', 'proxy-connection', 'te', 'trailer']);

function forwardableHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

export function createPassthroughServer(upstreamUrl: string): http.Server {
  const upstream = new URL(upstreamUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });

  return http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const fail = (status: number, message: string): void => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(status, { 'content-type': 'text/plain' }).end(message);
    };

    const upstreamRequest = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: forwardableHeaders(req.headers), agent },
      (upstreamResponse) => {
        res.writeHead(upstreamResponse.statusCode ?? 502, forwardableHeaders(upstreamResponse.headers));
        upstreamResponse.pipe(res);
        upstreamResponse.once('error', () => res.destroy());
      },
    );
    upstreamRequest.once('error', (error) => {
      req.destroy();
      fail(502, `upstream: ${error.message}`);
    });
    res.once('close', () => {
      if (!res.writableFinished) upstreamRequest.destroy();
    });

    if (req.method !== 'PUT' && req.method !== 'POST') {
      req.pipe(upstreamRequest);
      return;
    }

    const sha256 = createHash('sha256');
    const md5 = createHash('md5');
    req.on('data', (chunk: Buffer) => {
      sha256.update(chunk);
      md5.update(chunk);
      if (!upstreamRequest.write(chunk)) req.pause();
    });
    upstreamRequest.on('drain', () => req.resume());
    req.once('error', () => upstreamRequest.destroy());
    req.once('end', () => {
      const claimed = req.headers['x-amz-content-sha256'];
      const actual = sha256.digest('hex');
      md5.digest();
      if (typeof claimed === 'string' && /^[0-9a-f]{64}$/.test(claimed) && claimed !== actual) {
        upstreamRequest.destroy();
        fail(400, 'XAmzContentSHA256Mismatch');
        return;
      }
      upstreamRequest.end();
    });
  });
}

if (isMainModule(import.meta.url)) {
  exitWithParent();
  const upstreamUrl = process.env.PASSTHROUGH_UPSTREAM;
  if (!upstreamUrl) throw new Error('PASSTHROUGH_UPSTREAM is required');
  const server = createPassthroughServer(upstreamUrl);
  server.requestTimeout = 0;
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    process.stdout.write(`${JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${port}` })}\n`);
  });
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
