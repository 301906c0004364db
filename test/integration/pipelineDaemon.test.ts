/**
 * The main job over the WebSocket API: a real daemon process (port 0, temporary database) runs Algorithm 1 end to
 * end, the client sees the events, and the store holds the rows. Then kill -9 in the middle of sampling: a
 * restarted daemon resumes the run from its committed state without losing or duplicating anything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DaemonEvent } from '@mathagent/shared';
import { openStore } from '../../daemon/src/store';
import { startDaemon, tempDir, cleanup, waitFor } from '../helpers/daemonProcess';
import { join } from 'node:path';

/** A smaller smoke run (same stages) so the suite stays quick on 2 cores. */
const SMALL = {
  iterations: 2,
  // The preset's own SFT (200 steps): with less, samples at temperature 0.7 rarely finish with an answer.
  data: { trainPrompts: 6, evalPrompts: 6, devPrompts: 3 },
  sampling: { samplesPerPrompt: 4 },
  // One pair per step, and an evaluation of the model being trained after every step but the last.
  train: { batchSize: 1, microBatchSize: 1 },
  eval: { passK: 2, everySteps: 1 },
};

test('a smoke run over the WebSocket API: events in order, rows stored', { timeout: 600_000 }, async () => {
  const daemon = await startDaemon();
  try {
    const client = await daemon.connect();
    assert.equal(client.connected.protocolVersion, 1);
    const events: DaemonEvent[] = [];
    client.onEvent((e) => events.push(e));
    const { runId } = await client.request('run/start', { preset: 'smoke', config: SMALL });
    const finished = waitFor<DaemonEvent>((fn) => client.onEvent(fn), (e) => e.type === 'run/status' && e.runId === runId && ['finished', 'failed'].includes(e.state), 540_000, 'the run to finish');
    const end = await finished;
    assert.equal(end.type === 'run/status' && end.state, 'finished', `run failed: ${end.type === 'run/status' ? end.error : ''}\n${daemon.stderr().slice(-3000)}`);
    // seq strictly increasing, no gaps for one client that was connected throughout.
    for (let i = 1; i < events.length; i++) assert.equal(events[i]!.seq, events[i - 1]!.seq + 1);
    const types = new Set(events.map((e) => e.type));
    for (const t of ['run/status', 'trajectory/started', 'trajectory/turn', 'trajectory/finished', 'train/metrics', 'eval/result']) assert.ok(types.has(t as DaemonEvent['type']), `no ${t} event`);
    const stages = new Set(events.flatMap((e) => (e.type === 'run/status' && e.stage ? [e.stage] : [])));
    for (const s of ['sft', 'sample', 'pairs', 'eval']) assert.ok(stages.has(s as never), `stage ${s} never reported`);
    const runInfo = await client.request('run/get', { runId });
    // A model this small rarely gets any answer right after a short SFT: iterations without pairs must say why.
    for (const it of runInfo.iterations.filter((i) => i.iteration >= 1)) {
      if (it.pairs > 0) assert.ok(stages.has('train'), 'pairs were built but no train stage ran');
      else {
        const s = it.skipped as Record<string, number>;
        assert.equal((s.all_correct ?? 0) + (s.all_wrong ?? 0) + (s.only_tool_error_correct ?? 0), 6, `iteration ${it.iteration}: no pairs and skip reasons that do not cover the 6 prompts ${JSON.stringify(it.skipped)}`);
      }
    }
    const evals = events.filter((e) => e.type === 'eval/result');
    assert.deepEqual(evals.map((e) => e.type === 'eval/result' && e.iteration), [0, 1, 2]);

    const run = await client.request('run/get', { runId });
    assert.equal(run.run.state, 'finished');
    assert.equal(run.run.kind, 'train');
    // run/get carries each iteration's evaluation, as the eval/result events did; the synthetic task has no subjects.
    assert.deepEqual(run.evals.map((e) => [e.iteration, e.n, e.pass1, e.breakdown]), evals.map((e) => e.type === 'eval/result' && [e.iteration, e.n, e.pass1, null]));
    assert.equal(run.iterations.filter((i) => i.iteration >= 1).length, 2);
    for (const it of run.iterations.filter((i) => i.iteration >= 1)) assert.equal(it.trajectories, 6 * 4);
    const list = await client.request('trajectory/list', { runId, iteration: 1, split: 'train' });
    assert.equal(list.total, 24);
    const t = await client.request('trajectory/get', { trajectoryId: list.trajectories[0]!.id });
    // The action mask covers exactly the model's tokens.
    const tr = t.trajectory;
    const actionCount = tr.turns.reduce((a, x) => a + x.action.tokenIds.length, 0);
    assert.equal(tr.actionMask.filter((m) => m === 1).length, actionCount);
    assert.equal(tr.tokenIds.length, tr.actionMask.length);
    const metrics = await client.request('metrics/get', { runId });
    assert.ok(metrics.points.some((p) => p.name === 'sft/loss'));
    // data.devPrompts > 0: each evaluated model also gets a dev score, and the best checkpoint is chosen on it.
    const dev = metrics.points.filter((p) => p.name === 'dev/pass1');
    assert.deepEqual(dev.map((p) => p.iteration), [0, 1, 2]);
    // eval.everySteps = 1: iteration t with P pairs trains P steps and evaluates after the first P - 1.
    for (const it of run.iterations.filter((i) => i.iteration >= 1)) {
      const mid = metrics.points.filter((p) => p.name === 'eval/pass1' && p.iteration === it.iteration);
      assert.equal(mid.length, Math.max(0, it.pairs - 1), `iteration ${it.iteration}: ${it.pairs} pairs, ${mid.length} mid-training evals`);
    }
    assert.ok(run.iterations.some((i) => i.pairs > 0), `level 0 gives the smoke run pairs to train on: ${JSON.stringify(run.iterations)}`);
    const bestDev = Math.max(...dev.map((p) => p.value));
    assert.equal(dev.find((p) => p.value === bestDev)!.iteration, run.run.bestIteration, 'the first iteration with the best dev score is selected');
    assert.equal(run.run.bestPass1, evals.find((e) => e.type === 'eval/result' && e.iteration === run.run.bestIteration)!.type === 'eval/result' ? (evals.find((e) => e.type === 'eval/result' && e.iteration === run.run.bestIteration) as { pass1: number }).pass1 : -1);
    await client.close();
  } finally {
    await daemon.stop();
    cleanup(daemon.dir);
  }
});

test('kill -9 during sampling: the restarted daemon resumes, nothing committed is lost or duplicated', { timeout: 600_000 }, async () => {
  const dir = tempDir();
  let daemon: Awaited<ReturnType<typeof startDaemon>> | null = null;
  try {
    daemon = await startDaemon({ dir });
    let client = await daemon.connect();
    // Enough prompts that sampling lasts several seconds: the kill lands in the middle of it.
    const { runId } = await client.request('run/start', { preset: 'smoke', config: { ...SMALL, iterations: 1, sft: { demos: 120, steps: 40 }, data: { trainPrompts: 100, evalPrompts: 4 } } });
    // Wait until a few iteration-1 training trajectories are committed, annotate one, then kill -9.
    let committed = 0;
    const firstId = await waitFor<DaemonEvent>((fn) => client.onEvent(fn), (e) => e.type === 'trajectory/finished' && e.header.split === 'train' && ++committed >= 5, 400_000, 'five sampled trajectories');
    const annotated = firstId.type === 'trajectory/finished' ? firstId.header.id : '';
    await client.request('annotation/set', { trajectoryId: annotated, label: 'reasoning_error', note: 'kept across kill -9' });
    await client.close();
    await daemon.kill9();

    const before = openStore(join(dir, 'mathagent.db'));
    const committedIds = before.listTrajectories(runId, 1, 'train').map((x) => x.id);
    assert.ok(committedIds.length >= 5, `only ${committedIds.length} committed before the kill`);
    assert.equal(before.getRunSummary(runId)!.state, 'running');
    before.close();

    daemon = await startDaemon({ dir });
    client = await daemon.connect();
    const done = await waitFor<DaemonEvent>((fn) => client.onEvent(fn), (e) => e.type === 'run/status' && e.runId === runId && ['finished', 'failed'].includes(e.state), 540_000, 'the resumed run to finish');
    assert.equal(done.type === 'run/status' && done.state, 'finished', daemon.stderr().slice(-3000));
    const list = await client.request('trajectory/list', { runId, iteration: 1, split: 'train', limit: 1000 });
    assert.equal(list.total, 100 * 4, 'each (prompt, sample) exactly once');
    assert.equal(new Set(list.trajectories.map((x) => x.id)).size, list.total);
    for (const id of committedIds) assert.ok(list.trajectories.some((x) => x.id === id), `committed trajectory ${id} lost`);
    const ann = await client.request('annotation/list', { runId });
    assert.deepEqual(ann.annotations.map((a) => [a.trajectoryId, a.label, a.note]), [[annotated, 'reasoning_error', 'kept across kill -9']]);
    const run = await client.request('run/get', { runId });
    assert.equal(run.iterations.find((i) => i.iteration === 1)?.trajectories, 400);
    await client.close();
  } finally {
    await daemon?.kill9();
    cleanup(dir);
  }
});
