/**
 * AdamW, learning-rate schedules and global-norm gradient clipping.
 *
 * AdamW follows Loshchilov & Hutter (as PyTorch's AdamW): the weight decay is decoupled from the gradient,
 *   p ← p − lr·wd·p;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
 *   p ← p − lr · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + ε)
 * By default only matrices (rank ≥ 2) decay, as in GPT-2/nanoGPT: decaying biases, norm gains and such vectors
 * hurts and buys nothing.
 *
 * The state (step count and the m, v tensors of every variable) exports as named tensors `m/<name>`,
 * `v/<name>` for checkpoints; names are the optimiser's parameter names (the variables' names unless given).
 */
import * as tf from '@tensorflow/tfjs-core';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which parameters decay (default: rank ≥ 2). */
  decay?: (name: string, v: tf.Variable) => boolean;
  /** Stable parameter names for checkpoints (default: each variable's `name`). */
  names?: string[];
}

export interface OptimizerState {
  step: number;
  /** `m/<name>` and `v/<name>` for every parameter. */
  tensors: Record<string, tf.Tensor>;
}

export class AdamW {
  readonly names: string[];
  private readonly vars: tf.Variable[];
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private readonly decays: boolean[];
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  readonly weightDecay: number;
  private t = 0;

  constructor(vars: tf.Variable[], opts: AdamWOptions = {}) {
    if (vars.length === 0) throw new Error('AdamW: no variables to optimise');
    this.vars = vars;
    this.names = opts.names ?? vars.map((x) => x.name);
    if (this.names.length !== vars.length) throw new Error(`AdamW: ${this.names.length} names for ${vars.length} variables`);
    if (new Set(this.names).size !== this.names.length) throw new Error('AdamW: parameter names must be unique');
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    for (const [k, x] of [['beta1', this.beta1], ['beta2', this.beta2]] as const) {
      if (!(x >= 0 && x < 1)) throw new Error(`AdamW: ${k} must be in [0, 1), got ${x}`);
    }
    if (!(this.eps > 0)) throw new Error(`AdamW: eps must be > 0, got ${this.eps}`);
    if (!(this.weightDecay >= 0)) throw new Error(`AdamW: weightDecay must be ≥ 0, got ${this.weightDecay}`);
    const decay = opts.decay ?? ((_n: string, x: tf.Variable) => x.rank >= 2);
    this.decays = vars.map((x, i) => decay(this.names[i]!, x));
    // tidy disposes the zero tensors the variables were initialised from (a variable holds its own reference).
    this.m = tf.tidy(() => vars.map((x) => tf.variable(tf.zerosLike(x), false)));
    this.v = tf.tidy(() => vars.map((x) => tf.variable(tf.zerosLike(x), false)));
  }

  /** Number of updates applied so far. */
  get step(): number {
    return this.t;
  }

  /**
   * Apply one update with learning rate `lr`. `grads[i]` belongs to the i-th variable; a missing (null) gradient
   * counts as zero (the moments still decay, as in PyTorch). The caller keeps ownership of `grads`.
   */
  applyGradients(grads: Array<tf.Tensor | null | undefined>, lr: number): void {
    if (grads.length !== this.vars.length) throw new Error(`AdamW: got ${grads.length} gradients for ${this.vars.length} variables`);
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`AdamW: learning rate must be a finite number ≥ 0, got ${lr}`);
    this.t += 1;
    const bc1 = 1 - this.beta1 ** this.t;
    const bc2 = 1 - this.beta2 ** this.t;
    tf.tidy(() => {
      this.vars.forEach((p, i) => {
        const g = grads[i] ?? tf.zerosLike(p);
        if (g.shape.length !== p.shape.length || g.shape.some((d, k) => d !== p.shape[k])) {
          throw new Error(`AdamW: gradient for ${this.names[i]} has shape [${g.shape}], parameter has [${p.shape}]`);
        }
        const m = tf.add(tf.mul(this.beta1, this.m[i]!), tf.mul(1 - this.beta1, g));
        const v = tf.add(tf.mul(this.beta2, this.v[i]!), tf.mul(1 - this.beta2, tf.square(g)));
        this.m[i]!.assign(m);
        this.v[i]!.assign(v);
        const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), this.eps));
        let next = tf.sub(p, tf.mul(lr, update));
        if (this.weightDecay > 0 && this.decays[i]) next = tf.sub(next, tf.mul(lr * this.weightDecay, p));
        p.assign(next);
      });
    });
  }

  /** Copies of the state (the caller disposes `tensors`). */
  exportState(): OptimizerState {
    const tensors: Record<string, tf.Tensor> = {};
    this.names.forEach((n, i) => {
      tensors[`m/${n}`] = tf.clone(this.m[i]!);
      tensors[`v/${n}`] = tf.clone(this.v[i]!);
    });
    return { step: this.t, tensors };
  }

  /** Restore a state exported by `exportState` (values are copied; the caller keeps `state.tensors`). */
  importState(state: OptimizerState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`optimizer state: step must be an integer ≥ 0, got ${state.step}`);
    const problems: string[] = [];
    this.names.forEach((n, i) => {
      for (const k of ['m', 'v']) {
        const t = state.tensors[`${k}/${n}`];
        const want = this.vars[i]!.shape;
        if (!t) problems.push(`missing ${k}/${n}`);
        else if (t.shape.length !== want.length || t.shape.some((d, j) => d !== want[j])) {
          problems.push(`${k}/${n} has shape [${t.shape}], parameter has [${want}]`);
        }
      }
    });
    const known = new Set(this.names.flatMap((n) => [`m/${n}`, `v/${n}`]));
    for (const k of Object.keys(state.tensors)) if (!known.has(k)) problems.push(`unknown tensor ${k}`);
    if (problems.length) {
      throw new Error(`optimizer state does not match the model (was it saved for another model?): ${problems.slice(0, 5).join('; ')}` +
        (problems.length > 5 ? ` (+${problems.length - 5} more)` : ''));
    }
    this.names.forEach((n, i) => {
      this.m[i]!.assign(tf.cast(state.tensors[`m/${n}`]!, 'float32'));
      this.v[i]!.assign(tf.cast(state.tensors[`v/${n}`]!, 'float32'));
    });
    this.t = state.step;
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}

export type ScheduleKind = 'cosine' | 'linear' | 'constant';

export interface ScheduleOptions {
  lr: number;
  warmupSteps: number;
  totalSteps: number;
  schedule: ScheduleKind;
  /** Floor of the decay as a fraction of lr (default 0). */
  minLrRatio?: number;
}

/**
 * Learning rate for optimiser step `step` (0-based). Warm-up is linear from lr/warmupSteps to lr, reached at step
 * warmupSteps − 1, so no step is wasted at lr = 0 (HF's schedule spends its first step at 0). Then the decay runs
 * over the remaining steps towards lr·minLrRatio, never quite reaching it (the last step still learns); steps
 * past totalSteps stay at the floor.
 */
export function lrAt(step: number, o: ScheduleOptions): number {
  if (!Number.isInteger(step) || step < 0) throw new Error(`lrAt: step must be an integer ≥ 0, got ${step}`);
  if (!(o.lr >= 0) || !Number.isFinite(o.lr)) throw new Error(`lrAt: lr must be a finite number ≥ 0, got ${o.lr}`);
  if (!Number.isInteger(o.warmupSteps) || o.warmupSteps < 0) throw new Error(`lrAt: warmupSteps must be an integer ≥ 0, got ${o.warmupSteps}`);
  const floor = o.minLrRatio ?? 0;
  if (!(floor >= 0 && floor <= 1)) throw new Error(`lrAt: minLrRatio must be in [0, 1], got ${floor}`);
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  const span = Math.max(1, o.totalSteps - o.warmupSteps);
  const p = Math.min(1, (step - o.warmupSteps) / span);
  switch (o.schedule) {
    case 'constant':
      return o.lr;
    case 'linear':
      return o.lr * (floor + (1 - floor) * (1 - p));
    case 'cosine':
      return o.lr * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * p)));
    default:
      throw new Error(`lrAt: unknown schedule ${String(o.schedule)} (use cosine, linear or constant)`);
  }
}

/** Global L2 norm of a list of tensors (nulls skipped), as a scalar tensor. */
export function globalNorm(grads: Array<tf.Tensor | null | undefined>): tf.Scalar {
  return tf.tidy(() => {
    const parts = grads.filter((g): g is tf.Tensor => g != null).map((g) => tf.sum(tf.square(g)));
    if (parts.length === 0) return tf.scalar(0);
    // Not one tf.addN over every parameter: on WebGPU that is a single shader with one storage binding per input,
    // and past the device's limit (8–10) Dawn rejects the pipeline ("AddNPackedProgram ... invalid"), which
    // broke gradient clipping and so training on the GPU. A stack of scalars is one buffer on every backend.
    return tf.sqrt(tf.sum(tf.stack(parts))) as tf.Scalar;
  });
}

/**
 * Scale all gradients by min(1, maxNorm / norm) (PyTorch's clip_grad_norm_). Returns new tensors (the caller
 * disposes them and the inputs) and the norm *before* clipping. maxNorm = Infinity disables clipping.
 */
export function clipByGlobalNorm(
  grads: Array<tf.Tensor | null | undefined>,
  maxNorm: number,
): { grads: Array<tf.Tensor | null>; norm: tf.Scalar } {
  if (!(maxNorm > 0)) throw new Error(`clipByGlobalNorm: maxNorm must be > 0, got ${maxNorm}`);
  const norm = globalNorm(grads);
  const scale = tf.tidy(() => tf.minimum(1, tf.div(maxNorm, tf.add(norm, 1e-6))));
  const clipped = grads.map((g) => (g == null ? null : tf.mul(g, scale)));
  scale.dispose();
  return { grads: clipped, norm };
}
