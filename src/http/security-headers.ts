// Security headers on every answer: helmet's defaults, with a CSP that lets the docs page load its
// own scripts and styles, and no HSTS (TLS ends in front of meterd). helmet's Fastify plugin rebuilt
// its middleware, parsing the CSP, on every request; the headers never change, so they are taken
// from helmet once and copied onto each response.
import type { FastifyInstance } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';

const OPTIONS: HelmetOptions = {
  contentSecurityPolicy: { directives: { defaultSrc: ["'self'"], scriptSrc: ["'self'"], styleSrc: ["'self'", "'unsafe-inline'"], imgSrc: ["'self'", 'data:'] } },
  hsts: false,
};

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
  const headers = helmetHeaders();
  // On the raw response, as helmet did: a header a route sets itself still wins.
  app.addHook('onRequest', (_req, reply, done) => {
    const raw = reply.raw;
    for (let i = 0; i < headers.length; i++) raw.setHeader(headers[i][0], headers[i][1]);
    done();
  });
}
