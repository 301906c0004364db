/**
 * Training losses as pure functions over per-token log-probs and masks (DESIGN.md §2).
 *
 * Conventions (aligned with GPT.tokenLogprobs):
 * - `tokenLogps[b, t]` = log p(ids[b, t+1] | ids[b, ..t]), shape [B, T-1].
 * - `mask[b, t]` = 1 when token t+1 counts (an action token for M-DPO, any non-prompt token for the unmasked
 *   DPO ablation, 0 for padding). Build it with `buildMask` (per token) and `collate` in batch.ts (shifted).
 * - Sequence log-probs are sums over counted tokens, shape [B].
 *
 * Every loss returns `{ loss, metrics }` with TRL's metric names. Metrics are detached (no gradient flows
 * through them) and averaged over the examples of this call; the caller owns (and disposes) all returned
 * tensors. `pairNormalizer` / `tokenNormalizer` let a trainer split one batch into micro-batches whose losses
 * add up to the full-batch loss exactly (gradient accumulation = full batch).
 *
 * `tf.logSigmoid`'s gradient throws on intermediate tensors in tfjs, so -log σ(x) is written softplus(-x).
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * Identity whose gradient is zero (tfjs has no stop_gradient op): metrics and KTO's z_ref must not pass
 * gradient into the policy.
 */
export const detach: <T extends tf.Tensor>(x: T) => T = (() => {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: tf.clone(args[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  }));
  return <T extends tf.Tensor>(x: T) => f(x) as T;
})();

export interface LossOutput {
  loss: tf.Scalar;
  metrics: Record<string, tf.Scalar>;
}

/** Per-token mask for one sequence (length T, not shifted). */
export function buildMask(actionMask: ArrayLike<number>, promptLen: number, opts: { masked: boolean }): number[] {
  if (!Number.isInteger(promptLen) || promptLen < 0 || promptLen > actionMask.length) {
    throw new Error(`buildMask: promptLen must be an integer in [0, ${actionMask.length}], got ${promptLen}`);
  }
  const out = new Array<number>(actionMask.length);
  for (let i = 0; i < actionMask.length; i++) {
    const a = actionMask[i];
    if (a !== 0 && a !== 1) throw new Error(`buildMask: actionMask[${i}] must be 0 or 1, got ${a}`);
    // M-DPO counts only the model's own tokens; the single-turn DPO ablation counts everything after the prompt
    // (observations included), which is what DPO on a flat "completion" string would do.
    out[i] = opts.masked ? a : i >= promptLen ? 1 : 0;
  }
  return out;
}

/** Index of the first action token (= prompt length); the sequence length when there is none. */
export function promptLength(actionMask: ArrayLike<number>): number {
  for (let i = 0; i < actionMask.length; i++) if (actionMask[i] === 1) return i;
  return actionMask.length;
}

/**
 * log p(ids[:, t+1] | ids[:, ..t]) from logits [B, T, V] and ids [B, T] → [B, T-1]. Uses a one-hot product, not
 * gather, because the wasm backend has no gradient kernel for gather. Handy for tests and for models that
 * expose logits only.
 */
export function tokenLogprobsFromLogits(logits: tf.Tensor3D, ids: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, T, V] = logits.shape;
    if (ids.shape[0] !== B || ids.shape[1] !== T) {
      throw new Error(`tokenLogprobsFromLogits: ids shape [${ids.shape}] does not match logits [${logits.shape}]`);
    }
    const lp = tf.logSoftmax(tf.slice(logits, [0, 0, 0], [B, T - 1, V]));
    const targets = tf.cast(tf.slice(ids, [0, 1], [B, T - 1]), 'int32');
    const oh = tf.oneHot(targets, V);
    return tf.sum(tf.mul(lp, oh), -1) as tf.Tensor2D;
  });
}

function checkSameShape(a: tf.Tensor, b: tf.Tensor, what: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${what}: shapes differ ([${a.shape}] vs [${b.shape}])`);
  }
}

/** Sum of log-probs over counted tokens: [B, T-1] × [B, T-1] → [B]. */
export function maskedSequenceLogps(tokenLogps: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor1D {
  checkSameShape(tokenLogps, mask, 'maskedSequenceLogps(tokenLogps, mask)');
  return tf.tidy(() => tf.sum(tf.mul(tokenLogps, tf.cast(mask, 'float32')), 1) as tf.Tensor1D);
}

export interface SftOptions {
  /** Divide the summed NLL by this many tokens instead of this batch's count (micro-batching). */
  tokenNormalizer?: number;
}

/**
 * Mean negative log-likelihood over counted tokens (SFT; RAFT trains with the same loss on kept trajectories).
 * A batch with no counted token gives loss 0 rather than NaN. Metrics: `nll`, `tokens`.
 */
export function sftLoss(tokenLogps: tf.Tensor2D, mask: tf.Tensor2D, opts: SftOptions = {}): LossOutput {
  checkSameShape(tokenLogps, mask, 'sftLoss(tokenLogps, mask)');
  if (opts.tokenNormalizer !== undefined && !(opts.tokenNormalizer > 0)) {
    throw new Error(`sftLoss: tokenNormalizer must be > 0, got ${opts.tokenNormalizer}`);
  }
  return tf.tidy(() => {
    const m = tf.cast(mask, 'float32');
    const count = tf.sum(m);
    const summed = tf.neg(tf.sum(tf.mul(tokenLogps, m)));
    const denom = opts.tokenNormalizer !== undefined ? tf.scalar(opts.tokenNormalizer) : tf.maximum(count, 1);
    const loss = tf.div(summed, denom) as tf.Scalar;
    const nll = detach(tf.div(summed, tf.maximum(count, 1))) as tf.Scalar;
    return { loss, metrics: { nll, tokens: count as tf.Scalar } };
  });
}

export interface PreferenceLogps {
  /** Sequence log-probs [B] under the policy (differentiable) and the reference (constants). */
  policyChosen: tf.Tensor1D;
  policyRejected: tf.Tensor1D;
  refChosen: tf.Tensor1D;
  refRejected: tf.Tensor1D;
}

export interface PreferenceOptions {
  /** β (the paper's η): strength of the implicit KL regularisation. */
  beta: number;
  /** Conservative DPO label smoothing ε ∈ [0, 0.5): the preference label is flipped with probability ε. */
  labelSmoothing?: number;
  /** Weight of the NLL of the chosen trajectory's counted tokens (0 = off). Needs `chosenTokens`. */
  nllWeight?: number;
  /** Number of counted tokens in the chosen sequences (normaliser of the NLL term). */
  chosenTokens?: number;
  /** Divide the summed per-pair losses by this instead of B (micro-batching). */
  pairNormalizer?: number;
}

function checkPreference(l: PreferenceLogps, o: PreferenceOptions, name: string): number {
  const B = l.policyChosen.shape[0];
  for (const [k, t] of Object.entries(l) as [string, tf.Tensor][]) {
    if (t.rank !== 1 || t.shape[0] !== B) throw new Error(`${name}: ${k} must have shape [${B}], got [${t.shape}]`);
  }
  if (!(o.beta > 0) || !Number.isFinite(o.beta)) throw new Error(`${name}: beta must be a positive number, got ${o.beta}`);
  const eps = o.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps < 0.5)) throw new Error(`${name}: labelSmoothing must be in [0, 0.5), got ${eps}`);
  const w = o.nllWeight ?? 0;
  if (!(w >= 0) || !Number.isFinite(w)) throw new Error(`${name}: nllWeight must be ≥ 0, got ${w}`);
  if (w > 0 && !(o.chosenTokens !== undefined && o.chosenTokens > 0)) {
    throw new Error(`${name}: nllWeight > 0 needs chosenTokens (the number of counted chosen tokens, > 0)`);
  }
  if (o.pairNormalizer !== undefined && !(o.pairNormalizer > 0)) {
    throw new Error(`${name}: pairNormalizer must be > 0, got ${o.pairNormalizer}`);
  }
  return B;
}

/** TRL's reward metrics (detached): β·logratio per side, margin, accuracy, raw policy log-probs. */
function rewardMetrics(l: PreferenceLogps, beta: number): Record<string, tf.Scalar> {
  const rc = tf.mul(beta, tf.sub(l.policyChosen, l.refChosen));
  const rr = tf.mul(beta, tf.sub(l.policyRejected, l.refRejected));
  const d = (t: tf.Tensor) => detach(tf.mean(t)) as tf.Scalar;
  return {
    'rewards/chosen': d(rc),
    'rewards/rejected': d(rr),
    'rewards/margins': d(tf.sub(rc, rr)),
    'rewards/accuracies': d(tf.cast(tf.greater(rc, rr), 'float32')),
    'logps/chosen': d(l.policyChosen),
    'logps/rejected': d(l.policyRejected),
  };
}

function addNll(loss: tf.Scalar, metrics: Record<string, tf.Scalar>, l: PreferenceLogps, o: PreferenceOptions): tf.Scalar {
  const w = o.nllWeight ?? 0;
  if (w === 0) return loss;
  const nll = tf.div(tf.neg(tf.sum(l.policyChosen)), o.chosenTokens!) as tf.Scalar;
  metrics.nll = detach(nll) as tf.Scalar;
  return tf.add(loss, tf.mul(w, nll)) as tf.Scalar;
}

/**
 * M-DPO (and, with an unmasked mask upstream, single-turn DPO):
 *   h = (πc − rc) − (πr − rr);  loss = mean[ (1−ε)·softplus(−βh) + ε·softplus(βh) ]  (+ nllWeight · NLL_chosen)
 * softplus(−x) = −log σ(x). Whether observations count is decided by the mask that produced the log-probs.
 */
export function mdpoLoss(l: PreferenceLogps, o: PreferenceOptions): LossOutput {
  const B = checkPreference(l, o, 'mdpoLoss');
  const eps = o.labelSmoothing ?? 0;
  return tf.tidy(() => {
    const h = tf.sub(tf.sub(l.policyChosen, l.refChosen), tf.sub(l.policyRejected, l.refRejected));
    const bh = tf.mul(o.beta, h);
    let perPair = tf.softplus(tf.neg(bh));
    if (eps > 0) perPair = tf.add(tf.mul(1 - eps, perPair), tf.mul(eps, tf.softplus(bh)));
    const base = tf.div(tf.sum(perPair), o.pairNormalizer ?? B) as tf.Scalar;
    const metrics = rewardMetrics(l, o.beta);
    metrics.dpo_loss = detach(tf.mean(perPair)) as tf.Scalar;
    const loss = addNll(base, metrics, l, o);
    return { loss, metrics };
  });
}

/**
 * KL(π‖πref) estimate for KTO's reference point z_ref, from sequence log-probs of *mismatched* samples (a prompt
 * paired with another prompt's completion, as TRL's KTO does): z = max(0, mean(π_kl − ref_kl)), detached.
 * The mean of log-ratios of completions that the policy did not write for this prompt is a cheap, biased
 * batch-level estimate of the policy's drift from the reference; clamping at 0 keeps it a valid KL. An empty
 * set (a batch of one pair has no mismatch) gives 0.
 */
export function estimateKl(policyKl: tf.Tensor1D, refKl: tf.Tensor1D): tf.Scalar {
  checkSameShape(policyKl, refKl, 'estimateKl(policyKl, refKl)');
  return tf.tidy(() => {
    if (policyKl.shape[0] === 0) return tf.scalar(0);
    return detach(tf.relu(tf.mean(tf.sub(policyKl, refKl)))) as tf.Scalar;
  });
}

/**
 * M-KTO: each pair gives one desirable (chosen) and one undesirable (rejected) trajectory, λ+ = λ− = 1.
 *   loss_d = 1 − σ(β(logratio_c − z)),  loss_u = 1 − σ(β(z − logratio_r)),  loss = mean over all 2B terms
 *   (+ nllWeight · NLL_chosen). z = `zRef` (see estimateKl), treated as a constant.
 * Metrics as M-DPO plus `kl` (= z).
 */
export function mktoLoss(l: PreferenceLogps, zRef: tf.Scalar | number, o: PreferenceOptions): LossOutput {
  const B = checkPreference(l, o, 'mktoLoss');
  if ((o.labelSmoothing ?? 0) !== 0) throw new Error('mktoLoss: labelSmoothing applies to M-DPO only; set it to 0');
  return tf.tidy(() => {
    const z = detach(typeof zRef === 'number' ? tf.scalar(zRef) : zRef);
    const lc = tf.sub(l.policyChosen, l.refChosen);
    const lr = tf.sub(l.policyRejected, l.refRejected);
    const lossD = tf.sub(1, tf.sigmoid(tf.mul(o.beta, tf.sub(lc, z))));
    const lossU = tf.sub(1, tf.sigmoid(tf.mul(o.beta, tf.sub(z, lr))));
    const perPair = tf.add(lossD, lossU);
    const base = tf.div(tf.sum(perPair), 2 * (o.pairNormalizer ?? B)) as tf.Scalar;
    const metrics = rewardMetrics(l, o.beta);
    metrics.kl = tf.clone(z) as tf.Scalar;
    metrics.kto_loss = detach(tf.div(tf.mean(perPair), 2)) as tf.Scalar;
    const loss = addNll(base, metrics, l, o);
    return { loss, metrics };
  });
}

/** Dispose a LossOutput (loss and all metrics). */
export function disposeLoss(out: LossOutput): void {
  out.loss.dispose();
  for (const t of Object.values(out.metrics)) t.dispose();
}
