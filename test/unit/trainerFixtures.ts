/**
 * Fixtures for the trainer tests: a tiny causal LM implementing TrainableModel (token embedding + position
 * embedding + running mean over the prefix, tanh, output projection) and multi-turn trajectories with prompt,
 * action and observation tokens. Fast on the cpu backend; deterministic from a seed.
 */
import * as tf from '@tensorflow/tfjs-core';
import { tokenLogprobsFromLogits } from '../../daemon/src/train/losses';
import type { TrainableModel, PreferencePair } from '../../daemon/src/train/trainer';

let instance = 0;

export class TinyLM implements TrainableModel {
  readonly config: { blockSize: number; vocabSize: number };
  private readonly vars: tf.Variable[];
  calls = 0;

  constructor(seed = 1, vocabSize = 16, dim = 8, blockSize = 24) {
    this.config = { blockSize, vocabSize };
    const tag = `tiny${instance++}`;
    const init = (shape: number[], s: number, scale: number) => tf.variable(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', s), scale), true, `${tag}/${s}`);
    this.vars = [
      init([vocabSize, dim], seed * 10 + 1, 0.5),
      init([blockSize, dim], seed * 10 + 2, 0.5),
      init([dim, vocabSize], seed * 10 + 3, 0.5),
      init([vocabSize], seed * 10 + 4, 0.1),
    ];
  }

  variables(): tf.Variable[] {
    return this.vars;
  }

  tokenLogprobs(ids: tf.Tensor2D): tf.Tensor2D {
    this.calls++;
    const [emb, pos, w, b] = this.vars as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
    return tf.tidy(() => {
      const [B, T] = ids.shape;
      const V = this.config.vocabSize;
      const oh = tf.oneHot(tf.reshape(ids, [B * T]), V);
      const x = tf.add(tf.reshape(tf.matMul(oh, emb), [B, T, -1]), tf.slice(pos, [0, 0], [T, -1]));
      // causal running mean over the prefix as a [T,T] lower-triangular matMul (tfjs' cumsum gradient is
      // broken on a non-last axis)
      const tri = tf.div(tf.linalg.bandPart(tf.ones([T, T]), -1, 0), tf.reshape(tf.range(1, T + 1), [T, 1]));
      const xt = tf.reshape(tf.transpose(x, [1, 0, 2]), [T, -1]);
      const mean = tf.transpose(tf.reshape(tf.matMul(tri, xt), [T, B, -1]), [1, 0, 2]);
      const h = tf.tanh(tf.add(x, mean));
      const logits = tf.add(tf.reshape(tf.matMul(tf.reshape(h, [B * T, -1]), w), [B, T, V]), b);
      return tokenLogprobsFromLogits(logits as tf.Tensor3D, ids);
    });
  }

  /** Copy weights from another TinyLM of the same shape. */
  copyFrom(o: TinyLM): void {
    this.vars.forEach((v, i) => v.assign(o.variables()[i]!));
  }

  async snapshot(): Promise<number[][]> {
    return Promise.all(this.vars.map(async (v) => Array.from(await v.data())));
  }

  dispose(): void {
    for (const v of this.vars) v.dispose();
  }
}

/** Deterministic pseudo-random multi-turn trajectory: prompt, action, observation, action (vocab 1..vocab-1). */
export function trajectory(seed: number, vocab = 16): { tokenIds: number[]; actionMask: (0 | 1)[] } {
  let s = seed * 7919 + 17;
  const next = () => { s = (s * 1103515245 + 12345) % 2147483648; return 1 + (s % (vocab - 1)); };
  const tokenIds: number[] = [];
  const actionMask: (0 | 1)[] = [];
  const push = (n: number, m: 0 | 1) => { for (let i = 0; i < n; i++) { tokenIds.push(next()); actionMask.push(m); } };
  push(3 + (seed % 3), 0); // prompt
  push(3 + (seed % 4), 1); // action
  push(2 + (seed % 2), 0); // observation
  push(2 + (seed % 3), 1); // final action
  return { tokenIds, actionMask };
}

type Seq = { tokenIds: number[]; actionMask: (0 | 1)[] };
export type TestPair = PreferencePair & { chosen: Seq; rejected: Seq };

export function pairs(n: number, offset = 0): TestPair[] {
  return Array.from({ length: n }, (_, i) => {
    const c = trajectory(2 * (i + offset) + 1);
    const r = trajectory(2 * (i + offset) + 2);
    // Same prompt for both sides, as the pipeline builds pairs.
    const pl = c.actionMask.indexOf(1);
    const rl = r.actionMask.indexOf(1);
    return {
      chosen: c,
      rejected: { tokenIds: [...c.tokenIds.slice(0, pl), ...r.tokenIds.slice(rl)], actionMask: [...c.actionMask.slice(0, pl), ...r.actionMask.slice(rl)] },
    };
  });
}
