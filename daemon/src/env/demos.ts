/**
 * Render a structured demonstration (data/types.ts Demo) in a chat template for SFT: each step with code is an
 * action ending with the template's tool request, followed by the observation the REAL sandbox gives for that
 * code (so demonstrations show exactly what the tool prints, errors included); the last step ends with eos.
 * The ids are encoded piece by piece (prompt, action, observation, ...) as the rollout does, so an SFT sequence
 * tokenises the same way as a sampled trajectory, and the mask marks the action pieces.
 */
import type { Demo } from '../data/types';
import type { Tokenizer } from './policy';
import type { ToolSession } from './sandbox';
import type { ChatTemplate } from './templates';

export interface RenderedDemo {
  text: string;
  tokenIds: number[];
  actionMask: (0 | 1)[];
  /** The sandbox output of each step that had code, in order. */
  outputs: string[];
}

export async function renderDemo(demo: Demo, template: ChatTemplate, tokenizer: Tokenizer, session: ToolSession): Promise<RenderedDemo> {
  if (!demo.steps.length) throw new Error(`renderDemo: demonstration for ${demo.problem.id} has no steps`);
  const last = demo.steps[demo.steps.length - 1]!;
  if (last.code !== null) throw new Error(`renderDemo: the last step of the demonstration for ${demo.problem.id} must give the answer, not call the tool`);
  const out: RenderedDemo = { text: '', tokenIds: [], actionMask: [], outputs: [] };
  const add = (piece: string, mask: 0 | 1) => {
    const ids = tokenizer.encode(piece);
    out.text += piece;
    for (const id of ids) { out.tokenIds.push(id); out.actionMask.push(mask); }
  };
  add(template.renderPrompt(demo.problem.question), 0);
  const lang = template.codeBlockLangs[0] ?? 'mathjs';
  for (const step of demo.steps) {
    if (step.code === null) {
      add(template.renderFinal(step.text), 1);
      continue;
    }
    add(template.renderToolCall(step.text, step.code, lang), 1);
    const r = await session.run(step.code);
    out.outputs.push(r.output);
    add(template.renderObservation(r.output, r.error), 0);
  }
  return out;
}
