/**
 * A decoder-only transformer (GPT-2 shape, nanoGPT-style): token embeddings (plus, optionally, an embedding of
 * the previous token), learned position embeddings or rotary positions (rope.ts) on queries and keys, nLayer
 * pre-norm blocks (x += attn(ln1(x)); x += mlp(ln2(x))) with causal grouped-query attention (nKvHead key/value
 * heads shared by nHead query heads; nKvHead = nHead is plain multi-head), a final layer norm and an output
 * head tied to the token embedding. Batches are right-padded: attention is causal, so real tokens never see the padding that
 * follows them, and the caller masks the positions that are padding.
 *
 * The layers with hand-written gradients (linear, attention, embedding) live in layers.ts; this file only
 * wires them up.
 */
import * as tf from '@tensorflow/tfjs-core';
import { attentionBatched, attentionPerHead, causalBias, embed, gelu, layerNorm, linear, oneHotF32, tiedHead } from './layers';
import { isHostBackend } from './backends';
import { ROPE_BASE, ropeQkv, ropeTensors } from './rope';

export interface GPTConfig {
  /** Ids the model reads and predicts (ByteTokenizer: 256 bytes + the template's specials). */
  vocabSize: number;
  /** Longest sequence the model can see: rows of the learned position table. */
  blockSize: number;
  /** Number of transformer blocks. */
  nLayer: number;
  /** Attention (query) heads per block; nEmbd must be a multiple of it. */
  nHead: number;
  /**
   * Key/value heads per block (grouped-query attention): each serves nHead / nKvHead query heads. nHead gives
   * plain multi-head attention; fewer shrink the KV cache, whose reads bound the speed of sampling.
   */
  nKvHead: number;
  /** Width of the residual stream. */
  nEmbd: number;
  /** MLP hidden width = mlpRatio × nEmbd (4, as in GPT-2). */
  mlpRatio: number;
  /** Layer-norm epsilon (1e-5, as in GPT-2). */
  lnEps: number;
  /** Std of the normal weight init (0.02); residual output projections get 0.02/√(2·nLayer) (GPT-2). */
  initStd: number;
  /**
   * Positions: 'rope' rotates queries and keys (copying digits is a relative-position skill; see rope.ts for
   * what was measured); 'learned' adds a GPT-2 position table (checkpoints written before rope existed).
   */
  positions: 'learned' | 'rope';
  /**
   * Add an embedding of the previous token to each position's input (a "token shift", as in RWKV). Every
   * position then knows which token came before it, so one attention layer can copy ("after the 3 I just
   * wrote came a 2 in the question"), instead of the two-layer induction circuit a model must first grow.
   */
  prevToken: boolean;
}


export type PresetName = 'tiny' | 'small' | 'base';

export const PRESETS: Record<PresetName, Omit<GPTConfig, 'vocabSize'>> = {
  /** ~50k parameters: unit tests (grouped-query attention, 2 query heads per KV head, so tests cover it). */
  tiny: { blockSize: 128, nLayer: 3, nHead: 2, nKvHead: 1, nEmbd: 32, mlpRatio: 4, lnEps: 1e-5, initStd: 0.02, positions: 'rope', prevToken: true },
  /** ~0.9M parameters: trains and samples on a CPU with the wasm backend; one KV head (multi-query). */
  small: { blockSize: 1024, nLayer: 4, nHead: 4, nKvHead: 1, nEmbd: 128, mlpRatio: 4, lnEps: 1e-5, initStd: 0.02, positions: 'rope', prevToken: true },
  /** ~25M parameters: for a GPU (webgpu / tfjs-node-gpu); 4 query heads per KV head. */
  base: { blockSize: 2048, nLayer: 8, nHead: 8, nKvHead: 2, nEmbd: 512, mlpRatio: 4, lnEps: 1e-5, initStd: 0.02, positions: 'rope', prevToken: true },
};

/** The full config of a preset for a tokenizer's vocabulary size. */
export function presetConfig(name: PresetName, vocabSize: number): GPTConfig {
  const p = PRESETS[name];
  if (!p) throw new Error(`unknown model preset '${String(name)}': use one of ${Object.keys(PRESETS).join(', ')}`);
  return { ...p, vocabSize };
}

/** Width of the keys (and of the values) of one position: nKvHead · head size. */
export function kvWidth(c: GPTConfig): number {
  return c.nKvHead * (c.nEmbd / c.nHead);
}

/** Throws an error naming the bad field when a config is unusable. */
export function validateConfig(c: GPTConfig): void {
  for (const k of ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nKvHead', 'nEmbd', 'mlpRatio'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new Error(`GPT config: ${k} must be a positive integer, got ${String(c[k])}`);
  }
  if (c.nEmbd % c.nHead !== 0) throw new Error(`GPT config: nEmbd (${c.nEmbd}) must be a multiple of nHead (${c.nHead})`);
  if (c.nHead % c.nKvHead !== 0) throw new Error(`GPT config: nHead (${c.nHead}) must be a multiple of nKvHead (${c.nKvHead})`);
  if (!(c.lnEps > 0)) throw new Error(`GPT config: lnEps must be > 0, got ${String(c.lnEps)}`);
  if (!(c.initStd > 0)) throw new Error(`GPT config: initStd must be > 0, got ${String(c.initStd)}`);
  if (c.positions !== 'learned' && c.positions !== 'rope') throw new Error(`GPT config: positions must be 'learned' or 'rope', got ${String(c.positions)}`);
  if (typeof c.prevToken !== 'boolean') throw new Error(`GPT config: prevToken must be true or false, got ${String(c.prevToken)}`);
  if (c.positions === 'rope' && (c.nEmbd / c.nHead) % 2 !== 0) throw new Error(`GPT config: rope needs an even head size, got nEmbd/nHead = ${c.nEmbd / c.nHead}`);
}

/** How attention is computed: per-(sequence, head) 2-D matMuls (fast on wasm/cpu) or batched (GPU, short sequences). */
export type AttentionImpl = 'auto' | 'perHead' | 'batched';

/** Internal forward options used by the sampler. */
export interface TrunkOptions {
  /** Called with each block's qkv activations [B*T, C + 2·kvWidth] (q | k | v); they die with the caller's tidy. */
  onQkv?: (layer: number, qkv: tf.Tensor2D) => void;
}

let instanceCount = 0;

export class GPT {
  readonly config: GPTConfig;
  /** Attention implementation; 'auto' picks perHead on wasm/cpu for sequences of 64+ tokens, batched otherwise. */
  attention: AttentionImpl = 'auto';
  private readonly names: string[] = [];
  private readonly vars = new Map<string, tf.Variable>();
  private readonly biasCache = new Map<number, tf.Tensor2D>();
  private readonly ropeCache = new Map<number, { cos: tf.Tensor3D; sin: tf.Tensor3D }>();
  private disposed = false;

  constructor(config: GPTConfig, seed = 0) {
    validateConfig(config);
    this.config = { ...config };
    const { vocabSize: V, blockSize, nLayer, nEmbd: C, mlpRatio } = this.config;
    const qkvWidth = C + 2 * kvWidth(this.config);
    const prefix = `gpt${instanceCount++}/`;
    let k = 0;
    const add = (name: string, shape: number[], init: 'normal' | 'zeros' | 'ones', std = this.config.initStd) => {
      const value = tf.tidy(() =>
        init === 'zeros' ? tf.zeros(shape) : init === 'ones' ? tf.ones(shape) : tf.randomNormal(shape, 0, std, 'float32', seed * 1000 + k));
      k++;
      this.names.push(name);
      this.vars.set(name, tf.variable(value, true, prefix + name));
      value.dispose();
    };
    const residStd = this.config.initStd / Math.sqrt(2 * nLayer);
    add('wte', [V, C], 'normal');
    if (this.config.positions === 'learned') add('wpe', [blockSize, C], 'normal');
    if (this.config.prevToken) add('wprev', [V, C], 'normal');
    for (let i = 0; i < nLayer; i++) {
      add(`h.${i}.ln1.g`, [C], 'ones');
      add(`h.${i}.ln1.b`, [C], 'zeros');
      add(`h.${i}.attn.wqkv`, [C, qkvWidth], 'normal');
      add(`h.${i}.attn.bqkv`, [qkvWidth], 'zeros');
      add(`h.${i}.attn.wo`, [C, C], 'normal', residStd);
      add(`h.${i}.attn.bo`, [C], 'zeros');
      add(`h.${i}.ln2.g`, [C], 'ones');
      add(`h.${i}.ln2.b`, [C], 'zeros');
      add(`h.${i}.mlp.w1`, [C, mlpRatio * C], 'normal');
      add(`h.${i}.mlp.b1`, [mlpRatio * C], 'zeros');
      add(`h.${i}.mlp.w2`, [mlpRatio * C, C], 'normal', residStd);
      add(`h.${i}.mlp.b2`, [C], 'zeros');
    }
    add('lnf.g', [C], 'ones');
    add('lnf.b', [C], 'zeros');
  }

  /** Trainable variables in a stable order (the order of variableNames()). */
  variables(): tf.Variable[] {
    return this.names.map((n) => this.vars.get(n)!);
  }

  /** Stable short names ('wte', 'h.0.attn.wqkv', ...), aligned with variables(); checkpoints use them. */
  variableNames(): string[] {
    return [...this.names];
  }

  /** A variable by its short name. */
  param(name: string): tf.Variable {
    const v = this.vars.get(name);
    if (!v) throw new Error(`GPT has no parameter '${name}'`);
    return v;
  }

  /** Number of scalar parameters. */
  paramCount(): number {
    return this.variables().reduce((s, v) => s + v.size, 0);
  }

  /** The causal mask for length T, cached across calls. */
  causalBias(T: number): tf.Tensor2D {
    let b = this.biasCache.get(T);
    if (!b) {
      b = tf.keep(causalBias(T));
      this.biasCache.set(T, b);
    }
    return b;
  }

  /** RoPE cos/sin [T, 1, hd/2] for positions 0..T-1, cached across calls. */
  ropeTable(T: number): { cos: tf.Tensor3D; sin: tf.Tensor3D } {
    let r = this.ropeCache.get(T);
    if (!r) {
      const t = ropeTensors(Array.from({ length: T }, (_, i) => i), this.config.nEmbd / this.config.nHead, ROPE_BASE);
      r = { cos: tf.keep(t.cos), sin: tf.keep(t.sin) };
      this.ropeCache.set(T, r);
    }
    return r;
  }

  private checkIds(ids: tf.Tensor, what: string): [number, number] {
    if (this.disposed) throw new Error('GPT: model was disposed');
    if (ids.rank !== 2) throw new Error(`GPT.${what}: ids must be [batch, time], got shape [${ids.shape.join(', ')}]`);
    if (ids.dtype !== 'int32') throw new Error(`GPT.${what}: ids must be int32, got ${ids.dtype}`);
    const [B, T] = ids.shape as [number, number];
    if (T > this.config.blockSize) throw new Error(`GPT.${what}: sequence length ${T} exceeds blockSize ${this.config.blockSize}`);
    if (B === 0 || T === 0) throw new Error(`GPT.${what}: empty batch [${B}, ${T}]`);
    if (isHostBackend()) {
      // Cheap on CPU-memory backends; an out-of-range id would otherwise read garbage rows.
      const v = ids.dataSync();
      for (let i = 0; i < v.length; i++) {
        if (v[i]! < 0 || v[i]! >= this.config.vocabSize) throw new Error(`GPT.${what}: token id ${v[i]} is outside the vocabulary [0, ${this.config.vocabSize})`);
      }
    }
    return [B, T];
  }

  /** Final hidden states [B*T, C] (after the last layer norm). */
  trunk(ids: tf.Tensor2D, opts: TrunkOptions = {}): tf.Tensor2D {
    const [B, T] = this.checkIds(ids, 'forward');
    const { nLayer, nHead, nKvHead, lnEps } = this.config;
    const p = (n: string) => this.vars.get(n)! as tf.Tensor as tf.Tensor2D;
    const v1 = (n: string) => this.vars.get(n)! as tf.Tensor as tf.Tensor1D;
    // Per-head 2-D matMuls win on wasm/cpu once the [T, T] products outweigh ~8 tfjs ops per head (T ≳ 64).
    const perHead = this.attention === 'perHead' || (this.attention === 'auto' && isHostBackend() && T >= 64);
    const bias = this.causalBias(T);
    return tf.tidy(() => {
      const rope = this.config.positions === 'rope';
      let x = embed(p('wte'), tf.reshape(ids, [B * T]));
      if (this.config.prevToken) {
        // Row b, position t gets the embedding of ids[b, t-1]; position 0 gets that of id 0 (NUL, never in text).
        const prev = tf.concat([tf.zeros([B, 1], 'int32'), tf.slice(ids, [0, 0], [B, T - 1])], 1);
        x = tf.add(x, embed(p('wprev'), tf.reshape(prev, [B * T]))) as tf.Tensor2D;
      }
      if (!rope) {
        const positions = tf.reshape(tf.tile(tf.range(0, T, 1, 'int32').expandDims(0), [B, 1]), [B * T]) as tf.Tensor1D;
        x = tf.add(x, embed(p('wpe'), positions)) as tf.Tensor2D;
      }
      // Every row starts at position 0 (batches are right-padded): the [T] table tiled over the batch.
      const table = rope ? this.ropeTable(T) : null;
      const cos = table ? (B === 1 ? table.cos : tf.tile(table.cos, [B, 1, 1]) as tf.Tensor3D) : null;
      const sin = table ? (B === 1 ? table.sin : tf.tile(table.sin, [B, 1, 1]) as tf.Tensor3D) : null;
      for (let i = 0; i < nLayer; i++) {
        const h = layerNorm(x, v1(`h.${i}.ln1.g`), v1(`h.${i}.ln1.b`), lnEps);
        let qkv = linear(h, p(`h.${i}.attn.wqkv`), v1(`h.${i}.attn.bqkv`));
        if (cos && sin) qkv = ropeQkv(qkv, cos, sin, nHead, nKvHead);
        opts.onQkv?.(i, qkv);
        const a = perHead ? attentionPerHead(qkv, B, T, nHead, nKvHead, bias) : attentionBatched(qkv, B, T, nHead, nKvHead, bias);
        x = tf.add(x, linear(a, p(`h.${i}.attn.wo`), v1(`h.${i}.attn.bo`)));
        const h2 = layerNorm(x, v1(`h.${i}.ln2.g`), v1(`h.${i}.ln2.b`), lnEps);
        const m = linear(gelu(linear(h2, p(`h.${i}.mlp.w1`), v1(`h.${i}.mlp.b1`))) as tf.Tensor2D, p(`h.${i}.mlp.w2`), v1(`h.${i}.mlp.b2`));
        x = tf.add(x, m);
      }
      return layerNorm(x, v1('lnf.g'), v1('lnf.b'), lnEps);
    });
  }

  /**
   * Logits [B, T, V] for ids [B, T] (int32); with targets [B, T] (int32) also the mean next-token
   * cross-entropy over positions whose target is ≥ 0 (use -1 to leave a position out).
   */
  forward(ids: tf.Tensor2D, targets?: tf.Tensor2D): { logits: tf.Tensor3D; loss?: tf.Scalar } {
    const [B, T] = ids.shape;
    if (targets && (targets.shape[0] !== B || targets.shape[1] !== T || targets.dtype !== 'int32')) {
      throw new Error(`GPT.forward: targets must be int32 [${B}, ${T}], got ${targets.dtype} [${targets.shape.join(', ')}]`);
    }
    return tf.tidy(() => {
      const logits2d = tiedHead(this.trunk(ids), this.param('wte') as tf.Tensor as tf.Tensor2D);
      const logits = tf.reshape(logits2d, [B, T, this.config.vocabSize]) as tf.Tensor3D;
      if (!targets) return { logits };
      const lp = targetLogprobs(logits2d, tf.reshape(targets, [B * T]) as tf.Tensor1D, this.config.vocabSize);
      const count = tf.maximum(tf.sum(tf.cast(tf.greaterEqual(targets, 0), 'float32')), 1);
      const loss = tf.div(tf.neg(tf.sum(lp)), count) as tf.Scalar;
      return { logits, loss };
    });
  }

  /**
   * Per-token log-probabilities [B, T-1]: entry [b, t] = log p(ids[b, t+1] | ids[b, 0..t]). Differentiable
   * with respect to the variables (the losses of train/ are built on it).
   */
  tokenLogprobs(ids: tf.Tensor2D): tf.Tensor2D {
    const [B, T] = ids.shape;
    if (T < 2) throw new Error(`GPT.tokenLogprobs: need at least 2 tokens per row, got ${T}`);
    return tf.tidy(() => {
      const logits2d = tiedHead(this.trunk(ids), this.param('wte') as tf.Tensor as tf.Tensor2D);
      const next = tf.concat([tf.slice(ids, [0, 1], [B, T - 1]), tf.fill([B, 1], -1, 'int32')], 1);
      const lp = targetLogprobs(logits2d, tf.reshape(next, [B * T]) as tf.Tensor1D, this.config.vocabSize);
      return tf.slice(tf.reshape(lp, [B, T]), [0, 0], [B, T - 1]) as tf.Tensor2D;
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.vars.values()) v.dispose();
    for (const b of this.biasCache.values()) b.dispose();
    this.biasCache.clear();
    for (const r of this.ropeCache.values()) tf.dispose([r.cos, r.sin]);
    this.ropeCache.clear();
  }
}

/** log softmax(logits)[n, target[n]] for each row n, 0 where target is out of range (e.g. -1). */
export function targetLogprobs(logits2d: tf.Tensor2D, targets: tf.Tensor1D, V: number): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.mul(tf.logSoftmax(logits2d), oneHotF32(targets, V)), -1) as tf.Tensor1D);
}
