// The meterd command, run for real as a child process against a real SQLite file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { loadConfig } from '../../src/config.js';
import { openServices, type Services } from '../../src/main.js';
import { reconcileMeter } from '../../src/cli/reconcile.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = ['--import', 'tsx', join(ROOT, 'src', 'cli', 'index.ts')];
let dir: string;
let dbUrl: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function meterd(...args: string[]): Run {
  const r = spawnSync(process.execPath, [...CLI, ...args], { cwd: ROOT, env: { ...process.env, DATABASE_URL: dbUrl }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(...args: string[]): string {
  const r = meterd(...args);
  assert.equal(r.code, 0, `meterd ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

/** A failing run: exit status 1, a message on stderr, never a stack trace. */
function fails(pattern: RegExp, ...args: string[]): Run {
  const r = meterd(...args);
  assert.equal(r.code, 1, `meterd ${args.join(' ')} should fail:\n${r.stdout}${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  return r;
}

const newTenant = () => {
  const id = `t-${randomBytes(4).toString('hex')}`;
  ok('tenants', 'create', id);
  return id;
};

async function withServices<T>(fn: (s: Services) => Promise<T>): Promise<T> {
  const s = await openServices(loadConfig({ DATABASE_URL: dbUrl }));
  try {
    return await fn(s);
  } finally {
    await s.store.close();
  }
}

/** A tenant with a SUM meter "tokens" over type llm, grouped by model. */
function meteredTenant(): string {
  const t = newTenant();
  ok('meters', 'create', '--tenant', t, '--slug', 'tokens', '--event-type', 'llm', '--aggregation', 'SUM', '--value-property', '$.tokens', '--group-by', 'model=$.model');
  return t;
}

const RANGE = ['--from', '2026-01-01T00:00:00Z', '--to', '2026-02-01T00:00:00Z'];

function total(tenant: string, ...extra: string[]): string {
  const out = JSON.parse(ok('query', '--tenant', tenant, '--meter', 'tokens', ...RANGE, '--format', 'json', ...extra)) as { data: Array<{ value: string }> };
  assert.equal(out.data.length, 1);
  return out.data[0].value;
}

const ndjsonLine = (i: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ type: 'llm', subject: `user-${i % 3}`, time: `2026-01-${String(1 + (i % 28)).padStart(2, '0')}T10:00:00Z`, data: { tokens: '0.1', model: 'gpt' }, ...extra });

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const counts = (out: string) => {
  const m = /accepted (\d+), duplicate (\d+), conflict (\d+), rejected (\d+)/.exec(out);
  assert.ok(m, `no summary in:\n${out}`);
  return { accepted: Number(m[1]), duplicate: Number(m[2]), conflict: Number(m[3]), rejected: Number(m[4]) };
};

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-cli-'));
  dbUrl = `sqlite:${join(dir, 'meterd.db')}`;
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('tenants', () => {
  test('create and list', () => {
    const t = newTenant();
    ok('tenants', 'create', `${t}-named`, '--name', 'Acme Inc');
    const table = ok('tenants', 'list');
    assert.match(table, /^id\s+name\s+createdAt$/m);
    assert.match(table, new RegExp(`^${t}-named\\s+Acme Inc\\s`, 'm'));
    const json = JSON.parse(ok('tenants', 'list', '--format', 'json')) as Array<{ id: string }>;
    assert.ok(json.some((x) => x.id === t));
  });

  test('a duplicate or malformed tenant fails with a message', () => {
    const t = newTenant();
    fails(/already exists/, 'tenants', 'create', t);
    fails(/lower-case letters/, 'tenants', 'create', 'Not Valid');
  });
});

describe('keys', () => {
  test('the printed key authenticates until revoked, and list never shows secrets', async () => {
    const t = newTenant();
    const key = ok('keys', 'create', '--tenant', t, '--name', 'ci', '--scopes', 'ingest,read').trim();
    assert.match(key, /^mk_[A-Za-z0-9]{16}_[A-Za-z0-9_-]{43}$/);
    const id = key.split('_')[1];
    const record = await withServices((s) => s.apiKeys.authenticate(key));
    assert.equal(record.tenantId, t);
    assert.deepEqual(record.scopes, ['ingest', 'read']);

    const list = ok('keys', 'list', '--tenant', t);
    assert.match(list, new RegExp(`^${id}\\s+ci\\s+ingest,read\\s`, 'm'));
    assert.ok(!list.includes(key.slice(-43)), 'no secret in the listing');
    assert.ok(!ok('keys', 'list', '--tenant', t, '--format', 'json').includes(key.slice(-43)));

    ok('keys', 'revoke', id, '--tenant', t);
    await assert.rejects(withServices((s) => s.apiKeys.authenticate(key)), /revoked/);
    assert.match(ok('keys', 'list', '--tenant', t, '--format', 'csv'), new RegExp(`^${id},ci,"ingest,read",\\S+,\\d{4}-`, 'm'));
  });

  test('errors: unknown tenant, bad scopes, unknown key', () => {
    fails(/tenant "nobody" does not exist/, 'keys', 'create', '--tenant', 'nobody', '--name', 'x');
    const t = newTenant();
    fails(/--scopes/, 'keys', 'create', '--tenant', t, '--name', 'x', '--scopes', 'ingest,root');
    fails(/API key not found/, 'keys', 'revoke', 'AAAAAAAAAAAAAAAA', '--tenant', t);
  });
});

describe('meters', () => {
  test('create and list', () => {
    const t = meteredTenant();
    ok('meters', 'create', '--tenant', t, '--slug', 'calls', '--event-type', 'llm', '--aggregation', 'count', '--description', 'API calls');
    const table = ok('meters', 'list', '--tenant', t);
    assert.match(table, /^calls\s+llm\s+COUNT\s+API calls$/m);
    assert.match(table, /^tokens\s+llm\s+SUM\s+\$\.tokens\s+model=\$\.model$/m);
  });

  test('an invalid definition fails with its fields', () => {
    const t = newTenant();
    const r = fails(/invalid meter definition/, 'meters', 'create', '--tenant', t, '--slug', 'x', '--event-type', 'llm', '--aggregation', 'SUM');
    assert.match(r.stderr, /valueProperty: valueProperty is required for SUM/);
    fails(/aggregation: must be one of SUM/, 'meters', 'create', '--tenant', t, '--slug', 'x', '--event-type', 'llm', '--aggregation', 'MEDIAN');
    fails(/groupBy\.subject: "subject" is reserved/, 'meters', 'create', '--tenant', t, '--slug', 'x', '--event-type', 'llm', '--aggregation', 'COUNT', '--group-by', 'subject=$.s');
    fails(/already exists/, 'meters', 'create', '--tenant', meteredTenant(), '--slug', 'tokens', '--event-type', 'llm', '--aggregation', 'COUNT');
  });
});

describe('ingest', () => {
  test('NDJSON: exact decimal sums, and re-running counts nothing twice', () => {
    const t = meteredTenant();
    const p = file(`${t}.ndjson`, Array.from({ length: 10 }, (_, i) => ndjsonLine(i)).join('\n') + '\n');
    assert.deepEqual(counts(ok('ingest', p, '--tenant', t, '--batch', '3')), { accepted: 10, duplicate: 0, conflict: 0, rejected: 0 });
    assert.equal(total(t), '1');
    assert.ok(existsSync(`${p}.meterd-checkpoint`));

    // With the checkpoint the file is skipped; without it every event is a duplicate.
    assert.deepEqual(counts(ok('ingest', p, '--tenant', t)), { accepted: 0, duplicate: 0, conflict: 0, rejected: 0 });
    assert.deepEqual(counts(ok('ingest', p, '--tenant', t, '--no-checkpoint')), { accepted: 0, duplicate: 10, conflict: 0, rejected: 0 });
    unlinkSync(`${p}.meterd-checkpoint`);
    assert.deepEqual(counts(ok('ingest', p, '--tenant', t)), { accepted: 0, duplicate: 10, conflict: 0, rejected: 0 });
    assert.equal(total(t), '1');
  });

  test('NDJSON: a checkpoint of another tenant is not used, and appended lines are picked up', () => {
    const t = meteredTenant();
    const other = meteredTenant();
    const p = file(`${t}-append.jsonl`, Array.from({ length: 5 }, (_, i) => ndjsonLine(i)).join('\n') + '\n');
    assert.equal(counts(ok('ingest', p, '--tenant', t)).accepted, 5);
    const r = meterd('ingest', p, '--tenant', other);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /another database, tenant, source or format/);
    assert.equal(counts(r.stdout).accepted, 5);
    writeFileSync(p, Array.from({ length: 8 }, (_, i) => ndjsonLine(i)).join('\n') + '\n');
    assert.deepEqual(counts(ok('ingest', p, '--tenant', other)), { accepted: 3, duplicate: 0, conflict: 0, rejected: 0 });
    assert.equal(total(other), '0.8');
    assert.equal(total(t), '0.5');
  });

  test('CSV: attributes, data columns and string values, exact and idempotent', () => {
    const t = meteredTenant();
    const rows = ['type,subject,time,data.tokens,model,note'];
    for (let i = 0; i < 10; i++) rows.push(`llm,user-${i % 2},2026-01-0${1 + (i % 9)}T10:00:00Z,0.1,${i < 6 ? 'gpt' : 'claude'},"row ${i}, quoted${i === 4 ? '\nover two lines' : ''}"`);
    const p = file(`${t}.csv`, rows.join('\r\n') + '\r\n');
    assert.deepEqual(counts(ok('ingest', p, '--tenant', t, '--batch', '4')), { accepted: 10, duplicate: 0, conflict: 0, rejected: 0 });
    assert.equal(total(t), '1');
    const byModel = ok('query', '--tenant', t, '--meter', 'tokens', ...RANGE, '--group-by', 'model', '--format', 'csv');
    assert.equal(byModel, 'windowStart,windowEnd,model,value\n2026-01-01T00:00:00.000Z,2026-02-01T00:00:00.000Z,claude,0.4\n2026-01-01T00:00:00.000Z,2026-02-01T00:00:00.000Z,gpt,0.6\n');
    assert.deepEqual(counts(ok('ingest', p, '--tenant', t, '--no-checkpoint')), { accepted: 0, duplicate: 10, conflict: 0, rejected: 0 });
    assert.equal(total(t), '1');
    // The default id names the file and line, the default source the file.
    const events = JSON.parse(
      JSON.stringify(
        new Database(dbUrl.slice('sqlite:'.length), { readonly: true }).prepare('SELECT source, event_id, data FROM events WHERE tenant_id = ? ORDER BY seq LIMIT 1').get(t),
      ),
    ) as { source: string; event_id: string; data: string };
    assert.equal(events.source, `file:${t}.csv`);
    assert.equal(events.event_id, `${t}.csv:2`);
    assert.deepEqual(JSON.parse(events.data), { tokens: '0.1', model: 'gpt', note: 'row 0, quoted' });
  });

  test('bad lines are reported with their line numbers; the good ones are kept', () => {
    const t = meteredTenant();
    const lines = [
      ndjsonLine(0),
      '{"type": "llm", broken',
      ndjsonLine(1, { time: '2026-13-01T00:00:00Z' }),
      '',
      ndjsonLine(2),
      '[1,2]',
      ndjsonLine(3, { colour: 'red', Extra: 1 }),
      ndjsonLine(4),
    ];
    const p = file(`${t}-bad.ndjson`, lines.join('\n') + '\n');
    const errors = join(dir, `${t}-errors.ndjson`);
    const r = meterd('ingest', p, '--tenant', t, '--errors', errors);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(counts(r.stdout), { accepted: 3, duplicate: 0, conflict: 0, rejected: 4 });
    assert.match(r.stdout, /^ {2}line 2: invalid JSON/m);
    assert.match(r.stdout, /^ {2}line 3: time: time must be an RFC 3339 date-time/m);
    assert.match(r.stdout, /^ {2}line 6: expected one CloudEvents JSON object per line, got an array/m);
    assert.match(r.stdout, /^ {2}line 7: Extra: /m);
    const written = readFileSync(errors, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { line: number; status: string });
    assert.deepEqual(written.map((w) => [w.line, w.status]), [[2, 'rejected'], [3, 'rejected'], [6, 'rejected'], [7, 'rejected']]);
    assert.equal(total(t), '0.3');

    // A conflicting event (same source and id, other content) is reported, not counted.
    const c = file(`${t}-conflict.ndjson`, `${ndjsonLine(0, { id: 'e1', source: 's' })}\n${ndjsonLine(0, { id: 'e1', source: 's', subject: 'someone-else' })}\n`);
    const rc = meterd('ingest', c, '--tenant', t);
    assert.equal(rc.code, 1);
    assert.deepEqual(counts(rc.stdout), { accepted: 1, duplicate: 0, conflict: 1, rejected: 0 });
    assert.match(rc.stdout, /line 2: conflict: an event with this source and id is already stored/);
  });

  test('CSV: rows with the wrong number of fields are reported with their line numbers', () => {
    const t = meteredTenant();
    const p = file(`${t}-bad.csv`, 'subject,time,tokens,model\nu,2026-01-02T00:00:00Z,0.5,gpt\nu,2026-01-02T00:00:00Z,0.5\nu,2026-01-02T00:00:00Z,abc,gpt\nu,2026-01-02T00:00:00Z,0.25,gpt\n');
    const r = meterd('ingest', p, '--tenant', t, '--type', 'llm');
    assert.equal(r.code, 1);
    // "abc" is a valid event that the meter cannot read: stored, counted by no meter.
    assert.deepEqual(counts(r.stdout), { accepted: 3, duplicate: 0, conflict: 0, rejected: 1 });
    assert.match(r.stdout, /line 3: invalid CSV row: expected 4 fields as in the header, got 3/);
    assert.equal(total(t), '0.75');

    // Stopping right after the bad row and resuming names every row as a fresh run does;
    // the bad row, already reported, is behind the checkpoint.
    const t2 = meteredTenant();
    const c = file(`${t2}-bad.csv`, readFileSync(p, 'utf8'));
    assert.equal(counts(meterd('ingest', c, '--tenant', t2, '--type', 'llm', '--limit', '2').stdout).rejected, 1);
    assert.deepEqual(counts(meterd('ingest', c, '--tenant', t2, '--type', 'llm').stdout), { accepted: 2, duplicate: 0, conflict: 0, rejected: 0 });
    assert.deepEqual(counts(meterd('ingest', c, '--tenant', t2, '--type', 'llm', '--no-checkpoint').stdout), { accepted: 0, duplicate: 3, conflict: 0, rejected: 1 });
    assert.equal(total(t2), '0.75');
  });

  test('an interrupted ingest, re-run, gives the exact total (NDJSON and CSV)', () => {
    const t = meteredTenant();
    const n = 25;
    const p = file(`${t}-resume.ndjson`, Array.from({ length: n }, (_, i) => ndjsonLine(i, i % 2 ? {} : { id: `e${i}` })).join('\n') + '\n');
    const first = counts(ok('ingest', p, '--tenant', t, '--batch', '4', '--limit', '10'));
    assert.equal(first.accepted, 10);
    const second = meterd('ingest', p, '--tenant', t, '--batch', '4');
    assert.match(second.stderr, /resuming after line 10/);
    assert.deepEqual(counts(second.stdout), { accepted: n - 10, duplicate: 0, conflict: 0, rejected: 0 });
    assert.equal(total(t), '2.5');

    // CSV with a quoted newline: resumed and fresh runs name the rows the same way.
    const t2 = meteredTenant();
    const rows = ['time,tokens,model,note'];
    for (let i = 0; i < n; i++) rows.push(`2026-01-0${1 + (i % 9)}T10:00:00Z,0.1,gpt,"${i % 5 === 0 ? 'two\nlines' : 'one'}"`);
    const c = file(`${t2}-resume.csv`, rows.join('\n') + '\n');
    assert.equal(counts(ok('ingest', c, '--tenant', t2, '--type', 'llm', '--batch', '3', '--limit', '7')).accepted, 7);
    assert.equal(counts(ok('ingest', c, '--tenant', t2, '--type', 'llm', '--batch', '3', '--limit', '9')).accepted, 9);
    assert.equal(counts(ok('ingest', c, '--tenant', t2, '--type', 'llm')).accepted, n - 16);
    assert.equal(total(t2), '2.5');
    assert.deepEqual(counts(ok('ingest', c, '--tenant', t2, '--type', 'llm', '--no-checkpoint')), { accepted: 0, duplicate: n, conflict: 0, rejected: 0 });
  });

  test('an ingest killed mid-way, re-run, gives the exact total', async () => {
    const t = meteredTenant();
    const n = 20_000;
    const p = join(dir, `${t}-big.ndjson`);
    writeFileSync(p, Array.from({ length: n }, (_, i) => ndjsonLine(i)).join('\n') + '\n');
    const child = spawn(process.execPath, [...CLI, 'ingest', p, '--tenant', t, '--batch', '50'], { cwd: ROOT, env: { ...process.env, DATABASE_URL: dbUrl }, stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    // Kill it once it has committed something (or let it finish: the total must be exact either way).
    while (!existsSync(`${p}.meterd-checkpoint`) && child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await exited;
    const r = counts(ok('ingest', p, '--tenant', t, '--batch', '1000'));
    assert.equal(r.rejected + r.conflict, 0);
    assert.equal(total(t), '2000');
    assert.deepEqual(counts(ok('ingest', p, '--tenant', t, '--no-checkpoint')), { accepted: 0, duplicate: n, conflict: 0, rejected: 0 });
  });

  test('errors: unknown tenant, missing file, unknown format, batch too large', () => {
    const t = meteredTenant();
    const p = file(`${t}.ndjson`, `${ndjsonLine(0)}\n`);
    fails(/tenant "nobody" does not exist/, 'ingest', p, '--tenant', 'nobody');
    fails(/no such file/, 'ingest', join(dir, 'missing.ndjson'), '--tenant', t);
    fails(/cannot tell the format/, 'ingest', file('events.txt', ''), '--tenant', t);
    fails(/--batch may be at most/, 'ingest', p, '--tenant', t, '--batch', '100000000');
    fails(/duplicate|twice/, 'ingest', file(`${t}-dup.csv`, 'a,a\n1,2\n'), '--tenant', t);
  });
});

describe('query', () => {
  test('table, csv and json with windows, time zone, grouping and filters', () => {
    const t = meteredTenant();
    const lines = [
      { subject: 'alice', time: '2026-03-10T22:30:00Z', data: { tokens: '1.5', model: 'gpt' } },
      { subject: 'alice', time: '2026-03-10T23:30:00Z', data: { tokens: '2', model: 'claude' } },
      { subject: 'bob', time: '2026-03-11T12:00:00Z', data: { tokens: '0.25', model: 'gpt' } },
    ].map((e, i) => JSON.stringify({ id: `q${i}`, source: 'test', type: 'llm', ...e }));
    ok('ingest', file(`${t}-q.ndjson`, lines.join('\n')), '--tenant', t);
    const args = ['query', '--tenant', t, '--meter', 'tokens', '--from', '2026-03-10T00:00:00+01:00', '--to', '2026-03-12T00:00:00+01:00', '--window-size', 'DAY', '--tz', 'Europe/Berlin'];

    assert.equal(
      ok(...args),
      'windowStart               windowEnd                 value\n' +
        '2026-03-09T23:00:00.000Z  2026-03-10T23:00:00.000Z  1.5\n' +
        '2026-03-10T23:00:00.000Z  2026-03-11T23:00:00.000Z  2.25\n',
    );
    assert.equal(
      ok(...args, '--group-by', 'subject', '--group-by', 'model', '--format', 'csv'),
      'windowStart,windowEnd,subject,model,value\n' +
        '2026-03-09T23:00:00.000Z,2026-03-10T23:00:00.000Z,alice,gpt,1.5\n' +
        '2026-03-10T23:00:00.000Z,2026-03-11T23:00:00.000Z,alice,claude,2\n' +
        '2026-03-10T23:00:00.000Z,2026-03-11T23:00:00.000Z,bob,gpt,0.25\n',
    );
    const json = JSON.parse(ok(...args, '--filter', 'model=gpt', '--subject', 'bob', '--format', 'json')) as { windowTimeZone: string; data: Array<{ value: string }> };
    assert.equal(json.windowTimeZone, 'Europe/Berlin');
    assert.deepEqual(json.data.map((d) => d.value), ['0', '0.25']);
  });

  test('errors: bad date, bad zone, unknown meter, unknown dimension, unknown tenant', () => {
    const t = meteredTenant();
    fails(/from must be an RFC 3339 date-time/, 'query', '--tenant', t, '--meter', 'tokens', '--from', '2026-01-01');
    fails(/windowTimeZone: must be an IANA time zone/, 'query', '--tenant', t, '--meter', 'tokens', '--tz', 'Mars/Olympus');
    fails(/meter "nope" not found/, 'query', '--tenant', t, '--meter', 'nope');
    fails(/cannot group by colour/, 'query', '--tenant', t, '--meter', 'tokens', '--group-by', 'colour');
    fails(/tenant "nobody" does not exist/, 'query', '--tenant', 'nobody', '--meter', 'tokens');
  });
});

describe('reconcile', () => {
  test('no difference after ingest; a damaged rollup is found and --fix repairs it', async () => {
    const t = meteredTenant();
    ok('meters', 'create', '--tenant', t, '--slug', 'users', '--event-type', 'llm', '--aggregation', 'UNIQUE_COUNT', '--value-property', '$.model');
    ok('ingest', file(`${t}-r.ndjson`, Array.from({ length: 30 }, (_, i) => ndjsonLine(i, { data: { tokens: `${i}.5`, model: `m${i % 4}` } })).join('\n')), '--tenant', t);
    const clean = meterd('reconcile', '--tenant', t);
    assert.equal(clean.code, 0, clean.stderr);
    assert.match(clean.stderr, /reconciled 2 meter\(s\): 0 difference\(s\)/);
    await withServices(async (s) => {
      for (const m of await s.meters.list({ tenantId: t, actor: 'test', scopes: ['admin'] })) assert.deepEqual(await reconcileMeter(s, t, m), []);
    });

    const db = new Database(dbUrl.slice('sqlite:'.length));
    const meterId = (db.prepare(`SELECT id FROM meters WHERE tenant_id = ? AND slug = 'tokens'`).get(t) as { id: string }).id;
    const row = db.prepare('SELECT subject, bucket, group_key FROM rollups WHERE series = (SELECT series FROM meters WHERE id = ?) LIMIT 1').get(meterId) as { subject: string; bucket: number; group_key: string };
    db.prepare(`UPDATE rollups SET sum = '12345' WHERE series = (SELECT series FROM meters WHERE id = ?) AND subject = ? AND bucket = ? AND group_key = ?`).run(meterId, row.subject, row.bucket, row.group_key);
    const u = db.prepare('SELECT series, subject, bucket, group_key, value FROM rollup_uniques WHERE series IN (SELECT series FROM meters WHERE tenant_id = ?) LIMIT 1').get(t) as Record<string, string | number>;
    db.prepare('DELETE FROM rollup_uniques WHERE series = ? AND subject = ? AND bucket = ? AND group_key = ? AND value = ?').run(u.series, u.subject, u.bucket, u.group_key, u.value);
    // The day level is checked too (on its own: the hourly rows under it are intact).
    const day = Math.floor(row.bucket / 86_400_000) * 86_400_000;
    const changed = db.prepare('UPDATE rollups_subject_day SET count = count + 1 WHERE series = (SELECT series FROM meters WHERE id = ?) AND subject = ? AND bucket = ?').run(meterId, row.subject, day);
    assert.equal(changed.changes, 1);
    // Days are the 1st to the 28th: mark one value as seen on January 31st too.
    const marked = db.prepare("UPDATE rollup_uniques_days SET days = days | (1 << 30) WHERE series IN (SELECT series FROM meters WHERE tenant_id = ?) AND value = 'm1'").run(t);
    assert.equal(marked.changes, 1);
    db.close();

    const damaged = meterd('reconcile', '--tenant', t, '--format', 'json');
    assert.equal(damaged.code, 1);
    const diffs = JSON.parse(damaged.stdout) as Array<{ meter: string; kind: string; actual: string | null }>;
    assert.deepEqual(diffs.map((d) => [d.meter, d.kind]).sort(), [['tokens', 'rollup'], ['tokens', 'rollup subject-day'], ['users', 'unique'], ['users', 'unique days']]);
    assert.match(diffs.find((d) => d.meter === 'tokens' && d.kind === 'rollup')!.actual!, /sum=12345/);
    assert.equal(meterd('reconcile', '--tenant', t, '--meter', 'users').code, 1);

    const fixed = meterd('reconcile', '--tenant', t, '--fix');
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.match(fixed.stderr, /4 difference\(s\); rebuilt, 0 remain/);
    assert.equal(meterd('reconcile', '--tenant', t).code, 0);
  });

  test('errors: unknown meter or tenant', () => {
    fails(/meter "nope" not found/, 'reconcile', '--tenant', newTenant(), '--meter', 'nope');
    fails(/tenant "nobody" does not exist/, 'reconcile', '--tenant', 'nobody');
  });
});
