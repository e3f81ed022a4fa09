// Group commit (src/store/group-commit.ts): jobs that arrive while groups are committing join the next
// group; at most maxInFlight groups commit at once; every job gets its own result; drain waits for all.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GroupCommit } from '../../src/store/group-commit.js';

const turn = () => new Promise((r) => setImmediate(r));

/** A commit function whose groups finish only when the test says so. */
function controlled() {
  const groups: Array<{ jobs: string[]; finish: () => void }> = [];
  const commit = (jobs: string[]) =>
    new Promise<string[]>((resolve) => groups.push({ jobs, finish: () => resolve(jobs.map((j) => `done ${j}`)) }));
  return { groups, commit };
}

describe('group commit', () => {
  it('sends a second group while the first commits, never a third, and answers each job', async () => {
    const { groups, commit } = controlled();
    const gc = new GroupCommit(commit, 512, () => 1, 2);
    const a = gc.submit('a');
    await turn();
    const b = gc.submit('b');
    const c = gc.submit('c');
    await turn();
    assert.deepEqual(groups.map((g) => g.jobs), [['a'], ['b', 'c']]);
    const d = gc.submit('d');
    await turn();
    assert.equal(groups.length, 2, 'a third group waits for one of the two');
    assert.equal(gc.weight, 4);
    groups[1].finish();
    assert.deepEqual(await Promise.all([b, c]), ['done b', 'done c']);
    await turn();
    assert.deepEqual(groups.map((g) => g.jobs), [['a'], ['b', 'c'], ['d']]);
    let drained = false;
    const drain = gc.drain().then(() => (drained = true));
    await turn();
    assert.equal(drained, false, 'drain waits for every group in flight');
    groups[0].finish();
    groups[2].finish();
    assert.deepEqual(await Promise.all([a, d]), ['done a', 'done d']);
    await drain;
    assert.equal(gc.weight, 0);
  });

  it('commits one group at a time by default', async () => {
    const { groups, commit } = controlled();
    const gc = new GroupCommit(commit);
    const a = gc.submit('a');
    await turn();
    const b = gc.submit('b');
    await turn();
    assert.deepEqual(groups.map((g) => g.jobs), [['a']]);
    groups[0].finish();
    assert.equal(await a, 'done a');
    await turn();
    assert.deepEqual(groups.map((g) => g.jobs), [['a'], ['b']]);
    groups[1].finish();
    assert.equal(await b, 'done b');
  });
});
