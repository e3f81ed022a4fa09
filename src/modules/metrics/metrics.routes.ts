// GET /metrics in Prometheus' text format, only when METRICS_TOKEN is set and only for that bearer
// token: the counters span every tenant, so no tenant's API key may read them.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../main.js';
import { bearerToken } from '../../http/auth.js';
import { unauthenticated } from '../../core/errors.js';

const digest = (v: string) => createHash('sha256').update(v).digest();

export function metricsRoutes(app: FastifyInstance, s: Services) {
  const token = s.config.METRICS_TOKEN;
  // Off: no route, and no per-request timing that nothing could read.
  if (!token) return;
  const m = s.metrics;
  // Every answered request, by route template (bounded label values), never by raw URL.
  app.addHook('onResponse', (req, reply, done) => {
    m.request(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  const expected = digest(token);
  app.get('/metrics', { schema: { tags: ['operations'], summary: 'Prometheus metrics (bearer METRICS_TOKEN)', hide: true } }, async (req, reply) => {
    const given = bearerToken(req);
    // Digests are compared, so the comparison takes the same time whatever the token's length.
    if (given === undefined || !timingSafeEqual(digest(given), expected)) throw unauthenticated('metrics need the bearer token set in METRICS_TOKEN');
    reply.header('content-type', m.registry.contentType);
    return m.registry.metrics();
  });
}
