/**
 * Batched autoregressive decoding with a KV cache.
 *
 * Rows have different prompt lengths. Prompts are right-padded for one batched prefill (attention is causal,
 * so a row's real tokens never see its padding); after that every row keeps its own position and cache length.
 *
 * Three decoders share one interface, so that the sampling loop (temperature, top-p, stops, logprobs) is the
 * same for all of them:
 *  - HostKVDecoder: wasm/cpu. The decode step's small per-row work (embedding, layer norm, attention over the
 *    cache, residuals) runs as plain loops over CPU memory; only the weight matMuls go through tfjs (XNNPACK).
 *    At batch 32 a decode step has ~4k activations per op, so a tfjs op costs more in dispatch than in work.
 *  - TensorKVDecoder: any backend (GPU); the cache is tensors and everything stays on the device except the
 *    logits of the new position.
 *  - NoCacheDecoder: re-runs the whole sequence every step; the reference the tests and `bench sample` use.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPT } from './gpt';
import { gelu, geluRef, layerNorm, matMul2d } from './layers';
import { hostView } from './hostOps';
import { KVStore } from './attendKernel';
import { ROPE_BASE, ropeAngles, ropeInPlace, ropeQkv, ropeTensors } from './rope';
import { yieldToEventLoop } from '../util/yieldLoop';

export interface Decoder {
  /** Prefill the prompts; afterwards logits() gives the next-token logits of every row. */
  start(prompts: number[][]): Promise<void>;
  /** Next-token logits [B * V], row-major. Valid until the next step(). */
  logits(): Promise<Float32Array>;
  /**
   * Append one token to every active row. Inactive rows (finished) are left as they are where the decoder
   * can skip them; their logits are ignored either way.
   */
  step(tokens: Int32Array, active: Uint8Array): Promise<void>;
  /**
   * Sample every row on the device and read back only the ids and their logprobs (decoders whose logits live
   * off the CPU). Same rule as sampleToken in localPolicy.ts, given the same uniforms.
   */
  sample?(spec: SampleSpec): Promise<{ ids: Int32Array; logprobs: Float32Array }>;
  dispose(): void;
}

/** Per-row sampling parameters: temperature (0 = greedy), top-p, and the row's uniform draw in [0, 1). */
export interface SampleSpec {
  temperature: Float32Array;
  topP: Float32Array;
  uniform: Float32Array;
}

/**
 * Device-side sampling from logits [B, V]: one small read-back per step (ids and logprobs) instead of the
 * logits. The rule (shared with the host's sampleToken): p = softmax(logits / T); with top-p, keep the tokens
 * whose probability is at least that of the last token of the smallest prefix (by decreasing p) whose mass
 * reaches top-p; pick by inverse CDF over the kept tokens in id order at u · (kept mass); T = 0 is argmax.
 * The logprob is log softmax(logits) of the pick (untempered).
 */
export async function sampleOnDevice(logits: tf.Tensor2D, spec: SampleSpec): Promise<{ ids: Int32Array; logprobs: Float32Array }> {
  const [B, V] = logits.shape;
  // Float masks and arithmetic selects only: the wasm backend's select/one-hot kernels mishandle some dtypes.
  const out = tf.tidy(() => {
    const temp = tf.tensor2d(spec.temperature, [B, 1]);
    const greedy = tf.cast(tf.lessEqual(temp, 0), 'float32'); // [B, 1]
    const p = tf.softmax(tf.div(logits, tf.add(temp, greedy))); // T = 0 rows divide by 1 (their pick is argmax)
    let q = p;
    if (spec.topP.some((x) => x < 1)) {
      const topP = tf.tensor2d(spec.topP, [B, 1]);
      const sorted = tf.topk(p, V, true).values;
      const before = tf.sub(tf.cumsum(sorted, 1), sorted); // mass of the likelier tokens
      const kept = tf.cast(tf.less(before, topP), 'float32');
      const pMin = tf.min(tf.add(sorted, tf.mul(tf.sub(1, kept), 2)), 1, true);
      q = tf.mul(p, tf.cast(tf.greaterEqual(p, pMin), 'float32'));
    }
    const cum = tf.cumsum(q, 1);
    const target = tf.mul(tf.tensor2d(spec.uniform, [B, 1]), tf.sum(q, 1, true));
    const picked = tf.minimum(tf.sum(tf.cast(tf.lessEqual(cum, target), 'float32'), 1), V - 1);
    const g = tf.reshape(greedy, [B]);
    const ids = tf.add(tf.mul(g, tf.cast(tf.argMax(logits, 1), 'float32')), tf.mul(tf.sub(1, g), picked)) as tf.Tensor1D;
    const lp = tf.sum(tf.mul(tf.logSoftmax(logits), tf.cast(tf.oneHot(tf.cast(ids, 'int32'), V), 'float32')), 1);
    return tf.concat([ids, lp]);
  });
  const v = (await out.data()) as Float32Array;
  out.dispose();
  return { ids: Int32Array.from(v.subarray(0, B)), logprobs: Float32Array.from(v.subarray(B)) };
}

type P2 = tf.Tensor2D;
type P1 = tf.Tensor1D;

/** Right-pad rows into an int32 [B, P] tensor. */
function padRows(rows: number[][], padId: number): tf.Tensor2D {
  const P = Math.max(...rows.map((r) => r.length));
  const data = new Int32Array(rows.length * P).fill(padId);
  rows.forEach((r, b) => data.set(r, b * P));
  return tf.tensor2d(data, [rows.length, P], 'int32');
}

/** Params of one block, by role. */
function blockParams(model: GPT, i: number) {
  const p = (n: string) => model.param(`h.${i}.${n}`) as tf.Tensor;
  return {
    ln1g: p('ln1.g') as P1, ln1b: p('ln1.b') as P1, wqkv: p('attn.wqkv') as P2, bqkv: p('attn.bqkv') as P1,
    wo: p('attn.wo') as P2, bo: p('attn.bo') as P1, ln2g: p('ln2.g') as P1, ln2b: p('ln2.b') as P1,
    w1: p('mlp.w1') as P2, b1: p('mlp.b1') as P1, w2: p('mlp.w2') as P2, b2: p('mlp.b2') as P1,
  };
}

/** Logits of each row's last real position, from the trunk's hidden states [B*P, C]. */
function lastLogits(model: GPT, hidden: tf.Tensor2D, lens: number[], P: number): tf.Tensor2D {
  return tf.tidy(() => {
    const rows = tf.tensor1d(lens.map((L, b) => b * P + L - 1), 'int32');
    return matMul2d(tf.gather(hidden, rows), model.param('wte') as tf.Tensor as P2, false, true);
  });
}

export class NoCacheDecoder implements Decoder {
  private rows: number[][] = [];
  private out: tf.Tensor2D | null = null;
  private view: Float32Array | null = null;
  constructor(private readonly model: GPT, private readonly padId: number) {}

  async start(prompts: number[][]): Promise<void> {
    this.rows = prompts.map((p) => [...p]);
    this.run();
  }

  private run(): void {
    this.out?.dispose();
    this.view = null;
    const ids = padRows(this.rows, this.padId);
    const P = ids.shape[1];
    this.out = tf.tidy(() => lastLogits(this.model, this.model.trunk(ids), this.rows.map((r) => r.length), P));
    ids.dispose();
  }

  async logits(): Promise<Float32Array> {
    this.view ??= (await this.out!.data()) as Float32Array;
    return this.view;
  }

  async step(tokens: Int32Array, active: Uint8Array): Promise<void> {
    this.rows.forEach((r, b) => {
      if (active[b]) r.push(tokens[b]!);
    });
    this.run();
  }

  dispose(): void {
    this.out?.dispose();
    this.out = null;
  }
}

/**
 * The cache is a fixed-size tensor per layer, [B, Hkv, cap, hd] with cap = longest prompt + maxNew, allocated at
 * the prefill. A step writes each row's new key and value into its slot by a one-hot blend and attends over all
 * cap slots under a mask. Every step therefore has the same tensor shapes: on WebGPU the buffer pool reuses the
 * same buffers and the shaders compile once. A cache grown by concatenation needed a buffer of a new size on every
 * step; on the H100 it sampled at 4–6.5k tokens/s.
 */
export class TensorKVDecoder implements Decoder {
  private k: tf.Tensor4D[] = [];
  private v: tf.Tensor4D[] = [];
  /** [B, 1, 1, cap]: 0 where a row has a key, -1e9 elsewhere (its prompt padding and the slots not yet written). */
  private bias: tf.Tensor4D | null = null;
  private out: tf.Tensor2D | null = null;
  private view: Float32Array | null = null;
  private pos: number[] = [];
  private cap = 0;
  /** Per row: the last token fed (prevToken models add its embedding to the next input). */
  private prev = new Int32Array(0);

  constructor(private readonly model: GPT, private readonly padId: number, private readonly maxNew = 256) {}

  async start(prompts: number[][]): Promise<void> {
    const { nHead: H, nKvHead: Hkv, nEmbd: C } = this.model.config;
    const hd = C / H;
    const Ckv = Hkv * hd;
    const B = prompts.length;
    const ids = padRows(prompts, this.padId);
    const P = ids.shape[1];
    this.cap = P + Math.max(1, this.maxNew);
    this.pos = prompts.map((p) => p.length);
    this.prev = Int32Array.from(prompts, (p) => p.at(-1)!);
    const free = this.cap - P;
    // [B, Hkv, P, hd], zero-padded to [B, Hkv, cap, hd].
    const heads = (t: tf.Tensor) => tf.pad(tf.transpose(tf.reshape(t, [B, -1, Hkv, hd]), [0, 2, 1, 3]), [[0, 0], [0, 0], [0, free], [0, 0]]) as tf.Tensor4D;
    this.out = tf.tidy(() => {
      const hidden = this.model.trunk(ids, {
        onQkv: (_i, qkv) => {
          const [, k, v] = tf.split(qkv, [C, Ckv, Ckv], 1);
          this.k.push(tf.keep(heads(k!)));
          this.v.push(tf.keep(heads(v!)));
        },
      });
      return lastLogits(this.model, hidden, this.pos, P);
    });
    const mask = new Float32Array(B * this.cap).fill(-1e9);
    prompts.forEach((p, b) => mask.fill(0, b * this.cap, b * this.cap + p.length));
    this.bias = tf.tensor4d(mask, [B, 1, 1, this.cap]);
    ids.dispose();
  }

  async logits(): Promise<Float32Array> {
    this.view ??= (await this.out!.data()) as Float32Array;
    return this.view;
  }

  sample(spec: SampleSpec): Promise<{ ids: Int32Array; logprobs: Float32Array }> {
    return sampleOnDevice(this.out!, spec);
  }

  async step(tokens: Int32Array, active: Uint8Array): Promise<void> {
    const m = this.model;
    const { nHead: H, nKvHead: Hkv, nEmbd: C, nLayer, lnEps, blockSize } = m.config;
    const hd = C / H;
    const Ckv = Hkv * hd;
    const B = tokens.length;
    const cap = this.cap;
    this.pos.forEach((p, b) => {
      if (active[b] && p >= cap) throw new Error(`TensorKVDecoder: row ${b} is full (${p} tokens, capacity ${cap})`);
    });
    // Finished rows keep being fed (batched tensors); clamp their positions and slots, their output is ignored.
    const posNow = this.pos.map((p) => Math.min(p, blockSize - 1));
    const slots = this.pos.map((p) => Math.min(p, cap - 1));
    this.pos = this.pos.map((p) => p + 1);
    const prevIds = this.prev;
    this.prev = Int32Array.from(tokens);
    const rope = m.config.positions === 'rope' ? ropeTensors(posNow, hd, ROPE_BASE) : null;
    const wte = m.param('wte') as tf.Tensor as P2;
    const [next, bias] = tf.tidy(() => {
      const ids = tf.tensor1d(tokens, 'int32');
      // The slot each row writes this step, as a one-hot over the cache: [B, 1, cap, 1] for K/V, [B, 1, 1, cap] for the mask.
      const hot = tf.oneHot(tf.tensor1d(slots, 'int32'), cap).toFloat();
      const hotKv = tf.reshape(hot, [B, 1, cap, 1]);
      const keepKv = tf.sub(1, hotKv);
      const newBias = tf.mul(this.bias!, tf.sub(1, tf.reshape(hot, [B, 1, 1, cap]))) as tf.Tensor4D;
      let x = tf.gather(wte, ids) as P2;
      if (m.config.prevToken) x = tf.add(x, tf.gather(m.param('wprev') as tf.Tensor as P2, tf.tensor1d(prevIds, 'int32'))) as P2;
      if (!rope) x = tf.add(x, tf.gather(m.param('wpe') as tf.Tensor as P2, tf.tensor1d(posNow, 'int32'))) as P2;
      for (let i = 0; i < nLayer; i++) {
        const w = blockParams(m, i);
        let qkv = tf.fused.matMul({ a: layerNorm(x, w.ln1g, w.ln1b, lnEps), b: w.wqkv, bias: w.bqkv }) as P2;
        if (rope) qkv = ropeQkv(qkv, rope.cos, rope.sin, H, Hkv);
        // Query heads grouped by their key/value head: q [B, Hkv, G, hd] against K [B, Hkv, cap, hd].
        const [qf, kf, vf] = tf.split(qkv, [C, Ckv, Ckv], 1);
        const q = tf.reshape(qf!, [B, Hkv, H / Hkv, hd]) as tf.Tensor4D;
        const k = tf.reshape(kf!, [B, Hkv, 1, hd]);
        const v = tf.reshape(vf!, [B, Hkv, 1, hd]);
        const K = tf.keep(tf.add(tf.mul(this.k[i]!, keepKv), tf.mul(hotKv, k)) as tf.Tensor4D);
        const V = tf.keep(tf.add(tf.mul(this.v[i]!, keepKv), tf.mul(hotKv, v)) as tf.Tensor4D);
        this.k[i]!.dispose();
        this.v[i]!.dispose();
        this.k[i] = K;
        this.v[i] = V;
        const att = tf.softmax(tf.add(tf.mul(tf.matMul(q, K, false, true), 1 / Math.sqrt(hd)), newBias));
        const a = tf.reshape(tf.matMul(att, V), [B, C]) as P2;
        x = tf.add(x, tf.fused.matMul({ a, b: w.wo, bias: w.bo }));
        const h = tf.fused.matMul({ a: layerNorm(x, w.ln2g, w.ln2b, lnEps), b: w.w1, bias: w.b1 });
        x = tf.add(x, tf.fused.matMul({ a: gelu(h) as P2, b: w.w2, bias: w.b2 }));
      }
      const hf = layerNorm(x, m.param('lnf.g') as tf.Tensor as P1, m.param('lnf.b') as tf.Tensor as P1, lnEps);
      return [tf.matMul(hf, wte, false, true) as P2, newBias] as const;
    });
    if (rope) tf.dispose([rope.cos, rope.sin]);
    this.bias!.dispose();
    this.bias = bias;
    this.out?.dispose();
    this.out = next;
    this.view = null;
  }

  dispose(): void {
    tf.dispose([...this.k, ...this.v]);
    this.k = [];
    this.v = [];
    this.bias?.dispose();
    this.out?.dispose();
    this.bias = this.out = null;
  }
}

/** Layer norm of each row of x [B, C] (host arrays) into out. */
function layerNormRows(x: Float32Array, g: Float32Array, b: Float32Array, out: Float32Array, B: number, C: number, eps: number): void {
  for (let r = 0; r < B; r++) {
    const o = r * C;
    let mean = 0;
    for (let c = 0; c < C; c++) mean += x[o + c]!;
    mean /= C;
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = x[o + c]! - mean;
      v += d * d;
    }
    const inv = 1 / Math.sqrt(v / C + eps);
    for (let c = 0; c < C; c++) out[o + c] = (x[o + c]! - mean) * inv * g[c]! + b[c]!;
  }
}

/**
 * The keys and values of one row's first `len` tokens (all layers, all key/value heads), taken after a generate
 * call so that the next turn of the same trajectory skips re-reading its history (LocalPolicy's prefix cache).
 */
export interface KVSnapshot {
  len: number;
  /** The last token in the cache (prevToken models add its embedding to the next input). */
  prev: number;
  /** [layer][head][t] → key (hd floats) then value (hd floats). */
  data: Float32Array;
}

/**
 * Batches of at least this many rows prefill by steps (see HostKVDecoder.start). 1: every batch does, so a row's
 * logits are bit-identical whichever batch it lands in. A rollout's batches are whoever waits at that moment (tool
 * calls finish in their own time), and the batched trunk prefill of small batches gave logprobs ~1e-6 away from
 * the step path: enough to flip a sampled token now and then, so seeded runs did not repeat. The trunk is faster
 * for a few fresh rows (measured, wasm, 168-token prompts: B = 1 110 ms against 206 ms, B = 7 372 against 294 ms);
 * small fresh batches are rare in a rollout (its tail), so reproducibility wins.
 */
export const STEP_PREFILL_ROWS = 1;

export class HostKVDecoder implements Decoder {
  private store: KVStore | null = null;
  /** Per row: tokens in the cache (prompt + generated); also the position of the next token. */
  private len = new Int32Array(0);
  private cap = 0;
  private B = 0;
  private x = new Float32Array(0);
  private lnBuf = new Float32Array(0);
  private logitsTensor: tf.Tensor2D | null = null;
  /** wteᵀ [C, V] kept for the decode head: a plain matMul (no transpose flag) is the fast one on wasm. */
  private wteT: tf.Tensor2D | null = null;
  private host: Record<string, Float32Array> = {};
  /** Per row: the last token fed (prevToken models add its embedding to the next input). */
  private prev = new Int32Array(0);

  /** stepPrefillRows: batches of at least this many rows prefill by steps (Infinity: always the batched trunk). */
  constructor(private readonly model: GPT, private readonly padId: number, private readonly maxNew: number, private readonly stepPrefillRows = STEP_PREFILL_ROWS) {}

  /**
   * Prefill the prompts. A row with a snapshot (`resume[b]`, whose first `len` tokens must be the prompt's) starts
   * from that snapshot and feeds only the rest of its prompt, one token per step: a multi-turn trajectory's next
   * turn then costs its few new tokens (the last action token and the tool output) instead of its whole history.
   */
  async start(prompts: number[][], resume?: ReadonlyArray<KVSnapshot | null>): Promise<void> {
    const m = this.model;
    const { nHead: H, nKvHead: Hkv, nEmbd: C, nLayer, blockSize, vocabSize: V } = m.config;
    const hd = C / H;
    const Ckv = Hkv * hd;
    const W = C + 2 * Ckv;
    const B = (this.B = prompts.length);
    const P = Math.max(...prompts.map((p) => p.length));
    this.cap = Math.min(blockSize, P + this.maxNew);
    this.x = new Float32Array(B * C);
    this.lnBuf = new Float32Array(B * C);
    // Host copies of the small per-element parameters (embeddings, norms); weight matrices stay tensors.
    this.host = {};
    for (const n of m.variableNames()) {
      if (n === 'wte' || n === 'wpe' || n === 'wprev' || /ln\d?\.|lnf\./.test(n)) this.host[n] = m.param(n).dataSync() as Float32Array;
    }
    // SIMD kernel when hd is a multiple of 4 (all presets), else the plain loop.
    this.store = new KVStore(nLayer, B * Hkv, hd, this.cap, B * W, B * C);
    this.wteT?.dispose();
    this.wteT = tf.keep(tf.transpose(m.param('wte') as tf.Tensor as P2));
    // With a batch of rows, even a fresh prompt is fed token by token through step(): on the wasm backend that was
    // measured 2.2× faster than the batched trunk prefill (64 prompts of ~100 tokens: 1.3 s against 2.9 s).
    const empty: KVSnapshot = { len: 0, prev: 0, data: new Float32Array(0) };
    const snap = prompts.map((p, b) => {
      const r = resume?.[b] ?? (B >= this.stepPrefillRows ? empty : null);
      return r && r.len < p.length ? r : null;
    });
    const fresh = prompts.flatMap((_, b) => (snap[b] ? [] : [b]));
    this.len = Int32Array.from(prompts, (p, b) => snap[b]?.len ?? p.length);
    this.prev = Int32Array.from(prompts, (p, b) => snap[b]?.prev ?? p.at(-1)!);
    const logits = new Float32Array(B * V);
    if (fresh.length) {
      // Full prefill of the rows without a snapshot, as one padded batch.
      const Pf = Math.max(...fresh.map((b) => prompts[b]!.length));
      const ids = padRows(fresh.map((b) => prompts[b]!), this.padId);
      const lens = fresh.map((b) => prompts[b]!.length);
      const out = tf.tidy(() => {
        const hidden = m.trunk(ids, {
          onQkv: (i, qkv) => {
            const src = hostView(qkv);
            const store = this.store!;
            fresh.forEach((b, f) => {
              for (let t = 0; t < lens[f]!; t++) {
                const s = (f * Pf + t) * W;
                for (let j = 0; j < Hkv; j++) store.put(i, b * Hkv + j, t, src, s + C + j * hd, s + C + Ckv + j * hd);
              }
            });
          },
        });
        return lastLogits(m, hidden, lens, Pf);
      });
      ids.dispose();
      const view = hostView(out);
      fresh.forEach((b, f) => logits.set(view.subarray(f * V, (f + 1) * V), b * V));
      out.dispose();
    }
    const resumed = prompts.flatMap((_, b) => (snap[b] ? [b] : []));
    if (resumed.length) {
      const per = Hkv * 2 * hd;
      for (const b of resumed) {
        const r = snap[b]!;
        for (let i = 0; i < nLayer; i++) {
          for (let j = 0; j < Hkv; j++) {
            for (let t = 0; t < r.len; t++) {
              const at = (i * r.len + t) * per + j * 2 * hd;
              this.store.put(i, b * Hkv + j, t, r.data, at, at + hd);
            }
          }
        }
      }
      // Feed each resumed row the rest of its prompt; a row's logits are kept after its last token.
      const rest = prompts.map((p, b) => (snap[b] ? p.slice(snap[b]!.len) : []));
      const longest = Math.max(...rest.map((r) => r.length));
      const tokens = new Int32Array(B).fill(this.padId);
      const active = new Uint8Array(B);
      for (let k = 0; k < longest; k++) {
        // A long prompt is many steps: let timers and messages (tool results, run/stop) through meanwhile.
        await yieldToEventLoop();
        for (let b = 0; b < B; b++) {
          active[b] = k < rest[b]!.length ? 1 : 0;
          if (active[b]) tokens[b] = rest[b]![k]!;
        }
        await this.step(tokens, active);
        const view = hostView(this.logitsTensor!);
        for (const b of resumed) if (k === rest[b]!.length - 1) logits.set(view.subarray(b * V, (b + 1) * V), b * V);
      }
    }
    this.logitsTensor?.dispose();
    this.logitsTensor = tf.tensor2d(logits, [B, V]);
  }

  /** Row b's cache (its first len tokens) for a later start(); see KVSnapshot. */
  snapshot(b: number): KVSnapshot {
    const { nEmbd: C, nHead: H, nKvHead: Hkv, nLayer } = this.model.config;
    const hd = C / H;
    const len = this.len[b]!;
    const per = Hkv * 2 * hd;
    const data = new Float32Array(nLayer * len * per);
    for (let i = 0; i < nLayer; i++) {
      for (let j = 0; j < Hkv; j++) {
        for (let t = 0; t < len; t++) {
          const at = (i * len + t) * per + j * 2 * hd;
          this.store!.get(i, b * Hkv + j, t, data, at, at + hd);
        }
      }
    }
    return { len, prev: this.prev[b]!, data };
  }

  async logits(): Promise<Float32Array> {
    return hostView(this.logitsTensor!);
  }

  /**
   * x·W + b through tfjs (XNNPACK), copied out into `into` (or a new array): the tensor's view dies with it.
   */
  private matmul(x: Float32Array, rows: number, w: tf.Tensor, b: tf.Tensor, act?: 'gelu', into?: Float32Array): Float32Array {
    const xt = tf.tensor2d(x, [rows, x.length / rows]);
    let y = tf.fused.matMul({ a: xt, b: w as P2, bias: b });
    if (act) {
      const g = geluRef(y); // no gradient here: the plain ops skip the custom-gradient bookkeeping
      y.dispose();
      y = g as P2;
    }
    const view = hostView(y);
    let out: Float32Array;
    if (into) {
      into.set(view);
      out = into;
    } else out = view.slice();
    tf.dispose([xt, y]);
    return out;
  }

  async step(tokens: Int32Array, active: Uint8Array): Promise<void> {
    const m = this.model;
    const { nHead: H, nKvHead: Hkv, nEmbd: C, nLayer, lnEps } = m.config;
    const hd = C / H;
    const Ckv = Hkv * hd;
    const B = this.B;
    const { x, lnBuf, host } = this;
    const wte = host.wte!, wpe = host.wpe, wprev = host.wprev;
    // Inactive rows are skipped: no new key, no position advance (their row of x is left stale, unread).
    const act = new Uint8Array(B);
    for (let b = 0; b < B; b++) {
      const pos = this.len[b]!;
      if (!active[b]) continue;
      if (pos >= this.cap) throw new Error(`HostKVDecoder: row ${b} is full (${pos} tokens, capacity ${this.cap})`);
      act[b] = 1;
      const t = tokens[b]! * C, p = pos * C, o = b * C;
      if (wpe) for (let c = 0; c < C; c++) x[o + c] = wte[t + c]! + wpe[p + c]!;
      else for (let c = 0; c < C; c++) x[o + c] = wte[t + c]!;
      if (wprev) {
        const q = this.prev[b]! * C;
        for (let c = 0; c < C; c++) x[o + c]! += wprev[q + c]!;
      }
      this.prev[b] = tokens[b]!;
    }
    // The new token of row b sits at position len[b] (rope: its query and key are rotated by that angle).
    const angles = m.config.positions === 'rope' ? ropeAngles(this.len, hd, ROPE_BASE) : null;
    const W = C + 2 * Ckv;
    for (let i = 0; i < nLayer; i++) {
      const w = blockParams(m, i);
      layerNormRows(x, host[`h.${i}.ln1.g`]!, host[`h.${i}.ln1.b`]!, lnBuf, B, C, lnEps);
      const store = this.store!;
      const qkv = this.matmul(lnBuf, B, w.wqkv, w.bqkv, undefined, store.q);
      if (angles) {
        for (let b = 0; b < B; b++) {
          if (!act[b]) continue;
          ropeInPlace(qkv, b * W, H, hd, angles.cos, angles.sin, b);
          ropeInPlace(qkv, b * W + C, Hkv, hd, angles.cos, angles.sin, b);
        }
      }
      // Append k, v at each active row's own position, then attend over that row's cache (one kernel call).
      store.attend(i, C + 2 * Ckv, this.len, act, B, H, Hkv, 1 / Math.sqrt(hd), { k: C, v: C + Ckv });
      const proj = this.matmul(store.out, B, w.wo, w.bo);
      for (let j = 0; j < x.length; j++) x[j]! += proj[j]!;
      layerNormRows(x, host[`h.${i}.ln2.g`]!, host[`h.${i}.ln2.b`]!, lnBuf, B, C, lnEps);
      const h1 = this.matmul(lnBuf, B, w.w1, w.b1, 'gelu');
      const mlp = this.matmul(h1, B, w.w2, w.b2);
      for (let j = 0; j < x.length; j++) x[j]! += mlp[j]!;
    }
    for (let b = 0; b < B; b++) this.len[b]! += act[b]!;
    layerNormRows(x, host['lnf.g']!, host['lnf.b']!, lnBuf, B, C, lnEps);
    this.logitsTensor?.dispose();
    this.logitsTensor = tf.tidy(() => tf.matMul(tf.tensor2d(lnBuf, [B, C]), this.wteT!) as P2);
  }

  dispose(): void {
    this.logitsTensor?.dispose();
    this.wteT?.dispose();
    this.logitsTensor = this.wteT = null;
    this.store = null;
  }
}
