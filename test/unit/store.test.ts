import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { RunConfig, flattenTokens, type DaemonEvent, type Trajectory, type Turn } from '@mathagent/shared';
import { MIGRATIONS, NotFoundError, StoreVersionError, configDir, defaultDbPath, openStore, type Migration } from '../../daemon/src/store';

const tmp = () => mkdtempSync(join(tmpdir(), 'mathagent-store-'));

function turn(index: number, action: number[], obs: number[] | null, logprobs = action.map((_, i) => -0.1 * (i + 1) - 1e-9)): Turn {
  return {
    index,
    action: { text: `a${index}`, tokenIds: action, logprobs },
    finishReason: obs ? 'stop' : 'eos',
    toolCall: obs ? { lang: 'mathjs', code: '1+1' } : null,
    observation: obs ? { output: '2', text: '```output\n2\n```', tokenIds: obs, error: false, durationMs: 1.5 } : null,
  };
}

function traj(runId: string, id: string, over: Partial<Trajectory> = {}): Trajectory {
  const promptTokenIds = over.promptTokenIds ?? [1, 2, 3];
  const turns = over.turns ?? [turn(0, [10, 11], [20, 21, 22]), turn(1, [12, 2147483647], null)];
  const flat = flattenTokens(promptTokenIds, turns);
  return {
    id, runId, iteration: 0, promptId: 'p0', sampleIndex: 0, policy: 'iter0', question: 'What is 1+1?', reference: '2',
    template: 'chatml', promptText: 'Q', promptTokenIds, turns, extractedAnswer: '2', reward: 1, outcome: 'correct',
    truncation: null, tokenIds: flat.tokenIds, actionMask: flat.actionMask, retokenized: false, createdAt: '2025-01-01T00:00:00.000Z',
    ...over,
  };
}

test('paths follow XDG and MATHAGENT_DB', () => {
  assert.equal(defaultDbPath({ XDG_DATA_HOME: '/x/data' }), '/x/data/mathagent/mathagent.db');
  assert.equal(defaultDbPath({ XDG_DATA_HOME: '/x/data', MATHAGENT_DB: '/y/my.db' }), '/y/my.db');
  assert.equal(configDir({ XDG_CONFIG_HOME: '/x/cfg' }), '/x/cfg/mathagent');
  assert.match(defaultDbPath({}), /\.local\/share\/mathagent\/mathagent\.db$/);
});

test('runs: create, update, list newest first, get with parsed config; unknown ids', () => {
  const s = openStore(':memory:');
  const config = RunConfig.parse({ name: 'first', iterations: 2, algorithm: 'mkto' });
  const a = s.createRun({ id: 'a', config });
  assert.equal(a.name, 'first');
  assert.equal(a.algorithm, 'mkto');
  assert.equal(a.iterations, 2);
  assert.equal(a.state, 'queued');
  assert.equal(a.bestPass1, null);
  const b = s.createRun({ id: 'b', name: 'second', config: RunConfig.parse({}) });
  const u = s.updateRun('a', { state: 'running', stage: 'train', iteration: 1, bestPass1: 0.5, bestIteration: 1 });
  assert.deepEqual([u.state, u.stage, u.iteration, u.bestPass1, u.bestIteration, u.error], ['running', 'train', 1, 0.5, 1, null]);
  assert.deepEqual(s.listRuns().map((r) => r.id), [b.id, 'a']);
  assert.deepEqual(s.listRuns({ states: ['running'] }).map((r) => r.id), ['a']);
  assert.deepEqual(s.listRuns({ limit: 1 }).map((r) => r.id), ['b']);
  const got = s.getRun('a')!;
  assert.equal(got.config.train.beta, 0.1);
  assert.equal(got.config.iterations, 2);
  assert.equal(s.getRun('nope'), null);
  assert.throws(() => s.updateRun('nope', { state: 'failed' }), NotFoundError);
  assert.throws(() => s.createRun({ id: 'a', config }), /UNIQUE/);
  s.close();
});

test('iterations: upsert patches fields and keeps the others', () => {
  const s = openStore(':memory:');
  s.createRun({ id: 'r', config: RunConfig.parse({}) });
  s.upsertIteration({ runId: 'r', iteration: 0, stage: 'sample', trajectories: 16, correct: 5 });
  const it = s.upsertIteration({ runId: 'r', iteration: 0, stage: 'pairs', pairs: 4, skipped: { all_correct: 2, all_wrong: 1 } });
  assert.deepEqual(it, { runId: 'r', iteration: 0, stage: 'pairs', trajectories: 16, correct: 5, pairs: 4, skipped: { all_correct: 2, all_wrong: 1 }, pass1: null, passK: null });
  s.upsertIteration({ runId: 'r', iteration: 1, stage: 'sample' });
  assert.deepEqual(s.listIterations('r').map((i) => i.iteration), [0, 1]);
  assert.throws(() => s.upsertIteration({ runId: 'ghost', iteration: 0 }), NotFoundError);
  s.close();
});

test('trajectories round-trip exactly, tokens stored compactly', () => {
  const s = openStore(':memory:');
  s.createRun({ id: 'r', config: RunConfig.parse({}) });
  const t = traj('r', 't1');
  s.insertTrajectories([t], 'train');
  assert.deepEqual(s.getTrajectory('t1'), t);
  // Flat tokens that do not follow flattenTokens (e.g. a retokenised remote trajectory) are kept as given.
  const odd = traj('r', 't2', { tokenIds: [9, 9, 9], actionMask: [0, 1, 1], retokenized: true, reward: 0, outcome: 'wrong' });
  s.insertTrajectories([odd], 'eval');
  assert.deepEqual(s.getTrajectory('t2'), odd);
  // Token ids are Int32 BLOBs: 3 prompt ids = 12 bytes, 2+3+2 turn ids = 28 bytes; logprobs Float64 = 4*8 bytes.
  const raw = (s as unknown as { db: Database.Database }).db
    .prepare('SELECT length(prompt_token_ids) p, length(turn_token_ids) t, length(logprobs) l, token_ids, action_mask FROM trajectories WHERE id = ?').get('t1');
  assert.deepEqual(raw, { p: 12, t: 28, l: 32, token_ids: null, action_mask: null });
  assert.equal(s.getTrajectory('missing'), null);
  s.close();
});

test('insertTrajectories is atomic: one bad trajectory stores none of the batch', () => {
  const s = openStore(':memory:');
  s.createRun({ id: 'r', config: RunConfig.parse({}) });
  const good = traj('r', 'g1');
  const badToken = traj('r', 'b1', { promptTokenIds: [1, 2 ** 31] });
  assert.throws(() => s.insertTrajectories([good, badToken], 'train'), /promptTokenIds\[1\] = 2147483648/);
  // A row that fails inside the transaction (unknown run → foreign key) rolls back the rows before it.
  const orphan = traj('ghost-run', 'o1');
  assert.throws(() => s.insertTrajectories([good, traj('r', 'g2'), orphan], 'train'), NotFoundError);
  assert.equal(s.getTrajectory('g1'), null);
  assert.equal(s.getTrajectory('g2'), null);
  assert.throws(() => s.insertTrajectories([good], 'test' as 'train'), /split must be/);
  // Re-inserting the same id replaces it (resume never duplicates).
  s.insertTrajectories([good], 'train');
  s.insertTrajectories([{ ...good, reward: 0, outcome: 'wrong' }], 'train');
  const list = s.listTrajectoryHeaders({ runId: 'r' });
  assert.equal(list.total, 1);
  assert.equal(list.trajectories[0]!.outcome, 'wrong');
  s.close();
});

test('trajectory headers filter, page and carry the annotation label', () => {
  const s = openStore(':memory:');
  s.createRun({ id: 'r', config: RunConfig.parse({}) });
  const outcomes = ['correct', 'wrong', 'tool_error', 'correct', 'truncated', 'no_answer'] as const;
  s.insertTrajectories(outcomes.map((o, i) => traj('r', `t${i}`, { promptId: `p${i % 2}`, sampleIndex: Math.floor(i / 2), outcome: o, iteration: i < 4 ? 0 : 1 })), 'train');
  s.insertTrajectories([traj('r', 'e0', { outcome: 'wrong' })], 'eval');
  s.setAnnotation({ trajectoryId: 't1', label: 'reasoning_error' });
  assert.equal(s.listTrajectoryHeaders({ runId: 'r' }).total, 7);
  assert.equal(s.listTrajectoryHeaders({ runId: 'r', split: 'train' }).total, 6);
  assert.deepEqual(s.listTrajectoryHeaders({ runId: 'r', iteration: 0, split: 'train' }).trajectories.map((h) => h.id), ['t0', 't2', 't1', 't3']);
  assert.deepEqual(s.listTrajectoryHeaders({ runId: 'r', split: 'train', failedOnly: true }).trajectories.map((h) => h.id).sort(), ['t1', 't2', 't4', 't5']);
  assert.deepEqual(s.listTrajectoryHeaders({ runId: 'r', outcomes: ['tool_error', 'truncated'] }).trajectories.map((h) => h.id), ['t2', 't4']);
  assert.deepEqual(s.listTrajectoryHeaders({ runId: 'r', outcomes: [] }), { trajectories: [], total: 0 });
  const unann = s.listTrajectoryHeaders({ runId: 'r', split: 'train', iteration: 0, unannotatedOnly: true });
  assert.deepEqual(unann.trajectories.map((h) => h.id), ['t0', 't2', 't3']);
  const page = s.listTrajectoryHeaders({ runId: 'r', offset: 1, limit: 2 });
  assert.equal(page.total, 7);
  // Order: iteration, split (eval before train), prompt, sample: e0, t0, t2, t1, ...
  assert.deepEqual(page.trajectories.map((h) => h.id), ['t0', 't2']);
  const h1 = s.getTrajectoryHeader('t1')!;
  assert.deepEqual(h1, { id: 't1', runId: 'r', iteration: 0, promptId: 'p1', sampleIndex: 0, split: 'train', question: 'What is 1+1?',
    outcome: 'wrong', reward: 1, extractedAnswer: '2', turns: 2, annotation: 'reasoning_error' });
  assert.throws(() => s.listTrajectoryHeaders({ runId: 'r', limit: 0 }), /limit/);
  s.close();
});

test('annotations survive deleteIterationSamples and re-attach; reward overrides', () => {
  const s = openStore(':memory:');
  s.createRun({ id: 'r', config: RunConfig.parse({}) });
  s.insertTrajectories([traj('r', 'c'), traj('r', 'w', { outcome: 'wrong', reward: 0, sampleIndex: 1 })], 'train');
  s.insertPairs([{ id: 'pair0', runId: 'r', iteration: 0, promptId: 'p0', chosenId: 'c', rejectedId: 'w' }]);
  assert.throws(() => s.setAnnotation({ trajectoryId: 'nope', label: 'other' }), NotFoundError);
  const a = s.setAnnotation({ trajectoryId: 'w', label: 'grader_disagreement', rewardOverride: 1, note: 'answer 2.0 is right' });
  assert.equal(a.turn, null);
  assert.match(a.updatedAt, /^\d{4}-/);
  s.setAnnotation({ trajectoryId: 'c', label: 'other' });
  assert.deepEqual([...s.rewardOverrides('r')], [['w', 1]]);
  assert.deepEqual(s.deleteIterationSamples('r', 0), { trajectories: 2, pairs: 1 });
  assert.equal(s.listTrajectoryHeaders({ runId: 'r' }).total, 0);
  assert.deepEqual(s.listPairs('r'), []);
  assert.equal(s.listAnnotations('r').length, 2);
  assert.equal(s.getAnnotation('w')!.note, 'answer 2.0 is right');
  // Re-sampled with the same id: the header shows the annotation again.
  s.insertTrajectories([traj('r', 'w', { outcome: 'wrong', reward: 0 })], 'train');
  assert.equal(s.getTrajectoryHeader('w')!.annotation, 'grader_disagreement');
  assert.equal(s.rewardOverrides('other-run').size, 0);
  s.close();
});

test('pairs need stored trajectories; metrics, evals, checkpoints, run state', () => {
  const s = openStore(':memory:');
  s.createRun({ id: 'r', config: RunConfig.parse({}) });
  s.insertTrajectories([traj('r', 'c'), traj('r', 'w', { outcome: 'wrong', reward: 0 })], 'train');
  assert.throws(() => s.insertPairs([{ id: 'x', runId: 'r', iteration: 0, promptId: 'p0', chosenId: 'c', rejectedId: 'ghost' }]), NotFoundError);
  s.insertPairs([{ id: 'p', runId: 'r', iteration: 0, promptId: 'p0', chosenId: 'c', rejectedId: 'w' }]);
  assert.deepEqual(s.listPairs('r', 0), [{ id: 'p', runId: 'r', iteration: 0, promptId: 'p0', chosenId: 'c', rejectedId: 'w' }]);
  assert.deepEqual(s.listPairs('r', 1), []);

  s.insertMetrics([
    { runId: 'r', iteration: 0, step: 1, name: 'loss', value: 0.69 },
    { runId: 'r', iteration: 0, step: 1, name: 'lr', value: 1e-5 },
    { runId: 'r', iteration: 0, step: 2, name: 'loss', value: NaN },
    { runId: 'r', iteration: 0, step: 3, name: 'loss', value: 0.5 },
  ]);
  assert.deepEqual(s.getMetrics('r', ['loss']).map((p) => [p.step, p.value]), [[1, 0.69], [3, 0.5]]);
  assert.equal(s.getMetrics('r').length, 3);
  assert.equal(s.deleteIterationMetrics('r', 0, 2), 1);
  assert.equal(s.getMetrics('r').length, 2);

  const e = s.insertEval({ runId: 'r', iteration: 0, pass1: 0.25, passK: 0.5, k: 4, n: 4, ci95: [0.05, 0.7], meanTurns: 2.5, toolErrorRate: 0.1,
    problems: [{ promptId: 'p0', correct: true, correctK: 3, trajectoryId: 'c' }] });
  assert.deepEqual(e.ci95, [0.05, 0.7]);
  s.insertEval({ ...e, pass1: 0.5 });
  assert.deepEqual(s.listEvals('r').map((x) => x.pass1), [0.5]);
  assert.deepEqual(s.getEval('r', 0)!.problems, [{ promptId: 'p0', correct: true, correctK: 3, trajectoryId: 'c' }]);

  s.addCheckpoint({ runId: 'r', iteration: 0, path: '/ck/0', metrics: { pass1: 0.5 }, isBest: true });
  s.addCheckpoint({ runId: 'r', iteration: 1, path: '/ck/1', metrics: { pass1: 0.4 } });
  assert.equal(s.bestCheckpoint('r')!.path, '/ck/0');
  s.addCheckpoint({ runId: 'r', iteration: 2, path: '/ck/2', metrics: { pass1: 0.6 }, isBest: true });
  assert.deepEqual(s.listCheckpoints('r').map((c) => [c.iteration, c.isBest]), [[0, false], [1, false], [2, true]]);
  assert.throws(() => s.addCheckpoint({ runId: 'ghost', iteration: 0, path: '/', metrics: {} }), NotFoundError);

  assert.equal(s.getRunState('r'), null);
  s.setRunState('r', { stage: 'train', step: 7 });
  s.setRunState('r', { stage: 'eval', step: 9 });
  assert.deepEqual(s.getRunState('r'), { stage: 'eval', step: 9 });

  s.setTurnRewards('c', [0.1, -0.2]);
  assert.deepEqual(s.getTurnRewards('c'), [0.1, -0.2]);
  assert.equal(s.getTurnRewards('w'), null);
  assert.throws(() => s.setTurnRewards('ghost', [1]), NotFoundError);

  // A transaction that throws leaves nothing behind.
  assert.throws(() => s.transaction(() => { s.upsertIteration({ runId: 'r', iteration: 5 }); throw new Error('boom'); }), /boom/);
  assert.deepEqual(s.listIterations('r'), []);
  s.close();
});

test('compare: fixed, broken and unchanged prompts on the eval split (greedy = lowest sample index)', () => {
  const s = openStore(':memory:');
  s.createRun({ id: 'r', config: RunConfig.parse({}) });
  const ev = (it: number, p: string, ok: boolean, sampleIndex = 0) =>
    traj('r', `e${it}-${p}-${sampleIndex}`, { iteration: it, promptId: p, sampleIndex, outcome: ok ? 'correct' : 'wrong', reward: ok ? 1 : 0 });
  s.insertTrajectories([ev(0, 'p1', false), ev(0, 'p2', true), ev(0, 'p3', true), ev(0, 'p4', false), ev(0, 'p5', true),
    ev(1, 'p1', true), ev(1, 'p1', false, 1), ev(1, 'p2', false), ev(1, 'p3', true), ev(1, 'p4', false)], 'eval');
  s.insertTrajectories([traj('r', 'train-p2', { iteration: 1, promptId: 'p2' })], 'train'); // train split ignored
  const c = s.compare({ runId: 'r', iteration: 0 }, { runId: 'r', iteration: 1 });
  assert.deepEqual(c.fixed.map((x) => [x.promptId, x.a.id, x.b.id]), [['p1', 'e0-p1-0', 'e1-p1-0']]);
  assert.deepEqual(c.broken.map((x) => x.promptId), ['p2']);
  assert.equal(c.sameCorrect, 1);
  assert.equal(c.sameWrong, 1);
  s.close();
});

test('events: seq order, run filter, limit, continue across a reopen', () => {
  const dir = tmp();
  try {
    const path = join(dir, 'nested', 'deeper', 'm.db');
    let s = openStore(path);
    const ev = (seq: number, runId: string): DaemonEvent => ({ seq, runId, time: 't', type: 'log', level: 'info', message: `m${seq}` });
    assert.equal(s.lastSeq(), 0);
    s.appendEvents([ev(1, 'a'), ev(2, 'b'), ev(3, 'a')]);
    s.close();
    s = openStore(path);
    assert.equal(s.lastSeq(), 3);
    s.appendEvent(ev(4, 'b'));
    assert.deepEqual(s.eventsAfter(1).map((e) => e.seq), [2, 3, 4]);
    assert.deepEqual(s.eventsAfter(0, 'a').map((e) => e.seq), [1, 3]);
    assert.deepEqual(s.eventsAfter(0, undefined, 2).map((e) => e.seq), [1, 2]);
    assert.deepEqual(s.eventsAfter(2)[0], ev(3, 'a'));
    // A seq another writer already stored: the event goes in with the next free one.
    assert.equal(s.appendEvent(ev(4, 'a')), 5);
    assert.equal(s.eventsAfter(4)[0]!.seq, 5);
    assert.equal(s.pruneEvents(2), 2);
    assert.deepEqual(s.eventsAfter(0).map((e) => e.seq), [3, 4, 5]);
    s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('migrations: version table, data kept across reopen, old DB upgraded, newer DB refused', () => {
  const dir = tmp();
  try {
    const path = join(dir, 'm.db');
    let s = openStore(path);
    assert.equal(s.schemaVersion, MIGRATIONS.length);
    s.createRun({ id: 'keep', config: RunConfig.parse({}) });
    s.close();
    const raw = new Database(path, { readonly: true });
    assert.equal((raw.prepare('SELECT version FROM schema_version').get() as { version: number }).version, MIGRATIONS.length);
    assert.equal((raw.pragma('journal_mode', { simple: true }) as string), 'wal');
    raw.close();

    // A later version adds a column: opening the existing DB runs only the new step and keeps the rows.
    let ran = 0;
    const next: Migration = (db) => { ran++; db.exec('ALTER TABLE runs ADD COLUMN tag TEXT'); };
    s = openStore(path, { migrations: [...MIGRATIONS, next] });
    assert.equal(ran, 1);
    assert.equal(s.schemaVersion, MIGRATIONS.length + 1);
    assert.equal(s.getRun('keep')!.run.id, 'keep');
    s.close();
    s = openStore(path, { migrations: [...MIGRATIONS, next] });
    assert.equal(ran, 1, 'a migration runs once');
    s.close();

    // The shipped code meets that newer DB: a clear error, not a guess.
    assert.throws(() => openStore(path), (e: unknown) => e instanceof StoreVersionError && new RegExp(`schema version ${MIGRATIONS.length + 1}.*up to version ${MIGRATIONS.length}.*upgrade mathagent`).test((e as Error).message));

    // A failing migration rolls back: the version stays where it was.
    const p2 = join(dir, 'fail.db');
    openStore(p2).close();
    assert.throws(() => openStore(p2, { migrations: [...MIGRATIONS, (db) => { db.exec('CREATE TABLE x (a)'); throw new Error('bad step'); }] }), /bad step/);
    const s2 = openStore(p2);
    assert.equal(s2.schemaVersion, MIGRATIONS.length);
    s2.close();

    const junk = join(dir, 'junk.db');
    writeFileSync(junk, 'this is not sqlite at all, just some text padding it out to more than a header'.repeat(20));
    assert.throws(() => openStore(junk), /not a SQLite database/);
    assert.ok(statSync(path).isFile());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two connections to one file: a transaction that reads before it writes holds the write lock, so another writer waits instead of making it fail', () => {
  const dir = mkdtempSync(join(tmpdir(), 'store-lock-'));
  const a = openStore(join(dir, 'runs.db'));
  const b = openStore(join(dir, 'runs.db'), { busyTimeoutMs: 50 });
  try {
    const run = a.createRun({ config: RunConfig.parse({}) });
    // A deferred transaction would take only a read lock here; b's commit would then make a's write fail at once
    // with SQLITE_BUSY ("database is locked"), whatever the busy timeout — what two `mathagent run` did at startup.
    a.transaction(() => {
      assert.ok(a.getRunSummary(run.id));
      assert.throws(() => b.createRun({ config: RunConfig.parse({}) }), /database is locked/, 'b waits for a (here: past its 50 ms)');
      a.addCheckpoint({ runId: run.id, iteration: 0, path: '/x', metrics: {}, isBest: true });
    });
    assert.equal(a.listCheckpoints(run.id).length, 1);
    assert.ok(b.createRun({ config: RunConfig.parse({}) }).id, 'once a commits, b writes');
  } finally {
    a.close(); b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two processes opening a brand-new database at once: the one that arrives second waits for the migration and does not run it again', () => {
  const dir = mkdtempSync(join(tmpdir(), 'store-migrate-'));
  const path = join(dir, 'new.db');
  // The "other process" opens the same new file the moment this one first looks up a migration step, i.e. after it
  // has read the schema version: before the fix the version was read outside the migration's transaction, so the
  // other one migrated the whole file in between, and this one then ran migration 1 again ("table runs already exists").
  let other: string | null = null;
  const migrations = new Proxy([...MIGRATIONS], {
    get(target, key, receiver) {
      if (key === '0' && other === null) {
        try { openStore(path, { busyTimeoutMs: 20 }).close(); other = 'opened'; } catch (e) { other = (e as Error).message; }
      }
      return Reflect.get(target, key, receiver);
    },
  });
  try {
    const s = openStore(path, { migrations });
    assert.equal(s.schemaVersion, MIGRATIONS.length);
    s.close();
    assert.match(other ?? '', /database is locked/, 'the other process waited for the migration lock');
    const again = openStore(path);
    assert.equal(again.schemaVersion, MIGRATIONS.length);
    again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
