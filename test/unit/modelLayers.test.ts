import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../daemon/src/model/backends';
import { attentionBatched, attentionPerHead, causalBias, embed, gelu, geluRef, layerNorm, layerNormRef, linear, tiedHead } from '../../daemon/src/model/layers';

// Gradient checks of the hand-written backward passes: against tfjs's autodiff of the plain formula, and
// against central finite differences (float32: step 1e-2 on a smooth scalar function, relative tolerance).

before(async () => {
  await initBackend('wasm', { log: () => {} });
});

const rnd = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
const close = (a: tf.Tensor, b: tf.Tensor, tol: number, what: string) => {
  const x = a.dataSync(), y = b.dataSync();
  assert.deepEqual(a.shape, b.shape, what);
  let scale = 1e-6, err = 0;
  for (let i = 0; i < x.length; i++) {
    scale = Math.max(scale, Math.abs(y[i]!));
    err = Math.max(err, Math.abs(x[i]! - y[i]!));
  }
  assert.ok(err / scale <= tol, `${what}: max error ${err} vs scale ${scale}`);
};

/** Gradients of sum(f(inputs) ⊙ w) for a fixed random w, so that every output element matters differently. */
function grads(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], seed = 99): tf.Tensor[] {
  const out = tf.tidy(() => f(...inputs));
  const w = rnd(out.shape, seed);
  out.dispose();
  return tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), w)))(inputs);
}

/** Central finite differences of the same scalar at a few coordinates of input k. */
function fdCheck(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], k: number, analytic: tf.Tensor, seed = 99) {
  const out = tf.tidy(() => f(...inputs));
  const w = rnd(out.shape, seed);
  out.dispose();
  const scalar = (xs: tf.Tensor[]) => tf.tidy(() => tf.sum(tf.mul(f(...xs), w)).dataSync()[0]!);
  const base = Float32Array.from(inputs[k]!.dataSync());
  const g = analytic.dataSync();
  const h = 1e-2;
  for (const idx of [0, Math.floor(base.length / 3), base.length - 1]) {
    const plus = base.slice(); plus[idx]! += h;
    const minus = base.slice(); minus[idx]! -= h;
    const at = (vals: Float32Array) => { const xs = [...inputs]; xs[k] = tf.tensor(vals, inputs[k]!.shape); const v = scalar(xs); xs[k]!.dispose(); return v; };
    const fd = (at(plus) - at(minus)) / (2 * h);
    assert.ok(Math.abs(fd - g[idx]!) <= 2e-2 * Math.max(1, Math.abs(fd)), `input ${k}[${idx}]: finite difference ${fd} vs analytic ${g[idx]}`);
  }
}

describe('custom-gradient layers', () => {
  it('linear (with and without bias) matches autodiff of x·w + b and finite differences', () => {
    const x = rnd([600, 24], 1), w = rnd([24, 40], 2), b = rnd([40], 3), w2 = rnd([40, 8], 4);
    const ours = grads((x, w, b) => linear(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D), [x, w, b]);
    const ref = grads((x, w, b) => tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b), [x, w, b]);
    ours.forEach((g, i) => close(g, ref[i]!, 1e-4, `linear grad ${i}`));
    // in > out takes the other operand order; 4200 rows span two 4096-row blocks.
    const h = rnd([4200, 40], 5);
    const ours2 = grads((h, w2) => linear(h as tf.Tensor2D, w2 as tf.Tensor2D), [h, w2]);
    const ref2 = grads((h, w2) => tf.matMul(h as tf.Tensor2D, w2 as tf.Tensor2D), [h, w2]);
    ours2.forEach((g, i) => close(g, ref2[i]!, 1e-4, `linear (no bias) grad ${i}`));
    fdCheck((x, w, b) => linear(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D), [x, w, b], 1, ours[1]!);
  });

  it('tied head and embedding match autodiff (gather on the cpu reference) and finite differences', () => {
    const x = rnd([30, 16], 6), wte = rnd([50, 16], 7);
    const ids = tf.tensor1d([3, 3, 49, 0, 7, 3], 'int32');
    const ours = grads((x, w) => tiedHead(x as tf.Tensor2D, w as tf.Tensor2D), [x, wte]);
    const ref = grads((x, w) => tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D, false, true), [x, wte]);
    ours.forEach((g, i) => close(g, ref[i]!, 1e-4, `tiedHead grad ${i}`));
    const [ge] = grads((w) => embed(w as tf.Tensor2D, ids), [wte]);
    // By hand: row 3 of the gradient sums the upstream rows of positions 0, 1 and 5.
    const up = rnd([6, 16], 99).arraySync() as number[][];
    const gRows = ge!.arraySync() as number[][];
    gRows[3]!.forEach((v, c) => assert.ok(Math.abs(v - (up[0]![c]! + up[1]![c]! + up[5]![c]!)) < 1e-5));
    assert.ok(gRows[1]!.every((v) => v === 0));
    close(embed(wte as tf.Tensor2D, ids), tf.gather(wte, ids), 0, 'embed forward');
  });

  it('layer norm and GELU match their tfjs references in values and gradients', () => {
    const x = tf.add(rnd([70, 24], 8), 3), g = rnd([24], 9), b = rnd([24], 10);
    close(layerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5), layerNormRef(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5), 1e-5, 'layerNorm value');
    const ours = grads((x, g, b) => layerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5), [x, g, b]);
    const ref = grads((x, g, b) => layerNormRef(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5), [x, g, b]);
    ours.forEach((gr, i) => close(gr, ref[i]!, 1e-3, `layerNorm grad ${i}`));
    fdCheck((x, g, b) => layerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5), [x, g, b], 0, ours[0]!);
    const h = tf.mul(rnd([40, 12], 11), 2);
    close(gelu(h), geluRef(h), 1e-6, 'gelu value');
    const [gg] = grads((h) => gelu(h), [h]);
    const [gr] = grads((h) => geluRef(h), [h]);
    close(gg!, gr!, 1e-5, 'gelu grad');
    // x·σ(1.702x) at 0 has slope 1/2, and is within 0.02 of the exact GELU x·Φ(x) at 1: 0.8413.
    assert.ok(Math.abs(gelu(tf.tensor1d([1])).dataSync()[0]! - 0.8413) < 0.02);
  });

  for (const [H, Hkv] of [[2, 2], [4, 2]] as const) {
    it(`per-head attention (${H} query heads, ${Hkv} key/value heads) matches the batched autodiff reference and finite differences`, () => {
      const B = 2, T = 9, hd = 4;
      const qkv = rnd([B * T, (H + 2 * Hkv) * hd], 12);
      const bias = causalBias(T);
      const ph = (x: tf.Tensor) => attentionPerHead(x as tf.Tensor2D, B, T, H, Hkv, bias);
      const bt = (x: tf.Tensor) => attentionBatched(x as tf.Tensor2D, B, T, H, Hkv, bias);
      close(ph(qkv), bt(qkv), 1e-5, 'attention value');
      const [ours] = grads(ph, [qkv]);
      const [ref] = grads(bt, [qkv]);
      close(ours!, ref!, 1e-4, 'attention grad');
      fdCheck(ph, [qkv], 0, ours!);
      // Causality: the last position's q, k, v get no gradient from an upstream that only reads the first row.
      const [g0] = tf.grads((x: tf.Tensor) => tf.sum(tf.slice(ph(x), [0, 0], [1, H * hd])))([qkv]);
      const rowT = g0!.arraySync() as number[][];
      assert.ok(rowT[T - 1]!.every((v) => v === 0));
      assert.ok(rowT[0]!.some((v) => v !== 0));
    });
  }

  it('grouped-query attention equals multi-head attention with each key/value head copied to its query heads', () => {
    const B = 1, T = 7, H = 4, Hkv = 2, hd = 4, G = H / Hkv;
    const qkv = rnd([B * T, (H + 2 * Hkv) * hd], 13);
    const [q, k, v] = tf.split(qkv, [H * hd, Hkv * hd, Hkv * hd], 1);
    // Query head h reads key/value head ⌊h / G⌋: repeat each kv head's columns G times.
    const expand = (t: tf.Tensor) => tf.concat(Array.from({ length: H }, (_, h) => tf.slice(t, [0, Math.floor(h / G) * hd], [B * T, hd])), 1);
    const mha = tf.concat([q!, expand(k!), expand(v!)], 1) as tf.Tensor2D;
    const bias = causalBias(T);
    close(attentionPerHead(qkv as tf.Tensor2D, B, T, H, Hkv, bias), attentionPerHead(mha, B, T, H, H, bias), 1e-5, 'GQA vs expanded MHA');
  });
});
