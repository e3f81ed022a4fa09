import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { errors } from '../../http/schemas.js';
import { requireScope } from '../../http/auth.js';
import { formatInstant } from '../../core/time.js';
import type { Services } from '../../main.js';
import { CreateCustomerBody, CustomerParams, ListCustomersQuery, UpdateCustomerBody } from './customers.schemas.js';
import type { Customer } from './customers.types.js';

const view = (c: Customer) => ({
  id: c.id,
  key: c.key,
  name: c.name,
  subjects: c.subjects,
  metadata: c.metadata,
  createdAt: formatInstant(c.createdAt),
  updatedAt: formatInstant(c.updatedAt),
});

export function customerRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['customers'];
  r.post('/v1/customers', {
    schema: { tags, summary: 'Create a customer owning event subjects', body: CreateCustomerBody, response: { 201: Type.Ref('Customer'), ...errors(400, 401, 403, 409) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => reply.code(201).send(view(await s.customers.create(req.ctx, req.body))));

  r.get('/v1/customers', {
    schema: { tags, summary: 'List customers by key', querystring: ListCustomersQuery, response: { 200: Type.Object({ data: Type.Array(Type.Ref('Customer')), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errors(400, 401, 403) } },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => {
    const { customers, nextCursor } = await s.customers.list(req.ctx, req.query.cursor, req.query.limit ?? 100);
    return { data: customers.map(view), nextCursor };
  });

  r.get('/v1/customers/:key', {
    schema: { tags, summary: 'Get a customer', params: CustomerParams, response: { 200: Type.Ref('Customer'), ...errors(401, 403, 404) } },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => view(await s.customers.get(req.ctx, req.params.key)));

  r.patch('/v1/customers/:key', {
    schema: { tags, summary: 'Update a customer (subjects replace the list)', params: CustomerParams, body: UpdateCustomerBody, response: { 200: Type.Ref('Customer'), ...errors(400, 401, 403, 404, 409) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req) => view(await s.customers.update(req.ctx, req.params.key, req.body)));
}
