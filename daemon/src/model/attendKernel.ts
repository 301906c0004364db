/**
 * One decode step of attention over a per-row KV cache, on host memory.
 *
 * For each row b and head h: scores over the row's first n_b = lens[b] + extra[b] cached keys,
 * softmax, weighted sum of the cached values.
 * Cache layout: ((b * H + h) * cap + t) * hd + d, for keys and values alike.
 */
export function attendRows(
  q: Float32Array, qStride: number, kc: Float32Array, vc: Float32Array, lens: Int32Array, extra: Uint8Array,
  B: number, H: number, hd: number, cap: number, scale: number, out: Float32Array,
): void {
  const C = H * hd;
  let scores = scratch;
  if (scores.length < cap) scores = scratch = new Float32Array(cap);
  for (let b = 0; b < B; b++) {
    const n = lens[b]! + extra[b]!;
    if (n === 0) continue;
    for (let h = 0; h < H; h++) {
      const qo = b * qStride + h * hd;
      const base = (b * H + h) * cap * hd;
      let mx = -Infinity;
      for (let t = 0; t < n; t++) {
        const ko = base + t * hd;
        let s = 0;
        for (let d = 0; d < hd; d++) s += q[qo + d]! * kc[ko + d]!;
        s *= scale;
        scores[t] = s;
        if (s > mx) mx = s;
      }
      let z = 0;
      for (let t = 0; t < n; t++) {
        const e = Math.exp(scores[t]! - mx);
        scores[t] = e;
        z += e;
      }
      const oo = b * C + h * hd;
      for (let d = 0; d < hd; d++) out[oo + d] = 0;
      const inv = 1 / z;
      for (let t = 0; t < n; t++) {
        const p = scores[t]! * inv;
        const vo = base + t * hd;
        for (let d = 0; d < hd; d++) out[oo + d]! += p * vc[vo + d]!;
      }
    }
  }
}

let scratch = new Float32Array(1024);
