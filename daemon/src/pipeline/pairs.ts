/**
 * Pair construction, as the paper does it (Algorithm 1): per prompt, one random correct trajectory against one
 * random wrong one (`pairsPerPrompt` > 1 adds distinct pairs from the same samples). Correct trajectories whose
 * observations contain a tool error are dropped (they reached the answer despite broken code, which we don't want
 * to reinforce); prompts whose samples are all correct or all wrong give no pair. Rewards can be overridden by `grader_disagreement` annotations.
 */
import type { Trajectory } from '@mathagent/shared';
import { mulberry32, pick } from './rng';

export type SkipReason = 'all_correct' | 'all_wrong' | 'only_tool_error_correct';

export interface PairChoice { promptId: string; chosen: Trajectory; rejected: Trajectory }

export interface PairBuildResult {
  pairs: PairChoice[];
  /** Prompts that gave no pair, by reason. */
  skipped: Record<SkipReason, number>;
  /** Correct trajectories dropped because an observation had a tool error. */
  droppedToolErrorCorrect: number;
}

export function effectiveReward(t: Trajectory, overrides?: ReadonlyMap<string, number>): number {
  return overrides?.get(t.id) ?? t.reward;
}

export function hasToolError(t: Trajectory): boolean {
  return t.turns.some((turn) => turn.observation?.error === true);
}

export function groupByPrompt(trajs: readonly Trajectory[]): Map<string, Trajectory[]> {
  const groups = new Map<string, Trajectory[]>();
  for (const t of trajs) {
    const g = groups.get(t.promptId);
    if (g) g.push(t); else groups.set(t.promptId, [t]);
  }
  return groups;
}

export function buildPairs(
  trajs: readonly Trajectory[],
  opts: { seed: number; pairsPerPrompt?: number; overrides?: ReadonlyMap<string, number> },
): PairBuildResult {
  const rand = mulberry32(opts.seed);
  const perPrompt = Math.max(1, opts.pairsPerPrompt ?? 1);
  const skipped: Record<SkipReason, number> = { all_correct: 0, all_wrong: 0, only_tool_error_correct: 0 };
  const pairs: PairChoice[] = [];
  let droppedToolErrorCorrect = 0;
  // Sorted prompt order and sample order: the same trajectories give the same pairs, whatever the insertion order.
  const groups = [...groupByPrompt(trajs).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [promptId, group] of groups) {
    group.sort((a, b) => a.sampleIndex - b.sampleIndex || (a.id < b.id ? -1 : 1));
    const correctAll = group.filter((t) => effectiveReward(t, opts.overrides) >= 1);
    const wrong = group.filter((t) => effectiveReward(t, opts.overrides) < 1);
    const correct = correctAll.filter((t) => !hasToolError(t));
    droppedToolErrorCorrect += correctAll.length - correct.length;
    if (wrong.length === 0) { skipped.all_correct++; continue; }
    if (correctAll.length === 0) { skipped.all_wrong++; continue; }
    if (correct.length === 0) { skipped.only_tool_error_correct++; continue; }
    // The first pair is the paper's (one random correct against one random wrong one); more pairs, when asked for,
    // are distinct and spread over the prompt's trajectories.
    const first: PairChoice = { promptId, chosen: pick(correct, rand), rejected: pick(wrong, rand) };
    pairs.push(first);
    if (perPrompt > 1) pairs.push(...morePairs(promptId, correct, wrong, first, perPrompt - 1, rand));
  }
  return { pairs, skipped, droppedToolErrorCorrect };
}

/**
 * Up to `n` more distinct (correct, wrong) pairs besides `first`, each drawn at random among the unused combinations
 * whose two trajectories have been used least so far — so 3 pairs from 2 correct and 3 wrong trajectories use
 * every trajectory, and a prompt with only one correct and one wrong trajectory gives no duplicate of its pair
 * (duplicates would weight the prompts with the fewest choices most).
 */
function morePairs(promptId: string, correct: Trajectory[], wrong: Trajectory[], first: PairChoice, n: number, rand: () => number): PairChoice[] {
  const uses = new Map<string, number>([[first.chosen.id, 1], [first.rejected.id, 1]]);
  const free = correct.flatMap((c) => wrong.map((w) => ({ c, w }))).filter((x) => x.c !== first.chosen || x.w !== first.rejected);
  const cost = (x: { c: Trajectory; w: Trajectory }) => (uses.get(x.c.id) ?? 0) + (uses.get(x.w.id) ?? 0);
  const out: PairChoice[] = [];
  while (out.length < n && free.length) {
    const least = Math.min(...free.map(cost));
    const candidates = free.filter((x) => cost(x) === least);
    const x = pick(candidates, rand);
    free.splice(free.indexOf(x), 1);
    uses.set(x.c.id, (uses.get(x.c.id) ?? 0) + 1);
    uses.set(x.w.id, (uses.get(x.w.id) ?? 0) + 1);
    out.push({ promptId, chosen: x.c, rejected: x.w });
  }
  return out;
}

/**
 * RAFT's training set for an iteration: `from: 'all'` is `selectRaft` (every prompt with a usable correct sample);
 * `from: 'pairs'` is exactly the chosen side of the iteration's pairs, the positive data M-DPO sees, so that an
 * ablation can tell the negative gradient's effect from RAFT's extra (all-correct) prompts.
 */
export function raftTrainingSet(
  trajs: readonly Trajectory[], pairs: ReadonlyArray<{ chosen: Trajectory }>,
  opts: { from: 'all' | 'pairs'; seed: number; keep: number; overrides?: ReadonlyMap<string, number> },
): Trajectory[] {
  return opts.from === 'pairs' ? pairs.map((p) => p.chosen) : selectRaft(trajs, opts);
}

/** RAFT: keep up to `keep` correct (tool-error-free) trajectories per prompt. */
export function selectRaft(trajs: readonly Trajectory[], opts: { seed: number; keep: number; overrides?: ReadonlyMap<string, number> }): Trajectory[] {
  const rand = mulberry32(opts.seed);
  const out: Trajectory[] = [];
  const groups = [...groupByPrompt(trajs).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [, group] of groups) {
    const correct = group.filter((t) => effectiveReward(t, opts.overrides) >= 1 && !hasToolError(t));
    // Fisher-Yates on a copy, then take the first `keep`.
    const xs = [...correct];
    for (let i = xs.length - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [xs[i], xs[j]] = [xs[j]!, xs[i]!]; }
    out.push(...xs.slice(0, opts.keep));
  }
  return out;
}
