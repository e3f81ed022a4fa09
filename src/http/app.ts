// Builds the HTTP server: parsers, security headers, OpenAPI, the error mapping, every route.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Services } from '../main.js';
import { errorHandler } from './problem.js';
import { clientErrorHandler } from './client-errors.js';
import { ProblemSchema } from './schemas.js';
import { MeterSchema } from '../modules/meters/meters.schemas.js';
import { CustomerSchema } from '../modules/customers/customers.schemas.js';
import { CloudEventSchema, ReceiptSchema } from '../modules/events/events.schemas.js';
import { UsageResultSchema } from '../modules/usage/usage.routes.js';
import { meterRoutes } from '../modules/meters/meters.routes.js';
import { customerRoutes } from '../modules/customers/customers.routes.js';
import { eventRoutes } from '../modules/events/events.routes.js';
import { usageRoutes } from '../modules/usage/usage.routes.js';
import { apiKeyRoutes } from '../modules/api-keys/api-keys.routes.js';
import { healthRoutes } from './health.js';
import { metricsRoutes } from '../modules/metrics/metrics.routes.js';
import { validatorCompiler } from './validation.js';
import { registerProtection } from './protection.js';
import { registerSecurityHeaders } from './security-headers.js';
import { lazyChild } from './lazy-logger.js';
import { compatErrorWriter, compatPlugins } from '../compat/index.js';
import { AppError, validationError } from '../core/errors.js';

export interface HttpOptions {
  /** pino options, or false for no logs (tests). */
  logger?: boolean | Record<string, unknown>;
  /** Extra route plugins (the seed-API adapters). */
  plugins?: Array<(app: FastifyInstance, s: Services) => void | Promise<void>>;
}

/**
 * Every error answer: a seed API's own error shape under its URL prefix (its routes, and what no route
 * takes there), problem+json everywhere else.
 */
const answerError = (err: unknown, req: FastifyRequest, reply: FastifyReply) => (compatErrorWriter(req.url) ?? errorHandler)(err, req, reply);

const JSON_TYPES = ['application/json', 'application/cloudevents+json', 'application/cloudevents-batch+json'];

export async function buildHttp(s: Services, opts: HttpOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    // Request loggers are made on their first line (most requests write none).
    ...(opts.logger ? { childLoggerFactory: lazyChild } : {}),
    bodyLimit: s.config.MAX_BODY_BYTES,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
    return503OnClosing: true,
    // Errors the router raises before any handler (a URL with invalid percent-encoding).
    frameworkErrors: (error, req, reply) => answerError(validationError(`the URL is malformed: ${error.message.replace(/'[^']*'/, 'the path')}`), req, reply),
    // On close, idle keep-alive connections are dropped at once; busy ones finish their request first.
    forceCloseConnections: 'idle',
    // Requests the HTTP parser refuses (malformed, headers too large) answer problem+json too.
    clientErrorHandler,
    // The router's own limit on a path parameter's raw length (default 100) must not refuse what the
    // schemas accept: ids and keys of up to MAX_ID_LENGTH characters, percent-encoded at up to 9 per
    // character. The schemas refuse anything longer with a 400 that names the field.
    maxParamLength: s.config.MAX_ID_LENGTH * 9,
  });

  app.setValidatorCompiler(validatorCompiler);
  // JSON bodies only, parsed by JSON.parse (amounts are checked for exactness where they are read).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(JSON_TYPES, { parseAs: 'string' }, (_req, body, done) => {
    if ((body as string).length === 0) return done(Object.assign(new Error('the request body is empty; a JSON body is required'), { statusCode: 400 }), undefined);
    try {
      done(null, JSON.parse(body as string));
    } catch (e) {
      done(Object.assign(new Error(`the body is not valid JSON: ${(e as Error).message}`), { statusCode: 400 }), undefined);
    }
  });

  for (const schema of [ProblemSchema, MeterSchema, CustomerSchema, CloudEventSchema, ReceiptSchema, UsageResultSchema]) app.addSchema(schema);

  registerSecurityHeaders(app);
  // A callback hook, not an async one: no promise per response.
  app.addHook('onSend', (req, reply, payload, done) => {
    reply.header('x-request-id', req.id);
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    done(null, payload);
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'meterd', version: '0.1.0', description: 'Exact, durable usage metering. Amounts are exact decimal strings.' },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'meterd API key: mk_<id>_<secret>' } } },
      security: [{ apiKey: [] }],
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: false });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.setErrorHandler(answerError);
  await registerProtection(app, s);
  app.setNotFoundHandler((req, reply) => answerError(new AppError('not_found', `no route ${req.method} ${req.url.split('?')[0].slice(0, 200)}`), req, reply));

  healthRoutes(app, s);
  metricsRoutes(app, s);
  apiKeyRoutes(app, s);
  meterRoutes(app, s);
  customerRoutes(app, s);
  eventRoutes(app, s);
  usageRoutes(app, s);
  for (const p of [...compatPlugins, ...(opts.plugins ?? [])]) await p(app, s);
  return app;
}
