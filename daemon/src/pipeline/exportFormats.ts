/**
 * Pair export formats for external trainers, and re-import.
 *
 * - TRL (exportPairs.ts): conversational DPO rows, `chosen`/`rejected` are message lists whose `mask` says which
 *   messages the model wrote (1) and which are tool observations (0).
 * - OpenRLHF: plain-text DPO rows `{"prompt", "chosen", "rejected"}` (train with `--prompt_key prompt
 *   --chosen_key chosen --rejected_key rejected` and WITHOUT `--apply_chat_template`: the text is already in the
 *   run's chat template), plus `chosen_action_spans` / `rejected_action_spans`: [start, end) character ranges
 *   of the model's own text inside `chosen` / `rejected` — a multi-turn mask for a loss that skips observations
 *   (OpenRLHF's stock DPO masks only the prompt).
 * - Both carry the same metadata, and with `tokens` the exact ids and flat action masks.
 *
 * `importPairs` reads either format back (one JSON object per line, format detected per line) and gives each
 * side's messages, token ids and action mask: the exported ids when present, else the text re-encoded with a
 * tokenizer (segment by segment, so masks stay exact at message boundaries).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Trajectory } from '@mathagent/shared';
import type { Tokenizer } from '../env/policy';
import { getTemplate } from '../env/templates';
import { exportPair, pairMetadata, trajectoryMessages, type ExportMessage, type ExportedPair, type PairMetadata, type PairTokens } from './exportPairs';


export interface OpenRLHFPair extends PairMetadata {
  prompt: string;
  chosen: string;
  rejected: string;
  chosen_action_spans: Array<[number, number]>;
  rejected_action_spans: Array<[number, number]>;
  question: string;
}

/** Completion text of a trajectory (everything after the prompt) and the character spans of its actions. */
function textWithSpans(t: Trajectory): { text: string; spans: Array<[number, number]> } {
  let text = '';
  const spans: Array<[number, number]> = [];
  for (const m of trajectoryMessages(t)) {
    if (m.mask === 1) spans.push([text.length, text.length + m.content.length]);
    text += m.content;
  }
  return { text, spans };
}

export function exportOpenRLHF(chosen: Trajectory, rejected: Trajectory, opts: { tokens?: boolean } = {}): OpenRLHFPair {
  const c = textWithSpans(chosen);
  const r = textWithSpans(rejected);
  return {
    prompt: chosen.promptText,
    chosen: c.text,
    rejected: r.text,
    chosen_action_spans: c.spans,
    rejected_action_spans: r.spans,
    question: chosen.question,
    ...pairMetadata(chosen, rejected, opts),
  };
}

export interface PairFiles { trl: string; openrlhf: string; count: number }

/** Write `pairs.trl.jsonl` and `pairs.openrlhf.jsonl` (with token ids) into `dir`. */
export function writePairFiles(dir: string, pairs: Array<{ chosen: Trajectory; rejected: Trajectory }>): PairFiles {
  mkdirSync(dir, { recursive: true });
  const trl = join(dir, 'pairs.trl.jsonl');
  const openrlhf = join(dir, 'pairs.openrlhf.jsonl');
  writeFileSync(trl, pairs.map((p) => JSON.stringify(exportPair(p.chosen, p.rejected, { tokens: true })) + '\n').join(''));
  writeFileSync(openrlhf, pairs.map((p) => JSON.stringify(exportOpenRLHF(p.chosen, p.rejected, { tokens: true })) + '\n').join(''));
  return { trl, openrlhf, count: pairs.length };
}

export interface ImportedSide {
  messages: ExportMessage[];
  /** The prompt as the template rendered it (null when unknown: TRL rows of an unknown template). */
  promptText: string | null;
  /** Flat ids (prompt + completion) and action mask; null when neither exported ids nor a tokenizer were there. */
  tokenIds: number[] | null;
  actionMask: (0 | 1)[] | null;
  /** Where the ids came from. */
  tokenSource: 'exported' | 'tokenizer' | null;
}

export interface ImportedPair {
  format: 'trl' | 'openrlhf';
  question: string;
  reference: string;
  promptId: string;
  runId: string;
  iteration: number;
  chosenId: string;
  rejectedId: string;
  template: string;
  chosen: ImportedSide;
  rejected: ImportedSide;
}

/** Parse exported pairs (TRL or OpenRLHF rows, one JSON object per line). Errors name the line and the field. */
export function importPairs(jsonl: string, opts: { tokenizer?: Tokenizer } = {}): ImportedPair[] {
  const out: ImportedPair[] = [];
  jsonl.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    const where = `line ${i + 1}`;
    let row: Record<string, unknown>;
    try {
      const v: unknown = JSON.parse(line);
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
      row = v as Record<string, unknown>;
    } catch (e) {
      throw new Error(`importPairs: ${where}: ${(e as Error).message}`);
    }
    out.push(importRow(row, where, opts.tokenizer));
  });
  return out;
}

function str(row: Record<string, unknown>, k: string, where: string): string {
  const v = row[k];
  if (typeof v !== 'string') throw new Error(`importPairs: ${where}: "${k}" must be a string`);
  return v;
}

function importRow(row: Record<string, unknown>, where: string, tok?: Tokenizer): ImportedPair {
  const template = str(row, 'template', where);
  const iteration = row.iteration;
  if (!Number.isInteger(iteration)) throw new Error(`importPairs: ${where}: "iteration" must be an integer`);
  let format: ImportedPair['format'];
  let question: string;
  let promptText: string | null;
  let chosenMsgs: ExportMessage[];
  let rejectedMsgs: ExportMessage[];
  if (Array.isArray(row.chosen)) {
    format = 'trl';
    const p = (row as unknown as ExportedPair).prompt;
    if (!Array.isArray(p) || typeof p[0]?.content !== 'string') throw new Error(`importPairs: ${where}: "prompt" must be [{"role": "user", "content": ...}]`);
    question = p[0].content;
    promptText = knownTemplate(template)?.renderPrompt(question) ?? null;
    chosenMsgs = messages(row.chosen, `${where}: chosen`);
    rejectedMsgs = messages(row.rejected, `${where}: rejected`);
  } else if (typeof row.chosen === 'string') {
    format = 'openrlhf';
    question = str(row, 'question', where);
    promptText = str(row, 'prompt', where);
    chosenMsgs = fromSpans(str(row, 'chosen', where), row.chosen_action_spans, `${where}: chosen_action_spans`);
    rejectedMsgs = fromSpans(str(row, 'rejected', where), row.rejected_action_spans, `${where}: rejected_action_spans`);
  } else {
    throw new Error(`importPairs: ${where}: "chosen" must be a message list (TRL) or a string (OpenRLHF)`);
  }
  const side = (msgs: ExportMessage[], tokens: unknown, name: string): ImportedSide => {
    if (tokens !== undefined) {
      const t = tokens as Partial<PairTokens>;
      const ids = t.ids;
      const mask = t.action_mask;
      if (!Array.isArray(ids) || !Array.isArray(mask) || ids.length !== mask.length || !ids.every(Number.isInteger) || !mask.every((m) => m === 0 || m === 1)) {
        throw new Error(`importPairs: ${where}: ${name}_tokens must hold "ids" and an "action_mask" of 0/1 of the same length`);
      }
      return { messages: msgs, promptText, tokenIds: ids as number[], actionMask: mask as (0 | 1)[], tokenSource: 'exported' };
    }
    if (tok && promptText !== null) {
      const ids = tok.encode(promptText);
      const mask: (0 | 1)[] = ids.map(() => 0);
      for (const m of msgs) for (const id of tok.encode(m.content)) { ids.push(id); mask.push(m.mask); }
      return { messages: msgs, promptText, tokenIds: ids, actionMask: mask, tokenSource: 'tokenizer' };
    }
    return { messages: msgs, promptText, tokenIds: null, actionMask: null, tokenSource: null };
  };
  return {
    format, question, template, iteration: iteration as number,
    reference: str(row, 'reference', where), promptId: str(row, 'prompt_id', where), runId: str(row, 'run_id', where),
    chosenId: str(row, 'chosen_id', where), rejectedId: str(row, 'rejected_id', where),
    chosen: side(chosenMsgs, row.chosen_tokens, 'chosen'),
    rejected: side(rejectedMsgs, row.rejected_tokens, 'rejected'),
  };
}

function knownTemplate(name: string) {
  try { return getTemplate(name); } catch { return null; }
}

function messages(v: unknown, where: string): ExportMessage[] {
  if (!Array.isArray(v)) throw new Error(`importPairs: ${where} must be a list of messages`);
  return v.map((m: unknown, i) => {
    const x = m as Partial<ExportMessage>;
    if (!x || (x.role !== 'user' && x.role !== 'assistant') || typeof x.content !== 'string' || (x.mask !== 0 && x.mask !== 1)) {
      throw new Error(`importPairs: ${where}[${i}] must be {"role": "assistant"|"user", "content": string, "mask": 0|1}`);
    }
    return { role: x.role, content: x.content, mask: x.mask };
  });
}

/** Split a completion text into messages by its action spans (gaps are observations). */
function fromSpans(text: string, spans: unknown, where: string): ExportMessage[] {
  if (!Array.isArray(spans)) throw new Error(`importPairs: ${where} must be a list of [start, end] pairs`);
  const out: ExportMessage[] = [];
  let pos = 0;
  for (const s of spans) {
    const [a, b] = Array.isArray(s) ? s : [];
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < pos || b < a || b > text.length) {
      throw new Error(`importPairs: ${where}: span ${JSON.stringify(s)} is not an increasing range inside the text (length ${text.length})`);
    }
    if (a > pos) out.push({ role: 'user', content: text.slice(pos, a), mask: 0 });
    out.push({ role: 'assistant', content: text.slice(a, b), mask: 1 });
    pos = b;
  }
  if (pos < text.length) out.push({ role: 'user', content: text.slice(pos), mask: 0 });
  return out;
}
