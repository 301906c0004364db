/**
 * The training loop: SFT / RAFT (NLL on action tokens) and preference learning (M-DPO, its unmasked single-turn
 * DPO ablation, M-KTO), with AdamW, warm-up + decay, global-norm clipping and gradient accumulation.
 *
 * The trainer does no I/O: it reports every optimiser step through `onStep` (metrics read back with
 * `await data()`, one read per step, since `dataSync()` fails on webgpu) and stops at the next step boundary
 * when its AbortSignal fires.
 *
 * Gradient accumulation is exact: each micro-batch loss is normalised by the *full* batch's pair (or token)
 * count, so the summed micro-batch gradients equal the full-batch gradient.
 *
 * Reference log-probs are computed once per pair before the first step and cached (the reference never
 * changes during a call). Passing the policy itself as the reference is valid: the cache then freezes the policy
 * as it was when the call started.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  maskedSequenceLogps, sftLoss, mdpoLoss, mktoLoss, promptLength, type LossOutput, type PreferenceLogps,
} from './losses';
import {
  prepareSequence, collate, batchToTensors, bucketedBatches, microBatches, mulberry32,
  type TokenSequence, type PreparedSequence, type TruncationMode,
} from './batch';
import { AdamW, lrAt, clipByGlobalNorm, type ScheduleKind } from './optim';
import { yieldToEventLoop } from '../util/yieldLoop';

/** What the trainer needs from a model (GPT implements it). */
export interface TrainableModel {
  config: { blockSize: number; vocabSize?: number };
  variables(): tf.Variable[];
  /** Stable parameter names aligned with variables() (GPT has them); the optimiser state is keyed by them. */
  variableNames?(): string[];
  /** [B, T] ids → [B, T−1] log p(ids[:, t+1] | ids[:, ..t]), differentiable w.r.t. variables(). */
  tokenLogprobs(ids: tf.Tensor2D): tf.Tensor2D;
}

export type TrainAlgorithm = 'sft' | 'raft' | 'mdpo' | 'dpo_unmasked' | 'mkto';

export interface TrainerOptions {
  algorithm: TrainAlgorithm;
  lr: number;
  /** Linear warm-up steps (default 0). */
  warmupSteps?: number;
  /** Steps the schedule spans; default: the steps of the current train call (plus steps already taken). */
  totalSteps?: number;
  schedule?: ScheduleKind;
  /** Decay floor as a fraction of lr (default 0). */
  minLrRatio?: number;
  /** Global gradient-norm clip (default 1; Infinity = off). */
  gradClip?: number;
  weightDecay?: number;
  /** Sequences (SFT) or pairs (preference) per optimiser step. */
  batchSize: number;
  /** Sequences / pairs per forward pass (default batchSize); smaller = gradient accumulation, less memory. */
  microBatchSize?: number;
  beta?: number;
  labelSmoothing?: number;
  nllWeight?: number;
  /** Seed of the batch order. */
  seed?: number;
  truncation?: TruncationMode;
  adam?: { beta1?: number; beta2?: number; eps?: number };
}

export interface StepEvent {
  /** Optimiser steps taken by this trainer so far (1 after the first step). */
  step: number;
  /** Steps planned for this call (counting from this trainer's first step). */
  totalSteps: number;
  epoch: number;
  /** loss, grad_norm (before clipping), lr, and per algorithm rewards/*, logps/*, nll, kl, tokens. */
  metrics: Record<string, number>;
}

export interface RunOptions {
  onStep?: (e: StepEvent) => void | Promise<void>;
  signal?: AbortSignal;
}

export interface TrainResult {
  /** Steps taken in this call. */
  steps: number;
  aborted: boolean;
  /** Metrics of the last step (null when no step ran). */
  last: Record<string, number> | null;
  /** Steps whose gradient was not finite and whose update was skipped. */
  skippedSteps: number;
}

export interface PreferencePair {
  chosen: TokenSequence;
  rejected: TokenSequence;
}

const PREFERENCE_ALGOS: readonly TrainAlgorithm[] = ['mdpo', 'dpo_unmasked', 'mkto'];
const ALGOS: readonly TrainAlgorithm[] = ['sft', 'raft', ...PREFERENCE_ALGOS];

interface Resolved {
  algorithm: TrainAlgorithm;
  lr: number;
  warmupSteps: number;
  totalSteps?: number;
  schedule: ScheduleKind;
  minLrRatio: number;
  gradClip: number;
  batchSize: number;
  microBatchSize: number;
  beta: number;
  labelSmoothing: number;
  nllWeight: number;
  seed: number;
  truncation: TruncationMode;
}

function resolve(o: TrainerOptions): Resolved {
  const bad = (what: string, v: unknown, rule: string) => new Error(`Trainer: ${what} ${rule}, got ${String(v)}`);
  if (!ALGOS.includes(o.algorithm)) throw bad('algorithm', o.algorithm, `must be one of ${ALGOS.join(', ')}`);
  if (!(o.lr >= 0) || !Number.isFinite(o.lr)) throw bad('lr', o.lr, 'must be a finite number ≥ 0');
  const int = (name: string, v: number | undefined, min: number) => {
    if (v !== undefined && (!Number.isInteger(v) || v < min)) throw bad(name, v, `must be an integer ≥ ${min}`);
  };
  int('batchSize', o.batchSize, 1);
  if (o.batchSize === undefined) throw bad('batchSize', o.batchSize, 'is required');
  int('microBatchSize', o.microBatchSize, 1);
  int('warmupSteps', o.warmupSteps, 0);
  int('totalSteps', o.totalSteps, 1);
  const r: Resolved = {
    algorithm: o.algorithm,
    lr: o.lr,
    warmupSteps: o.warmupSteps ?? 0,
    totalSteps: o.totalSteps,
    schedule: o.schedule ?? 'cosine',
    minLrRatio: o.minLrRatio ?? 0,
    gradClip: o.gradClip ?? 1,
    batchSize: o.batchSize,
    microBatchSize: Math.min(o.microBatchSize ?? o.batchSize, o.batchSize),
    beta: o.beta ?? 0.1,
    labelSmoothing: o.labelSmoothing ?? 0,
    nllWeight: o.nllWeight ?? 0,
    seed: o.seed ?? 0,
    truncation: o.truncation ?? 'left',
  };
  if (!(r.gradClip > 0)) throw bad('gradClip', r.gradClip, 'must be > 0 (Infinity turns clipping off)');
  if (!(r.beta > 0)) throw bad('beta', r.beta, 'must be > 0');
  if (!(r.labelSmoothing >= 0 && r.labelSmoothing < 0.5)) throw bad('labelSmoothing', r.labelSmoothing, 'must be in [0, 0.5)');
  if (r.labelSmoothing > 0 && r.algorithm === 'mkto') throw bad('labelSmoothing', r.labelSmoothing, 'applies to M-DPO only; use 0 with mkto');
  if (!(r.nllWeight >= 0)) throw bad('nllWeight', r.nllWeight, 'must be ≥ 0');
  if (!['cosine', 'linear', 'constant'].includes(r.schedule)) throw bad('schedule', r.schedule, 'must be cosine, linear or constant');
  return r;
}

/** Prepare sequences for a model (validation + truncation), naming the culprit in errors. */
function prepareAll(seqs: TokenSequence[], model: TrainableModel, masked: boolean, truncation: TruncationMode, label: (i: number) => string) {
  return seqs.map((s, i) => prepareSequence(s, { blockSize: model.config.blockSize, masked, truncation, vocabSize: model.config.vocabSize }, label(i)));
}

/** Sequence log-probs of prepared sequences, no gradient, micro-batched by length. */
async function sequenceLogpsPrepared(model: TrainableModel, prepared: PreparedSequence[], microBatchSize: number, signal?: AbortSignal): Promise<Float64Array> {
  const out = new Float64Array(prepared.length);
  const lengths = prepared.map((p) => p.ids.length);
  for (const mb of microBatches(prepared.map((_, i) => i), lengths, microBatchSize)) {
    if (signal?.aborted) throw new AbortedError();
    const hb = collate(mb.map((i) => prepared[i]!));
    const { ids, mask } = batchToTensors(hb);
    const s = tf.tidy(() => maskedSequenceLogps(model.tokenLogprobs(ids), mask));
    const vals = await s.data();
    tf.dispose([ids, mask, s]);
    mb.forEach((i, k) => { out[i] = vals[k]!; });
  }
  return out;
}

class AbortedError extends Error {
  constructor() { super('aborted'); }
}

export interface LogpOptions {
  /** Count action tokens only (default true); false counts every non-prompt token. */
  masked?: boolean;
  microBatchSize?: number;
  truncation?: TruncationMode;
}

/** Sum of log-probs of the counted tokens of each sequence (no gradient), e.g. for implicit rewards β·(π − ref). */
export async function computeSequenceLogps(model: TrainableModel, seqs: TokenSequence[], opts: LogpOptions = {}): Promise<number[]> {
  const prepared = prepareAll(seqs, model, opts.masked ?? true, opts.truncation ?? 'left', (i) => `sequence ${i}`);
  return Array.from(await sequenceLogpsPrepared(model, prepared, opts.microBatchSize ?? 8));
}

/**
 * Per-token log-probs (no gradient): entry t of sequence i is log p(token t+1 | ..t) for the original sequence,
 * length tokenIds.length − 1; predictions of tokens cut by left truncation are NaN. For per-turn views: sum the
 * entries of one turn's action tokens.
 */
export async function computeTokenLogps(model: TrainableModel, seqs: TokenSequence[], opts: Omit<LogpOptions, 'masked'> = {}): Promise<number[][]> {
  const prepared = prepareAll(seqs, model, true, opts.truncation ?? 'left', (i) => `sequence ${i}`);
  const result: number[][] = seqs.map((s) => new Array<number>(s.tokenIds.length - 1).fill(NaN));
  const lengths = prepared.map((p) => p.ids.length);
  for (const mb of microBatches(prepared.map((_, i) => i), lengths, opts.microBatchSize ?? 8)) {
    const hb = collate(mb.map((i) => prepared[i]!));
    const ids = tf.tensor2d(hb.ids, [hb.batch, hb.length], 'int32');
    const lp = tf.tidy(() => model.tokenLogprobs(ids));
    const vals = await lp.data();
    tf.dispose([ids, lp]);
    mb.forEach((i, k) => {
      const p = prepared[i]!;
      for (let t = 0; t + 1 < p.ids.length; t++) result[i]![t + p.truncated] = vals[k * (hb.length - 1) + t]!;
    });
  }
  return result;
}

/** Weighted running sums of scalar metrics across micro-batches (kept as tensors until one read per step). */
class MetricAccumulator {
  private sums = new Map<string, tf.Scalar>();
  add(metrics: Record<string, tf.Scalar>, weight: number, sumKeys: ReadonlySet<string>): void {
    for (const [k, t] of Object.entries(metrics)) {
      const w = sumKeys.has(k) ? 1 : weight;
      const prev = this.sums.get(k);
      const next = tf.tidy(() => (prev ? tf.add(prev, tf.mul(t, w)) : tf.mul(t, w))) as tf.Scalar;
      prev?.dispose();
      this.sums.set(k, next);
    }
  }
  /** Reads every metric with one `await data()`, then disposes the sums. */
  async read(extra: Record<string, tf.Scalar>): Promise<Record<string, number>> {
    const entries = [...this.sums.entries(), ...Object.entries(extra)];
    const stacked = tf.stack(entries.map(([, t]) => t));
    const vals = await stacked.data();
    stacked.dispose();
    for (const t of this.sums.values()) t.dispose();
    this.sums.clear();
    return Object.fromEntries(entries.map(([k], i) => [k, vals[i]!]));
  }
  dispose(): void {
    for (const t of this.sums.values()) t.dispose();
    this.sums.clear();
  }
}

/** A micro-batch's loss closure: returns the loss and (kept) metric tensors for accumulation. */
type MicroLoss = () => LossOutput;

export class Trainer {
  readonly model: TrainableModel;
  readonly options: Readonly<Resolved>;
  readonly optimizer: AdamW;
  private readonly vars: tf.Variable[];
  private readonly rng: () => number;

  constructor(model: TrainableModel, options: TrainerOptions) {
    this.model = model;
    this.options = resolve(options);
    if (!(Number.isInteger(model.config?.blockSize) && model.config.blockSize >= 2)) {
      throw new Error('Trainer: model.config.blockSize must be an integer ≥ 2');
    }
    const all = model.variables();
    const names = model.variableNames?.() ?? all.map((v) => v.name);
    if (names.length !== all.length) throw new Error(`Trainer: model has ${all.length} variables but ${names.length} names`);
    const keep = all.map((v) => v.trainable);
    this.vars = all.filter((_, i) => keep[i]);
    if (this.vars.length === 0) throw new Error('Trainer: the model has no trainable variables');
    this.optimizer = new AdamW(this.vars, { ...options.adam, weightDecay: options.weightDecay ?? 0, names: names.filter((_, i) => keep[i]) });
    this.rng = mulberry32(this.options.seed);
  }

  /** Optimiser steps taken so far (also restored with the optimiser state). */
  get step(): number {
    return this.optimizer.step;
  }

  /** Learning rate that step `step` (0-based) uses, given the planned total. */
  lrAt(step: number, totalSteps: number): number {
    const o = this.options;
    return lrAt(step, { lr: o.lr, warmupSteps: o.warmupSteps, totalSteps: o.totalSteps ?? totalSteps, schedule: o.schedule, minLrRatio: o.minLrRatio });
  }

  /**
   * SFT / RAFT: mean NLL over action tokens of `sequences` (RAFT passes the kept correct trajectories).
   * Runs `steps` optimiser steps (cycling through shuffled, length-bucketed epochs) or, without `steps`,
   * `epochs` passes (default 1).
   */
  async trainSft(sequences: TokenSequence[], opts: RunOptions & { steps?: number; epochs?: number } = {}): Promise<TrainResult> {
    if (sequences.length === 0) throw new Error('trainSft: no sequences to train on');
    const o = this.options;
    const prepared = prepareAll(sequences, this.model, true, o.truncation, (i) => `sequence ${i}`);
    const lengths = prepared.map((p) => p.ids.length);
    const perEpoch = Math.ceil(sequences.length / o.batchSize);
    const steps = opts.steps ?? Math.ceil((opts.epochs ?? 1) * perEpoch);
    if (!Number.isInteger(steps) || steps < 0) throw new Error(`trainSft: steps must be an integer ≥ 0, got ${steps}`);
    const plan: Array<{ batch: number[]; epoch: number }> = [];
    for (let epoch = 0; plan.length < steps; epoch++) {
      for (const batch of bucketedBatches(lengths, o.batchSize, { rng: this.rng })) {
        if (plan.length < steps) plan.push({ batch, epoch });
      }
    }
    const sumKeys = new Set(['tokens']);
    return this.runSteps(plan, opts, (batch) => {
      const tokenNormalizer = Math.max(1, batch.reduce((s, i) => s + collateTokens(prepared[i]!), 0));
      return microBatches(batch, lengths, o.microBatchSize).map((mb) => ({
        weight: mb.length / batch.length,
        sumKeys,
        loss: () => {
          const hb = collate(mb.map((i) => prepared[i]!));
          const { ids, mask } = batchToTensors(hb);
          const out = sftLoss(this.model.tokenLogprobs(ids), mask, { tokenNormalizer });
          const { nll: _nll, ...rest } = out.metrics; // per-micro-batch mean: the summed `loss` is the batch NLL
          return { loss: out.loss, metrics: rest };
        },
      }));
    });
  }

  /**
   * M-DPO / dpo_unmasked / M-KTO over preference pairs against a fixed reference model.
   * Reference log-probs of every pair (and, for M-KTO, of the mismatched KL samples) are computed once before
   * the first step. `epochs` may be fractional (e.g. 0.5 trains on half the batches).
   */
  async trainPreference(pairs: PreferencePair[], reference: TrainableModel, opts: RunOptions & { epochs?: number } = {}): Promise<TrainResult> {
    const o = this.options;
    if (!PREFERENCE_ALGOS.includes(o.algorithm)) {
      throw new Error(`trainPreference: algorithm '${o.algorithm}' is not a preference algorithm; use trainSft for sft/raft`);
    }
    if (pairs.length === 0) throw new Error('trainPreference: no pairs to train on');
    if (reference.config.blockSize < this.model.config.blockSize) {
      throw new Error(`trainPreference: the reference's blockSize ${reference.config.blockSize} is smaller than the policy's ${this.model.config.blockSize}`);
    }
    const masked = o.algorithm !== 'dpo_unmasked';
    const chosen = prepareAll(pairs.map((p) => p.chosen), this.model, masked, o.truncation, (i) => `pair ${i} chosen`);
    const rejected = prepareAll(pairs.map((p) => p.rejected), this.model, masked, o.truncation, (i) => `pair ${i} rejected`);
    const kl = o.algorithm === 'mkto' ? prepareAll(mismatchedSamples(pairs), this.model, masked, o.truncation, (i) => `KL sample ${i}`) : [];
    const lengths = pairs.map((_, i) => Math.max(chosen[i]!.ids.length, rejected[i]!.ids.length));

    // Reference log-probs, once per pair.
    let refC: Float64Array, refR: Float64Array, refKl: Float64Array;
    try {
      const mbs = 2 * o.microBatchSize;
      refC = await sequenceLogpsPrepared(reference, chosen, mbs, opts.signal);
      refR = await sequenceLogpsPrepared(reference, rejected, mbs, opts.signal);
      refKl = await sequenceLogpsPrepared(reference, kl, mbs, opts.signal);
    } catch (e) {
      if (e instanceof AbortedError) return { steps: 0, aborted: true, last: null, skippedSteps: 0 };
      throw e;
    }

    const epochs = opts.epochs ?? 1;
    if (!(epochs >= 0) || !Number.isFinite(epochs)) throw new Error(`trainPreference: epochs must be a finite number ≥ 0, got ${epochs}`);
    const perEpoch = Math.ceil(pairs.length / o.batchSize);
    const steps = Math.ceil(epochs * perEpoch);
    const plan: Array<{ batch: number[]; epoch: number }> = [];
    for (let epoch = 0; plan.length < steps; epoch++) {
      for (const batch of bucketedBatches(lengths, o.batchSize, { rng: this.rng })) if (plan.length < steps) plan.push({ batch, epoch });
    }

    const sumKeys = new Set(['nll']);
    return this.runSteps(plan, opts, async (batch) => {
      // M-KTO's reference point from this batch's mismatched samples under the current policy (no gradient).
      let z = 0;
      if (o.algorithm === 'mkto' && kl.length > 0) {
        const pol = await sequenceLogpsPrepared(this.model, batch.map((i) => kl[i]!), 2 * o.microBatchSize);
        let s = 0;
        batch.forEach((i, k) => { s += pol[k]! - refKl[i]!; });
        z = Math.max(0, s / batch.length);
      }
      const chosenTokens = batch.reduce((s, i) => s + collateTokens(chosen[i]!), 0);
      if (o.nllWeight > 0 && chosenTokens === 0) {
        throw new Error('trainPreference: nllWeight > 0 but the chosen trajectories of a batch have no action tokens');
      }
      return microBatches(batch, lengths, o.microBatchSize).map((mb) => ({
        weight: mb.length / batch.length,
        sumKeys,
        loss: () => {
          const hb = collate([...mb.map((i) => chosen[i]!), ...mb.map((i) => rejected[i]!)]);
          const { ids, mask } = batchToTensors(hb);
          const seq = maskedSequenceLogps(this.model.tokenLogprobs(ids), mask);
          const [pc, pr] = tf.split(seq, 2) as [tf.Tensor1D, tf.Tensor1D];
          const l: PreferenceLogps = {
            policyChosen: pc,
            policyRejected: pr,
            refChosen: tf.tensor1d(mb.map((i) => refC[i]!)),
            refRejected: tf.tensor1d(mb.map((i) => refR[i]!)),
          };
          const po = { beta: o.beta, labelSmoothing: o.labelSmoothing, nllWeight: o.nllWeight, chosenTokens, pairNormalizer: batch.length };
          return o.algorithm === 'mkto' ? mktoLoss(l, z, po) : mdpoLoss(l, po);
        },
      }));
    });
  }

  /** The shared step loop: accumulate micro-batch gradients, clip, update, report. */
  private async runSteps(
    plan: Array<{ batch: number[]; epoch: number }>,
    opts: RunOptions,
    makeMicro: (batch: number[]) => Array<{ weight: number; sumKeys: ReadonlySet<string>; loss: MicroLoss }> | Promise<Array<{ weight: number; sumKeys: ReadonlySet<string>; loss: MicroLoss }>>,
  ): Promise<TrainResult> {
    const start = this.optimizer.step;
    const total = start + plan.length;
    let last: Record<string, number> | null = null;
    let skipped = 0;
    let done = 0;
    for (const { batch, epoch } of plan) {
      if (opts.signal?.aborted) return { steps: done, aborted: true, last, skippedSteps: skipped };
      const micro = await makeMicro(batch);
      const acc = new MetricAccumulator();
      let grads: Array<tf.Tensor | null> = this.vars.map(() => null);
      let lossSum: tf.Scalar | null = null;
      try {
        for (const m of micro) {
          let metrics: Record<string, tf.Scalar> = {};
          const { value, grads: g } = tf.variableGrads(() => {
            const out = m.loss();
            metrics = out.metrics;
            for (const t of Object.values(metrics)) tf.keep(t);
            return out.loss;
          }, this.vars);
          acc.add(metrics, m.weight, m.sumKeys);
          tf.dispose(Object.values(metrics));
          const prevLoss: tf.Scalar | null = lossSum;
          lossSum = prevLoss ? (tf.add(prevLoss, value) as tf.Scalar) : value;
          if (prevLoss) { prevLoss.dispose(); value.dispose(); }
          grads = this.vars.map((v, i) => {
            const gi = g[v.name] ?? null;
            const prev = grads[i] ?? null;
            if (!prev) return gi;
            if (!gi) return prev;
            const sum = tf.add(prev, gi);
            prev.dispose();
            gi.dispose();
            return sum;
          });
        }
        const clipped = clipByGlobalNorm(grads, this.options.gradClip);
        const lr = this.lrAt(this.optimizer.step, total);
        const metrics = await acc.read({ loss: lossSum!, grad_norm: clipped.norm });
        metrics.lr = lr;
        if (Number.isFinite(metrics.grad_norm) && Number.isFinite(metrics.loss)) {
          this.optimizer.applyGradients(clipped.grads, lr);
        } else {
          // A non-finite gradient would poison every weight; skip the update and say so.
          skipped++;
          metrics.skipped = 1;
        }
        tf.dispose([clipped.norm, ...clipped.grads.filter((x): x is tf.Tensor => x != null)]);
        done++;
        last = metrics;
        await opts.onStep?.({ step: start + done, totalSteps: total, epoch, metrics });
        await yieldToEventLoop();
      } finally {
        acc.dispose();
        lossSum?.dispose();
        tf.dispose(grads.filter((x): x is tf.Tensor => x != null));
      }
    }
    return { steps: done, aborted: false, last, skippedSteps: skipped };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

/** Counted tokens of one prepared sequence as collate counts them (positions 1..n−1). */
function collateTokens(p: PreparedSequence): number {
  let c = 0;
  for (let t = 1; t < p.ids.length; t++) c += p.tokenMask[t]!;
  return c;
}

/**
 * M-KTO's mismatched samples (TRL's KTO pairs each prompt with the next example's completion): for pair i, the
 * prompt of pair i followed by the completion (tokens from the first action token on) of pair (i+1) mod n —
 * its chosen trajectory for even i, its rejected one for odd i, so both outcomes feed the estimate. One pair
 * alone has no mismatch: no samples, z_ref = 0.
 */
export function mismatchedSamples(pairs: PreferencePair[]): TokenSequence[] {
  if (pairs.length < 2) return [];
  return pairs.map((p, i) => {
    const next = pairs[(i + 1) % pairs.length]!;
    const src = i % 2 === 0 ? next.chosen : next.rejected;
    const pl = promptLength(p.chosen.actionMask);
    const sl = promptLength(src.actionMask);
    return {
      tokenIds: [...Array.from(p.chosen.tokenIds).slice(0, pl), ...Array.from(src.tokenIds).slice(sl)],
      actionMask: [...Array.from(p.chosen.actionMask).slice(0, pl), ...Array.from(src.actionMask).slice(sl)],
    };
  });
}
