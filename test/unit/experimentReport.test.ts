import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gradedTrajectory } from './pairFixtures';
import { mcnemarExact, svgPlot } from '../../daemon/src/pipeline/experimentReport';
import { planFor, ARMS } from '../../daemon/src/pipeline/experiment';

test('exact McNemar p-values match the binomial tail by hand', () => {
  assert.equal(mcnemarExact(0, 0), 1);
  // b=0, c=5: 2 * (1/2)^5 = 0.0625
  assert.ok(Math.abs(mcnemarExact(0, 5) - 0.0625) < 1e-12);
  // b=1, c=9: 2 * (C(10,0)+C(10,1)) / 1024 = 22/1024
  assert.ok(Math.abs(mcnemarExact(1, 9) - 22 / 1024) < 1e-12);
  assert.equal(mcnemarExact(5, 5), 1);
});

test('the plan runs SFT, M-DPO, RAFT and RAFT on the pairs\' chosen on every seed, the other arms on the first', () => {
  const p = planFor([1, 2, 3]);
  const every = ['mdpo', 'raft', 'raft_pairs'];
  for (const k of every) assert.deepEqual(p.armSeeds[k], [1, 2, 3]);
  for (const a of ARMS.filter((x) => !every.includes(x.key))) assert.deepEqual(p.armSeeds[a.key], [1]);
  assert.deepEqual(ARMS.map((a) => a.key), ['mdpo', 'mdpo_sftref', 'dpo_unmasked', 'mkto', 'raft', 'raft_pairs']);
  assert.deepEqual(ARMS.find((a) => a.key === 'raft_pairs')?.train, { raftFrom: 'pairs' });
});

test('the SVG plot has one polyline and legend entry per series', () => {
  const svg = svgPlot([{ label: 'A', points: [[0, 0.5], [1, 0.6]] }, { label: 'B', points: [[0, 0.5], [1, 0.4]] }], { title: 't' });
  assert.equal((svg.match(/<polyline/g) ?? []).length, 2);
  assert.match(svg, />A</);
  assert.match(svg, /^<svg /);
});

test('the SVG plot: a group shares one colour, means are dashed, and the legend column fits the longest label', () => {
  const long = 'RAFT (pairs\' chosen only) (mean of 5)';
  const svg = svgPlot([
    { label: 'A (seed 1)', points: [[0, 0.5], [1, 0.6]], group: 'a' },
    { label: 'A (mean of 2)', points: [[0, 0.5], [1, 0.55]], group: 'a', dashed: true },
    { label: long, points: [[0, 0.5], [1, 0.4]] },
  ], { title: 't' });
  const strokes = [...svg.matchAll(/<polyline fill="none" stroke="(#[0-9a-f]+)"([^>]*)>/g)].map((m) => [m[1], /dasharray/.test(m[2]!)]);
  assert.deepEqual(strokes.map((s) => s[1]), [false, true, false]);
  assert.equal(strokes[0]![0], strokes[1]![0], 'one colour for the group');
  assert.notEqual(strokes[0]![0], strokes[2]![0]);
  const width = Number(/width="(\d+)"/.exec(svg)![1]);
  const legendX = Number(new RegExp(`<text x="(\\d+)" y="\\d+">${long.replace(/[()]/g, '\\$&')}</text>`).exec(svg)![1]);
  assert.ok(width - legendX >= long.length * 6.5, `the legend has room: ${width - legendX} px for ${long.length} characters`);
});

test('the report: SFT rows from the SFT runs, arm curves start there, seeds summarised, paired test against SFT', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { openStore } = await import('../../daemon/src/store');
  const { experimentReport } = await import('../../daemon/src/pipeline/experimentReport');
  const { RunConfig } = await import('@mathagent/shared');
  const dir = mkdtempSync(join(tmpdir(), 'report-'));
  const store = openStore(join(dir, 'runs.db'));
  try {
    // 10 problems; the SFT model gets the first 4 right, each M-DPO iteration one more.
    const ids = Array.from({ length: 10 }, (_, i) => `p${i}`);
    const evalOf = (runId: string, iteration: number, right: number) => store.insertEval({
      runId, iteration, pass1: right / 10, passK: null, k: 1, n: 10, ci95: [0, 1], meanTurns: 2, toolErrorRate: 0,
      problems: ids.map((promptId, i) => ({ promptId, correct: i < right, correctK: null, trajectoryId: `${runId}-${promptId}` })),
    });
    const runs: Record<string, string> = {};
    for (const seed of [1, 2]) {
      runs[`sft/${seed}`] = store.createRun({ config: RunConfig.parse({ iterations: 0, seed }) }).id;
      evalOf(runs[`sft/${seed}`]!, 0, 4);
      runs[`mdpo/${seed}`] = store.createRun({ config: RunConfig.parse({ iterations: 3, seed }) }).id;
      for (const t of [1, 2, 3]) evalOf(runs[`mdpo/${seed}`]!, t, 4 + t + (seed - 1));
    }
    runs['raft/1'] = store.createRun({ config: RunConfig.parse({ iterations: 3 }) }).id;
    for (const t of [1, 2, 3]) evalOf(runs['raft/1']!, t, 5);
    // What each arm trained on: M-DPO its pairs (the iteration row), RAFT one usable correct sample of every prompt
    // that has one (recomputed from the samples): prompt a mixed, b all correct, c all wrong, d correct only with
    // a tool error. 1 pair; RAFT 2 trajectories.
    const sample = (runId: string, promptId: string, sampleIndex: number, reward: number, toolError = false) =>
      gradedTrajectory(promptId, sampleIndex, reward, toolError, { runId, id: `${runId}-${promptId}-${sampleIndex}` });
    for (const key of ['mdpo/1', 'raft/1']) {
      const id = runs[key]!;
      store.insertTrajectories([sample(id, 'a', 0, 1), sample(id, 'a', 1, 1), sample(id, 'a', 2, 0), sample(id, 'b', 0, 1), sample(id, 'b', 1, 1),
        sample(id, 'c', 0, 0), sample(id, 'd', 0, 1, true), sample(id, 'd', 1, 0)], 'train');
      store.upsertIteration({ runId: id, iteration: 1, stage: 'eval', pairs: 1 });
    }
    const report = () => experimentReport({ store, state: { preset: 'paper-mini', overrides: {}, runs, startedAt: 'x', wallSeconds: 60 }, command: 'c', backend: 'wasm', machine: 'm' });
    assert.doesNotMatch(report().markdown, /Where the time goes/, 'no status events stored: no time section');
    // Where the time went, from the runs' stored status events: SFT 30 s, then M-DPO sampling 20 s and eval 10 s.
    const status = (runId: string, s: number, stage: 'sft' | 'sample' | 'eval' | 'done', state: 'running' | 'finished' = 'running') =>
      ({ type: 'run/status' as const, runId, seq: 0, time: new Date(Date.UTC(2026, 11, 3) + s * 1000).toISOString(), state, stage, iteration: 1, progress: null, error: null });
    store.appendEvents([status(runs['sft/1']!, 0, 'sft'), status(runs['sft/1']!, 30, 'done', 'finished'),
      status(runs['mdpo/1']!, 30, 'sample'), status(runs['mdpo/1']!, 50, 'eval'), status(runs['mdpo/1']!, 60, 'done', 'finished')]);
    const { markdown, svg } = report();
    assert.match(markdown, /## Where the time goes\n\n2 runs took 1\.0 run-minutes in 1\.0 minutes of wall time/);
    assert.match(markdown, /\| SFT \| 0\.5 \| 50% \|/);
    assert.match(markdown, /\| SFT \| 1 \| 40\.0 \|/);
    assert.match(markdown, /trained on\/iter \|/);
    assert.match(markdown, /\| M-DPO \(ref = previous\) \| 1 \|[^\n]*\| 1 \|\n/, 'M-DPO trained on its 1 pair');
    assert.match(markdown, /\| RAFT \| 1 \|[^\n]*\| 2 \|\n/, 'RAFT trained on 2 trajectories (the all-correct prompt too)');
    assert.match(markdown, /\| M-DPO \(ref = previous\) \| 1 \| 40\.0 \| 50\.0 \| 60\.0 \| 70\.0 \|/, 'the curve starts at the SFT run\'s score');
    assert.match(markdown, /\| M-DPO \(ref = previous\), final \| 2 \| 75\.0 \| 7\.1 \| 70\.0–80\.0 \|/);
    assert.match(markdown, /\| M-DPO \(ref = previous\) \| RAFT \| 1 \| 2 \| 0 \| 0\.50 \|/);
    assert.doesNotMatch(markdown, /\| RAFT \| all/, 'RAFT ran on one seed: no pooled row');
    // Per seed, and pooled over both seeds (the discordant counts add up: 3 + 4 against 0).
    assert.match(markdown, /\| M-DPO \(ref = previous\) \| SFT \| 1 \| 3 \| 0 \| 0\.25 \|/);
    assert.match(markdown, /\| M-DPO \(ref = previous\) \| SFT \| 2 \| 4 \| 0 \| 0\.13 \|/);
    assert.match(markdown, /\| M-DPO \(ref = previous\) \| SFT \| all 2 \| 7 \| 0 \| 0\.016 \|/);
    // M-DPO's first-seed curve and its mean over two seeds, and RAFT's one seed.
    assert.equal((svg.match(/<polyline/g) ?? []).length, 3);
    assert.match(svg, />M-DPO \(ref = previous\) \(seed 1\)</);
    assert.match(svg, />M-DPO \(ref = previous\) \(mean of 2\)</);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('runExperiment: arms start from their seed\'s SFT checkpoint without re-evaluating it; a second call resumes, skips finished runs, and banks wall time', async () => {
  const { mkdtempSync, rmSync, readFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { openStore } = await import('../../daemon/src/store');
  const { runExperiment } = await import('../../daemon/src/pipeline/experiment');
  const { RunConfig } = await import('@mathagent/shared');
  const dir = mkdtempSync(join(tmpdir(), 'experiment-'));
  const store = openStore(join(dir, 'runs.db'));
  const started: Array<Record<string, any>> = [];
  let failNext = false;
  let pending: string | null = null;
  // A run manager that "runs" by writing the rows a finished run leaves (and can fail one run, as a crash would).
  const manager = {
    async start({ config }: { config: Record<string, unknown> }) {
      started.push(config);
      const run = store.createRun({ config: RunConfig.parse(config) });
      pending = run.id;
      return { runId: run.id };
    },
    async resume(runId: string) { pending = runId; return true; },
    async idle() {
      const id = pending!;
      if (failNext) { failNext = false; store.updateRun(id, { state: 'failed', error: 'killed' }); return; }
      store.addCheckpoint({ runId: id, iteration: 0, path: `/ck/${id}`, metrics: {} });
      store.updateRun(id, { state: 'finished' });
    },
  };
  const stateFile = join(dir, 'exp.json');
  const go = () => runExperiment({ store, manager: manager as never, stateFile, preset: 'paper-mini', overrides: { iterations: 1 }, seeds: [1, 2] });
  try {
    failNext = false;
    // Fail the second run (seed 2's SFT, started before any arm): the experiment stops with a message that says how to resume.
    let calls = 0;
    const origStart = manager.start;
    manager.start = async (p) => { if (++calls === 2) failNext = true; return origStart(p); };
    await assert.rejects(go(), /re-run the same command to resume/);
    const firstState = JSON.parse(readFileSync(stateFile, 'utf8'));
    assert.ok(firstState.wallSeconds >= 0 && Object.keys(firstState.runs).length === 2);
    manager.start = origStart;
    const s = await go();
    // SFT, M-DPO, RAFT and RAFT-on-pairs on both seeds, the other three arms on seed 1: 2 + 2 + 2 + 2 + 3 runs, the
    // failed one resumed in place.
    assert.equal(Object.keys(s.runs).length, 11);
    assert.equal(started.length, 11, 'the failed run was resumed, not started again');
    assert.deepEqual(started.slice(0, 2).map((c) => c.name), ['paper-mini SFT s1', 'paper-mini SFT s2'], 'every SFT run before the arms');
    const arm = started.find((c) => c.name === 'paper-mini mdpo s2')!;
    assert.equal(arm.model.init, `/ck/${s.runs['sft/2']}`);
    assert.equal(arm.eval.initial, false);
    assert.equal(arm.sft.enabled, false);
    assert.equal(started.find((c) => c.name === 'paper-mini mdpo_sftref s1')!.train.reference, 'sft');
    // A third call finds everything finished and starts nothing.
    assert.equal(started.find((c) => c.name === 'paper-mini raft_pairs s2')!.train.raftFrom, 'pairs');
    await go();
    assert.equal(started.length, 11);
    await assert.rejects(runExperiment({ store, manager: manager as never, stateFile, preset: 'paper-mini', overrides: {}, seeds: [1] }), /belongs to a different experiment/);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the report breaks the final evaluations down by problem family and marks the flawed ones', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { openStore } = await import('../../daemon/src/store');
  const { experimentReport } = await import('../../daemon/src/pipeline/experimentReport');
  const { runProblems } = await import('../../daemon/src/pipeline/execute');
  const { RunConfig } = await import('@mathagent/shared');
  const dir = mkdtempSync(join(tmpdir(), 'report-fam-'));
  const store = openStore(join(dir, 'runs.db'));
  try {
    const cfg = RunConfig.parse({ iterations: 0, data: { evalPrompts: 12, heldOut: 'same' }, sft: { flawFamilies: ['discount'] } });
    const problems = runProblems(cfg, 'eval', 12);
    const sft = store.createRun({ config: cfg }).id;
    const mdpo = store.createRun({ config: RunConfig.parse({ ...cfg, iterations: 1 }) }).id;
    // SFT gets every discount problem wrong and the rest right; M-DPO gets everything right.
    const ev = (runId: string, iteration: number, right: (family: string) => boolean) => store.insertEval({
      runId, iteration, pass1: 0, passK: null, k: 1, n: 12, ci95: [0, 1], meanTurns: 2, toolErrorRate: 0,
      problems: problems.map((p) => ({ promptId: p.id, correct: right(String(p.meta!.family)), correctK: null, trajectoryId: p.id })),
    });
    ev(sft, 0, (f) => f !== 'discount');
    ev(mdpo, 1, () => true);
    const { markdown } = experimentReport({ store, state: { preset: 'paper-mini', overrides: {}, runs: { 'sft/1': sft, 'mdpo/1': mdpo }, startedAt: 'x', wallSeconds: 1 }, command: 'c', backend: 'wasm', machine: 'm' });
    assert.match(markdown, /\| method \| budget \| discount \(flawed demos\) \| production \| sharing \| shopping \| units \|/);
    assert.match(markdown, /\| SFT \(seed 1\) \| 100\.0 \| 0\.0 \| 100\.0 \| 100\.0 \| 100\.0 \| 100\.0 \|/);
    assert.match(markdown, /\| M-DPO \(ref = previous\) \(seed 1\) \| 100\.0 \| 100\.0 \| 100\.0 \| 100\.0 \| 100\.0 \| 100\.0 \|/);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('runTasks: never more than `slots` at once, each task after the ones it waits for, a failure starts nothing new and is rethrown', async () => {
  const { runTasks } = await import('../../daemon/src/pipeline/experiment');
  const tick = () => new Promise((r) => setTimeout(r, 5));
  const tasks = ['a', 'b', 'c'].flatMap((s) => [{ key: `sft/${s}`, after: [], config: () => ({}) }, { key: `x/${s}`, after: [`sft/${s}`], config: () => ({}) }, { key: `y/${s}`, after: [`sft/${s}`], config: () => ({}) }]);
  const order: string[] = [];
  let running = 0; let peak = 0;
  await runTasks(tasks, 2, async (t) => {
    for (const k of t.after) assert.ok(order.includes(`done ${k}`), `${t.key} started before ${k} finished`);
    running++; peak = Math.max(peak, running); order.push(`start ${t.key}`);
    await tick(); await tick();
    running--; order.push(`done ${t.key}`);
  });
  assert.equal(peak, 2);
  assert.equal(order.filter((o) => o.startsWith('done')).length, 9);
  // The first two ready tasks in list order start first: both SFT models (nothing else is ready yet).
  assert.deepEqual(order.slice(0, 2), ['start sft/a', 'start sft/b']);

  const ran: string[] = [];
  await assert.rejects(runTasks(tasks, 2, async (t) => {
    ran.push(t.key);
    await tick();
    if (t.key === 'sft/a') throw new Error('boom');
  }), /boom/);
  // sft/b was already running and finished; nothing that waits for sft/a ran, and nothing new started after the failure.
  assert.deepEqual(ran, ['sft/a', 'sft/b']);
  await assert.rejects(runTasks([{ key: 'z', after: ['missing'], config: () => ({}) }], 1, async () => {}), /not in the plan: z/);
});
