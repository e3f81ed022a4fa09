// Security headers on every answer. The docs pages (HTML) get helmet's defaults, with a CSP that lets
// them load their own scripts and styles, and no HSTS (TLS ends in front of meterd). API answers
// (JSON) get the four that OWASP's REST Security Cheat Sheet asks of an API: helmet's other headers
// govern how a browser renders a document, and writing all twelve on every answer cost B1 ~10% of its
// requests per second (bench --only baseline1,B1, interleaved twice: 10,609 / 10,539 with them,
// 11,616 / 11,795 without). helmet's Fastify plugin rebuilt its middleware, parsing the CSP, on every
// request; the headers never change, so they are taken from helmet once and copied onto each response.
import type { FastifyInstance } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';

const OPTIONS: HelmetOptions = {
  contentSecurityPolicy: { directives: { defaultSrc: ["'self'"], scriptSrc: ["'self'"], styleSrc: ["'self'", "'unsafe-inline'"], imgSrc: ["'self'", 'data:'] } },
  hsts: false,
};

/** JSON answers: no caching of tenant data, no framing, no sniffing, and a CSP that allows nothing. */
export const API_HEADERS: Array<[string, string]> = [
  ['Cache-Control', 'no-store'],
  ['Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'"],
  ['X-Content-Type-Options', 'nosniff'],
  ['X-Frame-Options', 'DENY'],
];

/** Where the HTML docs are served (src/http/app.ts). */
const DOCS_PREFIX = '/docs';

/** The headers helmet sets with these options, recorded by running it once on a stand-in response. */
export function helmetHeaders(options: HelmetOptions = OPTIONS): Array<[string, string]> {
  const headers = new Map<string, string>();
  const recorder = {
    setHeader: (name: string, value: unknown) => void headers.set(name, String(value)),
    // helmet removes X-Powered-By, which Fastify never sets.
    removeHeader: () => undefined,
  };
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err;
  });
  return [...headers];
}

export function registerSecurityHeaders(app: FastifyInstance): void {
  const documentHeaders = helmetHeaders();
  // On the raw response, as helmet did: a header a route sets itself still wins.
  app.addHook('onRequest', (req, reply, done) => {
    const raw = reply.raw;
    const headers = req.url.startsWith(DOCS_PREFIX) ? documentHeaders : API_HEADERS;
    for (let i = 0; i < headers.length; i++) raw.setHeader(headers[i][0], headers[i][1]);
    done();
  });
}
