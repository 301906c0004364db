/** Builders of valid protocol objects for the extension's unit tests. */
import type { DaemonEvent, RunStatusEvent, RunSummary, TrajectoryHeader, Turn } from '@mathagent/shared';

export function run(id: string, createdAt = '2025-01-01T00:00:00Z', extra: Partial<RunSummary> = {}): RunSummary {
  return { id, name: id, kind: 'train', algorithm: 'mdpo', state: 'running', stage: 'sample', iteration: 1, iterations: 3, createdAt, updatedAt: createdAt,
    error: null, bestPass1: null, bestIteration: null, ...extra };
}

export function header(id: string, extra: Partial<TrajectoryHeader> = {}): TrajectoryHeader {
  return { id, runId: 'r1', iteration: 1, promptId: 'p1', sampleIndex: 0, split: 'train', question: 'q?', outcome: 'correct', reward: 1,
    extractedAnswer: '4', turns: 2, annotation: null, ...extra };
}

export function turn(index: number, text: string, extra: Partial<Turn> = {}): Turn {
  return { index, action: { text, tokenIds: [1, 2, 3], logprobs: [] }, finishReason: 'stop', toolCall: null, observation: null, ...extra };
}

const T = '2025-01-01T00:00:00Z';
export function finished(seq: number, h: TrajectoryHeader): DaemonEvent {
  return { type: 'trajectory/finished', seq, runId: h.runId, time: T, header: h };
}
export function started(seq: number, id: string, runId = 'r1', iteration = 1, promptId = 'p1', split: 'train' | 'eval' = 'train'): DaemonEvent {
  return { type: 'trajectory/started', seq, runId, time: T, trajectoryId: id, iteration, promptId, question: 'q?', split };
}
export function log(seq: number, message = 'hi', runId = 'r1'): DaemonEvent {
  return { type: 'log', seq, runId, time: T, level: 'info', message };
}
export function status(seq: number, extra: Partial<RunStatusEvent> = {}): DaemonEvent {
  return { type: 'run/status', seq, runId: 'r1', time: T, state: 'running', stage: 'sample', iteration: 1, progress: null, error: null, ...extra };
}
