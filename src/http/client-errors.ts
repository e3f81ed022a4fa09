// Requests Node's HTTP parser refuses before any route runs (malformed request lines or headers,
// headers over the size limit, a request that never arrives whole): answered as problem+json too,
// naming what is wrong, instead of Fastify's default JSON shape. The connection is closed after it,
// because after a parse error the rest of the stream cannot be trusted to be a request.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { problem } from './problem.js';

/** Parser error codes (llhttp's, and Node's own) and what to tell the client. */
const DETAIL: Record<string, [status: number, detail: string]> = {
  HPE_HEADER_OVERFLOW: [431, 'the request line and headers are too large (the limit is 16 KiB in all); send long query parameters in fewer, shorter values'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'the request did not arrive whole in time'],
  HPE_INVALID_CONTENT_LENGTH: [400, 'the Content-Length header is not a valid length'],
  HPE_UNEXPECTED_CONTENT_LENGTH: [400, 'the request has both Content-Length and Transfer-Encoding; send one of them'],
  HPE_INVALID_TRANSFER_ENCODING: [400, 'the Transfer-Encoding header is invalid, or sent with Content-Length; send one of them'],
  HPE_INVALID_CHUNK_SIZE: [400, 'a chunk of the chunked body has an invalid size'],
  HPE_INVALID_HEADER_TOKEN: [400, 'a header line is malformed (each must be "Name: value")'],
  HPE_INVALID_METHOD: [400, 'the request method is not valid'],
  HPE_INVALID_URL: [400, 'the request target (URL) is malformed; encode spaces and other reserved characters'],
  HPE_INVALID_VERSION: [400, 'the HTTP version is not valid'],
  HPE_INVALID_CONSTANT: [400, 'the request line is malformed'],
  HPE_LF_EXPECTED: [400, 'a line of the request does not end in CRLF'],
  HPE_CR_EXPECTED: [400, 'a line of the request does not end in CRLF'],
};

export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  // A connection reset or an already closed socket: there is nobody to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, detail] = DETAIL[err.code ?? ''] ?? [400, 'the request is not valid HTTP/1.1'];
  if (socket.writable) {
    const body = JSON.stringify(problem(status, detail));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Cache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
