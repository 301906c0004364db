/**
 * Export of preference pairs in TRL's conversational DPO format, with a per-message action mask:
 * `{"prompt": [{role: "user", content}], "chosen": [...messages], "rejected": [...messages]}` where each completion
 * message is `{role, content, mask}` — `assistant` messages are the model's own turns (mask 1, trained on), and tool
 * observations are `user` messages (mask 0), as the paper's Gemma format places them. With `tokens`, the exact
 * token ids and flat action mask are included too (token-in/token-out for trainers that take ids).
 */
import type { Trajectory } from '@mathagent/shared';

export interface ExportMessage { role: 'user' | 'assistant'; content: string; mask: 0 | 1 }

export function trajectoryMessages(t: Trajectory): ExportMessage[] {
  const out: ExportMessage[] = [];
  for (const turn of t.turns) {
    out.push({ role: 'assistant', content: turn.action.text, mask: 1 });
    if (turn.observation) out.push({ role: 'user', content: turn.observation.text, mask: 0 });
  }
  return out;
}

/** Token ids as sampled (token-in/token-out) and the flat action mask. */
export type PairTokens = { prompt_ids: number[]; ids: number[]; action_mask: number[] };

/** What every export format carries besides the texts: ids to find the trajectories again, and optionally tokens. */
export interface PairMetadata {
  reference: string;
  prompt_id: string;
  run_id: string;
  iteration: number;
  chosen_id: string;
  rejected_id: string;
  template: string;
  chosen_tokens?: PairTokens;
  rejected_tokens?: PairTokens;
}

export function pairMetadata(chosen: Trajectory, rejected: Trajectory, opts: { tokens?: boolean } = {}): PairMetadata {
  const toks = (t: Trajectory): PairTokens => ({ prompt_ids: t.promptTokenIds, ids: t.tokenIds, action_mask: t.actionMask });
  return {
    reference: chosen.reference,
    prompt_id: chosen.promptId,
    run_id: chosen.runId,
    iteration: chosen.iteration,
    chosen_id: chosen.id,
    rejected_id: rejected.id,
    template: chosen.template,
    ...(opts.tokens ? { chosen_tokens: toks(chosen), rejected_tokens: toks(rejected) } : {}),
  };
}

export interface ExportedPair extends PairMetadata {
  prompt: Array<{ role: 'user'; content: string }>;
  chosen: ExportMessage[];
  rejected: ExportMessage[];
}

export function exportPair(chosen: Trajectory, rejected: Trajectory, opts: { tokens?: boolean } = {}): ExportedPair {
  return {
    prompt: [{ role: 'user', content: chosen.question }],
    chosen: trajectoryMessages(chosen),
    rejected: trajectoryMessages(rejected),
    ...pairMetadata(chosen, rejected, opts),
  };
}
