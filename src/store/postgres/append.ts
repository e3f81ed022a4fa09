// One group-commit transaction of appends: exactly-once by the event_keys primary key,
// never check-then-insert, so any number of processes may write to one database. The events'
// rollup contributions are stored as pending rows in the same transaction (see pending.ts).
// Statements are named, so PostgreSQL parses and plans them once per connection, not per commit.
import type pg from 'pg';
import type { AppendItem } from '../store.js';
import { StaleMetersError } from '../store.js';
import type { AppendStatus } from '../../modules/events/events.types.js';
import { validationError } from '../../core/errors.js';
import { byKey } from './writes.js';
import { PendingChunks, recordPending } from './pending.js';

export interface AppendJob {
  tenantId: string;
  metersVersion: number;
  items: AppendItem[];
}

export type JobResult = AppendStatus[] | Error;

interface Candidate {
  job: number;
  item: number;
  key: string;
  seq: number;
}

/** Bytes of one index entry PostgreSQL accepts (B-tree rows max out at 2704 bytes with overhead). */
const MAX_KEY_BYTES = 2600;

/** Rows travel as JSON, which PostgreSQL refuses with an unpaired surrogate in it. */
const malformed = (id: string) => validationError(`event ${id}: text must be well-formed Unicode (an unpaired surrogate)`);

/** Refuses, before the transaction, a job PostgreSQL would reject mid-way (failing its whole group). */
export function unstorable(job: AppendJob): Error | undefined {
  for (const { event: e, deltas } of job.items) {
    for (const s of [e.source, e.id, e.type, e.subject, e.dataJson, e.hash]) {
      if (s !== null && s.includes('\u0000')) return validationError(`event ${e.id}: text must not contain NUL characters`);
      if (s !== null && !s.isWellFormed()) return malformed(e.id);
    }
    for (const d of deltas) if (!d.subject.isWellFormed() || !d.groupKey.isWellFormed() || d.unique?.isWellFormed() === false) return malformed(e.id);
    const keyBytes = Buffer.byteLength(job.tenantId) + Buffer.byteLength(e.source) + Buffer.byteLength(e.id);
    const subjectBytes = Buffer.byteLength(e.subject ?? '') + Buffer.byteLength(e.type ?? '');
    if (keyBytes > MAX_KEY_BYTES || subjectBytes > MAX_KEY_BYTES) {
      return validationError(`event ${e.id}: source, id, type and subject are too long to index`);
    }
  }
  return undefined;
}

export async function commitAppends(c: pg.ClientBase, jobs: AppendJob[], now: number): Promise<JobResult[]> {
  // FOR SHARE: createMeter/deleteMeter UPDATE this row, so they wait for us and we for them.
  const tenants = [...new Set(jobs.map((j) => j.tenantId))].sort(byKey);
  const versions = new Map<string, number>();
  const v = await c.query<{ id: string; meters_version: string }>({
    name: 'meterd-append-tenants',
    text: 'SELECT id, meters_version FROM tenants WHERE id = ANY($1::text[]) ORDER BY id FOR SHARE',
    values: [tenants],
  });
  for (const r of v.rows) versions.set(r.id, Number(r.meters_version));

  const results: JobResult[] = jobs.map((j) => ((versions.get(j.tenantId) ?? 0) === j.metersVersion ? [] : new StaleMetersError()));
  // The first occurrence of a key in the group is inserted; later ones are judged by hash.
  const candidates: Candidate[] = [];
  const seen = new Set<string>();
  jobs.forEach((j, ji) => {
    if (results[ji] instanceof Error) return;
    j.items.forEach(({ event: e }, ii) => {
      const key = `${j.tenantId}\u0000${e.source}\u0000${e.id}`;
      if (seen.has(key)) return;
      seen.add(key);
      candidates.push({ job: ji, item: ii, key, seq: 0 });
    });
  });
  if (candidates.length === 0) return results;

  // Sequence numbers in arrival order, rows inserted in key order (lock order across processes).
  const seqs = await c.query<{ s: string }>({ name: 'meterd-append-seqs', text: "SELECT nextval('event_seq') AS s FROM generate_series(1, $1::int)", values: [candidates.length] });
  candidates.forEach((k, i) => (k.seq = Number(seqs.rows[i].s)));
  const sorted = [...candidates].sort((a, b) => byKey(a.key, b.key));
  const ev = (k: Candidate) => jobs[k.job].items[k.item].event;

  // Keys and events in one statement, the rows as one JSON parameter: PostgreSQL parses it in C,
  // where pg's array literals escaped every element in JavaScript (bench B2 profile: that escaping
  // and its garbage were the servers' largest cost after the folds moved into SQL).
  const rows = sorted.map((k) => {
    const e = ev(k);
    return { t: jobs[k.job].tenantId, s: e.source, i: e.id, h: e.hash, q: k.seq, m: e.time, y: e.type, u: e.subject, d: e.dataJson };
  });
  const inserted = await c.query<{ seq: string }>({
    name: 'meterd-append-events',
    text: `WITH x AS (
       SELECT * FROM json_to_recordset($1::json) AS x(t text, s text, i text, h text, q bigint, m bigint, y text, u text, d text)
     ),
     k AS (
       INSERT INTO event_keys (tenant_id, source, event_id, hash, seq, time) SELECT t, s, i, h, q, m FROM x
       ON CONFLICT DO NOTHING RETURNING seq
     ),
     stored AS (
       INSERT INTO events (seq, tenant_id, source, event_id, type, subject, time, data, ingested_at)
       SELECT q, t, s, i, y, u, m, d, $2::bigint FROM x JOIN k ON k.seq = x.q
     )
     SELECT seq FROM k`,
    values: [JSON.stringify(rows), now],
  });
  const acceptedSeqs = new Set(inserted.rows.map((r) => Number(r.seq)));
  const accepted = candidates.filter((k) => acceptedSeqs.has(k.seq));

  // A new statement has a new snapshot: it sees a concurrent winner that committed while our
  // INSERT waited on its key (READ COMMITTED), and our own rows for in-group repeats.
  const stored = new Map<string, string>();
  const others = jobs.flatMap((j, ji) => (results[ji] instanceof Error ? [] : j.items.map((it) => ({ tenant: j.tenantId, e: it.event }))));
  if (accepted.length < others.length) {
    const r = await c.query<{ tenant_id: string; source: string; event_id: string; hash: string }>(
      `SELECT k.tenant_id, k.source, k.event_id, k.hash FROM event_keys k
       JOIN unnest($1::text[], $2::text[], $3::text[]) AS w(tenant_id, source, event_id)
         ON k.tenant_id = w.tenant_id AND k.source = w.source AND k.event_id = w.event_id`,
      [others.map((o) => o.tenant), others.map((o) => o.e.source), others.map((o) => o.e.id)],
    );
    for (const row of r.rows) stored.set(`${row.tenant_id}\u0000${row.source}\u0000${row.event_id}`, row.hash);
  }

  const pending = new PendingChunks();
  const acceptedAt = new Map(accepted.map((k) => [`${k.job}:${k.item}`, k.seq]));
  jobs.forEach((j, ji) => {
    const statuses = results[ji];
    if (statuses instanceof Error) return;
    j.items.forEach(({ event: e, deltas: ds }, ii) => {
      const seq = acceptedAt.get(`${ji}:${ii}`);
      if (seq !== undefined) {
        statuses.push('accepted');
        for (const d of ds) d.partial.latestSeq = seq;
        pending.add(j.tenantId, ds);
      } else {
        statuses.push(stored.get(`${j.tenantId}\u0000${e.source}\u0000${e.id}`) === e.hash ? 'duplicate' : 'conflict');
      }
    });
  });
  await recordPending(c, pending.chunks);
  return results;
}
