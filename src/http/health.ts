import type { FastifyInstance } from 'fastify';
import type { Services } from '../main.js';
import { problem, sendProblem } from './problem.js';

export function healthRoutes(app: FastifyInstance, s: Services) {
  app.get('/healthz', { schema: { tags: ['operations'], summary: 'Liveness', security: [] } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { tags: ['operations'], summary: 'Readiness: the database answers', security: [] } }, async (req, reply) => {
    try {
      await s.store.ping();
      return { status: 'ready', engine: s.store.engine };
    } catch (e) {
      req.log.warn({ err: (e as Error).message }, 'database not ready');
      return sendProblem(reply, problem(503, 'the database is unreachable'), { 'retry-after': '1' });
    }
  });
}
