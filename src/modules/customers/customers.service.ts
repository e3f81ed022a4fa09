import { randomUUID } from 'node:crypto';
import type { Ctx } from '../../core/context.js';
import { conflict, notFound } from '../../core/errors.js';
import type { Store } from '../../store/store.js';
import type { Customer } from './customers.types.js';

export interface CreateCustomerInput {
  key: string;
  name?: string;
  subjects?: string[];
  metadata?: Record<string, string>;
}

export interface UpdateCustomerInput {
  name?: string;
  subjects?: string[];
  metadata?: Record<string, string>;
}

const subjectTaken = (subject: string) =>
  conflict(`subject "${subject}" already belongs to another customer`, [{ field: 'subjects', message: `"${subject}" is owned by another customer` }]);

export class CustomersService {
  constructor(private readonly store: Store) {}

  async create(ctx: Ctx, input: CreateCustomerInput): Promise<Customer> {
    const now = Date.now();
    const customer: Customer = {
      id: randomUUID(),
      tenantId: ctx.tenantId,
      key: input.key,
      name: input.name ?? input.key,
      // A customer's key is its subject unless it names others, as in OpenMeter.
      subjects: [...new Set(input.subjects ?? [input.key])],
      metadata: input.metadata ?? {},
      createdAt: now,
      updatedAt: now,
    };
    const r = await this.store.createCustomer(customer);
    if (r !== 'created') {
      if (r.conflict === 'key') throw conflict(`a customer with key "${input.key}" already exists`, [{ field: 'key', message: 'already in use' }]);
      throw subjectTaken(r.subject!);
    }
    return customer;
  }

  async get(ctx: Ctx, key: string): Promise<Customer> {
    const c = await this.store.getCustomer(ctx.tenantId, key);
    if (!c) throw notFound(`customer "${key}"`);
    return c;
  }

  async list(ctx: Ctx, after: string | undefined, limit: number): Promise<{ customers: Customer[]; nextCursor: string | null }> {
    const rows = await this.store.listCustomers(ctx.tenantId, after, limit + 1);
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    return { customers: page, nextCursor: more ? page[page.length - 1].key : null };
  }

  async update(ctx: Ctx, key: string, input: UpdateCustomerInput): Promise<Customer> {
    const current = await this.get(ctx, key);
    const next: Customer = {
      ...current,
      name: input.name ?? current.name,
      subjects: input.subjects ? [...new Set(input.subjects)] : current.subjects,
      metadata: input.metadata ?? current.metadata,
      updatedAt: Date.now(),
    };
    const r = await this.store.updateCustomer(next);
    if (r === 'missing') throw notFound(`customer "${key}"`);
    if (r !== 'updated') throw subjectTaken(r.subject);
    return next;
  }
}
