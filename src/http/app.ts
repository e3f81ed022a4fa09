// Builds the HTTP server: parsers, security headers, OpenAPI, the error mapping, every route.
import Fastify, { type FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Services } from '../main.js';
import { errorHandler, problem, sendProblem } from './problem.js';
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
import { notFound, validationError } from '../core/errors.js';

export interface HttpOptions {
  /** pino options, or false for no logs (tests). */
  logger?: boolean | Record<string, unknown>;
  /** Extra route plugins (the seed-API adapters). */
  plugins?: Array<(app: FastifyInstance, s: Services) => void | Promise<void>>;
}

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
    // A seed API's URL gets that API's error shape; everything else problem+json.
    frameworkErrors: (error, req, reply) => {
      const message = `the URL is malformed: ${error.message.replace(/'[^']*'/, 'the path')}`;
      const writer = compatErrorWriter(req.url);
      return writer ? writer(validationError(message), req, reply) : sendProblem(reply, problem(400, message));
    },
    // On close, idle keep-alive connections are dropped at once; busy ones finish their request first.
    forceCloseConnections: 'idle',
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

  // The seed APIs' routes have their own error handlers; a request under a seed API's prefix that no
  // route takes (an unrouted method whose body fails to parse, say) gets that API's shape here too.
  app.setErrorHandler((err, req, reply) => {
    const writer = compatErrorWriter(req.url);
    return writer ? writer(err, req, reply) : errorHandler(err, req, reply);
  });
  await registerProtection(app, s);
  // Under a seed API's prefix (a method it does not route, say), that API's error shape.
  app.setNotFoundHandler((req, reply) => {
    const route = `${req.method} ${req.url.split('?')[0].slice(0, 200)}`;
    const writer = compatErrorWriter(req.url);
    return writer ? writer(notFound(`route ${route}`), req, reply) : sendProblem(reply, problem(404, `no route ${route}`));
  });

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
