import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { errors } from '../../http/schemas.js';
import { requireScope } from '../../http/auth.js';
import { problem, sendProblem } from '../../http/problem.js';
import { formatInstant } from '../../core/time.js';
import { validationError } from '../../core/errors.js';
import { parseInstantParam } from '../usage/usage.query.js';
import type { Services } from '../../main.js';
import { IngestBody, ListEventsQuery, StoredEventSchema } from './events.schemas.js';

export function eventRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['events'];

  r.post('/v1/events', {
    schema: {
      tags,
      summary: 'Ingest usage events, exactly once, durably',
      description: 'Answers after the events are committed to disk. Each event gets a receipt: accepted, duplicate (same id, source and content as before), conflict (same id and source, other content: nothing is overwritten) or rejected (with the reason). A batch is never failed whole for one bad event.',
      body: IngestBody,
      response: { 200: Type.Ref('IngestReceipt'), ...errors(400, 401, 403, 409, 413, 415) },
    },
    // Events are validated one by one in the service, so one bad event cannot fail a batch.
    validatorCompiler: () => () => true,
    onRequest: requireScope(s.apiKeys, 'ingest'),
  }, async (req, reply) => {
    const contentType = String(req.headers['content-type'] ?? '');
    const body = req.body as unknown;
    if (contentType.startsWith('application/cloudevents-batch+json') && !Array.isArray(body)) {
      throw validationError('application/cloudevents-batch+json must be a JSON array of events');
    }
    const result = await s.events.ingest(req.ctx, body);
    if (!Array.isArray(body)) {
      // A single event answers like a resource: its failure is the request's failure.
      const receipt = result.events[0];
      if (receipt.status === 'rejected') {
        return sendProblem(reply, problem(400, `event rejected: ${receipt.error}`, [{ field: receipt.field ?? '', message: receipt.error ?? '' }], { receipt: result }));
      }
      if (receipt.status === 'conflict') {
        return sendProblem(reply, problem(409, `an event with id "${receipt.id}" and this source was already recorded with different content; it was not changed`, [{ field: 'id', message: 'reused with different content' }], { receipt: result }));
      }
    }
    return reply.code(200).send(result);
  });

  r.get('/v1/events', {
    schema: {
      tags,
      summary: 'List stored events, newest first',
      querystring: ListEventsQuery,
      response: { 200: Type.Object({ data: Type.Array(StoredEventSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errors(400, 401, 403) },
    },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => {
    const q = req.query;
    const filter = {
      subject: q.subject,
      type: q.type,
      from: q.from === undefined ? undefined : parseInstantParam('from', q.from),
      to: q.to === undefined ? undefined : parseInstantParam('to', q.to),
    };
    const { events, nextCursor } = await s.events.list(req.ctx, filter, q.cursor, q.limit ?? 100);
    return {
      data: events.map((e) => ({ id: e.id, source: e.source, type: e.type, subject: e.subject, time: formatInstant(e.time), data: e.data, ingestedAt: formatInstant(e.ingestedAt) })),
      nextCursor,
    };
  });
}
