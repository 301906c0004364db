import type { Trajectory, TrajectoryHeader } from '@mathagent/shared';

/** The list/tree view of a trajectory (no token arrays). */
export function toHeader(t: Trajectory, split: 'train' | 'eval', annotation: TrajectoryHeader['annotation'] = null): TrajectoryHeader {
  return {
    id: t.id, runId: t.runId, iteration: t.iteration, promptId: t.promptId, sampleIndex: t.sampleIndex, split,
    question: t.question, outcome: t.outcome, reward: t.reward, extractedAnswer: t.extractedAnswer,
    turns: t.turns.length, annotation,
  };
}

/** Stable ids: the same (run, iteration, prompt, sample) always gets the same id, so a resume never duplicates. */
export const trajectoryId = (runId: string, iteration: number, promptId: string, sample: number, split: 'train' | 'eval') =>
  `${runId}:${split === 'eval' ? 'e' : 'i'}${iteration}:${promptId}:s${sample}`;
