/**
 * Messages between the extension host and the panels' webviews, both directions schema-checked (a webview is
 * a separate, less trusted context; a message that fails its schema is dropped with a log line).
 * Compiled into both bundles: the extension (Node) and the webview (browser).
 */
import { z } from 'zod';
import { Annotation, AnnotationLabel, CompareRow, EvalResult, MetricPoint, OutcomeLabel, Turn } from '@mathagent/shared';

/** What a panel shows of a trajectory: a stored one, or one still being sampled (outcome null, live true). */
export const TrajectoryView = z.object({
  id: z.string(),
  runId: z.string(),
  iteration: z.number().int(),
  promptId: z.string(),
  sampleIndex: z.number().int().nullable(),
  split: z.enum(['train', 'eval']),
  policy: z.string().nullable(),
  question: z.string(),
  reference: z.string().nullable(),
  template: z.string().nullable(),
  promptText: z.string().nullable(),
  promptTokenIds: z.array(z.number().int()),
  turns: z.array(Turn),
  extractedAnswer: z.string().nullable(),
  reward: z.number().nullable(),
  outcome: OutcomeLabel.nullable(),
  truncation: z.string().nullable(),
  tokenIds: z.array(z.number().int()),
  actionMask: z.array(z.union([z.literal(0), z.literal(1)])),
  tokenTexts: z.array(z.string()).nullable(),
  turnRewards: z.array(z.number()).nullable(),
  retokenized: z.boolean(),
  annotation: Annotation.nullable(),
  live: z.boolean(),
});
export type TrajectoryView = z.infer<typeof TrajectoryView>;

const Position = z.object({ index: z.number().int(), total: z.number().int() }).nullable();
const RunIter = z.object({ runId: z.string(), iteration: z.number().int(), label: z.string() });

export const ToWebview = z.discriminatedUnion('type', [
  /** Trajectory panel: show this trajectory, focusing `turn`. */
  z.object({ type: z.literal('trajectory'), view: TrajectoryView, position: Position, turn: z.number().int().min(0) }),
  /** Trajectory panel: the trajectory being sampled grew by one turn. */
  z.object({ type: z.literal('liveTurn'), trajectoryId: z.string(), turn: Turn }),
  /** Trajectory panel: move the focused turn (palette commands Next/Previous Turn). */
  z.object({ type: z.literal('stepTurn'), delta: z.union([z.literal(1), z.literal(-1)]) }),
  z.object({ type: z.literal('annotation'), trajectoryId: z.string(), annotation: Annotation.nullable() }),
  /** Pair panel: chosen vs rejected, first diverging turn. */
  z.object({ type: z.literal('pair'), title: z.string(), chosen: TrajectoryView, rejected: TrajectoryView, divergeTurn: z.number().int().nullable(), position: Position }),
  /** Compare panel: the flipped prompts of two iterations. */
  z.object({ type: z.literal('compare'), a: RunIter, b: RunIter, fixed: z.array(CompareRow), broken: z.array(CompareRow), sameCorrect: z.number().int(), sameWrong: z.number().int() }),
  /** Compare panel: both trajectories of the selected prompt. */
  z.object({ type: z.literal('compareDetail'), promptId: z.string(), a: TrajectoryView, b: TrajectoryView, divergeTurn: z.number().int().nullable() }),
  /** Metrics panel: all points (replace) or new points (append). */
  z.object({ type: z.literal('metrics'), runId: z.string(), title: z.string(), points: z.array(MetricPoint), replace: z.boolean() }),
  /** Metrics panel: the run's held-out evaluations (all of them, replacing), for the per-subject / per-level table. */
  z.object({ type: z.literal('evals'), runId: z.string(), evals: z.array(EvalResult) }),
  z.object({ type: z.literal('error'), message: z.string() }),
]);
export type ToWebview = z.infer<typeof ToWebview>;

export const FromWebview = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  z.object({ type: z.literal('turnChanged'), trajectoryId: z.string(), turn: z.number().int().min(0) }),
  z.object({ type: z.literal('stepTrajectory'), delta: z.union([z.literal(1), z.literal(-1)]) }),
  z.object({ type: z.literal('annotate'), trajectoryId: z.string(), turn: z.number().int().min(0).nullable() }),
  z.object({ type: z.literal('openTrajectory'), trajectoryId: z.string() }),
  z.object({ type: z.literal('stepPair'), delta: z.union([z.literal(1), z.literal(-1)]) }),
  z.object({ type: z.literal('selectCompare'), promptId: z.string() }),
  z.object({ type: z.literal('log'), level: z.enum(['info', 'error']), message: z.string().max(10_000) }),
]);
export type FromWebview = z.infer<typeof FromWebview>;

export const PanelKind = z.enum(['trajectory', 'pair', 'compare', 'metrics']);
export type PanelKind = z.infer<typeof PanelKind>;

/**
 * What a webview persists with setState and VS Code hands back to the panel serializer after a reload:
 * enough to refetch everything from the daemon.
 */
export const PanelState = z.discriminatedUnion('panel', [
  z.object({ panel: z.literal('trajectory'), trajectoryId: z.string(), turn: z.number().int().min(0).default(0), raw: z.boolean().default(false), tokens: z.boolean().default(false) }),
  z.object({ panel: z.literal('pair'), runId: z.string(), iteration: z.number().int().nullable(), pairIndex: z.number().int().min(0).default(0), raw: z.boolean().default(false) }),
  z.object({ panel: z.literal('compare'), a: z.object({ runId: z.string(), iteration: z.number().int() }), b: z.object({ runId: z.string(), iteration: z.number().int() }), promptId: z.string().nullable().default(null), raw: z.boolean().default(false) }),
  z.object({ panel: z.literal('metrics'), runId: z.string() }),
]);
export type PanelState = z.infer<typeof PanelState>;

export const VIEW_TYPES: Record<PanelKind, string> = {
  trajectory: 'mathagent.trajectory',
  pair: 'mathagent.pair',
  compare: 'mathagent.compare',
  metrics: 'mathagent.metrics',
};

/** Labels people read in the annotation quick pick (taxonomy from shared/trajectory.ts). */
export const ANNOTATION_LABELS: Record<AnnotationLabel, string> = {
  arithmetic_tool_misuse: 'Arithmetic / tool misuse',
  tool_error_ignored: 'Tool error ignored',
  wrong_answer_extraction: 'Wrong final-answer extraction',
  reasoning_error: 'Reasoning error',
  format_error: 'Format error',
  truncated: 'Truncated',
  grader_disagreement: 'Grader disagreement (the grade is wrong)',
  other: 'Other',
};

/** Build a panel's view of a full trajectory from `trajectory/get`. */
export function viewFromTrajectory(r: {
  trajectory: { id: string; runId: string; iteration: number; promptId: string; sampleIndex: number; policy: string; question: string; reference: string; template: string; promptText: string; promptTokenIds: number[]; turns: z.infer<typeof Turn>[]; extractedAnswer: string | null; reward: number; outcome: z.infer<typeof OutcomeLabel>; truncation: string | null; tokenIds: number[]; actionMask: (0 | 1)[]; retokenized: boolean };
  annotation: z.infer<typeof Annotation> | null; tokenTexts: string[] | null; turnRewards: number[] | null;
}, split: 'train' | 'eval' = 'train'): TrajectoryView {
  const t = r.trajectory;
  return {
    id: t.id, runId: t.runId, iteration: t.iteration, promptId: t.promptId, sampleIndex: t.sampleIndex, split, policy: t.policy,
    question: t.question, reference: t.reference, template: t.template, promptText: t.promptText, promptTokenIds: t.promptTokenIds,
    turns: t.turns, extractedAnswer: t.extractedAnswer, reward: t.reward, outcome: t.outcome, truncation: t.truncation,
    tokenIds: t.tokenIds, actionMask: t.actionMask, tokenTexts: r.tokenTexts, turnRewards: r.turnRewards, retokenized: t.retokenized,
    annotation: r.annotation, live: false,
  };
}

/** Per-turn token counts: action tokens (counted by M-DPO) and observation tokens (masked out). */
export function turnTokenCounts(turn: z.infer<typeof Turn>): { action: number; observation: number } {
  return { action: turn.action.tokenIds.length, observation: turn.observation?.tokenIds.length ?? 0 };
}
