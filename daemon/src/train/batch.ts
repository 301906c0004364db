/**
 * From token sequences + action masks (Trajectory.tokenIds / actionMask) to padded training batches.
 *
 * Alignment with GPT.tokenLogprobs: row b of the mask has T−1 entries and entry t says whether the prediction of
 * token t+1 counts, i.e. maskRow[t] = tokenMask[t+1]. The first token is never predicted.
 *
 * Right padding (pad id 0, mask 0): with a causal model, pad tokens after a sequence cannot change the logits of
 * the real tokens before them, so padding never changes a loss.
 *
 * Truncation to the model's blockSize: `left` (the default) drops tokens from the *start of the prompt* — the
 * model still sees the end of the question and every token it is trained on; if even the completion (everything
 * from the first counted token) does not fit in blockSize with one token of context, it is an error, because
 * cutting the completion would train on a trajectory that was never sampled. `error` refuses any overflow.
 */
import * as tf from '@tensorflow/tfjs-core';
import { buildMask, promptLength } from './losses';

export interface TokenSequence {
  tokenIds: ArrayLike<number>;
  actionMask: ArrayLike<number>;
}

export type TruncationMode = 'left' | 'error';

export interface PrepareOptions {
  /** The model's context length; sequences longer than this are truncated or refused. */
  blockSize: number;
  /** true: count action tokens only (M-DPO, SFT); false: count every non-prompt token (DPO ablation). */
  masked: boolean;
  truncation?: TruncationMode;
  /** When given, every id must be < vocabSize (an out-of-range id would be silently wrong in a one-hot embed). */
  vocabSize?: number;
}

export interface PreparedSequence {
  ids: number[];
  /** Per-token mask (not shifted), same length as ids. */
  tokenMask: number[];
  /** Prompt tokens kept (the prompt length after truncation). */
  promptLen: number;
  /** Tokens dropped from the start of the prompt. */
  truncated: number;
}

/** Validate one sequence, build its per-token mask and fit it into blockSize. */
export function prepareSequence(seq: TokenSequence, opts: PrepareOptions, where = 'sequence'): PreparedSequence {
  const { blockSize, masked } = opts;
  const mode = opts.truncation ?? 'left';
  if (!Number.isInteger(blockSize) || blockSize < 2) throw new Error(`blockSize must be an integer ≥ 2, got ${blockSize}`);
  const n = seq.tokenIds.length;
  if (seq.actionMask.length !== n) {
    throw new Error(`${where}: tokenIds has ${n} tokens but actionMask has ${seq.actionMask.length}; they must match`);
  }
  if (n < 2) throw new Error(`${where}: needs at least 2 tokens (one to predict from, one to predict), got ${n}`);
  const ids = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const id = seq.tokenIds[i];
    if (!Number.isInteger(id) || id < 0 || (opts.vocabSize !== undefined && id >= opts.vocabSize)) {
      const range = opts.vocabSize !== undefined ? ` < ${opts.vocabSize}` : '';
      throw new Error(`${where}: token id at ${i} is ${id}; ids must be integers ≥ 0${range}`);
    }
    ids[i] = id;
  }
  const promptLen = promptLength(seq.actionMask);
  const tokenMask = buildMask(seq.actionMask, promptLen, { masked });
  if (n <= blockSize) return { ids, tokenMask, promptLen, truncated: 0 };

  const drop = n - blockSize;
  if (mode === 'error') {
    throw new Error(`${where}: ${n} tokens exceed the model's blockSize ${blockSize}; ` +
      `raise the model's blockSize, lower limits.maxTrajectoryTokens, or allow left truncation of the prompt`);
  }
  // Dropping `drop` tokens keeps the first counted token predictable only if at least one context token is left
  // before it: drop ≤ promptLen − 1.
  if (drop > promptLen - 1) {
    throw new Error(`${where}: the completion has ${n - promptLen} tokens, more than blockSize − 1 = ${blockSize - 1}; ` +
      `raise the model's blockSize or lower limits.maxTrajectoryTokens (the completion itself is never cut)`);
  }
  return { ids: ids.slice(drop), tokenMask: tokenMask.slice(drop), promptLen: promptLen - drop, truncated: drop };
}

export interface HostBatch {
  /** Row-major int32 ids [batch, length], right-padded with padId. */
  ids: Int32Array;
  /** Row-major float32 mask [batch, length − 1], aligned to tokenLogprobs. */
  mask: Float32Array;
  batch: number;
  length: number;
  /** Counted tokens per row and in total. */
  rowTokens: number[];
  tokenCount: number;
}

/** Pad sequences on the right into one batch. `padTo` forces a length (≥ the longest sequence). */
/**
 * Batches are padded to a multiple of this many tokens (default 1). On GPU backends a coarser grid (e.g. 32) keeps
 * the number of distinct tensor shapes small, and with it tfjs's per-shape buffer pool.
 */
let padMultiple = 1;
export function setPadMultiple(m: number): void {
  if (!Number.isInteger(m) || m < 1) throw new Error(`pad multiple must be a positive integer, got ${m}`);
  padMultiple = m;
}

export function collate(seqs: PreparedSequence[], opts: { padId?: number; padTo?: number } = {}): HostBatch {
  if (seqs.length === 0) throw new Error('collate: empty batch');
  const padId = opts.padId ?? 0;
  let T = 0;
  for (const s of seqs) T = Math.max(T, s.ids.length);
  if (opts.padTo === undefined && padMultiple > 1) T = Math.ceil(T / padMultiple) * padMultiple;
  if (opts.padTo !== undefined) {
    if (opts.padTo < T) throw new Error(`collate: padTo ${opts.padTo} is shorter than the longest sequence (${T})`);
    T = opts.padTo;
  }
  const B = seqs.length;
  const ids = new Int32Array(B * T).fill(padId);
  const mask = new Float32Array(B * (T - 1));
  const rowTokens: number[] = [];
  let tokenCount = 0;
  seqs.forEach((s, b) => {
    ids.set(s.ids, b * T);
    let c = 0;
    for (let t = 0; t + 1 < s.ids.length; t++) {
      const m = s.tokenMask[t + 1];
      mask[b * (T - 1) + t] = m;
      c += m;
    }
    rowTokens.push(c);
    tokenCount += c;
  });
  return { ids, mask, batch: B, length: T, rowTokens, tokenCount };
}

/** Upload a host batch (caller disposes both tensors). */
export function batchToTensors(b: HostBatch): { ids: tf.Tensor2D; mask: tf.Tensor2D } {
  return {
    ids: tf.tensor2d(b.ids, [b.batch, b.length], 'int32'),
    mask: tf.tensor2d(b.mask, [b.batch, b.length - 1], 'float32'),
  };
}

/** Deterministic PRNG (mulberry32, shared with the data generator) so batch order is reproducible from a seed. */
import { mulberry32 } from '../data/rng';
export { mulberry32 };

export function shuffleInPlace<T>(xs: T[], rng: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/** Split into consecutive chunks of `size` (the last may be shorter). */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new Error(`chunk size must be an integer ≥ 1, got ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export interface BucketOptions {
  /** Shuffle before bucketing and shuffle the batch order (default true; needs rng). */
  shuffle?: boolean;
  rng?: () => number;
  /** Sort within windows of batchSize × bucketFactor items: a larger window cuts more padding, shuffles less. */
  bucketFactor?: number;
  /** Drop a last batch smaller than batchSize (default false). */
  dropLast?: boolean;
}

/**
 * Length bucketing: returns batches of item indices. Items are shuffled, then sorted by length inside windows of
 * batchSize × bucketFactor, cut into batches, and the batch order is shuffled — similar lengths share a batch
 * (less padding) while the order stays random across windows.
 */
export function bucketedBatches(lengths: readonly number[], batchSize: number, opts: BucketOptions = {}): number[][] {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be an integer ≥ 1, got ${batchSize}`);
  const shuffle = opts.shuffle ?? true;
  const rng = opts.rng ?? mulberry32(0);
  const factor = opts.bucketFactor ?? 16;
  const idx = lengths.map((_, i) => i);
  if (shuffle) shuffleInPlace(idx, rng);
  const batches: number[][] = [];
  for (const window of chunk(idx, batchSize * factor)) {
    window.sort((a, b) => lengths[a]! - lengths[b]! || a - b);
    batches.push(...chunk(window, batchSize));
  }
  const kept = opts.dropLast ? batches.filter((b) => b.length === batchSize) : batches;
  if (shuffle) shuffleInPlace(kept, rng);
  return kept;
}

/**
 * Micro-batches of one batch for gradient accumulation: sorted by length first so each micro-batch pads only to
 * its own longest member.
 */
export function microBatches(indices: readonly number[], lengths: readonly number[], microBatchSize: number): number[][] {
  const sorted = [...indices].sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  return chunk(sorted, microBatchSize);
}
