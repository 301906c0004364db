import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KVStore, simdAvailable } from '../../daemon/src/model/attendKernel';
import { buildAttendModule } from '../../daemon/src/model/wasmAsm';

/** Plain attention for one (row, head), computed by hand in float64. */
function reference(q: number[], keys: number[][], values: number[][], scale: number): number[] {
  const s = keys.map((k) => scale * k.reduce((a, x, d) => a + x * q[d]!, 0));
  const mx = Math.max(...s);
  const e = s.map((x) => Math.exp(x - mx));
  const z = e.reduce((a, b) => a + b, 0);
  return q.map((_, d) => values.reduce((a, v, t) => a + (e[t]! / z) * v[d]!, 0));
}

describe('decode attention kernel', () => {
  it('assembles a valid WebAssembly SIMD module', () => {
    assert.ok(WebAssembly.validate(buildAttendModule()));
    assert.ok(simdAvailable());
  });

  for (const simd of [true, false]) {
    it(`${simd ? 'SIMD' : 'JavaScript'} kernel matches hand-computed attention for rows of different lengths`, () => {
      // 4 query heads sharing 2 key/value heads: query head h reads slab ⌊h / 2⌋.
      const B = 3, H = 4, Hkv = 2, hd = 32, layers = 2;
      const G = H / Hkv;
      const store = new KVStore(layers, B * Hkv, hd, 40, B * (H + 2 * Hkv) * hd, B * H * hd, simd);
      assert.equal(store.simd, simd);
      assert.equal(store.cap, 48);
      let seed = 7;
      const rnd = () => ((seed = (seed * 48271) % 2147483647) / 2147483647) * 4 - 2;
      const C = H * hd, Ckv = Hkv * hd, W = C + 2 * Ckv;
      const lens = Int32Array.from([0, 17, 39]);
      const kv: number[][][][] = []; // [slab][t] -> [k, v]
      const row = new Float32Array(W);
      const q = store.q;
      for (let i = 0; i < q.length; i++) q[i] = rnd();
      for (let b = 0; b < B; b++) {
        for (let t = 0; t <= lens[b]!; t++) {
          // Keys before lens[b] go in with put(); the last one is appended by attend() from the query row.
          const last = t === lens[b]!;
          const src = last ? q.subarray(b * W, (b + 1) * W) : row;
          if (!last) for (let i = 0; i < row.length; i++) row[i] = rnd() * (t === 5 ? 20 : 1); // a large score tests the max shift
          for (let j = 0; j < Hkv; j++) {
            if (!last) store.put(1, b * Hkv + j, t, row, C + j * hd, C + Ckv + j * hd);
            (kv[b * Hkv + j] ??= [])[t] = [Array.from(src.subarray(C + j * hd, C + (j + 1) * hd)), Array.from(src.subarray(C + Ckv + j * hd, C + Ckv + (j + 1) * hd))];
          }
        }
      }
      store.attend(1, W, lens, Uint8Array.from([1, 1, 1]), B, H, Hkv, 0.17, { k: C, v: C + Ckv });
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          const slab = kv[b * Hkv + Math.floor(h / G)]!;
          const want = reference(Array.from(q.subarray(b * W + h * hd, b * W + (h + 1) * hd)), slab.map((x) => x[0]!), slab.map((x) => x[1]!), 0.17);
          const got = store.out.subarray(b * C + h * hd, b * C + (h + 1) * hd);
          want.forEach((w, d) => assert.ok(Math.abs(w - got[d]!) < 1e-4 * Math.max(1, Math.abs(w)), `b${b} h${h} d${d}: ${got[d]} vs ${w}`));
        }
      }
      assert.throws(() => store.attend(1, W, Int32Array.from([0, 0, 48]), Uint8Array.from([1, 1, 1]), B, H, Hkv, 1), /row 2 has 49 keys, capacity 48/);
    });
  }
});
