/**
 * Evaluation statistics: Wilson 95% interval for a proportion, the unbiased pass@k estimator, and greedy pass@1
 * broken down by subject and level.
 */
import type { BreakdownRow, EvalBreakdown } from '@mathagent/shared';

/** The median (the mean of the middle two for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function wilson95(successes: number, n: number): [number, number] {
  if (n === 0) return [0, 0];
  const z = 1.959963984540054;
  const p = successes / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** pass@k from n samples with c correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k). */
export function passAtK(n: number, c: number, k: number): number {
  if (n - c < k) return 1;
  let prod = 1;
  for (let i = n - c + 1; i <= n; i++) prod *= 1 - k / i;
  return 1 - prod;
}

export interface EvalSummary {
  n: number;
  pass1: number;
  ci95: [number, number];
  k: number;
  passK: number | null;
  meanTurns: number;
  toolErrorRate: number;
}

/**
 * Summarise an evaluation: greedy pass@1 with its Wilson interval over `greedy`, pass@k from the count of correct
 * samples per prompt (k samples each), mean turns and the share of greedy trajectories that saw a tool error.
 */
export function summarizeEval(
  greedy: ReadonlyArray<{ promptId: string; reward: number; turns: ReadonlyArray<{ observation: { error: boolean } | null }> }>,
  k: number,
  correctByPrompt: ReadonlyMap<string, number> | null,
): EvalSummary {
  const n = greedy.length;
  const correct = greedy.filter((x) => x.reward >= 1).length;
  // pass@k over the problems that were sampled k times (eval.passKPrompts may pick the first few only).
  const sampled = correctByPrompt ? greedy.filter((g) => correctByPrompt.has(g.promptId)) : [];
  const passK = k > 1 && correctByPrompt && sampled.length ? sampled.reduce((acc, g) => acc + passAtK(k, correctByPrompt.get(g.promptId) ?? 0, k), 0) / sampled.length : null;
  return {
    n, k, passK,
    pass1: n ? correct / n : 0,
    ci95: wilson95(correct, n),
    meanTurns: n ? greedy.reduce((a, x) => a + x.turns.length, 0) / n : 0,
    toolErrorRate: n ? greedy.filter((x) => x.turns.some((t) => t.observation?.error)).length / n : 0,
  };
}

/**
 * Greedy pass@1 per value of a problem meta field (`subject`, `level`), sorted by key (numbers in numeric order).
 * Trajectories whose prompt is not among `problems`, or whose problem lacks the field, are left out.
 */
export function breakdownBy(
  problems: ReadonlyArray<{ id: string; meta?: Record<string, string | number> }>,
  greedy: ReadonlyArray<{ promptId: string; reward: number }>,
  field: string,
): BreakdownRow[] {
  const meta = new Map(problems.map((p) => [p.id, p.meta?.[field]]));
  const groups = new Map<string, { n: number; correct: number }>();
  for (const g of greedy) {
    const value = meta.get(g.promptId);
    if (value === undefined || value === '') continue;
    const key = String(value);
    const e = groups.get(key) ?? { n: 0, correct: 0 };
    e.n++;
    if (g.reward >= 1) e.correct++;
    groups.set(key, e);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
    .map(([key, v]) => ({ key, n: v.n, correct: v.correct, pass1: v.correct / v.n }));
}

/**
 * The per-subject / per-level breakdown of an evaluation. Only datasets whose problems carry a subject (MATH,
 * MATH-500) get one: a level-only table (the synthetic task) says nothing pass@1 does not already say.
 */
export function evalBreakdown(
  problems: ReadonlyArray<{ id: string; meta?: Record<string, string | number> }>,
  greedy: ReadonlyArray<{ promptId: string; reward: number }>,
): EvalBreakdown | null {
  const subject = breakdownBy(problems, greedy, 'subject');
  if (!subject.length) return null;
  return { subject, level: breakdownBy(problems, greedy, 'level') };
}
