/**
 * Rotary position embeddings (RoPE, Su et al. 2021), "rotate half" layout as in GPT-NeoX / Llama: the head
 * vector x of width hd is split into halves (x1, x2) and each pair (x1[i], x2[i]) is rotated by the angle
 * pos · base^(-2i/hd). Queries and keys are rotated, values are not, so q·k depends only on the distance between
 * the two positions.
 *
 * Why: a character-level model has to copy the digits of the question into its code, which needs attention to
 * "the token after the one I just copied": a relative-position pattern, which RoPE expresses directly and a
 * learned absolute table has to learn position by position. Measured (docs/model.md): at lr 1e-3, rope with
 * the previous-token embedding copied 14% of digits at step 100 against 9% with a learned table.
 *
 * The same rotation is applied in three places that must agree: the trunk (training and the prompt pass of
 * the sampler, which caches the rotated keys), the tensor decoder and the host decoder (one position per row).
 */
import * as tf from '@tensorflow/tfjs-core';

/** RoPE base (10000, as in RoFormer and Llama). */
export const ROPE_BASE = 10000;

/** cos and sin of the rotation angles, [N, hd/2] each, for the given positions. */
export function ropeAngles(positions: ArrayLike<number>, hd: number, base: number): { cos: Float32Array; sin: Float32Array } {
  const h2 = hd / 2;
  const n = positions.length;
  const cos = new Float32Array(n * h2);
  const sin = new Float32Array(n * h2);
  // The frequencies once per call, not per row: the host decoder calls this every decode step.
  const freq = Float64Array.from({ length: h2 }, (_, i) => Math.pow(base, (-2 * i) / hd));
  for (let r = 0; r < n; r++) {
    const p = positions[r]!;
    for (let i = 0; i < h2; i++) {
      const a = p * freq[i]!;
      cos[r * h2 + i] = Math.cos(a);
      sin[r * h2 + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/**
 * Rotate the query and key parts of qkv rows [N, C + 2·Ckv] (q | k | v, heads contiguous within each part);
 * cos and sin are [N, 1, hd/2] (row r's angles, see ropeAngles). Differentiable (plain tfjs ops), so the trunk
 * trains through it.
 */
export function ropeQkv(qkv: tf.Tensor2D, cos: tf.Tensor3D, sin: tf.Tensor3D, nHead: number, nKvHead: number): tf.Tensor2D {
  const [N, W] = qkv.shape;
  const hd = W / (nHead + 2 * nKvHead);
  const C = nHead * hd;
  const Ckv = nKvHead * hd;
  return tf.tidy(() => {
    const rot = (x: tf.Tensor2D, heads: number): tf.Tensor2D => {
      const [a, b] = tf.split(tf.reshape(x, [N, heads, hd]), 2, 2) as [tf.Tensor3D, tf.Tensor3D];
      // (a, b) -> (a·cos − b·sin, b·cos + a·sin)
      const ra = tf.sub(tf.mul(a, cos), tf.mul(b, sin));
      const rb = tf.add(tf.mul(b, cos), tf.mul(a, sin));
      return tf.reshape(tf.concat([ra, rb], 2), [N, heads * hd]) as tf.Tensor2D;
    };
    const [q, k, v] = tf.split(qkv, [C, Ckv, Ckv], 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    return tf.concat([rot(q, nHead), rot(k, nKvHead), v], 1) as tf.Tensor2D;
  });
}

/** cos/sin tensors [N, 1, hd/2] for ropeQkv at the given positions. */
export function ropeTensors(positions: ArrayLike<number>, hd: number, base: number): { cos: tf.Tensor3D; sin: tf.Tensor3D } {
  const { cos, sin } = ropeAngles(positions, hd, base);
  const n = positions.length;
  return { cos: tf.tensor3d(cos, [n, 1, hd / 2]), sin: tf.tensor3d(sin, [n, 1, hd / 2]) };
}

/** In-place rotation of `heads` consecutive head vectors of width hd starting at buf[at], by the angles of row `row` of cos/sin (ropeAngles). */
export function ropeInPlace(buf: Float32Array, at: number, heads: number, hd: number, cos: Float32Array, sin: Float32Array, row: number): void {
  const h2 = hd / 2;
  const o = row * h2;
  for (let h = 0; h < heads; h++) {
    const s0 = at + h * hd;
    for (let i = 0; i < h2; i++) {
      const a = buf[s0 + i]!;
      const b = buf[s0 + h2 + i]!;
      const c = cos[o + i]!;
      const s = sin[o + i]!;
      buf[s0 + i] = a * c - b * s;
      buf[s0 + h2 + i] = b * c + a * s;
    }
  }
}
