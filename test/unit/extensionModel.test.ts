import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RunsModel, describeRow, nodeKey } from '../../extension/src/model/runsModel';
import { firstDivergingTurn } from '../../extension/src/model/divergence';
import { formatJsonl, toExportRows } from '../../extension/src/model/annotationsExport';
import { eventToPoints, mergePoints } from '../../extension/src/model/metrics';
import { finished, header, run, started, status, turn } from './extensionFixtures';

function model(): RunsModel {
  const m = new RunsModel();
  m.setRuns([run('r1', '2025-01-01T00:00:00Z'), run('r2', '2025-02-01T00:00:00Z')]);
  m.setIterations('r1', [{ runId: 'r1', iteration: 1, stage: 'sample', trajectories: 0, correct: 0, pairs: 0, skipped: {}, pass1: null, passK: null }]);
  m.setTrajectories('r1', 1, [
    header('a', { promptId: 'p10', sampleIndex: 0 }),
    header('b', { promptId: 'p2', sampleIndex: 1, outcome: 'wrong', reward: 0 }),
    header('c', { promptId: 'p2', sampleIndex: 0, outcome: 'tool_error', reward: 0, annotation: 'tool_error_ignored' }),
    header('e', { promptId: 'p1', sampleIndex: 0, split: 'eval' }),
  ]);
  return m;
}
const ids = (m: RunsModel) => m.children({ kind: 'iteration', runId: 'r1', iteration: 1 }).map(nodeKey);

test('runs newest first; trajectories by prompt (natural order) then sample; eval in its own group', () => {
  const m = model();
  assert.deepEqual(m.roots().map(nodeKey), ['run:r2', 'run:r1']);
  assert.deepEqual(ids(m), ['eval:r1:1', 'traj:c', 'traj:b', 'traj:a']);
  assert.deepEqual(m.children({ kind: 'evalGroup', runId: 'r1', iteration: 1 }).map(nodeKey), ['traj:e']);
  assert.deepEqual(m.parent({ kind: 'trajectory', id: 'e' }), { kind: 'evalGroup', runId: 'r1', iteration: 1 });
});

test('filters: failed only, unannotated only, by outcome, and an explanatory row when all are hidden', () => {
  const m = model();
  m.filters = { failedOnly: true, unannotatedOnly: false, outcomes: null };
  assert.deepEqual(ids(m), ['eval:r1:1', 'traj:c', 'traj:b']);
  m.filters = { failedOnly: true, unannotatedOnly: true, outcomes: null };
  assert.deepEqual(ids(m), ['eval:r1:1', 'traj:b']);
  m.filters = { failedOnly: false, unannotatedOnly: false, outcomes: ['tool_error'] };
  assert.deepEqual(ids(m), ['eval:r1:1', 'traj:c']);
  m.filters = { failedOnly: false, unannotatedOnly: false, outcomes: ['truncated'] };
  assert.deepEqual(ids(m), ['eval:r1:1', 'msg:iter:r1:1']);
});

test('live events: started → turns → finished, counters, unknown runs, annotations', () => {
  const m = model();
  assert.equal(m.apply(started(1, 'z', 'r1', 1, 'p2')).refresh, true);
  assert.deepEqual(ids(m), ['eval:r1:1', 'traj:c', 'traj:b', 'traj:z', 'traj:a']); // sampling row after known samples of p2
  m.apply({ type: 'trajectory/turn', seq: 2, runId: 'r1', time: 't', trajectoryId: 'z', turn: turn(0, 'x') });
  m.apply({ type: 'trajectory/turn', seq: 3, runId: 'r1', time: 't', trajectoryId: 'z', turn: turn(1, 'y') });
  assert.equal(describeRow(m.row('z')!), 'sampling… 2 turns');
  m.filters = { failedOnly: true, unannotatedOnly: false, outcomes: null };
  assert.equal(ids(m).includes('traj:z'), false, 'a sampling row has not failed yet');
  m.filters = { failedOnly: false, unannotatedOnly: false, outcomes: null };
  m.apply(finished(4, header('z', { promptId: 'p2', sampleIndex: 2, outcome: 'truncated', reward: 0, turns: 6 })));
  assert.equal(describeRow(m.row('z')!), '✂ truncated · r=0 · 6 turns');
  const it = m.iteration('r1', 1)!;
  assert.deepEqual([it.trajectories, it.correct], [1, 0]);
  // the same finished event again (replay overlap) does not count twice
  m.apply(finished(4, header('z', { promptId: 'p2', sampleIndex: 2, outcome: 'truncated', reward: 0, turns: 6 })));
  assert.equal(m.iteration('r1', 1)!.trajectories, 1);
  assert.deepEqual(m.apply(started(5, 'q', 'r9')), { refresh: false, unknownRun: 'r9' });
  assert.equal(m.apply({ type: 'annotation/changed', seq: 6, runId: 'r1', time: 't', annotation: { trajectoryId: 'b', label: 'reasoning_error', note: '', turn: 1, rewardOverride: null, author: '', updatedAt: '' } }).refresh, true);
  assert.equal(describeRow(m.row('b')!), '✗ wrong · r=0 · 2 turns · [reasoning_error]');
  const st = m.apply(status(7, { stage: 'train', iteration: 2 }));
  assert.equal(st.refetchRun, 'r1');
  assert.deepEqual(m.children({ kind: 'run', runId: 'r1' }).map(nodeKey), ['iter:r1:1', 'iter:r1:2']);
});

test('run/deleted drops the run, its iterations and rows; a second one (or an unknown run) changes nothing', () => {
  const m = model();
  assert.ok(m.row('a'));
  assert.deepEqual(m.apply({ type: 'run/deleted', seq: 1, runId: 'r1', time: 't' }), { refresh: true });
  assert.deepEqual(m.roots().map(nodeKey), ['run:r2']);
  assert.equal(m.run('r1'), undefined);
  assert.equal(m.row('a'), undefined);
  assert.equal(m.hasIterations('r1'), false);
  assert.equal(m.isIterationLoaded('r1', 1), false);
  assert.deepEqual(m.apply({ type: 'run/deleted', seq: 2, runId: 'r1', time: 't' }), { refresh: false });
  assert.deepEqual(m.apply({ type: 'run/deleted', seq: 3, runId: 'ghost', time: 't' }), { refresh: false });
});

test('next/previous trajectory walks the visible rows and crosses iterations', () => {
  const m = model();
  m.setTrajectories('r1', 2, [header('n1', { iteration: 2, promptId: 'p1' })]);
  m.setIterations('r1', [{ runId: 'r1', iteration: 2, stage: 'sample', trajectories: 1, correct: 1, pairs: 0, skipped: {}, pass1: null, passK: null }]);
  assert.equal(m.neighbor('c', 1), 'b');
  assert.equal(m.neighbor('b', 1), 'a');
  assert.equal(m.neighbor('a', 1), 'n1');
  assert.equal(m.neighbor('n1', -1), 'a');
  assert.equal(m.neighbor('c', -1), undefined);
  assert.equal(m.neighbor('n1', 1), undefined);
  assert.equal(m.neighbor('e', 1), undefined, 'eval rows walk among eval rows');
  m.filters = { failedOnly: true, unannotatedOnly: false, outcomes: null };
  // 'a' (correct) is hidden: from it, next goes past it, previous goes to the row before it
  assert.equal(m.neighbor('a', -1), 'b');
  assert.equal(m.neighbor('a', 1), undefined); // n1 is correct too
  assert.deepEqual(m.position('b'), { index: 2, total: 2 });
  assert.equal(m.neighbor('missing', 1), undefined);
});

test('a refreshed listing keeps rows still being sampled and drops deleted ones', () => {
  const m = model();
  m.apply(started(1, 'live', 'r1', 1, 'p3'));
  m.setTrajectories('r1', 1, [header('a', { promptId: 'p10' })]);
  assert.deepEqual(ids(m), ['traj:live', 'traj:a']); // p10 sorts after p3; the unlisted eval row is gone
  assert.equal(m.row('b'), undefined);
  m.setRuns([run('r2')]);
  assert.equal(m.row('a'), undefined, 'rows of a run that disappeared are forgotten');
});

test('first diverging turn', () => {
  const t = (i: number, s: string, out?: string) => turn(i, s, out === undefined ? {} : { observation: { output: out, text: out, tokenIds: [], error: false, durationMs: 1 } });
  assert.equal(firstDivergingTurn([t(0, 'a'), t(1, 'b')], [t(0, 'a'), t(1, 'c')]), 1);
  assert.equal(firstDivergingTurn([t(0, 'a  x ')], [t(0, 'a x')]), null, 'whitespace only');
  assert.equal(firstDivergingTurn([t(0, 'a')], [t(0, 'a'), t(1, 'b')]), 1, 'prefix: the first missing turn');
  assert.equal(firstDivergingTurn([], []), null);
  assert.equal(firstDivergingTurn([], [t(0, 'a')]), 0);
  assert.equal(firstDivergingTurn([t(0, 'same', '4')], [t(0, 'same', '5')]), 0, 'same code, different tool output');
});

test('JSONL export: sorted, one line per record even with hostile notes, context joined', () => {
  const a = (id: string, note: string) => ({ trajectoryId: id, label: 'other' as const, note, turn: null, rewardOverride: null, author: 'me', updatedAt: 'u' });
  const rows = toExportRows([a('t2', 'line1\nline2\u2028x\u2029"q"'), a('t1', '')], new Map([['t1', header('t1', { question: 'Q1' })]]));
  const text = formatJsonl(rows);
  const lines = text.split('\n');
  assert.equal(lines.length, 3);
  assert.equal(lines[2], '');
  assert.ok(!/[\u2028\u2029]/.test(text));
  const first = JSON.parse(lines[0]!);
  assert.equal(first.trajectoryId, 't1');
  assert.equal(first.question, 'Q1');
  assert.equal(first.outcome, 'correct');
  const second = JSON.parse(lines[1]!);
  assert.equal(second.note, 'line1\nline2\u2028x\u2029"q"');
  assert.equal(second.question, undefined);
  assert.equal(formatJsonl([]), '');
});

test('metric events become points; merge de-duplicates and sorts', () => {
  const pts = eventToPoints({ type: 'train/metrics', seq: 1, runId: 'r', time: 't', iteration: 1, step: 3, phase: 'pref', metrics: { loss: 0.5, 'rewards/margins': 0.2, bad: Number.NaN } });
  assert.deepEqual(pts.map((p) => p.name), ['loss', 'rewards/margins']);
  const sft = eventToPoints({ type: 'train/metrics', seq: 1, runId: 'r', time: 't', iteration: 0, step: 1, phase: 'sft', metrics: { loss: 2 } });
  assert.equal(sft[0]!.name, 'sft/loss');
  const ev = eventToPoints({ type: 'eval/result', seq: 2, runId: 'r', time: 't', iteration: 1, pass1: 0.4, passK: null, k: 8, n: 10, ci95: [0.1, 0.7], meanTurns: 2, toolErrorRate: 0 });
  assert.deepEqual(ev, [{ runId: 'r', iteration: 1, step: 0, name: 'eval/pass1', value: 0.4 }]);
  const merged = mergePoints(pts, [{ runId: 'r', iteration: 1, step: 3, name: 'loss', value: 0.4 }, { runId: 'r', iteration: 0, step: 9, name: 'loss', value: 1 }]);
  assert.deepEqual(merged.map((p) => [p.iteration, p.step, p.name, p.value]), [[0, 9, 'loss', 1], [1, 3, 'loss', 0.4], [1, 3, 'rewards/margins', 0.2]]);
});

test('live trajectories: a sampling trajectory is rebuilt from events and forgotten once stored', async () => {
  const { LiveTrajectories } = await import('../../extension/src/panels/liveTrajectories');
  const live = new LiveTrajectories(2);
  live.apply(started(1, 'x'));
  live.apply({ type: 'trajectory/turn', seq: 2, runId: 'r1', time: 't', trajectoryId: 'x', turn: turn(1, 'second') });
  live.apply({ type: 'trajectory/turn', seq: 3, runId: 'r1', time: 't', trajectoryId: 'x', turn: turn(0, 'first') });
  live.apply({ type: 'trajectory/turn', seq: 4, runId: 'r1', time: 't', trajectoryId: 'x', turn: turn(1, 'second again') });
  const v = live.view('x')!;
  assert.deepEqual(v.turns.map((t) => t.action.text), ['first', 'second again'], 'ordered by index, a repeated turn replaced');
  assert.equal(v.live, true);
  assert.equal(v.outcome, null);
  live.apply(started(5, 'y'));
  live.apply(started(6, 'z'));
  assert.equal(live.has('x'), false, 'bounded: the oldest is dropped');
  live.apply(finished(7, header('z')));
  assert.equal(live.view('z'), undefined);
  assert.equal(live.has('y'), true);
});
