import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gradedTrajectory } from './pairFixtures';
import type { Trajectory } from '@mathagent/shared';
import { buildPairs, raftTrainingSet, selectRaft } from '../../daemon/src/pipeline/pairs';
import { passAtK, wilson95 } from '../../daemon/src/pipeline/stats';

const traj = gradedTrajectory;

test('one pair per mixed prompt; all-correct, all-wrong and tool-error-only-correct prompts are skipped and counted', () => {
  const ts = [
    traj('a', 0, 1), traj('a', 1, 0), traj('a', 2, 1),
    traj('b', 0, 1), traj('b', 1, 1),
    traj('c', 0, 0), traj('c', 1, 0),
    traj('d', 0, 1, true), traj('d', 1, 0),
    traj('e', 0, 1, true), traj('e', 1, 1), traj('e', 2, 0),
  ];
  const r = buildPairs(ts, { seed: 3 });
  assert.deepEqual(r.pairs.map((p) => p.promptId), ['a', 'e']);
  assert.deepEqual(r.skipped, { all_correct: 1, all_wrong: 1, only_tool_error_correct: 1 });
  assert.equal(r.droppedToolErrorCorrect, 2);
  for (const p of r.pairs) { assert.equal(p.chosen.reward, 1); assert.equal(p.rejected.reward, 0); }
  // The tool-error correct trajectory of prompt e is never chosen.
  assert.equal(r.pairs[1]!.chosen.id, 'e-s1');
});

test('pairs are deterministic by seed and independent of input order', () => {
  const ts = Array.from({ length: 40 }, (_, i) => traj(`p${i % 5}`, i, i % 3 === 0 ? 1 : 0));
  const a = buildPairs(ts, { seed: 7 }).pairs.map((p) => `${p.chosen.id}>${p.rejected.id}`);
  const b = buildPairs([...ts].reverse(), { seed: 7 }).pairs.map((p) => `${p.chosen.id}>${p.rejected.id}`);
  assert.deepEqual(a, b);
});

test('pairsPerPrompt > 1: the first pair is unchanged, the others are distinct and use every trajectory before reusing one', () => {
  // Prompt a: 2 correct, 3 wrong (6 combinations); prompt b: 1 correct, 1 wrong (one combination only).
  const ts = [traj('a', 0, 1), traj('a', 1, 1), traj('a', 2, 0), traj('a', 3, 0), traj('a', 4, 0), traj('b', 0, 1), traj('b', 1, 0)];
  const one = buildPairs(ts, { seed: 5 }).pairs;
  const three = buildPairs(ts, { seed: 5, pairsPerPrompt: 3 }).pairs;
  const key = (p: { chosen: Trajectory; rejected: Trajectory }) => `${p.chosen.id}>${p.rejected.id}`;
  assert.equal(key(three[0]!), key(one[0]!), 'the paper\'s pair comes first, as with pairsPerPrompt 1');
  const a = three.filter((p) => p.promptId === 'a');
  assert.equal(a.length, 3);
  assert.equal(new Set(a.map(key)).size, 3, 'no pair twice');
  assert.deepEqual(new Set(a.map((p) => p.rejected.id)), new Set(['a-s2', 'a-s3', 'a-s4']), 'every wrong trajectory used once');
  assert.deepEqual(new Set(a.map((p) => p.chosen.id)), new Set(['a-s0', 'a-s1']), 'both correct trajectories used');
  assert.equal(three.filter((p) => p.promptId === 'b').length, 1, 'one combination: no duplicate');
  assert.equal(buildPairs(ts, { seed: 5, pairsPerPrompt: 10 }).pairs.filter((p) => p.promptId === 'a').length, 6, 'at most every combination');
});

test('a grader_disagreement override flips the reward used for pairs', () => {
  const ts = [traj('a', 0, 1), traj('a', 1, 1)];
  assert.equal(buildPairs(ts, { seed: 1 }).pairs.length, 0);
  const r = buildPairs(ts, { seed: 1, overrides: new Map([['a-s1', 0]]) });
  assert.equal(r.pairs.length, 1);
  assert.equal(r.pairs[0]!.rejected.id, 'a-s1');
});

test('RAFT keeps at most k tool-error-free correct trajectories per prompt', () => {
  const ts = [traj('a', 0, 1), traj('a', 1, 1), traj('a', 2, 1, true), traj('a', 3, 0), traj('b', 0, 0)];
  const kept = selectRaft(ts, { seed: 1, keep: 5 });
  assert.deepEqual(kept.map((t) => t.id).sort(), ['a-s0', 'a-s1']);
  assert.equal(selectRaft(ts, { seed: 1, keep: 1 }).length, 1);
});

test('pass@k and Wilson interval match hand-computed values', () => {
  assert.equal(passAtK(8, 0, 1), 0);
  assert.equal(passAtK(8, 8, 8), 1);
  assert.ok(Math.abs(passAtK(4, 1, 2) - 0.5) < 1e-12); // 1 - C(3,2)/C(4,2) = 1 - 3/6
  const [lo, hi] = wilson95(50, 100);
  assert.ok(Math.abs(lo - 0.4038) < 1e-3 && Math.abs(hi - 0.5962) < 1e-3);
});

test('RAFT from "pairs" trains on exactly the pairs\' chosen side; from "all" also on all-correct prompts', () => {
  const ts = [traj('a', 0, 1), traj('a', 1, 0), traj('b', 0, 1), traj('b', 1, 1), traj('c', 0, 0), traj('d', 0, 1, true), traj('d', 1, 0)];
  const { pairs } = buildPairs(ts, { seed: 1 });
  assert.deepEqual(pairs.map((p) => p.chosen.id), ['a-s0']);
  const fromPairs = raftTrainingSet(ts, pairs, { from: 'pairs', seed: 1, keep: 1 });
  assert.deepEqual(fromPairs.map((t) => t.id), ['a-s0']);
  const all = raftTrainingSet(ts, pairs, { from: 'all', seed: 1, keep: 1 });
  assert.deepEqual(all.map((t) => t.promptId), ['a', 'b'], 'the all-correct prompt b too; c has no correct sample, d only one with a tool error');
  assert.deepEqual(all, selectRaft(ts, { seed: 1, keep: 1 }));
});
