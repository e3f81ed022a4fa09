// One group-commit transaction of appends: exactly-once by the event_ids primary key,
// never check-then-insert, so any number of processes may write to one database. The events'
// rollup contributions are stored as pending rows in the same transaction (see pending.ts).
// Statements are named, so PostgreSQL parses and plans them once per connection, not per commit.
import type pg from 'pg';
import { hash } from 'node:crypto';
import type { AppendItem } from '../store.js';
import { StaleMetersError, eventKey } from '../store.js';
import type { AppendStatus } from '../../modules/events/events.types.js';
import { validationError } from '../../core/errors.js';
import { byKey } from './writes.js';
import { PENDING_INSERT, PendingChunks, pendingJson, recordPending } from './pending.js';

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

/**
 * An event's dedupe key as stored: the first 128 bits of SHA-256 over its eventKey, as a UUID.
 * A fixed 16 bytes keeps the key index small: random ids put every new key on a random leaf, and
 * each leaf first written after a checkpoint is logged whole (a full-page image). With the text key, at 3.4M events stored, that index made 79%
 * of the B-tree's full-page images, ~2.5 KB of WAL per event. A stored digest is checked against
 * the stored event's source and id before a repeat is judged (see commitAppends).
 */
export const keyDigest = (tenantId: string, source: string, id: string) => {
  const h = hash('sha256', eventKey(tenantId, source, id), 'hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
};

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
    // Source and id are not indexed (their digest is); tenant, type and subject are.
    const indexedBytes = Buffer.byteLength(job.tenantId) + Buffer.byteLength(e.subject ?? '') + Buffer.byteLength(e.type ?? '');
    if (indexedBytes > MAX_KEY_BYTES) return validationError(`event ${e.id}: type and subject are too long to index`);
  }
  return undefined;
}

export async function commitAppends(c: pg.ClientBase, jobs: AppendJob[], now: number): Promise<JobResult[]> {
  const digests = jobs.map((j) => j.items.map(({ event: e }) => keyDigest(j.tenantId, e.source, e.id)));
  // Every key of the group, in arrival order, gets a seq, used by its first occurrence in a job that is not stale.
  const keys = [...new Set(digests.flat())];

  // One round trip for the tenants' meter versions and the sequence numbers (a stale job's may go
  // unused). FOR SHARE: createMeter/deleteMeter UPDATE the tenant row, so they wait for us and we for them.
  const tenants = [...new Set(jobs.map((j) => j.tenantId))].sort(byKey);
  const head = await c.query<{ versions: Array<[string, string]> | null; seqs: string[] }>({
    name: 'meterd-append-head',
    text: `WITH t AS (SELECT id, meters_version FROM tenants WHERE id = ANY($1::text[]) ORDER BY id FOR SHARE)
      SELECT (SELECT json_agg(json_build_array(id, meters_version::text)) FROM t) AS versions,
             ARRAY(SELECT nextval('event_seq')::text FROM generate_series(1, $2::int)) AS seqs`,
    values: [tenants, keys.length],
  });
  const versions = new Map((head.rows[0].versions ?? []).map(([id, v]) => [id, Number(v)]));
  const seqOf = new Map(keys.map((key, i) => [key, Number(head.rows[0].seqs[i])]));
  const results: JobResult[] = jobs.map((j) => ((versions.get(j.tenantId) ?? 0) === j.metersVersion ? [] : new StaleMetersError()));
  // The first occurrence of a key in the group's current jobs is inserted; later ones are judged by hash.
  const candidates: Candidate[] = [];
  const seen = new Set<string>();
  jobs.forEach((j, ji) => {
    if (results[ji] instanceof Error) return;
    j.items.forEach((_, ii) => {
      const key = digests[ji][ii];
      if (seen.has(key)) return;
      seen.add(key);
      candidates.push({ job: ji, item: ii, key, seq: seqOf.get(key)! });
    });
  });
  if (candidates.length === 0) return results;

  // Rows inserted in key order: the lock order across processes.
  const sorted = [...candidates].sort((a, b) => byKey(a.key, b.key));
  const ev = (k: Candidate) => jobs[k.job].items[k.item].event;
  // The pending rows as if every candidate is new, the common case: the same statement stores them
  // when it inserted every key, which saves a round trip; otherwise they are made again below.
  const hoped = new PendingChunks();
  for (const k of candidates) {
    const { deltas } = jobs[k.job].items[k.item];
    for (const d of deltas) d.partial.latestSeq = k.seq;
    hoped.add(jobs[k.job].tenantId, deltas);
  }

  // Keys, events and pending rows in one statement, the rows as one JSON parameter each: PostgreSQL
  // parses it in C, where pg's array literals escaped every element in JavaScript (bench B2 profile:
  // that escaping and its garbage were the servers' largest cost after the folds moved into SQL).
  const rows = sorted.map((k) => {
    const e = ev(k);
    return { k: k.key, t: jobs[k.job].tenantId, s: e.source, i: e.id, h: e.hash, q: k.seq, m: e.time, y: e.type, u: e.subject, d: e.dataJson };
  });
  const inserted = await c.query<{ seq: string }>({
    name: 'meterd-append-events',
    text: `WITH x AS (
       SELECT * FROM json_to_recordset($1::json) AS x(k uuid, t text, s text, i text, h text, q bigint, m bigint, y text, u text, d text)
     ),
     k AS (
       INSERT INTO event_ids (key, seq, time, hash) SELECT k, q, m, h FROM x
       ON CONFLICT DO NOTHING RETURNING seq
     ),
     stored AS (
       INSERT INTO events (seq, tenant_id, source, event_id, type, subject, time, data, ingested_at)
       SELECT q, t, s, i, y, u, m, d, $2::bigint FROM x JOIN k ON k.seq = x.q
     ),
     pending AS (
       ${PENDING_INSERT} FROM json_to_recordset($3::json) AS p(t text, e int, b json) WHERE (SELECT count(*) FROM k) = $4::int
     )
     SELECT seq FROM k`,
    values: [JSON.stringify(rows), now, pendingJson(hoped.chunks), candidates.length],
  });
  const acceptedSeqs = new Set(inserted.rows.map((r) => Number(r.seq)));
  const accepted = candidates.filter((k) => acceptedSeqs.has(k.seq));
  // Every candidate new: the statement stored their pending rows (the condition it checked).
  const pendingStored = accepted.length === candidates.length;
  const current = jobs.reduce((n, j, ji) => (results[ji] instanceof Error ? n : n + j.items.length), 0);
  // Every event new, none repeated within the group: statuses only.
  if (pendingStored && accepted.length === current) {
    for (const k of accepted) (results[k.job] as AppendStatus[])[k.item] = 'accepted';
    return results;
  }

  // A new statement has a new snapshot: it sees a concurrent winner that committed while our
  // INSERT waited on its key (READ COMMITTED), and our own rows for in-group repeats. The stored
  // event's source and id are read with its content hash, so two keys sharing a digest (about 2^-64
  // likely at 2^32 events) can never pass for a repeat: that fails the job instead.
  const stored = new Map<string, { hash: string; source: string | null; id: string | null }>();
  const others = jobs.flatMap((j, ji) => (results[ji] instanceof Error ? [] : j.items.map((_, ii) => ({ tenant: j.tenantId, key: digests[ji][ii] }))));
  const r = await c.query<{ key: string; hash: string; source: string | null; event_id: string | null }>({
    name: 'meterd-append-repeats',
    text: `SELECT w.key::text AS key, k.hash, e.source, e.event_id
     FROM unnest($1::uuid[], $2::text[]) AS w(key, tenant_id)
     JOIN event_ids k ON k.key = w.key
     LEFT JOIN events e ON e.tenant_id = w.tenant_id AND e.time = k.time AND e.seq = k.seq`,
    values: [others.map((o) => o.key), others.map((o) => o.tenant)],
  });
  for (const row of r.rows) stored.set(row.key, { hash: row.hash, source: row.source, id: row.event_id });

  // Unless the statement stored them, the pending rows of the accepted events.
  const pending = new PendingChunks();
  const acceptedAt = new Set(accepted.map((k) => `${k.job}:${k.item}`));
  jobs.forEach((j, ji) => {
    const statuses = results[ji];
    if (statuses instanceof Error) return;
    j.items.forEach(({ event: e, deltas: ds }, ii) => {
      if (acceptedAt.has(`${ji}:${ii}`)) {
        statuses.push('accepted');
        if (!pendingStored) pending.add(j.tenantId, ds);
      } else {
        const was = stored.get(digests[ji][ii]);
        if (was && was.source !== null && (was.source !== e.source || was.id !== e.id)) {
          results[ji] = new Error(`event ${e.id}: the digest of its key equals that of another stored event, so it cannot be stored`);
          return;
        }
        statuses.push(was?.hash === e.hash ? 'duplicate' : 'conflict');
      }
    });
  });
  await recordPending(c, pending.chunks);
  return results;
}
