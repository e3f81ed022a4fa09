// Child of multiprocess.test.ts: opens its own PostgresStore on the shared schema, waits for
// "go" on stdin, appends every id several times over many concurrent calls, prints statuses.
import { once } from 'node:events';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { append, mkEvent, prng } from './helpers.js';

const [url, schema, tenant, idCount, seed] = process.argv.slice(2);
const store = new PostgresStore({ url, schema, poolSize: 4 });
await store.ping();
process.stdout.write('ready\n');
await once(process.stdin, 'data');

const rnd = prng(Number(seed));
const ids = Array.from({ length: Number(idCount) }, (_, i) => `ev-${i}`);
// Each id is sent three times by this process, in shuffled calls of 1..30 events.
const sends = [...ids, ...ids, ...ids].sort(() => rnd.next() - 0.5);
const calls: string[][] = [];
for (let i = 0; i < sends.length; ) {
  const n = 1 + rnd.int(30);
  calls.push(sends.slice(i, i + n));
  i += n;
}
const statuses: Record<string, string[]> = {};
const T0 = Date.UTC(2024, 6, 1);
let next = 0;
await Promise.all(
  Array.from({ length: 6 }, async () => {
    while (next < calls.length) {
      const call = calls[next++];
      const events = call.map((id) => mkEvent({ id, time: T0 + Number(id.slice(3)) * 60_000, data: { value: '1' } }));
      const got = await append(store, tenant, events);
      call.forEach((id, i) => (statuses[id] ??= []).push(got[i]));
    }
  }),
);
await store.close();
process.stdout.write(`${JSON.stringify(statuses)}\n`);
