/**
 * The trainer and losses on the real GPT (tiny config, wasm backend: the CPU default): finite-difference gradient check of the
 * M-DPO loss, every parameter moving after one step, a flat tensor count over 20 steps, exact accumulation.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../daemon/src/model/backends';
import { GPT, PRESETS, type GPTConfig } from '../../daemon/src/model/gpt';
import { Trainer, type TrainerOptions } from '../../daemon/src/train/trainer';
import { maskedSequenceLogps, mdpoLoss } from '../../daemon/src/train/losses';
import { prepareSequence, collate, batchToTensors } from '../../daemon/src/train/batch';
import { pairs } from './trainerFixtures';

before(async () => { await initBackend('wasm', { log: () => {} }); });

const cfg: GPTConfig = { ...PRESETS.tiny, vocabSize: 16, blockSize: 32, nLayer: 2 };
const base: TrainerOptions = { algorithm: 'mdpo', lr: 1e-2, batchSize: 4, beta: 0.5, schedule: 'constant', nllWeight: 0.2 };

/** The M-DPO loss exactly as the trainer builds it, on fixed pairs with fixed reference log-probs. */
function mdpoOnPairs(model: GPT): tf.Scalar {
  const ps = pairs(2);
  const seqs = [...ps.map((p) => p.chosen), ...ps.map((p) => p.rejected)].map((s) => prepareSequence(s, { blockSize: cfg.blockSize, masked: true }));
  const hb = collate(seqs);
  const chosenTokens = hb.rowTokens[0]! + hb.rowTokens[1]!;
  return tf.tidy(() => {
    const { ids, mask } = batchToTensors(hb);
    const seq = maskedSequenceLogps(model.tokenLogprobs(ids), mask);
    const [pc, pr] = tf.split(seq, 2) as [tf.Tensor1D, tf.Tensor1D];
    // reference values chosen so that βh is away from 0 and differs per pair
    const out = mdpoLoss({ policyChosen: pc, policyRejected: pr, refChosen: tf.tensor1d([-18, -25]), refRejected: tf.tensor1d([-20, -19]) },
      { beta: 0.5, labelSmoothing: 0.1, nllWeight: 0.2, chosenTokens });
    return out.loss;
  });
}

test('finite-difference gradient check of the M-DPO loss through the GPT', async () => {
  const model = new GPT(cfg, 3);
  const names = model.variableNames();
  const vars = model.variables();
  const { value, grads } = tf.variableGrads(() => mdpoOnPairs(model), vars);
  value.dispose();
  const checked = ['wte', 'wprev', 'h.0.attn.wqkv', 'h.0.attn.wo', 'h.1.mlp.w1', 'h.1.mlp.b2', 'h.0.ln1.g', 'lnf.b'];
  const h = 1e-2;
  for (const name of checked) {
    const v = vars[names.indexOf(name)]!;
    const g = await grads[v.name]!.data();
    // the coordinate with the largest gradient: its finite difference is far above float32 noise
    let k = 0;
    for (let i = 1; i < g.length; i++) if (Math.abs(g[i]!) > Math.abs(g[k]!)) k = i;
    const orig = await v.data();
    const at = async (delta: number) => {
      const w = Float32Array.from(orig);
      w[k] = w[k]! + delta;
      const t = tf.tensor(w, v.shape);
      v.assign(t);
      t.dispose();
      const l = mdpoOnPairs(model);
      const x = (await l.data())[0]!;
      l.dispose();
      return x;
    };
    // central difference in float32: (L(w+h) − L(w−h)) / 2h
    const fd = ((await at(h)) - (await at(-h))) / (2 * h);
    const restore = tf.tensor(orig, v.shape);
    v.assign(restore);
    restore.dispose();
    const an = g[k]!;
    assert.ok(Math.abs(an) > 1e-3, `${name}: gradient ${an} too small to check`);
    assert.ok(Math.abs(fd - an) <= 0.03 * Math.abs(an) + 2e-4, `${name}[${k}]: analytic ${an} vs finite difference ${fd}`);
  }
  tf.dispose(Object.values(grads));
  model.dispose();
});

test('GPT: every parameter changes after one step; optimiser state is keyed by the model names', async () => {
  const model = new GPT(cfg, 4);
  const ref = new GPT(cfg, 5);
  const before = await Promise.all(model.variables().map(async (v) => Float32Array.from(await v.data())));
  const trainer = new Trainer(model, base);
  await trainer.trainPreference(pairs(4), ref);
  const after = await Promise.all(model.variables().map(async (v) => await v.data()));
  const names = model.variableNames();
  before.forEach((w, i) => assert.ok(w.some((x, j) => x !== after[i]![j]), `parameter ${names[i]} changed`));
  const state = trainer.optimizer.exportState();
  assert.deepEqual(Object.keys(state.tensors).sort(), names.flatMap((n) => [`m/${n}`, `v/${n}`]).sort());
  tf.dispose(Object.values(state.tensors));
  trainer.dispose();
  model.dispose();
  ref.dispose();
});

test('GPT: numTensors flat across 20 M-DPO steps with gradient accumulation; accumulation = full batch', async () => {
  const model = new GPT(cfg, 6);
  const trainer = new Trainer(model, { ...base, batchSize: 2, microBatchSize: 1 });
  const counts: number[] = [];
  const r = await trainer.trainPreference(pairs(4), model, { epochs: 10, onStep: () => { counts.push(tf.memory().numTensors); } });
  assert.equal(r.steps, 20);
  assert.equal(counts[19], counts[1], `tensors at step 20 (${counts[19]}) vs step 2 (${counts[1]})`);
  trainer.dispose();
  model.dispose();

  const run = async (micro: number) => {
    const m = new GPT(cfg, 7);
    // Adam's first step is g/(|g|+ε): with ε = 1e-8 a coordinate whose gradient is ~1e-8 turns float32 summation
    // noise into a visible update difference; ε = 1e-3 keeps tiny gradients linear, so weights must agree.
    const t = new Trainer(m, { ...base, microBatchSize: micro, gradClip: Infinity, adam: { eps: 1e-3 } });
    let metrics: Record<string, number> = {};
    await t.trainPreference(pairs(4), m, { onStep: (e) => { metrics = e.metrics; } });
    const w = await Promise.all(m.variables().map(async (v) => Float32Array.from(await v.data())));
    t.dispose();
    m.dispose();
    return { metrics, w };
  };
  const full = await run(4);
  const acc = await run(1);
  for (const k of Object.keys(full.metrics)) {
    const a = acc.metrics[k]!, b = full.metrics[k]!;
    assert.ok(Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(b)), `${k}: accumulated ${a} vs full ${b}`);
  }
  full.w.forEach((w, i) => w.forEach((x, j) => assert.ok(Math.abs(acc.w[i]![j]! - x) <= 1e-5, `weight ${i}[${j}]`)));
});
