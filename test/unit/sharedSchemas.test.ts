import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RunConfig, formatIssues, flattenTokens, DaemonEvent, Methods } from '@mathagent/shared';

test('run config defaults follow the paper limits', () => {
  const c = RunConfig.parse({});
  assert.equal(c.limits.maxTurns, 6);
  assert.equal(c.limits.maxTurnTokens, 512);
  assert.equal(c.limits.maxTrajectoryTokens, 2048);
  assert.equal(c.train.beta, 0.1);
});

test('a bad config field is reported with its path', () => {
  const r = RunConfig.safeParse({ algorithm: 'ppo', train: { beta: -1 } });
  assert.equal(r.success, false);
  const msg = formatIssues(r.error!);
  assert.match(msg, /^algorithm: .*mdpo/m);
  assert.match(msg, /^train\.beta: /m);
});

test('flattenTokens masks exactly the action tokens', () => {
  const turn = (i: number, a: number[], o: number[] | null) => ({
    index: i, action: { text: '', tokenIds: a, logprobs: [] }, finishReason: 'stop' as const, toolCall: null,
    observation: o ? { output: '', text: '', tokenIds: o, error: false, durationMs: 0 } : null,
  });
  const { tokenIds, actionMask } = flattenTokens([1, 2], [turn(0, [3, 4], [5]), turn(1, [6], null)]);
  assert.deepEqual(tokenIds, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(actionMask, [0, 0, 1, 1, 0, 1]);
});

test('events are a discriminated union with seq', () => {
  const e = DaemonEvent.parse({ type: 'log', seq: 3, runId: 'r', time: 't', level: 'info', message: 'hi' });
  assert.equal(e.type, 'log');
  assert.equal(DaemonEvent.safeParse({ type: 'nope', seq: 1, runId: 'r', time: 't' }).success, false);
  assert.ok(Methods['run/start']);
});
