/**
 * One decode step of attention over a per-row KV cache, on host memory: for each row b and head h, scores
 * of the row's query against its first n_b = lens[b] + extra[b] cached keys, softmax, weighted sum of values.
 * Cache layouts per (row, key/value head) slab s = b * Hkv + j, with cap rounded up to a multiple of 16: keys in [hd, 4]
 * tiles of 4 keys, kt[s * cap * hd + ((t >> 2) * hd + d) * 4 + (t & 3)], so the kernel scores 16 keys per
 * pass from one contiguous stream and a new key is written into 8 adjacent cache lines; values
 * v[(s * cap + t) * hd + d].
 *
 * Two implementations with the same arithmetic: a WebAssembly SIMD kernel (f32x4, ~10x the plain loop; it is
 * what makes KV-cache sampling on a CPU fast, since attention is the part of a decode step that no tfjs
 * kernel does well) and a plain JavaScript loop (the reference, and the fallback where wasm SIMD is missing).
 * The SIMD module is assembled here from a few hundred bytes (wasmAsm.ts) rather than shipped as a binary.
 */
import { buildAttendModule } from './wasmAsm';

/** Caches live in a memory the kernel can read: the wasm module's own, or plain arrays for the JS path. */
export class KVStore {
  readonly layers: number;
  readonly perLayer: number;
  private memory: WebAssembly.Memory | null = null;
  private exports: AttendExports | null = null;
  private heap: Float32Array;
  /** Float offsets of the per-call scratch regions (query rows, outputs, scores). */
  private qOff = 0;
  private outOff = 0;
  private scOff = 0;

  /** Key slots per (row, head): the requested capacity rounded up to a multiple of 16. */
  readonly cap: number;

  /**
   * Caches for `layers` layers of `slabs` (row, head) pairs with `hd` floats per key and room for `capacity`
   * keys each, plus scratch for `qFloats` query floats and `outFloats` output floats. SIMD needs hd % 16 == 0.
   */
  constructor(layers: number, private readonly slabs: number, private readonly hd: number, capacity: number, private readonly qFloats: number, private readonly outFloats: number, useSimd = hd % 16 === 0 && simdAvailable()) {
    this.layers = layers;
    this.cap = Math.ceil(capacity / 16) * 16;
    this.perLayer = slabs * hd * this.cap;
    const perLayer = this.perLayer;
    const total = 2 * layers * perLayer + qFloats + outFloats + this.cap + 64;
    if (useSimd) {
      const pages = Math.ceil((total * 4) / 65536) + 1;
      this.memory = new WebAssembly.Memory({ initial: pages });
      this.exports = instantiate(this.memory);
      this.heap = new Float32Array(this.memory.buffer);
    } else {
      this.heap = new Float32Array(total);
    }
    // Scratch regions first: 16-byte aligned offsets keep every v128 access aligned when hd % 4 == 0.
    this.qOff = 16;
    this.outOff = align4(this.qOff + qFloats);
    this.scOff = align4(this.outOff + outFloats);
    this.base = align4(this.scOff + this.cap + 4);
    if (this.base + 2 * layers * perLayer > this.heap.length) throw new Error('KVStore: internal size error');
  }

  private readonly base: number;

  get simd(): boolean {
    return this.exports !== null;
  }

  /** Store key src[kAt..kAt+hd) and value src[vAt..vAt+hd) of slab `slab` at position t of a layer. */
  put(layer: number, slab: number, t: number, src: Float32Array, kAt: number, vAt: number): void {
    const { hd, cap, heap } = this;
    const kBase = this.base + 2 * layer * this.perLayer + slab * hd * cap + (t >> 2) * hd * 4 + (t & 3);
    const vBase = this.base + (2 * layer + 1) * this.perLayer + (slab * cap + t) * hd;
    for (let d = 0; d < hd; d++) {
      heap[kBase + d * 4] = src[kAt + d]!;
      heap[vBase + d] = src[vAt + d]!;
    }
  }

  /** Read back key and value t of slab `slab` of a layer into dst[kAt..kAt+hd) and dst[vAt..vAt+hd) (inverse of put). */
  get(layer: number, slab: number, t: number, dst: Float32Array, kAt: number, vAt: number): void {
    const { hd, cap, heap } = this;
    const kBase = this.base + 2 * layer * this.perLayer + slab * hd * cap + (t >> 2) * hd * 4 + (t & 3);
    const vBase = this.base + (2 * layer + 1) * this.perLayer + (slab * cap + t) * hd;
    for (let d = 0; d < hd; d++) {
      dst[kAt + d] = heap[kBase + d * 4]!;
      dst[vAt + d] = heap[vBase + d]!;
    }
  }

  /** Query input region: write B rows of qStride floats here before attend(). */
  get q(): Float32Array {
    return this.heap.subarray(this.qOff, this.qOff + this.qFloats);
  }

  /** Output region [B, C] written by attend(). */
  get out(): Float32Array {
    return this.heap.subarray(this.outOff, this.outOff + this.outFloats);
  }

  /**
   * Attention of layer `layer` for every row b over its first lens[b] + extra[b] keys: H query heads, of which
   * each group of H / Hkv shares key/value slab b·Hkv + ⌊h / (H / Hkv)⌋. Queries are read from `q` (row stride
   * qStride, heads contiguous), results go to `out` [B, H·hd].
   * With `append`, rows with extra[b] = 1 first store their new key and value, read from the same `q` row at
   * offsets append.k and append.v, as key lens[b] (so the caller needs no separate put()).
   */
  attend(layer: number, qStride: number, lens: Int32Array, extra: Uint8Array, B: number, H: number, Hkv: number, scale: number, append?: { k: number; v: number }): void {
    const { hd, cap } = this;
    if (B * Hkv > this.slabs) throw new Error(`KVStore.attend: ${B}x${Hkv} slabs requested, ${this.slabs} allocated`);
    if (H % Hkv !== 0) throw new Error(`KVStore.attend: ${H} query heads cannot share ${Hkv} key/value heads`);
    const C = H * hd;
    const G = H / Hkv;
    const kOff = this.base + 2 * layer * this.perLayer;
    const vOff = kOff + this.perLayer;
    for (let b = 0; b < B; b++) {
      if (lens[b]! + extra[b]! > cap) throw new Error(`KVStore.attend: row ${b} has ${lens[b]! + extra[b]!} keys, capacity ${cap}`);
    }
    if (this.exports) {
      const ex = this.exports;
      for (let b = 0; b < B; b++) {
        const n = lens[b]! + extra[b]!;
        const row = this.qOff + b * qStride;
        const doAppend = append && extra[b];
        for (let h = 0; h < H; h++) {
          // Query head h reads key/value head j; the group's first head appends the new key/value.
          const j = Math.floor(h / G);
          const slab = (b * Hkv + j) * cap * hd;
          const first = doAppend && h % G === 0;
          const kNew = first ? 4 * (row + append.k + j * hd) : 0;
          const vNew = first ? 4 * (row + append.v + j * hd) : 0;
          ex.attend(4 * (row + h * hd), 4 * (kOff + slab), 4 * (vOff + slab), 4 * (this.outOff + b * C + h * hd), 4 * this.scOff, n, hd, cap, kNew, vNew, scale);
        }
      }
      return;
    }
    if (append) {
      for (let b = 0; b < B; b++) {
        if (!extra[b]) continue;
        const row = this.qOff + b * qStride;
        for (let j = 0; j < Hkv; j++) this.put(layer, b * Hkv + j, lens[b]!, this.heap, row + append.k + j * hd, row + append.v + j * hd);
      }
    }
    attendRowsJs(this.heap, this.qOff, qStride, kOff, vOff, this.outOff, this.scOff, lens, extra, B, H, Hkv, hd, cap, scale);
  }
}

const align4 = (x: number) => (x + 3) & ~3;

interface AttendExports {
  attend(q: number, kt: number, v: number, out: number, scores: number, n: number, hd: number, cap: number, kNew: number, vNew: number, scale: number): void;
}

let compiled: WebAssembly.Module | null | undefined;

function moduleBytes(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  try {
    const bytes = buildAttendModule();
    compiled = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  } catch {
    compiled = null;
  }
  return compiled;
}

/** True when this runtime validates our SIMD module (Node ≥ 16 does). */
export function simdAvailable(): boolean {
  return moduleBytes() !== null;
}

function instantiate(memory: WebAssembly.Memory): AttendExports {
  const mod = moduleBytes();
  if (!mod) throw new Error('attendKernel: WebAssembly SIMD is not available');
  return new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as AttendExports;
}

/** The JavaScript reference of the kernel, on one Float32Array holding everything (offsets in floats). */
function attendRowsJs(
  m: Float32Array, qOff: number, qStride: number, kOff: number, vOff: number, outOff: number, scOff: number,
  lens: Int32Array, extra: Uint8Array, B: number, H: number, Hkv: number, hd: number, cap: number, scale: number,
): void {
  const C = H * hd;
  const G = H / Hkv;
  for (let b = 0; b < B; b++) {
    const n = lens[b]! + extra[b]!;
    for (let h = 0; h < H; h++) {
      const qo = qOff + b * qStride + h * hd;
      const base = (b * Hkv + Math.floor(h / G)) * cap * hd;
      let mx = -Infinity;
      for (let t = 0; t < n; t++) {
        const ko = kOff + base + (t >> 2) * hd * 4 + (t & 3);
        let s = 0;
        for (let d = 0; d < hd; d++) s += m[qo + d]! * m[ko + d * 4]!;
        s *= scale;
        m[scOff + t] = s;
        if (s > mx) mx = s;
      }
      let z = 0;
      for (let t = 0; t < n; t++) {
        const e = Math.exp(m[scOff + t]! - mx);
        m[scOff + t] = e;
        z += e;
      }
      const oo = outOff + b * C + h * hd;
      for (let d = 0; d < hd; d++) m[oo + d] = 0;
      if (n === 0) continue;
      const inv = 1 / z;
      for (let t = 0; t < n; t++) {
        const p = m[scOff + t]! * inv;
        const vo = vOff + base + t * hd;
        for (let d = 0; d < hd; d++) m[oo + d]! += p * m[vo + d]!;
      }
    }
  }
}
