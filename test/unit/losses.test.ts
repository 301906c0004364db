import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import {
  buildMask, promptLength, maskedSequenceLogps, sftLoss, mdpoLoss, mktoLoss, estimateKl, tokenLogprobsFromLogits,
  disposeLoss, type PreferenceLogps,
} from '../../daemon/src/train/losses';
import { prepareSequence, collate, batchToTensors } from '../../daemon/src/train/batch';

before(async () => { await tf.setBackend('cpu'); });

const sp = (x: number) => Math.log1p(Math.exp(x)); // softplus
const sig = (x: number) => 1 / (1 + Math.exp(-x));
const close = (a: number, b: number, tol = 1e-5, what = '') =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs expected ${b}`);
const v = async (t: tf.Tensor) => Array.from(await t.data());

test('buildMask and promptLength: masked counts actions only, unmasked counts all non-prompt tokens', () => {
  //            prompt   act   obs  act
  const am = [0, 0, 0, 1, 1, 0, 0, 1];
  assert.equal(promptLength(am), 3);
  assert.deepEqual(buildMask(am, 3, { masked: true }), [0, 0, 0, 1, 1, 0, 0, 1]);
  assert.deepEqual(buildMask(am, 3, { masked: false }), [0, 0, 0, 1, 1, 1, 1, 1]);
  assert.equal(promptLength([0, 0]), 2);
  assert.throws(() => buildMask([0, 2], 1, { masked: true }), /actionMask\[1\] must be 0 or 1/);
  assert.throws(() => buildMask([0, 1], 3, { masked: true }), /promptLen/);
});

test('maskedSequenceLogps and sftLoss against hand-computed values', async () => {
  const lp = tf.tensor2d([[-1, -2, -3], [-0.5, -0.25, -4]]);
  const m = tf.tensor2d([[1, 0, 1], [0, 1, 1]]);
  // row 0: -1 + -3 = -4 ; row 1: -0.25 + -4 = -4.25
  const s = maskedSequenceLogps(lp, m);
  assert.deepEqual(await v(s), [-4, -4.25]);
  // NLL = (1 + 3 + 0.25 + 4) / 4 tokens = 8.25 / 4 = 2.0625
  const out = sftLoss(lp, m);
  close((await v(out.loss))[0]!, 2.0625, 1e-6, 'sft');
  close((await v(out.metrics.tokens!))[0]!, 4, 0, 'tokens');
  disposeLoss(out);
  // with a micro-batch normaliser of 11 tokens: 8.25 / 11 = 0.75
  const out2 = sftLoss(lp, m, { tokenNormalizer: 11 });
  close((await v(out2.loss))[0]!, 0.75, 1e-6, 'sft normalised');
  disposeLoss(out2);
  // no counted token → 0, not NaN
  const out3 = sftLoss(lp, tf.zerosLike(m) as tf.Tensor2D);
  assert.ok((await v(out3.loss))[0] === 0, 'empty mask gives 0 (±0), not NaN');
  assert.throws(() => sftLoss(lp, tf.tensor2d([[1, 1]])), /shapes differ/);
  assert.throws(() => sftLoss(lp, m, { tokenNormalizer: 0 }), /tokenNormalizer/);
  tf.dispose([lp, m, s, out3.loss, ...Object.values(out3.metrics)]);
});

// πc = [-10, -12], rc = [-11, -12], πr = [-20, -15], rr = [-19, -16], β = 0.5
// pair 0: h = (-10+11) - (-20+19) = 1 - (-1) = 2, βh = 1;  pair 1: h = 0 - 1 = -1, βh = -0.5
function pairLogps(): PreferenceLogps {
  return {
    policyChosen: tf.tensor1d([-10, -12]),
    refChosen: tf.tensor1d([-11, -12]),
    policyRejected: tf.tensor1d([-20, -15]),
    refRejected: tf.tensor1d([-19, -16]),
  };
}

test('mdpoLoss: value, TRL metrics, label smoothing, NLL term', async () => {
  const l = pairLogps();
  const out = mdpoLoss(l, { beta: 0.5 });
  // loss = mean(softplus(-1), softplus(0.5)) = (0.313262 + 0.974077) / 2
  close((await v(out.loss))[0]!, (sp(-1) + sp(0.5)) / 2, 1e-6, 'mdpo');
  const m = Object.fromEntries(await Promise.all(Object.entries(out.metrics).map(async ([k, t]) => [k, (await v(t))[0]!])));
  close(m['rewards/chosen'], (0.5 * 1 + 0.5 * 0) / 2, 1e-6, 'rewards/chosen'); // 0.25
  close(m['rewards/rejected'], (0.5 * -1 + 0.5 * 1) / 2, 1e-6, 'rewards/rejected'); // 0
  close(m['rewards/margins'], ((0.5 - -0.5) + (0 - 0.5)) / 2, 1e-6, 'margins'); // 0.25
  close(m['rewards/accuracies'], 0.5, 0, 'accuracies'); // pair 0 right, pair 1 wrong
  close(m['logps/chosen'], -11, 1e-6, 'logps/chosen');
  close(m['logps/rejected'], -17.5, 1e-6, 'logps/rejected');
  disposeLoss(out);

  // ε = 0.1: (1-ε)·softplus(-βh) + ε·softplus(βh) per pair
  const ls = mdpoLoss(l, { beta: 0.5, labelSmoothing: 0.1 });
  const expLs = (0.9 * sp(-1) + 0.1 * sp(1) + 0.9 * sp(0.5) + 0.1 * sp(-0.5)) / 2; // = 0.643669 + 0.1·mean(βh)=0.025
  close((await v(ls.loss))[0]!, expLs, 1e-6, 'label smoothing');
  close(expLs, (sp(-1) + sp(0.5)) / 2 + 0.1 * 0.25, 1e-9, 'identity sp(x)-sp(-x)=x');
  disposeLoss(ls);

  // NLL term: 0.2 · (-(-10 - 12) / 11 tokens) = 0.2 · 2 = 0.4
  const nl = mdpoLoss(l, { beta: 0.5, nllWeight: 0.2, chosenTokens: 11 });
  close((await v(nl.loss))[0]!, (sp(-1) + sp(0.5)) / 2 + 0.4, 1e-6, 'nll term');
  close((await v(nl.metrics.nll!))[0]!, 2, 1e-6, 'nll metric');
  disposeLoss(nl);

  // pairNormalizer 4 (this call is half of a batch of 4): sum / 4
  const pn = mdpoLoss(l, { beta: 0.5, pairNormalizer: 4 });
  close((await v(pn.loss))[0]!, (sp(-1) + sp(0.5)) / 4, 1e-6, 'pairNormalizer');
  disposeLoss(pn);

  assert.throws(() => mdpoLoss(l, { beta: 0 }), /beta must be a positive/);
  assert.throws(() => mdpoLoss(l, { beta: 0.1, labelSmoothing: 0.5 }), /labelSmoothing/);
  assert.throws(() => mdpoLoss(l, { beta: 0.1, nllWeight: 1 }), /chosenTokens/);
  assert.throws(() => mdpoLoss({ ...l, refRejected: tf.tensor1d([1, 2, 3]) }, { beta: 0.1 }), /refRejected must have shape \[2\]/);
  tf.dispose(Object.values(l));
});

test('mdpoLoss gradient w.r.t. sequence log-probs matches -β·σ(-βh)/B', async () => {
  const l = pairLogps();
  const g = tf.grad((pc: tf.Tensor) => mdpoLoss({ ...l, policyChosen: pc as tf.Tensor1D }, { beta: 0.5 }).loss)(l.policyChosen);
  const got = await v(g);
  // d/dπc softplus(-βh)/B = -β·σ(-βh)/B
  close(got[0]!, -0.5 * sig(-1) / 2, 1e-6, 'grad pair 0');
  close(got[1]!, -0.5 * sig(0.5) / 2, 1e-6, 'grad pair 1');
  tf.dispose([g, ...Object.values(l)]);
});

test('estimateKl: mean of mismatched log-ratios, clamped at 0, empty = 0', async () => {
  const a = estimateKl(tf.tensor1d([-30, -25]), tf.tensor1d([-31, -27])); // mean(1, 2) = 1.5
  close((await v(a))[0]!, 1.5, 1e-6, 'kl');
  const b = estimateKl(tf.tensor1d([-30]), tf.tensor1d([-29])); // mean(-1) → clamped 0
  assert.equal((await v(b))[0], 0);
  const c = estimateKl(tf.tensor1d([]), tf.tensor1d([]));
  assert.equal((await v(c))[0], 0);
  tf.dispose([a, b, c]);
});

test('mktoLoss against hand-computed values; z_ref carries no gradient', async () => {
  const l = pairLogps();
  // logratios: chosen [1, 0], rejected [-1, 1]; z = 1.5, β = 0.5
  // loss_d = 1 - σ(0.5(1-1.5)) = σ(0.25), 1 - σ(0.5(0-1.5)) = σ(0.75)
  // loss_u = 1 - σ(0.5(1.5+1)) = σ(-1.25), 1 - σ(0.5(1.5-1)) = σ(-0.25)
  const expected = (sig(0.25) + sig(0.75) + sig(-1.25) + sig(-0.25)) / 4;
  const out = mktoLoss(l, 1.5, { beta: 0.5 });
  close((await v(out.loss))[0]!, expected, 1e-6, 'mkto');
  close((await v(out.metrics.kl!))[0]!, 1.5, 1e-6, 'kl metric');
  close((await v(out.metrics['rewards/margins']!))[0]!, 0.25, 1e-6, 'kto margins');
  disposeLoss(out);
  // NLL term adds the same 0.4 as for M-DPO
  const nl = mktoLoss(l, 1.5, { beta: 0.5, nllWeight: 0.2, chosenTokens: 11 });
  close((await v(nl.loss))[0]!, expected + 0.4, 1e-6, 'mkto + nll');
  disposeLoss(nl);
  // z passed as a tensor: gradient w.r.t. z is 0 (stop-gradient), w.r.t. πc it is -β σ'(β(lc - z)) / (2B)
  const z = tf.scalar(1.5);
  const [gz, gpc] = tf.grads((zz: tf.Tensor, pc: tf.Tensor) =>
    mktoLoss({ ...l, policyChosen: pc as tf.Tensor1D }, zz as tf.Scalar, { beta: 0.5 }).loss)([z, l.policyChosen]);
  assert.equal((await v(gz!))[0], 0);
  const dsig = (x: number) => sig(x) * (1 - sig(x));
  const gp = await v(gpc!);
  close(gp[0]!, -0.5 * dsig(-0.25) / 4, 1e-6, 'kto grad 0');
  close(gp[1]!, -0.5 * dsig(-0.75) / 4, 1e-6, 'kto grad 1');
  assert.throws(() => mktoLoss(l, 0, { beta: 0.5, labelSmoothing: 0.1 }), /labelSmoothing applies to M-DPO only/);
  tf.dispose([z, gz!, gpc!, ...Object.values(l)]);
});

test('tokenLogprobsFromLogits picks log-softmax of the next token', async () => {
  // one row, T = 3, V = 2: logits [0,0] → log 0.5 ; [ln 3, 0] → p(0) = 3/4
  const logits = tf.tensor3d([[[0, 0], [Math.log(3), 0], [5, 5]]]);
  const ids = tf.tensor2d([[1, 1, 0]], undefined, 'int32');
  const lp = tokenLogprobsFromLogits(logits, ids);
  const got = await v(lp);
  close(got[0]!, Math.log(0.5), 1e-6, 't0'); // predicts ids[1] = 1 from [0,0]
  close(got[1]!, Math.log(0.75), 1e-6, 't1'); // predicts ids[2] = 0 from [ln3, 0]
  tf.dispose([logits, ids, lp]);
});

// A chosen and a rejected multi-turn trajectory: prompt, action, observation, action.
const chosen = { tokenIds: [5, 6, 7, 1, 2, 8, 9, 3, 4], actionMask: [0, 0, 0, 1, 1, 0, 0, 1, 1] };
const rejected = { tokenIds: [5, 6, 7, 2, 8, 9, 9, 4], actionMask: [0, 0, 0, 1, 0, 0, 0, 1] };

function dpoFromLogits(logits: tf.Tensor3D, masked: boolean, ref: number[]): tf.Scalar {
  const seqs = [chosen, rejected].map((s) => prepareSequence(s, { blockSize: 16, masked }));
  const hb = collate(seqs);
  const { ids, mask } = batchToTensors(hb);
  const loss = tf.tidy(() => {
    const s = maskedSequenceLogps(tokenLogprobsFromLogits(logits, ids), mask);
    const [pc, pr] = tf.split(s, 2) as [tf.Tensor1D, tf.Tensor1D];
    return mdpoLoss({ policyChosen: pc, policyRejected: pr, refChosen: tf.tensor1d([ref[0]!]), refRejected: tf.tensor1d([ref[1]!]) },
      { beta: 0.1 }).loss;
  });
  tf.dispose([ids, mask]);
  return loss;
}

test('observation and prompt tokens carry exactly zero gradient under M-DPO, and do under dpo_unmasked', async () => {
  const T = 9, V = 10;
  const logits = tf.randomNormal([2, T, V], 0, 1, 'float32', 7) as tf.Tensor3D;
  const ref = [-20, -18];
  // position t predicts token t+1. chosen: actions at 3,4,7,8 → t ∈ {2,3,6,7}; obs at 5,6 → t ∈ {4,5}
  // rejected (length 8, padded to 9): actions at 3,7 → t ∈ {2,6}; obs at 4,5,6 → t ∈ {3,4,5}
  const actionT = [[2, 3, 6, 7], [2, 6]];
  const obsT = [[4, 5], [3, 4, 5]];
  for (const masked of [true, false]) {
    const g = tf.grad((x: tf.Tensor) => dpoFromLogits(x as tf.Tensor3D, masked, ref))(logits);
    const ga = (await g.array()) as number[][][];
    for (let b = 0; b < 2; b++) {
      for (let t = 0; t < T; t++) {
        const norm = ga[b]![t]!.reduce((s, x) => s + Math.abs(x), 0);
        const isAction = actionT[b]!.includes(t);
        const isObs = obsT[b]!.includes(t);
        if (isAction || (!masked && isObs)) assert.ok(norm > 1e-6, `masked=${masked} row ${b} t=${t} should have gradient`);
        else assert.equal(norm, 0, `masked=${masked} row ${b} t=${t} (prompt/obs/pad) must have exactly zero gradient`);
      }
    }
    g.dispose();
  }
  // Changing the logits that predict observation tokens leaves the M-DPO loss bit-identical but changes DPO's.
  const bump = tf.buffer([2, T, V], 'float32');
  for (let b = 0; b < 2; b++) for (const t of obsT[b]!) for (let k = 0; k < V; k++) bump.set(3 * Math.sin(7 * b + 3 * t + k), b, t, k);
  const bumpT = bump.toTensor();
  const perturbed = tf.add(logits, bumpT) as tf.Tensor3D;
  const [m0, m1, u0, u1] = [
    dpoFromLogits(logits, true, ref), dpoFromLogits(perturbed, true, ref),
    dpoFromLogits(logits, false, ref), dpoFromLogits(perturbed, false, ref),
  ];
  assert.equal((await v(m0))[0], (await v(m1))[0], 'M-DPO loss must not depend on observation-token predictions');
  assert.notEqual((await v(u0))[0], (await v(u1))[0], 'unmasked DPO loss must depend on them');
  tf.dispose([logits, bumpT, perturbed, m0, m1, u0, u1]);
});
