import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stageSeconds, timeSection, type RunStatusEvent } from '../../daemon/src/pipeline/stageTimes';

/** A status event `s` seconds after a fixed start. */
const at = (s: number, state: RunStatusEvent['state'], stage: RunStatusEvent['stage'] = null): RunStatusEvent => ({
  type: 'run/status', runId: 'r', seq: s, time: new Date(Date.UTC(2026, 11, 3) + s * 1000).toISOString(), state, stage, iteration: 1, progress: null, error: null,
});

test('stage times: each interval goes to the stage of the event that opens it, only while running', () => {
  const ev = [at(0, 'queued'), at(1, 'running'), at(3, 'running', 'sft'), at(63, 'running', 'sft'), at(123, 'running', 'sample'),
    at(153, 'running', 'train'), at(163, 'running', 'eval'), at(223, 'stopping', 'eval'), at(230, 'stopped', 'eval')];
  assert.deepEqual(stageSeconds(ev), { setup: 2, sft: 120, sample: 30, train: 10, eval: 60 });
});

test('stage times: the gap before a restart (the process died; the resumed run queues first) is not counted', () => {
  const ev = [at(0, 'running', 'sample'), at(10, 'running', 'sample'), at(5000, 'queued'), at(5001, 'running'), at(5002, 'running', 'sample'), at(5012, 'finished', 'done')];
  assert.deepEqual(stageSeconds(ev), { sample: 20, setup: 1 });
});

test('the time section: run-minutes per stage, per kind of run, against the wall time; nothing without events', () => {
  const sft = [at(0, 'running'), at(60, 'running', 'sft'), at(60 * 20, 'running', 'eval'), at(60 * 22, 'finished', 'done')];
  const arm = (m: number) => [at(0, 'running', 'sample'), at(60 * m, 'running', 'eval'), at(60 * 2 * m, 'finished', 'done')];
  const lines = timeSection([{ kind: 'SFT runs', events: sft }, { kind: 'online runs', events: arm(2) }, { kind: 'online runs', events: arm(3) }], 60 * 20);
  const text = lines.join('\n');
  assert.match(text, /^3 runs took 32\.0 run-minutes in 20\.0 minutes of wall time \(1\.60 runs at once/);
  assert.match(text, /\| SFT \| 19\.0 \| 59% \|/);
  assert.match(text, /\| sampling \| 5\.0 \| 16% \|/);
  assert.match(text, /\| evaluation \| 7\.0 \| 22% \|/);
  assert.match(text, /\| setup \(model, data, checkpoints\) \| 1\.0 \| 3% \|/);
  assert.doesNotMatch(text, /grading|finishing/, 'stages without time get no row');
  assert.match(text, /- SFT runs: 1 runs, 22\.0–22\.0 minutes each \(median 22\.0\)/);
  assert.match(text, /- online runs: 2 runs, 4\.0–6\.0 minutes each \(median 5\.0\)/);
  assert.deepEqual(timeSection([{ kind: 'SFT runs', events: [] }], 60), []);
});

test('median: the middle value, the mean of the middle two, NaN for none; the input is left as it was', async () => {
  const { median } = await import('../../daemon/src/pipeline/stats');
  const xs = [5, 1, 3];
  assert.equal(median(xs), 3);
  assert.deepEqual(xs, [5, 1, 3]);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});
