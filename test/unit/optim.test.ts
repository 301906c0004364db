import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { AdamW, lrAt, clipByGlobalNorm, globalNorm } from '../../daemon/src/train/optim';

before(async () => { await tf.setBackend('cpu'); });

const close = (a: number, b: number, tol = 1e-5, what = '') =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs expected ${b}`);
const v = async (t: tf.Tensor) => Array.from(await t.data());

test('AdamW: two steps by hand, bias correction and decoupled decay on matrices only', async () => {
  const w = tf.variable(tf.tensor2d([[1], [-2]]), true, 'w'); // rank 2: decays
  const b = tf.variable(tf.tensor1d([3]), true, 'b'); // rank 1: no decay
  const opt = new AdamW([w, b], { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5 });
  const lr = 0.1;
  const g1 = [tf.tensor2d([[0.5], [0.1]]), tf.tensor1d([0.2])];
  opt.applyGradients(g1, lr);
  // step 1: m̂ = g, v̂ = g² → update = g/|g| = sign(g); decay uses the old p: p − lr·(sign + wd·p)
  // w0: 1 − 0.1·(1 + 0.5·1) = 0.85 ; w1: −2 − 0.1·(1 + 0.5·(−2)) = −2 ; b: 3 − 0.1·1 = 2.9
  const w1 = await v(w), b1 = await v(b);
  close(w1[0]!, 0.85, 1e-6, 'w0 step1');
  close(w1[1]!, -2, 1e-6, 'w1 step1');
  close(b1[0]!, 2.9, 1e-6, 'b step1');
  const g2 = [tf.tensor2d([[-0.5], [0.3]]), tf.tensor1d([0])];
  opt.applyGradients(g2, lr);
  // step 2, w0: m = 0.9·0.1·0.5... m = 0.09·0.5·... written out: m1 = 0.1·0.5 = 0.05, m2 = 0.9·0.05 + 0.1·(−0.5) = −0.005
  // v1 = 0.001·0.25 = 0.00025, v2 = 0.999·0.00025 + 0.001·0.25 = 0.00049975
  // m̂ = −0.005/(1−0.81) = −0.0263158, v̂ = 0.00049975/(1−0.998001) = 0.25000, update = m̂/(√v̂ + ε)
  const adamStep = (gs: number[]) => {
    let m = 0, vv = 0;
    gs.forEach((g) => { m = 0.9 * m + 0.1 * g; vv = 0.999 * vv + 0.001 * g * g; });
    const t = gs.length;
    return (m / (1 - 0.9 ** t)) / (Math.sqrt(vv / (1 - 0.999 ** t)) + 1e-8);
  };
  close(adamStep([0.5, -0.5]), -0.005 / 0.19 / Math.sqrt(0.00049975 / (1 - 0.998001)), 1e-6, 'by-hand helper');
  const w2 = await v(w), b2 = await v(b);
  close(w2[0]!, 0.85 - 0.1 * (adamStep([0.5, -0.5]) + 0.5 * 0.85), 1e-5, 'w0 step2');
  close(w2[1]!, -2 - 0.1 * (adamStep([0.1, 0.3]) + 0.5 * -2), 1e-5, 'w1 step2');
  // b: zero gradient now, but the moment keeps moving it: m̂ = 0.9·0.02/0.19, no decay
  close(b2[0]!, 2.9 - 0.1 * adamStep([0.2, 0]), 1e-5, 'b step2');
  assert.equal(opt.step, 2);
  assert.throws(() => opt.applyGradients([g1[0]!], lr), /got 1 gradients for 2 variables/);
  assert.throws(() => opt.applyGradients([g1[1]!, g1[0]!], lr), /gradient for w has shape/);
  assert.throws(() => opt.applyGradients(g1, NaN), /learning rate/);
  tf.dispose([...g1, ...g2, w, b]);
  opt.dispose();
});

test('AdamW state exports as named tensors and a restored optimiser continues identically', async () => {
  const mk = (name: string) => tf.variable(tf.tensor2d([[0.3, -0.7], [1.1, 0.2]]), true, name);
  const a = mk('pa');
  const optA = new AdamW([a], { weightDecay: 0.1, names: ['layer.w'] });
  const grads = [[[0.1, -0.2], [0.3, 0.05]], [[-0.4, 0.1], [0.2, 0.2]], [[0.05, 0.05], [-0.1, 0.3]]];
  for (const g of grads.slice(0, 2)) { const t = tf.tensor2d(g); optA.applyGradients([t], 0.01); t.dispose(); }
  const state = optA.exportState();
  assert.deepEqual(Object.keys(state.tensors).sort(), ['m/layer.w', 'v/layer.w']);
  assert.equal(state.step, 2);
  const b = tf.variable(tf.clone(a), true, 'pb');
  const optB = new AdamW([b], { weightDecay: 0.1, names: ['layer.w'] });
  optB.importState(state);
  const t = tf.tensor2d(grads[2]!);
  optA.applyGradients([t], 0.01);
  optB.applyGradients([t], 0.01);
  assert.deepEqual(await v(a), await v(b));
  // a fresh optimiser (no state) would move differently: proves the state mattered
  const c = tf.variable(tf.clone(b), true, 'pc');
  const optC = new AdamW([c], { weightDecay: 0.1, names: ['layer.w'] });
  optC.applyGradients([t], 0.01);
  optB.applyGradients([t], 0.01);
  assert.notDeepEqual(await v(b), await v(c));
  // mismatched states are refused with a clear message
  const bad = { step: 2, tensors: { 'm/layer.w': tf.zeros([3, 2]), 'v/other': tf.zeros([2, 2]) } };
  assert.throws(() => optB.importState(bad), /m\/layer\.w has shape \[3,2\].*missing v\/layer\.w.*unknown tensor v\/other/);
  assert.throws(() => optB.importState({ step: -1, tensors: state.tensors }), /step must be/);
  tf.dispose([t, a, b, c, ...Object.values(state.tensors), ...Object.values(bad.tensors)]);
  for (const o of [optA, optB, optC]) o.dispose();
});

test('schedules: linear warm-up then cosine / linear / constant decay', () => {
  const base = { lr: 1, warmupSteps: 4, totalSteps: 14 };
  // warm-up: (step+1)/4
  assert.deepEqual([0, 1, 2, 3].map((s) => lrAt(s, { ...base, schedule: 'cosine' })), [0.25, 0.5, 0.75, 1]);
  // cosine over 10 decay steps: step 4 → p=0 → 1; step 9 → p=0.5 → 0.5; step 14 → p=1 → 0
  close(lrAt(4, { ...base, schedule: 'cosine' }), 1, 1e-12);
  close(lrAt(9, { ...base, schedule: 'cosine' }), 0.5, 1e-12);
  close(lrAt(6, { ...base, schedule: 'cosine' }), 0.5 * (1 + Math.cos(Math.PI * 0.2)), 1e-12); // 0.904508
  close(lrAt(14, { ...base, schedule: 'cosine' }), 0, 1e-12);
  close(lrAt(20, { ...base, schedule: 'cosine' }), 0, 1e-12); // past the end: the floor
  assert.ok(lrAt(13, { ...base, schedule: 'cosine' }) > 0, 'the last step still learns');
  // linear: step 6 → 1 − 0.2 = 0.8
  close(lrAt(6, { ...base, schedule: 'linear' }), 0.8, 1e-12);
  close(lrAt(9, { ...base, schedule: 'cosine', minLrRatio: 0.1 }), 0.1 + 0.9 * 0.5, 1e-12);
  assert.equal(lrAt(10, { ...base, schedule: 'constant' }), 1);
  assert.equal(lrAt(0, { ...base, warmupSteps: 0, schedule: 'linear' }), 1);
  assert.throws(() => lrAt(-1, { ...base, schedule: 'linear' }), /step must be/);
  assert.throws(() => lrAt(0, { ...base, schedule: 'step' as never, warmupSteps: 0 }), /unknown schedule/);
});

test('global-norm clipping: norm reported before clipping; small gradients untouched', async () => {
  const g: Array<tf.Tensor | null> = [tf.tensor1d([3, 4]), null, tf.tensor2d([[0]])];
  const { grads, norm } = clipByGlobalNorm(g, 1);
  close((await v(norm))[0]!, 5, 1e-6, 'norm');
  const c0 = await v(grads[0]!);
  close(c0[0]!, 0.6, 1e-5, 'clipped 0');
  close(c0[1]!, 0.8, 1e-5, 'clipped 1');
  assert.equal(grads[1], null);
  const n2 = globalNorm(grads);
  close((await v(n2))[0]!, 1, 1e-5, 'clipped norm');
  const loose = clipByGlobalNorm(g, 10);
  assert.deepEqual(await v(loose.grads[0]!), [3, 4]);
  const off = clipByGlobalNorm(g, Infinity);
  assert.deepEqual(await v(off.grads[0]!), [3, 4]);
  assert.throws(() => clipByGlobalNorm(g, 0), /maxNorm/);
  tf.dispose([...g.filter((x): x is tf.Tensor => x != null), norm, n2, loose.norm, off.norm]);
  tf.dispose([...grads, ...loose.grads, ...off.grads].filter((x): x is tf.Tensor => x != null));
});

test('globalNorm over many tensors (more than a WebGPU shader can bind) is the exact L2 norm', () => {
  // 60 gradients: one fused addN of 60 inputs is what Dawn rejected on the GPU; the value must not change.
  const grads = Array.from({ length: 60 }, (_, i) => tf.fill([3], i % 7 === 0 ? 0 : (i % 5) - 2));
  let want = 0;
  for (let i = 0; i < 60; i++) want += 3 * (i % 7 === 0 ? 0 : ((i % 5) - 2) ** 2);
  const before = tf.memory().numTensors;
  const n = globalNorm([...grads, null, undefined]);
  assert.ok(Math.abs(n.dataSync()[0]! - Math.sqrt(want)) < 1e-5);
  n.dispose();
  assert.equal(tf.memory().numTensors, before);
  tf.dispose(grads);
});
