// Overload protection: a per-credential rate limit (429 + Retry-After; shared through Redis when
// several instances run) and load shedding (503 + Retry-After) when the event loop lags or the
// commit queue is deep — so twice the sustainable load is refused early instead of piling up.
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import { Redis } from 'ioredis';
import { AppError } from '../core/errors.js';
import type { Services } from '../main.js';
import { problem } from './problem.js';

const EXEMPT = new Set(['/healthz', '/readyz']);

/** The rate-limit bucket of a request: a digest of its credentials (so nobody can spend another's quota), else its address. */
function limitKey(request: FastifyRequest): string {
  const h = request.headers;
  const credential = h.authorization ?? h['x-killbill-apisecret'];
  if (typeof credential === 'string' && credential.length > 0) {
    return `cred:${createHash('sha256').update(credential).digest('base64url').slice(0, 22)}`;
  }
  return `ip:${request.ip}`;
}

export async function registerProtection(app: FastifyInstance, s: Services): Promise<void> {
  const c = s.config;
  if (c.RATE_LIMIT_PER_SECOND > 0) {
    const redis = c.RATE_LIMIT_REDIS_URL
      ? new Redis(c.RATE_LIMIT_REDIS_URL, { connectTimeout: 500, maxRetriesPerRequest: 1, enableOfflineQueue: true, lazyConnect: false })
      : undefined;
    if (redis) {
      redis.on('error', (e) => app.log.warn({ err: e.message }, 'rate-limit store unreachable; requests pass unlimited'));
      app.addHook('onClose', async () => {
        redis.disconnect();
      });
    }
    await app.register(rateLimit, {
      global: true,
      max: c.RATE_LIMIT_PER_SECOND,
      timeWindow: 1000,
      keyGenerator: limitKey,
      allowList: (req) => EXEMPT.has(req.url.split('?')[0]),
      redis,
      nameSpace: 'meterd-rl:',
      // A broken Redis must not take ingestion down with it.
      skipOnError: true,
      errorResponseBuilder: (_req, ctx) =>
        new AppError('rate_limited', `rate limit of ${ctx.max} requests per second exceeded; retry in ${Math.ceil(ctx.ttl / 1000)} s`, [], Math.max(1, Math.ceil(ctx.ttl / 1000))),
    });
  }

  if (c.SHED_EVENT_LOOP_DELAY_MS > 0) {
    await app.register(underPressure, {
      maxEventLoopDelay: c.SHED_EVENT_LOOP_DELAY_MS,
      // Returning a body answers the request with it; returning nothing lets it through (health checks).
      pressureHandler: ((req: FastifyRequest, reply: FastifyReply, type: string) => {
        if (EXEMPT.has(req.url.split('?')[0])) return undefined;
        reply.code(503).header('retry-after', '1').type('application/problem+json');
        return { ...problem(503, `meterd is overloaded (${type}); retry shortly`), instance: req.id };
      }) as unknown as (req: FastifyRequest, reply: FastifyReply, type: string) => void,
    });
  }
}
