import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import {
  Trainer, computeSequenceLogps, computeTokenLogps, mismatchedSamples, type StepEvent, type TrainerOptions,
} from '../../daemon/src/train/trainer';
import { TinyLM, pairs, trajectory } from './trainerFixtures';

before(async () => { await tf.setBackend('cpu'); });

const close = (a: number, b: number, tol = 1e-5, what = '') =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs expected ${b}`);
const base: TrainerOptions = { algorithm: 'mdpo', lr: 1e-2, batchSize: 4, beta: 0.5, schedule: 'constant' };

test('first M-DPO step with reference = policy: rewards 0, loss ln 2, logps match computeSequenceLogps', async () => {
  const model = new TinyLM(1);
  const ps = pairs(4);
  const before = await computeSequenceLogps(model, ps.map((p) => p.chosen));
  const beforeR = await computeSequenceLogps(model, ps.map((p) => p.rejected));
  const events: StepEvent[] = [];
  const trainer = new Trainer(model, { ...base, nllWeight: 0 });
  const res = await trainer.trainPreference(ps, model, { onStep: (e) => { events.push(e); } });
  assert.equal(res.steps, 1);
  const m = events[0]!.metrics;
  for (const k of ['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/margins', 'rewards/accuracies', 'logps/chosen', 'logps/rejected', 'grad_norm', 'lr']) {
    assert.ok(Number.isFinite(m[k]), `metric ${k} present and finite`);
  }
  // π = ref before the update → h = 0 → loss = softplus(0) = ln 2, rewards 0, no pair "accurate" (0 > 0 false)
  close(m.loss!, Math.LN2, 1e-6, 'loss');
  close(m['rewards/margins']!, 0, 1e-6, 'margins');
  assert.equal(m['rewards/accuracies'], 0);
  close(m['logps/chosen']!, before.reduce((a, b) => a + b, 0) / 4, 1e-5, 'logps/chosen');
  close(m['logps/rejected']!, beforeR.reduce((a, b) => a + b, 0) / 4, 1e-5, 'logps/rejected');
  close(m.lr!, 1e-2, 1e-9, 'lr');
  assert.equal(events[0]!.step, 1);
  trainer.dispose();
  model.dispose();
});

test('every parameter changes after one step', async () => {
  const model = new TinyLM(2);
  const ref = new TinyLM(3);
  const before = await model.snapshot();
  const trainer = new Trainer(model, base);
  await trainer.trainPreference(pairs(4), ref);
  const after = await model.snapshot();
  before.forEach((w, i) => assert.ok(w.some((x, j) => x !== after[i]![j]), `variable ${i} changed`));
  trainer.dispose();
  tf.dispose([...model.variables(), ...ref.variables()]);
});

test('reference log-probs are computed once per pair, before the first step, across epochs', async () => {
  const model = new TinyLM(4);
  const ref = new TinyLM(5);
  const trainer = new Trainer(model, { ...base, batchSize: 2, microBatchSize: 1 });
  const refCallsAtStep: number[] = [];
  // 6 pairs, micro-batch 1 → reference forward passes of 2 sequences: 3 for chosen + 3 for rejected
  const r = await trainer.trainPreference(pairs(6), ref, { epochs: 2, onStep: () => { refCallsAtStep.push(ref.calls); } });
  assert.equal(r.steps, 6); // 2 epochs × 3 batches
  assert.deepEqual(refCallsAtStep, [6, 6, 6, 6, 6, 6]);
  trainer.dispose();
  model.dispose();
  ref.dispose();
});

async function oneStep(algorithm: TrainerOptions['algorithm'], micro: number, extra: Partial<TrainerOptions> = {}) {
  const model = new TinyLM(6);
  const ref = new TinyLM(7);
  const trainer = new Trainer(model, { ...base, algorithm, batchSize: 4, microBatchSize: micro, nllWeight: 0.3, gradClip: Infinity, seed: 3, ...extra });
  let metrics: Record<string, number> = {};
  if (algorithm === 'sft' || algorithm === 'raft') {
    const seqs = [1, 2, 3, 4].map((s) => trajectory(s));
    await trainer.trainSft(seqs, { steps: 1, onStep: (e) => { metrics = e.metrics; } });
  } else {
    await trainer.trainPreference(pairs(4), ref, { onStep: (e) => { metrics = e.metrics; } });
  }
  const w = await model.snapshot();
  trainer.dispose();
  model.dispose();
  ref.dispose();
  return { metrics, w };
}

for (const algorithm of ['mdpo', 'mkto', 'sft'] as const) {
  test(`gradient accumulation equals the full batch (${algorithm})`, async () => {
    const full = await oneStep(algorithm, 4);
    for (const micro of [1, 3]) {
      const acc = await oneStep(algorithm, micro);
      // grad_norm compares the summed gradient itself (Adam's first step is nearly scale-free, the norm is not)
      for (const k of Object.keys(full.metrics)) close(acc.metrics[k]!, full.metrics[k]!, 2e-5, `${algorithm} micro ${micro} ${k}`);
      full.w.forEach((w, i) => w.forEach((x, j) => close(acc.w[i]![j]!, x, 1e-5, `${algorithm} micro ${micro} weight ${i}[${j}]`)));
    }
  });
}

test('tf.memory().numTensors stays flat across 20 training steps (M-DPO with accumulation, M-KTO, SFT)', async () => {
  const model = new TinyLM(8);
  const ref = new TinyLM(9);
  for (const algorithm of ['mdpo', 'mkto', 'dpo_unmasked'] as const) {
    const trainer = new Trainer(model, { ...base, algorithm, batchSize: 2, microBatchSize: 1, nllWeight: 0.2, weightDecay: 0.1 });
    const counts: number[] = [];
    const r = await trainer.trainPreference(pairs(10), ref, { epochs: 4, onStep: () => { counts.push(tf.memory().numTensors); } });
    assert.equal(r.steps, 20);
    assert.equal(counts[19], counts[1], `${algorithm}: tensors at step 20 (${counts[19]}) vs step 2 (${counts[1]})`);
    trainer.dispose();
  }
  const start = tf.memory().numTensors;
  const sft = new Trainer(model, { ...base, algorithm: 'sft', batchSize: 3, microBatchSize: 2 });
  const counts: number[] = [];
  await sft.trainSft([1, 2, 3, 4, 5].map((s) => trajectory(s)), { steps: 20, onStep: () => { counts.push(tf.memory().numTensors); } });
  assert.equal(counts[19], counts[1]);
  sft.dispose();
  assert.equal(tf.memory().numTensors, start, 'a disposed trainer leaves no tensor behind');
  model.dispose();
  ref.dispose();
});

test('training moves the policy the right way: M-DPO margins grow, SFT NLL falls, M-KTO estimates KL', async () => {
  const model = new TinyLM(10);
  const ref = new TinyLM(10);
  ref.copyFrom(model);
  const ms: Record<string, number>[] = [];
  const trainer = new Trainer(model, { ...base, lr: 3e-2, warmupSteps: 2, totalSteps: 12, schedule: 'cosine' });
  await trainer.trainPreference(pairs(4), ref, { epochs: 12, onStep: (e) => { ms.push(e.metrics); } });
  assert.equal(ms.length, 12);
  assert.ok(ms[11]!['rewards/margins']! > 0.5, `margin after 12 steps: ${ms[11]!['rewards/margins']}`);
  assert.ok(ms[11]!.loss! < 0.5 * Math.LN2, `loss after 12 steps: ${ms[11]!.loss}`);
  assert.equal(ms[11]!['rewards/accuracies'], 1);
  // schedule: warm-up 2 steps then cosine over 10
  close(ms[0]!.lr!, 1.5e-2, 1e-9, 'lr step 0');
  close(ms[1]!.lr!, 3e-2, 1e-9, 'lr step 1');
  close(ms[7]!.lr!, 3e-2 * 0.5 * (1 + Math.cos(Math.PI * 0.5)), 1e-9, 'lr step 7');
  trainer.dispose();

  const sftModel = new TinyLM(11);
  const losses: number[] = [];
  const sft = new Trainer(sftModel, { ...base, algorithm: 'sft', lr: 3e-2, batchSize: 4 });
  const seqs = [1, 2, 3, 4].map((s) => trajectory(s));
  // the first step's loss is the mean NLL over action tokens, computed by hand from per-token log-probs
  const tok = await computeTokenLogps(sftModel, seqs);
  let sum = 0, n = 0;
  seqs.forEach((s, i) => s.actionMask.forEach((m, t) => { if (t > 0 && m === 1) { sum -= tok[i]![t - 1]!; n++; } }));
  await sft.trainSft(seqs, { steps: 15, onStep: (e) => { losses.push(e.metrics.loss!); } });
  close(losses[0]!, sum / n, 1e-5, 'first SFT loss = mean NLL');
  assert.ok(losses[14]! < 0.8 * losses[0]!, `SFT loss ${losses[0]} → ${losses[14]}`);
  sft.dispose();

  // M-KTO with reference = policy: the KL estimate starts at 0, stays ≥ 0, and the policy moves away from it
  const kto = new Trainer(model, { ...base, algorithm: 'mkto', lr: 3e-2 });
  const kls: number[] = [];
  await kto.trainPreference(pairs(4), model, { epochs: 6, onStep: (e) => { kls.push(e.metrics.kl!); } });
  assert.ok(kls[0]! < 1e-4 && kls.every((k) => k >= 0), `kl ${kls}`);
  kto.dispose();
  tf.dispose([...model.variables(), ...ref.variables(), ...sftModel.variables()]);
});

test('dpo_unmasked counts observation tokens; masked M-DPO does not', async () => {
  const model = new TinyLM(12);
  const ps = pairs(2);
  const masked = await computeSequenceLogps(model, ps.map((p) => p.chosen));
  const unmasked = await computeSequenceLogps(model, ps.map((p) => p.chosen), { masked: false });
  const tok = await computeTokenLogps(model, ps.map((p) => p.chosen));
  ps.forEach((p, i) => {
    let a = 0, u = 0;
    const pl = p.chosen.actionMask.indexOf(1);
    p.chosen.actionMask.forEach((m, t) => { if (t > 0) { if (m) a += tok[i]![t - 1]!; if (t >= pl) u += tok[i]![t - 1]!; } });
    close(masked[i]!, a, 1e-5, 'masked sum');
    close(unmasked[i]!, u, 1e-5, 'unmasked sum');
    assert.ok(unmasked[i]! < masked[i]! - 1e-3, 'observations add negative log-probs');
  });
  let logpsUnmasked = 0;
  const t = new Trainer(model, { ...base, algorithm: 'dpo_unmasked', batchSize: 2, lr: 0 });
  await t.trainPreference(ps, model, { onStep: (e) => { logpsUnmasked = e.metrics['logps/chosen']!; } });
  close(logpsUnmasked, (unmasked[0]! + unmasked[1]!) / 2, 1e-5, 'dpo_unmasked logps/chosen');
  t.dispose();
  model.dispose();
});

test('abort stops at the next step boundary; an already-aborted signal runs nothing', async () => {
  const model = new TinyLM(13);
  const trainer = new Trainer(model, { ...base, batchSize: 1 });
  const ac = new AbortController();
  const steps: number[] = [];
  const r = await trainer.trainPreference(pairs(6), model, { signal: ac.signal, onStep: (e) => { steps.push(e.step); if (e.step === 2) ac.abort(); } });
  assert.deepEqual(steps, [1, 2]);
  assert.equal(r.aborted, true);
  assert.equal(r.steps, 2);
  assert.equal(trainer.step, 2);
  const r2 = await trainer.trainSft([trajectory(1)], { signal: ac.signal, steps: 3 });
  assert.equal(r2.steps, 0);
  assert.equal(r2.aborted, true);
  trainer.dispose();
  model.dispose();
});

test('bad inputs get clear errors', async () => {
  const model = new TinyLM(14);
  assert.throws(() => new Trainer(model, { ...base, algorithm: 'ppo' as never }), /algorithm must be one of/);
  assert.throws(() => new Trainer(model, { ...base, batchSize: 0 }), /batchSize must be an integer ≥ 1/);
  assert.throws(() => new Trainer(model, { ...base, lr: NaN }), /lr must be/);
  assert.throws(() => new Trainer(model, { ...base, algorithm: 'mkto', labelSmoothing: 0.1 }), /M-DPO only/);
  const sft = new Trainer(model, { ...base, algorithm: 'sft' });
  await assert.rejects(sft.trainPreference(pairs(2), model), /use trainSft for sft\/raft/);
  sft.dispose();
  const t = new Trainer(model, base);
  await assert.rejects(t.trainPreference([], model), /no pairs/);
  const bad = pairs(3);
  bad[2]!.rejected = { tokenIds: [1, 2, 3], actionMask: [0, 1] as (0 | 1)[] };
  await assert.rejects(t.trainPreference(bad, model), /pair 2 rejected: tokenIds has 3 tokens but actionMask has 2/);
  const long = pairs(1);
  long[0]!.chosen = { tokenIds: [1, ...new Array(40).fill(2)], actionMask: [0, ...new Array(40).fill(1)] as (0 | 1)[] };
  await assert.rejects(t.trainPreference(long, model), /pair 0 chosen: the completion has 40 tokens, more than blockSize − 1 = 23/);
  const outOfVocab = pairs(1);
  outOfVocab[0]!.chosen.tokenIds[1] = 99;
  await assert.rejects(t.trainPreference(outOfVocab, model), /token id at 1 is 99; ids must be integers ≥ 0 < 16/);
  t.dispose();
  model.dispose();
});

test('M-KTO mismatched samples: prompt of pair i + completion of pair i+1 (chosen for even i, rejected for odd)', () => {
  const ps = [
    { chosen: { tokenIds: [1, 2, 3], actionMask: [0, 1, 1] }, rejected: { tokenIds: [1, 4], actionMask: [0, 1] } },
    { chosen: { tokenIds: [5, 5, 6], actionMask: [0, 0, 1] }, rejected: { tokenIds: [5, 5, 7, 8], actionMask: [0, 0, 1, 0] } },
  ];
  assert.deepEqual(mismatchedSamples(ps), [
    { tokenIds: [1, 6], actionMask: [0, 1] },
    { tokenIds: [5, 5, 4], actionMask: [0, 0, 1] },
  ]);
  assert.deepEqual(mismatchedSamples(ps.slice(0, 1)), []);
});
