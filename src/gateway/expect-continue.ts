import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/**
 * Answers `Expect: 100-continue` the way S3 does: the client is asked for the body only once a handler
 * starts reading it, so a request refused first (bad signature, over the largest object, over the quota)
 * gets its error before a byte of the body is sent. Node would otherwise send 100 Continue as soon as the
 * headers arrive. A response sent without 100 Continue closes the connection, so a body the client may
 * send regardless is never read as the next request.
 */
export function continueOnFirstRead(server: Server): void {
  server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    const read = request._read.bind(request);
    let asked = false;
    request._read = (size: number) => {
      if (!asked) {
        asked = true;
        // After the answer has gone out the body is only being drained; asking for it then would put a
        // 100 Continue after the final response.
        if (!response.headersSent) response.writeContinue();
      }
      read(size);
    };
    server.emit('request', request, response);
  });
}
