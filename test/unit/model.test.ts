import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../daemon/src/model/backends';
import { GPT, PRESETS, presetConfig, type GPTConfig } from '../../daemon/src/model/gpt';

const V = 262;
const cfg = (): GPTConfig => presetConfig('tiny', V);
const ids2d = (rows: number[][]) => tf.tensor2d(rows, [rows.length, rows[0]!.length], 'int32');
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

before(async () => {
  await initBackend('wasm', { log: () => {} });
});

describe('GPT config and parameters', () => {
  it('presets have the advertised sizes and stable variable names', () => {
    const counts: Record<string, number> = {};
    for (const name of ['tiny', 'small', 'base'] as const) {
      const c = { ...PRESETS[name], vocabSize: V };
      const C = c.nEmbd, Q = C + 2 * c.nKvHead * (C / c.nHead); // qkv width
      counts[name] = V * C + (c.prevToken ? V * C : 0) + (c.positions === 'learned' ? c.blockSize * C : 0) + c.nLayer * (C * Q + Q + C * C + C + 4 * C + 8 * C * C + 5 * C) + 2 * C;
    }
    assert.ok(counts.tiny! > 40e3 && counts.tiny! < 60e3, `tiny ${counts.tiny}`);
    assert.ok(counts.small! > 0.7e6 && counts.small! < 1.2e6, `small ${counts.small}`);
    assert.ok(counts.base! > 20e6 && counts.base! < 30e6, `base ${counts.base}`);
    const m = new GPT(cfg(), 1);
    assert.equal(m.paramCount(), counts.tiny);
    const names = m.variableNames();
    assert.deepEqual(names.slice(0, 3), ['wte', 'wprev', 'h.0.ln1.g'], 'rope: no position table; the previous-token table');
    assert.equal(names.at(-1), 'lnf.b');
    assert.equal(m.variables().length, names.length);
    assert.deepEqual(m.variables()[2]!.shape, [32]);
    m.dispose();
    // Learned positions (checkpoints from before rope): a [blockSize, C] table after the token embedding.
    const l = new GPT({ ...cfg(), positions: 'learned', prevToken: false }, 1);
    assert.deepEqual(l.variableNames().slice(0, 3), ['wte', 'wpe', 'h.0.ln1.g']);
    assert.equal(l.paramCount(), counts.tiny! + (cfg().blockSize - V) * cfg().nEmbd);
    l.dispose();
  });

  it('rejects bad configs and inputs with clear errors', () => {
    assert.throws(() => new GPT({ ...cfg(), nHead: 3 }), /multiple of nHead/);
    assert.throws(() => new GPT({ ...cfg(), nLayer: 0 }), /nLayer must be a positive integer/);
    assert.throws(() => new GPT({ ...cfg(), nHead: 4, nKvHead: 3 }), /nHead \(4\) must be a multiple of nKvHead \(3\)/);
    assert.throws(() => presetConfig('huge' as 'tiny', V), /unknown model preset/);
    const m = new GPT(cfg());
    assert.throws(() => m.forward(ids2d([[1, 2, V]])), /token id 262 is outside the vocabulary/);
    assert.throws(() => m.forward(tf.zeros([1, 200], 'int32') as tf.Tensor2D), /exceeds blockSize 128/);
    assert.throws(() => m.forward(tf.zeros([1, 3]) as tf.Tensor2D), /must be int32/);
    assert.throws(() => m.tokenLogprobs(ids2d([[1]])), /at least 2 tokens/);
    m.dispose();
    assert.throws(() => m.forward(ids2d([[1, 2]])), /disposed/);
  });

  it('seeded init is reproducible and seeds differ', () => {
    const a = new GPT(cfg(), 7), b = new GPT(cfg(), 7), c = new GPT(cfg(), 8);
    const wa = a.param('h.1.attn.wqkv').dataSync(), wb = b.param('h.1.attn.wqkv').dataSync(), wc = c.param('h.1.attn.wqkv').dataSync();
    assert.equal(maxAbsDiff(wa, wb), 0);
    assert.ok(maxAbsDiff(wa, wc) > 1e-3);
    [a, b, c].forEach((m) => m.dispose());
  });
});

describe('GPT forward', () => {
  it('gives logits [B, T, V] and a loss near ln V at init', () => {
    const m = new GPT(cfg(), 3);
    const ids = ids2d([[1, 2, 3, 4, 5], [9, 8, 7, 6, 5]]);
    const targets = ids2d([[2, 3, 4, 5, 6], [8, 7, 6, 5, -1]]);
    const { logits, loss } = m.forward(ids, targets);
    assert.deepEqual(logits.shape, [2, 5, V]);
    const l = loss!.dataSync()[0]!;
    assert.ok(Math.abs(l - Math.log(V)) < 0.2, `loss ${l} vs ln V ${Math.log(V)}`);
    // The loss is the mean over the 9 valid targets of -log softmax, computed here by hand.
    const lg = logits.arraySync();
    const t = targets.arraySync();
    let sum = 0;
    for (let b = 0; b < 2; b++) for (let i = 0; i < 5; i++) {
      if (t[b]![i]! < 0) continue;
      const row = lg[b]![i]!;
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((s, x) => s + Math.exp(x - mx), 0));
      sum += lse - row[t[b]![i]!]!;
    }
    assert.ok(Math.abs(sum / 9 - l) < 1e-4, `${sum / 9} vs ${l}`);
    tf.dispose([logits, loss!, ids, targets]);
    m.dispose();
  });

  it('tokenLogprobs equals log_softmax gathered by hand', () => {
    const m = new GPT(cfg(), 4);
    const rows = [[10, 20, 30, 40, 50, 60], [256, 1, 2, 3, 261, 0]];
    const ids = ids2d(rows);
    const lp = m.tokenLogprobs(ids);
    assert.deepEqual(lp.shape, [2, 5]);
    const got = lp.arraySync();
    const lg = m.forward(ids).logits;
    const logits = lg.arraySync();
    for (let b = 0; b < 2; b++) for (let t = 0; t < 5; t++) {
      const row = logits[b]![t]!;
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((s, x) => s + Math.exp(x - mx), 0));
      assert.ok(Math.abs(row[rows[b]![t + 1]!]! - lse - got[b]![t]!) < 1e-4);
    }
    tf.dispose([ids, lp, lg]);
    m.dispose();
  });

  it('is causal: changing a later token leaves earlier logprobs unchanged', () => {
    const m = new GPT(cfg(), 5);
    const a = m.tokenLogprobs(ids2d([[5, 6, 7, 8, 9, 10, 11]])).dataSync();
    const b = m.tokenLogprobs(ids2d([[5, 6, 7, 8, 99, 10, 11]])).dataSync();
    // logprob t scores ids[t+1] given ids[0..t]; token 4 changed: entries 0..2 see only ids[0..3].
    assert.ok(maxAbsDiff(a.slice(0, 3), b.slice(0, 3)) < 1e-6);
    assert.ok(maxAbsDiff(a.slice(3), b.slice(3)) > 1e-4);
    m.dispose();
  });

  it('right padding does not change the real tokens', () => {
    const m = new GPT(cfg(), 6);
    const short = m.tokenLogprobs(ids2d([[3, 1, 4, 1, 5]])).dataSync();
    const padded = m.tokenLogprobs(ids2d([[3, 1, 4, 1, 5, 256, 256, 256], [2, 7, 1, 8, 2, 8, 1, 8]])).dataSync();
    assert.ok(maxAbsDiff(short, padded.slice(0, 4)) < 1e-5);
    m.dispose();
  });

  for (const nKvHead of [1, 2]) it(`per-head attention matches the batched reference in values and gradients (nKvHead ${nKvHead})`, () => {
    const m = new GPT({ ...cfg(), nKvHead }, 9);
    const ids = ids2d([[1, 5, 9, 2, 6, 5, 3, 5], [8, 9, 7, 9, 3, 2, 3, 8]]);
    const targets = ids2d([[5, 9, 2, 6, 5, 3, 5, 8], [9, 7, 9, 3, 2, 3, 8, 4]]);
    const run = (impl: 'perHead' | 'batched') => {
      m.attention = impl;
      const { value, grads } = tf.variableGrads(() => m.forward(ids, targets).loss!, m.variables());
      const out = { loss: value.dataSync()[0]!, grads: m.variableNames().map((n) => grads[m.param(n).name]!.dataSync()) };
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    };
    const a = run('perHead');
    const b = run('batched');
    assert.ok(Math.abs(a.loss - b.loss) < 1e-5);
    a.grads.forEach((g, i) => {
      const scale = Math.max(1e-6, ...Array.from(b.grads[i]!, Math.abs));
      assert.ok(maxAbsDiff(g, b.grads[i]!) / scale < 1e-3, `${m.variableNames()[i]} differs`);
    });
    tf.dispose([ids, targets]);
    m.dispose();
  });

  it('keeps tf.memory().numTensors flat across forward/backward steps', () => {
    const m = new GPT(cfg(), 10);
    const ids = ids2d([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]]);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.tidy(() => tf.sum(m.tokenLogprobs(ids)).neg() as tf.Scalar), m.variables());
      tf.dispose([value, ...Object.values(grads)]);
      tf.tidy(() => {
        m.forward(ids, ids);
      });
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    assert.equal(tf.memory().numTensors, before);
    ids.dispose();
    m.dispose();
  });
});
