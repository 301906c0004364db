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
const isHost = () => tf.getBackend() === 'wasm' || tf.getBackend() === 'cpu';

/** One-hot rows as float32. (The wasm OneHot kernel writes integer bits when asked for float32: cast instead.) */
export function oneHotF32(ids: tf.Tensor1D, depth: number): tf.Tensor2D {
  return tf.tidy(() => tf.cast(tf.oneHot(ids, depth), 'float32')) as tf.Tensor2D;
}

/** a·b for 2-D tensors, with optional transposes. On wasm the transpose is made explicit (see top of file). */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  if (!onWasm()) return tf.matMul(a, b, transposeA, transposeB);
  return tf.tidy(() => tf.matMul(transposeA ? tf.transpose(a) : a, transposeB ? tf.transpose(b) : b) as tf.Tensor2D);
}

/**
 * Column sums of a 2-D tensor as a [n] vector (the bias gradient). On CPU-memory backends a plain loop:
 * wasm's `sum(axis 0)` transposes first, and ones·dy makes XNNPACK pack all of dy for a 1-row product.
 */
function columnSum(dy: tf.Tensor2D): tf.Tensor1D {
  if (!isHost()) return tf.sum(dy, 0);
  const [N, W] = dy.shape;
  return hostTensor<tf.Rank.R1>([W], (dst) => {
    dst.fill(0);
    const src = hostView(dy);
    for (let r = 0; r < N; r++) {
      const o = r * W;
      for (let c = 0; c < W; c++) dst[c]! += src[o + c]!;
    }
  });
}

/** Rows [r0, r0+n) of a [N, W] host matrix as a tensor, transposed to [W, n] when `transpose`. */
function rowBlock(x: tf.Tensor2D, r0: number, n: number, transpose: boolean): tf.Tensor2D {
  const W = x.shape[1];
  return hostTensor<tf.Rank.R2>(transpose ? [W, n] : [n, W], (dst) => {
    const src = hostView(x);
    if (!transpose) {
      dst.set(src.subarray(r0 * W, (r0 + n) * W));
      return;
    }
    // 32 x 32 tiles keep both the rows read and the rows written in cache.
    for (let rt = 0; rt < n; rt += 32) {
      const re = Math.min(rt + 32, n);
      for (let ct = 0; ct < W; ct += 32) {
        const ce = Math.min(ct + 32, W);
        for (let r = rt; r < re; r++) {
          const s = (r0 + r) * W;
          for (let c = ct; c < ce; c++) dst[c * n + r] = src[s + c]!;
        }
      }
    }
  });
}

/**
 * Rows per block of the weight gradient. With the narrow operand on the right (see weightGrad) one product over
 * up to 4096 rows measured as fast as 256-1024-row blocks (and fewer ops); longer batches are split.
 */
const GRAD_BLOCK = 4096;

/**
 * dW = xᵀ·dy for x [N, in], dy [N, out]. On CPU-memory backends the sum over the N rows is split into
 * blocks of GRAD_BLOCK rows, and each block's transpose is made by the copy that cuts it out. XNNPACK re-packs the right operand of every call (with a
 * transposing read, ~10-20 ns per element here), which costs more than our transposing copy of the left one,
 * so the narrower of x and dy is the right operand: dW = Σ xᵢᵀ·dyᵢ when out ≤ in, else dW = (Σ dyᵢᵀ·xᵢ)ᵀ.
 */
function weightGrad(x: tf.Tensor2D, dy: tf.Tensor2D): tf.Tensor2D {
  if (!isHost()) return tf.matMul(x, dy, true, false);
  const N = x.shape[0];
  const transposeX = dy.shape[1] <= x.shape[1];
  return tf.tidy((): tf.Tensor2D => {
    const parts: tf.Tensor2D[] = [];
    for (let r0 = 0; r0 < N; r0 += GRAD_BLOCK) {
      const n = Math.min(GRAD_BLOCK, N - r0);
      parts.push(transposeX
        ? tf.matMul(rowBlock(x, r0, n, true), rowBlock(dy, r0, n, false))
        : tf.matMul(rowBlock(dy, r0, n, true), rowBlock(x, r0, n, false)));
    }
    const sum = parts.length === 1 ? parts[0]! : (tf.addN(parts) as tf.Tensor2D);
    return transposeX ? sum : (tf.transpose(sum) as tf.Tensor2D); // (Σ dyᵢᵀ·xᵢ)ᵀ: a small [out, in] transpose
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
    // wasm's gather takes ~50 ms for 4096 rows of 128; a row copy loop takes well under 1 ms.
    const value = isHost()
      ? hostTensor<tf.Rank.R2>([ids.shape[0], C], (dst) => {
        const idv = ids.dataSync();
        const src = hostView(w as tf.Tensor);
        for (let n = 0; n < idv.length; n++) dst.set(src.subarray(idv[n]! * C, (idv[n]! + 1) * C), n * C);
      })
      : tf.gather(w as tf.Tensor2D, ids);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const d = dy as tf.Tensor2D;
        const ids = saved[0] as tf.Tensor1D;
        const b = tf.getBackend();
        if (b === 'wasm' || b === 'cpu') {
          const idv = ids.dataSync();
          return hostTensor<tf.Rank.R2>([V, C], (dst) => {
            dst.fill(0);
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

/** Layer norm over the last axis from tfjs ops and autodiff: the reference, and the path on GPUs. */
export function layerNormRef(x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor2D {
  return tf.tidy(() => {
    const mean = tf.mean(x, -1, true);
    const xc = tf.sub(x, mean);
    const variance = tf.mean(tf.square(xc), -1, true);
    return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), g), b);
  });
}

/**
 * Layer norm over the last axis. On CPU-memory backends one loop per pass over the rows (forward: normalise;
 * backward: dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dg = Σ dy·x̂, db = Σ dy) instead of ~25 small tfjs ops.
 */
export function layerNorm(x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor2D {
  if (!isHost()) return layerNormRef(x, g, b, eps);
  const [N, C] = x.shape;
  const f = tf.customGrad((xi, gi, bi, save) => {
    const rstd = new Float32Array(N);
    const xhat = hostTensor<tf.Rank.R2>([N, C], (dst) => {
      const src = hostView(xi as tf.Tensor);
      for (let r = 0; r < N; r++) {
        const o = r * C;
        let mean = 0;
        for (let c = 0; c < C; c++) mean += src[o + c]!;
        mean /= C;
        let v = 0;
        for (let c = 0; c < C; c++) {
          const d = src[o + c]! - mean;
          v += d * d;
        }
        const rs = 1 / Math.sqrt(v / C + eps);
        rstd[r] = rs;
        for (let c = 0; c < C; c++) dst[o + c] = (src[o + c]! - mean) * rs;
      }
    });
    const value = tf.tidy(() => tf.add(tf.mul(xhat, gi as tf.Tensor1D), bi as tf.Tensor1D));
    (save as tf.GradSaveFunc)([xhat, gi as tf.Tensor1D]);
    xhat.dispose();
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, gs] = saved as [tf.Tensor2D, tf.Tensor1D];
        const dg = new Float32Array(C);
        const db = new Float32Array(C);
        const dx = hostTensor<tf.Rank.R2>([N, C], (dst) => {
          const d = hostView(dy);
          const xv = hostView(xh);
          const gv = hostView(gs);
          for (let r = 0; r < N; r++) {
            const o = r * C;
            let m1 = 0, m2 = 0;
            for (let c = 0; c < C; c++) {
              const dyv = d[o + c]!, xv1 = xv[o + c]!;
              const dxh = dyv * gv[c]!;
              m1 += dxh;
              m2 += dxh * xv1;
              dg[c]! += dyv * xv1;
              db[c]! += dyv;
            }
            m1 /= C;
            m2 /= C;
            const rs = rstd[r]!;
            for (let c = 0; c < C; c++) dst[o + c] = rs * (d[o + c]! * gv[c]! - m1 - xv[o + c]! * m2);
          }
        });
        return [dx, tf.tensor1d(dg), tf.tensor1d(db)];
      },
    };
  });
  return f(x, g, b) as tf.Tensor2D;
}

/** GELU, sigmoid form x·σ(1.702x), from tfjs ops (reference, GPUs). */
export function geluRef(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))));
}

/**
 * GELU, sigmoid form x·σ(1.702x) (tfjs has no gelu op; the tanh form's `tanh` is ~20x slower than `sigmoid`
 * on wasm). Within 0.02 of the exact GELU everywhere. On CPU-memory backends the backward is one loop:
 * d/dx = s·(1 + 1.702·x·(1 − s)), s = σ(1.702x) saved from the forward (tfjs's autodiff of `mul` adds casts
 * that copy the whole tensor on wasm).
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (!isHost()) return geluRef(x);
  const f = tf.customGrad((xi, save) => {
    const s = tf.tidy(() => tf.sigmoid(tf.mul(xi as tf.Tensor, 1.702)));
    const value = tf.mul(xi as tf.Tensor, s);
    (save as tf.GradSaveFunc)([xi as tf.Tensor, s]);
    s.dispose();
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => hostTensor(dy.shape, (dst) => {
        const d = hostView(dy), xv = hostView(saved[0]!), sv = hostView(saved[1]!);
        for (let i = 0; i < dst.length; i++) {
          const sg = sv[i]!;
          dst[i] = d[i]! * sg * (1 + 1.702 * xv[i]! * (1 - sg));
        }
      }),
    };
  });
  return f(x);
}

/** Additive causal mask [T, T]: 0 on and below the diagonal, -1e9 above. */
export function causalBias(T: number): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)), -1e9) as tf.Tensor2D);
}

/** Sizes of a qkv row [C + 2·Ckv] for H query heads and Hkv key/value heads: head size, C, Ckv, group G. */
export function qkvLayout(width: number, H: number, Hkv: number): { hd: number; C: number; Ckv: number; G: number } {
  const hd = width / (H + 2 * Hkv);
  if (!Number.isInteger(hd) || H % Hkv !== 0) throw new Error(`attention: qkv width ${width} does not fit ${H} query and ${Hkv} key/value heads`);
  return { hd, C: H * hd, Ckv: Hkv * hd, G: H / Hkv };
}

/**
 * Reference causal self-attention with batched matMuls and tfjs autodiff, grouped-query: qkv [B*T, C + 2·Ckv]
 * (q | k | v, heads contiguous inside each; query head h uses key/value head ⌊h / G⌋), bias [T, T] additive
 * mask → [B*T, C]. The G query heads of a group are stacked as G·T rows against their shared keys.
 */
export function attentionBatched(qkv: tf.Tensor2D, B: number, T: number, nHead: number, nKvHead: number, bias: tf.Tensor2D): tf.Tensor2D {
  const { hd, C, Ckv, G } = qkvLayout(qkv.shape[1], nHead, nKvHead);
  const Hkv = nKvHead;
  return tf.tidy(() => {
    const [q, k, v] = tf.split(qkv, [C, Ckv, Ckv], 1);
    const kvHeads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, Hkv, hd]), [0, 2, 1, 3]); // [B, Hkv, T, hd]
    const qg = tf.reshape(tf.transpose(tf.reshape(q!, [B, T, Hkv, G, hd]), [0, 2, 3, 1, 4]), [B, Hkv, G * T, hd]);
    const scores = tf.add(tf.mul(tf.matMul(qg, kvHeads(k!), false, true), 1 / Math.sqrt(hd)), G > 1 ? tf.tile(bias, [G, 1]) : bias);
    const out = tf.matMul(tf.softmax(scores), kvHeads(v!)); // [B, Hkv, G*T, hd]
    return tf.reshape(tf.transpose(tf.reshape(out, [B, Hkv, G, T, hd]), [0, 3, 1, 2, 4]), [B * T, C]) as tf.Tensor2D;
  });
}

/**
 * Transpose of a matrix with more rows than columns, e.g. P [G·T, T]: wasm's transpose reads such a matrix
 * column by column (~7 ns per element here, 4x its speed on the wide shape); 32 x 32 tiles do it in ~half.
 */
function transposeTall(x: tf.Tensor2D): tf.Tensor2D {
  const [R, C] = x.shape;
  if (R <= C) return tf.transpose(x);
  return hostTensor<tf.Rank.R2>([C, R], (dst) => {
    const src = hostView(x);
    for (let i0 = 0; i0 < R; i0 += 32) {
      const i1 = Math.min(i0 + 32, R);
      for (let j0 = 0; j0 < C; j0 += 32) {
        const j1 = Math.min(j0 + 32, C);
        for (let i = i0; i < i1; i++) {
          const ro = i * C;
          for (let j = j0; j < j1; j++) dst[j * R + i] = src[ro + j]!;
        }
      }
    }
  });
}

/**
 * Cut head groups out of a [B*T, W] matrix: for each sequence b and group j (of `groups`), the G heads
 * j·G .. j·G+G-1 of the slab starting at column `col`, stacked as rows [G·T, hd] (row g·T + t is head j·G+g
 * at position t), or with `transpose` as [hd, G·T]; values multiplied by `scale`. G = 1 gives single heads.
 */
function splitGroups(x: tf.Tensor2D, col: number, B: number, T: number, groups: number, G: number, hd: number, transpose: boolean, scale = 1): tf.Tensor2D[] {
  const W = x.shape[1];
  const GT = G * T;
  const out: tf.Tensor2D[] = [];
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < groups; j++) {
      out.push(hostTensor<tf.Rank.R2>(transpose ? [hd, GT] : [GT, hd], (dst) => {
        const src = hostView(x);
        for (let g = 0; g < G; g++) {
          const c0 = col + (j * G + g) * hd;
          for (let t = 0; t < T; t++) {
            const s = (b * T + t) * W + c0;
            const r = g * T + t;
            if (transpose) for (let d = 0; d < hd; d++) dst[d * GT + r] = src[s + d]! * scale;
            else for (let d = 0; d < hd; d++) dst[r * hd + d] = src[s + d]! * scale;
          }
        }
      }));
    }
  }
  return out;
}

/** Inverse of splitGroups (row layout): write the [G·T, hd] group matrices back into `dst` ([B*T, W]). */
function mergeGroupsInto(dst: Float32Array, W: number, parts: tf.Tensor2D[], col: number, B: number, T: number, groups: number, G: number, hd: number, scale = 1): void {
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < groups; j++) {
      const src = hostView(parts[b * groups + j]!);
      for (let g = 0; g < G; g++) {
        const c0 = col + (j * G + g) * hd;
        for (let t = 0; t < T; t++) {
          const o = (b * T + t) * W + c0;
          const r = (g * T + t) * hd;
          for (let d = 0; d < hd; d++) dst[o + d] = src[r + d]! * scale;
        }
      }
    }
  }
}

/**
 * Causal self-attention for CPU-memory backends (wasm, cpu), grouped-query like attentionBatched. For each
 * sequence and key/value head, the G query heads that share it are stacked as G·T rows, so every product is one
 * plain 2-D matMul with M = T or G·T rows and a small [T, hd] or [hd, ·] right operand (XNNPACK re-packs the
 * right operand on every call: a [T, T] one would cost as much as the product). With s = 1/√hd, per group:
 *   S = (sQ)·Kᵀ [G·T, T], P = softmax(S + mask), O = P·V;          saved: Pᵀ, sQ, V, qkv, O
 *   dV = Pᵀ·dO, dPᵀ = V·dOᵀ, r = rowsum(dO ⊙ O) (= rowsum(dP ⊙ P)), dSᵀ = Pᵀ ⊙ (dPᵀ − r),
 *   dK = dSᵀ·(sQ), dQ = s·(dSᵀ)ᵀ·K
 * (dV and dK sum over the group's heads inside their products). Only [·, hd] matrices are transposed by the
 * split/merge copies; [T, G·T] ones by tfjs.
 */
export function attentionPerHead(qkv: tf.Tensor2D, B: number, T: number, nHead: number, nKvHead: number, bias: tf.Tensor2D): tf.Tensor2D {
  const { hd, C, Ckv, G } = qkvLayout(qkv.shape[1], nHead, nKvHead);
  const W = C + 2 * Ckv;
  const scale = 1 / Math.sqrt(hd);
  const Hkv = nKvHead;
  const n = B * Hkv; // groups
  const GT = G * T;
  const f = tf.customGrad((input, save) => {
    const x = input as tf.Tensor2D;
    const keep: tf.Tensor2D[] = []; // for the backward: Pᵀ, sQ and V of every group
    const value = tf.tidy(() => {
      // The mask repeated for the G stacked heads (a row copy: wasm's tile takes ~20 ms for this).
      const biasG = G > 1 ? hostTensor<tf.Rank.R2>([GT, T], (dst) => {
        const src = hostView(bias);
        for (let g = 0; g < G; g++) dst.set(src, g * T * T);
      }) : bias;
      const q = splitGroups(x, 0, B, T, Hkv, G, hd, false, scale);
      const kt = splitGroups(x, C, B, T, Hkv, 1, hd, true);
      const v = splitGroups(x, C + Ckv, B, T, Hkv, 1, hd, false);
      const outs = q.map((qi, i) => {
        const p = tf.softmax(tf.add(tf.matMul(qi, kt[i]!), biasG)) as tf.Tensor2D;
        keep.push(tf.keep(transposeTall(p)));
        return tf.matMul(p, v[i]!) as tf.Tensor2D;
      });
      keep.push(...q.map((t) => tf.keep(t)), ...v.map((t) => tf.keep(t)));
      return hostTensor<tf.Rank.R2>([B * T, C], (dst) => mergeGroupsInto(dst, C, outs, 0, B, T, Hkv, G, hd));
    });
    (save as tf.GradSaveFunc)([x, value, ...keep]);
    // save() keeps clones (shared memory); drop our references so these die with the tape.
    for (const t of keep) t.dispose();
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, out, ...rest] = saved as tf.Tensor2D[];
        const pT = rest.slice(0, n), qs = rest.slice(n, 2 * n), v = rest.slice(2 * n, 3 * n);
        const d = dy as tf.Tensor2D;
        return tf.tidy(() => {
          const dO = splitGroups(d, 0, B, T, Hkv, G, hd, false);
          const dOt = splitGroups(d, 0, B, T, Hkv, G, hd, true);
          const k = splitGroups(sx!, C, B, T, Hkv, 1, hd, false);
          // r[g·T + t] = dO·O of query head j·G+g at position t: the softmax backward's row sums.
          const r: tf.Tensor2D[] = [];
          for (let b = 0; b < B; b++) {
            for (let j = 0; j < Hkv; j++) {
              r.push(hostTensor<tf.Rank.R2>([1, GT], (dst) => {
                const dv = hostView(d), ov = hostView(out!);
                for (let g = 0; g < G; g++) {
                  for (let t = 0; t < T; t++) {
                    const o = (b * T + t) * C + (j * G + g) * hd;
                    let acc = 0;
                    for (let e = 0; e < hd; e++) acc += dv[o + e]! * ov[o + e]!;
                    dst[g * T + t] = acc;
                  }
                }
              }));
            }
          }
          const dQ: tf.Tensor2D[] = [];
          const dK: tf.Tensor2D[] = [];
          const dV: tf.Tensor2D[] = [];
          for (let i = 0; i < n; i++) {
            const pt = pT[i]!;
            dV.push(tf.matMul(pt, dO[i]!));
            const dSt = tf.mul(pt, tf.sub(tf.matMul(v[i]!, dOt[i]!), r[i]!)) as tf.Tensor2D;
            dK.push(tf.matMul(dSt, qs[i]!));
            dQ.push(tf.matMul(tf.transpose(dSt), k[i]!));
          }
          return hostTensor<tf.Rank.R2>([B * T, W], (dst) => {
            mergeGroupsInto(dst, W, dQ, 0, B, T, Hkv, G, hd, scale);
            mergeGroupsInto(dst, W, dK, C, B, T, Hkv, 1, hd);
            mergeGroupsInto(dst, W, dV, C + Ckv, B, T, Hkv, 1, hd);
          });
        });
      },
    };
  });
  return f(qkv) as tf.Tensor2D;
}
