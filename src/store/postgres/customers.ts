// Customers and the subjects they own. A subject's owner is the customer_subjects primary key,
// so two customers claiming one subject at once cannot both win.
import type pg from 'pg';
import type { Customer } from '../../modules/customers/customers.types.js';
import { customerFromRow, type CustomerRow } from '../rows.js';
import { withRetry } from './pool.js';
import { byKey } from './writes.js';

type CreateResult = 'created' | { conflict: 'key' | 'subject'; subject?: string };
type UpdateResult = 'updated' | 'missing' | { conflict: 'subject'; subject: string };

/** Thrown inside a transaction to roll it back when a subject belongs to another customer. */
class SubjectTaken extends Error {
  constructor(readonly subject: string) {
    super(`subject ${subject} is owned by another customer`);
  }
}

async function subjectConflict<T>(run: Promise<T>): Promise<T | { conflict: 'subject'; subject: string }> {
  try {
    return await run;
  } catch (e) {
    if (e instanceof SubjectTaken) return { conflict: 'subject', subject: e.subject };
    throw e;
  }
}

/** Makes c own exactly c.subjects; throws SubjectTaken for the first one another customer owns. */
async function claimSubjects(client: pg.ClientBase, c: Customer): Promise<void> {
  const wanted = [...new Set(c.subjects)].sort(byKey);
  await client.query('DELETE FROM customer_subjects WHERE customer_id = $1 AND NOT (subject = ANY($2::text[]))', [c.id, wanted]);
  await client.query(
    `INSERT INTO customer_subjects (tenant_id, subject, customer_id)
     SELECT $1, s, $3 FROM unnest($2::text[]) AS s ON CONFLICT DO NOTHING`,
    [c.tenantId, wanted, c.id],
  );
  const owners = await client.query<{ subject: string; customer_id: string }>(
    'SELECT subject, customer_id FROM customer_subjects WHERE tenant_id = $1 AND subject = ANY($2::text[])',
    [c.tenantId, wanted],
  );
  const owner = new Map(owners.rows.map((r) => [r.subject, r.customer_id]));
  const taken = c.subjects.find((s) => owner.get(s) !== c.id);
  if (taken !== undefined) throw new SubjectTaken(taken);
}

export function createCustomer(pool: pg.Pool, c: Customer): Promise<CreateResult> {
  return subjectConflict(
    withRetry(pool, async (client): Promise<CreateResult> => {
      const r = await client.query(
        `INSERT INTO customers (id, tenant_id, key, name, metadata, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, key) DO NOTHING`,
        [c.id, c.tenantId, c.key, c.name, JSON.stringify(c.metadata), c.createdAt, c.updatedAt],
      );
      if (r.rowCount === 0) return { conflict: 'key' };
      await claimSubjects(client, c);
      return 'created';
    }),
  );
}

export function updateCustomer(pool: pg.Pool, c: Customer): Promise<UpdateResult> {
  return subjectConflict(
    withRetry(pool, async (client): Promise<UpdateResult> => {
      const r = await client.query('UPDATE customers SET name = $1, metadata = $2, updated_at = $3 WHERE tenant_id = $4 AND id = $5', [
        c.name,
        JSON.stringify(c.metadata),
        c.updatedAt,
        c.tenantId,
        c.id,
      ]);
      if (r.rowCount === 0) return 'missing';
      await claimSubjects(client, c);
      return 'updated';
    }),
  );
}

const WITH_SUBJECTS = `SELECT c.*, ARRAY(SELECT s.subject FROM customer_subjects s WHERE s.customer_id = c.id ORDER BY s.subject) AS subjects
  FROM customers c`;

export async function getCustomer(pool: pg.Pool, tenantId: string, key: string): Promise<Customer | undefined> {
  const r = await pool.query<CustomerRow & { subjects: string[] }>(`${WITH_SUBJECTS} WHERE c.tenant_id = $1 AND c.key = $2`, [tenantId, key]);
  return r.rows[0] && customerFromRow(r.rows[0], r.rows[0].subjects);
}

export async function listCustomers(pool: pg.Pool, tenantId: string, afterKey: string | undefined, limit: number): Promise<Customer[]> {
  const r = await pool.query<CustomerRow & { subjects: string[] }>(
    `${WITH_SUBJECTS} WHERE c.tenant_id = $1 AND c.key > $2 ORDER BY c.key LIMIT $3`,
    [tenantId, afterKey ?? '', limit],
  );
  return r.rows.map((row) => customerFromRow(row, row.subjects));
}

export async function customersOfSubjects(pool: pg.Pool, tenantId: string, subjects?: string[]): Promise<Map<string, string>> {
  const r = await pool.query<{ subject: string; key: string }>(
    `SELECT s.subject, c.key FROM customer_subjects s JOIN customers c ON c.id = s.customer_id
     WHERE s.tenant_id = $1 AND ($2::text[] IS NULL OR s.subject = ANY($2::text[]))`,
    [tenantId, subjects ?? null],
  );
  return new Map(r.rows.map((x) => [x.subject, x.key]));
}
