/**
 * Building blocks of the transformer with hand-written gradients where tfjs's own are slow on the wasm backend.
 *
 * Measured facts behind each choice (2-core CPU, wasm/XNNPACK): XNNPACK runs only plain 2-D matMuls without
 * transpose flags fast (~20-30 GFLOP/s); a transpose flag or a batch dimension falls back to a naive loop at
 * ~2 GFLOP/s. So every gradient below is written as explicit transposes + plain 2-D matMuls, and attention is
 * split per (sequence, head) into 2-D matMuls. The autodiff versions (`attentionBatched`) stay as the reference
 * the tests compare against and as the path for GPU backends, where batched matMul is fast.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hostTensor, hostView } from './hostOps';

const onWasm = () => tf.getBackend() === 'wasm';

/** One-hot rows as float32. (The wasm OneHot kernel writes integer bits when asked for float32: cast instead.) */
export function oneHotF32(ids: tf.Tensor1D, depth: number): tf.Tensor2D {
  return tf.tidy(() => tf.cast(tf.oneHot(ids, depth), 'float32')) as tf.Tensor2D;
}

/** a·b for 2-D tensors, with optional transposes. On wasm the transpose is made explicit (see top of file). */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  if (!onWasm()) return tf.matMul(a, b, transposeA, transposeB);
  return tf.tidy(() => tf.matMul(transposeA ? tf.transpose(a) : a, transposeB ? tf.transpose(b) : b) as tf.Tensor2D);
}

/** Column sums of a 2-D tensor as a [n] vector: ones·dy is a plain matMul, which beats `sum(axis 0)` on wasm 5x. */
function columnSum(dy: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.reshape(tf.matMul(tf.ones([1, dy.shape[0]]), dy), [dy.shape[1]]) as tf.Tensor1D);
}

/** dW = xᵀ·dy for x [N, in], dy [N, out], transposing whichever of x or dy is smaller. */
function weightGrad(x: tf.Tensor2D, dy: tf.Tensor2D): tf.Tensor2D {
  if (!onWasm()) return tf.matMul(x, dy, true, false);
  return tf.tidy((): tf.Tensor2D => {
    if (x.shape[1] <= dy.shape[1]) return tf.matMul(tf.transpose(x), dy);
    return tf.transpose(tf.matMul(tf.transpose(dy), x)) as tf.Tensor2D; // (dyᵀ·x)ᵀ: the big transpose is of the narrower dy
  });
}

/** y = x·w + b with a custom gradient of plain 2-D matMuls. x [N, in], w [in, out], b [out]. */
export const linear = (x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D => {
  if (b) return linearBias(x, w, b) as tf.Tensor2D;
  return linearNoBias(x, w) as tf.Tensor2D;
};

const linearBias = tf.customGrad((x, w, b, save) => {
  const [xx, ww, bb] = [x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D];
  (save as tf.GradSaveFunc)([xx, ww]);
  return {
    value: tf.fused.matMul({ a: xx, b: ww, bias: bb }),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D];
      const d = dy as tf.Tensor2D;
      return [matMul2d(d, sw, false, true), weightGrad(sx, d), columnSum(d)];
    },
  };
});

const linearNoBias = tf.customGrad((x, w, save) => {
  const [xx, ww] = [x as tf.Tensor2D, w as tf.Tensor2D];
  (save as tf.GradSaveFunc)([xx, ww]);
  return {
    value: tf.matMul(xx, ww),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D];
      const d = dy as tf.Tensor2D;
      return [matMul2d(d, sw, false, true), weightGrad(sx, d)];
    },
  };
});

/**
 * The tied output head: logits = x·wteᵀ, x [N, C], wte [V, C]. Its gradients need no big transpose for dx
 * (dy·wte is a plain matMul) and dwte = (xᵀ·dy)ᵀ transposes x [N, C] and the small [C, V] result.
 */
export const tiedHead = tf.customGrad((x, wte, save) => {
  const [xx, ww] = [x as tf.Tensor2D, wte as tf.Tensor2D];
  (save as tf.GradSaveFunc)([xx, ww]);
  return {
    value: matMul2d(xx, ww, false, true),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D];
      const d = dy as tf.Tensor2D;
      return [tf.matMul(d, sw), tf.tidy(() => tf.transpose(weightGrad(sx, d)))];
    },
  };
}) as (x: tf.Tensor2D, wte: tf.Tensor2D) => tf.Tensor2D;

/**
 * Token embedding rows wte[ids]. Forward is a gather; the backward is ours because the wasm backend has no
 * gather gradient (UnsortedSegmentSum): a scatter-add loop on CPU-memory backends, a one-hot matMul elsewhere.
 */
export function embed(wte: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const [V, C] = wte.shape;
  const f = tf.customGrad((w, save) => {
    (save as tf.GradSaveFunc)([ids]); // the caller's ids may be disposed before the backward pass runs
    return {
      value: tf.gather(w as tf.Tensor2D, ids),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const d = dy as tf.Tensor2D;
        const ids = saved[0] as tf.Tensor1D;
        const b = tf.getBackend();
        if (b === 'wasm' || b === 'cpu') {
          const idv = ids.dataSync();
          return hostTensor<tf.Rank.R2>([V, C], (dst) => {
            const src = hostView(d);
            for (let n = 0; n < idv.length; n++) {
              const o = idv[n]! * C;
              const s = n * C;
              for (let c = 0; c < C; c++) dst[o + c] += src[s + c]!;
            }
          });
        }
        return tf.tidy(() => tf.matMul(oneHotF32(ids, V), d, true, false));
      },
    };
  });
  return f(wte) as tf.Tensor2D;
}

/** Layer norm over the last axis (composite ops; tfjs's autodiff of these is adequate). */
export function layerNorm(x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor2D {
  return tf.tidy(() => {
    const mean = tf.mean(x, -1, true);
    const xc = tf.sub(x, mean);
    const variance = tf.mean(tf.square(xc), -1, true);
    return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), g), b);
  });
}

/**
 * GELU, sigmoid form x·σ(1.702x) (tfjs has no gelu op; the tanh form's `tanh` is ~20x slower than `sigmoid`
 * on wasm). Within 0.02 of the exact GELU everywhere.
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))));
}

/** Additive causal mask [T, T]: 0 on and below the diagonal, -1e9 above. */
export function causalBias(T: number): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)), -1e9) as tf.Tensor2D);
}

/**
 * Reference multi-head causal self-attention with batched matMuls and tfjs autodiff.
 * qkv [B*T, 3C] (q | k | v, heads contiguous inside each), bias [T, T] additive mask → [B*T, C].
 */
export function attentionBatched(qkv: tf.Tensor2D, B: number, T: number, nHead: number, bias: tf.Tensor2D): tf.Tensor2D {
  const C = qkv.shape[1] / 3;
  const hd = C / nHead;
  return tf.tidy(() => {
    const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, nHead, hd]), [0, 2, 1, 3]); // [B, H, T, hd]
    const [q, k, v] = tf.split(qkv, 3, 1).map(heads) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
    const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), bias);
    const out = tf.matMul(tf.softmax(scores), v); // [B, H, T, hd]
    return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B * T, C]) as tf.Tensor2D;
  });
}

/**
 * Copy one head-slab of a [B*T, W] matrix into B*H separate matrices: rows layout [T, hd] or, with
 * `transpose`, [hd, T]; values multiplied by `scale`. `col` is where the slab (q, k or v) starts.
 */
function splitHeads(x: tf.Tensor2D, col: number, B: number, T: number, H: number, hd: number, transpose: boolean, scale = 1): tf.Tensor2D[] {
  const W = x.shape[1];
  const out: tf.Tensor2D[] = [];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      out.push(hostTensor<tf.Rank.R2>(transpose ? [hd, T] : [T, hd], (dst) => {
        const src = hostView(x);
        const c0 = col + h * hd;
        for (let t = 0; t < T; t++) {
          const s = (b * T + t) * W + c0;
          if (transpose) for (let d = 0; d < hd; d++) dst[d * T + t] = src[s + d]! * scale;
          else for (let d = 0; d < hd; d++) dst[t * hd + d] = src[s + d]! * scale;
        }
      }));
    }
  }
  return out;
}

/** Inverse of splitHeads: write B*H head matrices into columns [col, col+H*hd) of `dst` ([B*T, W] row-major). */
function mergeHeadsInto(dst: Float32Array, W: number, parts: tf.Tensor2D[], col: number, B: number, T: number, H: number, hd: number, transposed: boolean, scale = 1): void {
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const src = hostView(parts[b * H + h]!);
      const c0 = col + h * hd;
      for (let t = 0; t < T; t++) {
        const o = (b * T + t) * W + c0;
        if (transposed) for (let d = 0; d < hd; d++) dst[o + d] = src[d * T + t]! * scale;
        else for (let d = 0; d < hd; d++) dst[o + d] = src[t * hd + d]! * scale;
      }
    }
  }
}

/**
 * Causal self-attention for CPU-memory backends (wasm, cpu): per (sequence, head) plain 2-D matMuls, with a
 * hand-written backward in which every matMul is again plain 2-D:
 *   S = (sQ)·Kᵀ, P = softmax(S + mask), O = P·V
 *   dP = dO·Vᵀ, dVᵀ = dOᵀ·P, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = s·dS·K, dKᵀ = (sQ)ᵀ·dS
 * Only [T, hd]-sized matrices are ever transposed (by the split/merge copies), never [T, T] ones.
 */
export function attentionPerHead(qkv: tf.Tensor2D, B: number, T: number, nHead: number, bias: tf.Tensor2D): tf.Tensor2D {
  const C = qkv.shape[1] / 3;
  const hd = C / nHead;
  const scale = 1 / Math.sqrt(hd);
  const H = nHead;
  const f = tf.customGrad((input, save) => {
    const x = input as tf.Tensor2D;
    const probs: tf.Tensor2D[] = [];
    const value = tf.tidy(() => {
      const q = splitHeads(x, 0, B, T, H, hd, false, scale);
      const kt = splitHeads(x, C, B, T, H, hd, true);
      const v = splitHeads(x, 2 * C, B, T, H, hd, false);
      const outs = q.map((qi, i) => {
        const p = tf.softmax(tf.add(tf.matMul(qi, kt[i]!), bias)) as tf.Tensor2D;
        probs.push(tf.keep(p));
        return tf.matMul(p, v[i]!) as tf.Tensor2D;
      });
      return hostTensor<tf.Rank.R2>([B * T, C], (dst) => mergeHeadsInto(dst, C, outs, 0, B, T, H, hd, false));
    });
    (save as tf.GradSaveFunc)([x, ...probs]);
    // save() keeps clones (shared memory); drop our references so the probabilities die with the tape.
    for (const p of probs) p.dispose();
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, ...p] = saved as tf.Tensor2D[];
        const d = dy as tf.Tensor2D;
        return tf.tidy(() => {
          const dO = splitHeads(d, 0, B, T, H, hd, false);
          const dOt = splitHeads(d, 0, B, T, H, hd, true);
          const qt = splitHeads(sx!, 0, B, T, H, hd, true, scale);
          const k = splitHeads(sx!, C, B, T, H, hd, false);
          const vt = splitHeads(sx!, 2 * C, B, T, H, hd, true);
          const dQ: tf.Tensor2D[] = [];
          const dKt: tf.Tensor2D[] = [];
          const dVt: tf.Tensor2D[] = [];
          for (let i = 0; i < B * H; i++) {
            const pi = p[i]!;
            const dP = tf.matMul(dO[i]!, vt[i]!);
            dVt.push(tf.matMul(dOt[i]!, pi));
            const dS = tf.mul(pi, tf.sub(dP, tf.sum(tf.mul(dP, pi), -1, true))) as tf.Tensor2D;
            dQ.push(tf.matMul(dS, k[i]!));
            dKt.push(tf.matMul(qt[i]!, dS));
          }
          return hostTensor<tf.Rank.R2>([B * T, 3 * C], (dst) => {
            mergeHeadsInto(dst, 3 * C, dQ, 0, B, T, H, hd, false, scale);
            mergeHeadsInto(dst, 3 * C, dKt, C, B, T, H, hd, true);
            mergeHeadsInto(dst, 3 * C, dVt, 2 * C, B, T, H, hd, true);
          });
        });
      },
    };
  });
  return f(qkv) as tf.Tensor2D;
}
