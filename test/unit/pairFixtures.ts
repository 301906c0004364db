/**
 * A graded trajectory for the pair-building and RAFT-selection tests: one turn, no tokens, an observation that is a
 * tool error when asked. Only the fields pairing reads carry meaning; `over` sets the rest (a run id, a unique id).
 */
import type { Trajectory } from '@mathagent/shared';

export function gradedTrajectory(promptId: string, sampleIndex: number, reward: number, toolError = false, over: Partial<Trajectory> = {}): Trajectory {
  return {
    id: `${promptId}-s${sampleIndex}`, runId: 'r', iteration: 1, promptId, sampleIndex, policy: 'p', question: 'q', reference: '1',
    template: 'mathagent', promptText: '', promptTokenIds: [],
    turns: [{ index: 0, action: { text: '', tokenIds: [], logprobs: [] }, finishReason: 'stop', toolCall: null,
      observation: { output: toolError ? 'Error: x' : '1', text: '', tokenIds: [], error: toolError, durationMs: 1 } }],
    extractedAnswer: null, reward, outcome: reward ? 'correct' : 'wrong', truncation: null, tokenIds: [], actionMask: [],
    retokenized: false, createdAt: '',
    ...over,
  };
}
