/**
 * Pair construction, as the paper does it (Algorithm 1): per prompt, one random correct trajectory against one
 * random wrong one. Correct trajectories whose observations contain a tool error are dropped (they reached the
 * answer despite broken code, which we don't want to reinforce); prompts whose samples are all correct or all
 * wrong give no pair. Rewards can be overridden by `grader_disagreement` annotations.
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
    for (let k = 0; k < perPrompt; k++) {
      pairs.push({ promptId, chosen: pick(correct, rand), rejected: pick(wrong, rand) });
    }
  }
  return { pairs, skipped, droppedToolErrorCorrect };
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
