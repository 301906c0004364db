/**
 * Compact storage of trajectories. Token ids go to Int32 BLOBs (4 bytes a token instead of ~6 as JSON text),
 * the action mask to a Uint8 BLOB, logprobs to a Float64 BLOB (exact round trip: training must see the very
 * values that were sampled). The per-turn token arrays are stored once, concatenated, with their lengths in the
 * turn JSON; the flat sequence and mask are only stored when they differ from what `flattenTokens` derives
 * (they normally do not), so a trajectory's tokens are not stored twice.
 *
 * Typed arrays use the platform's byte order; every platform Node ships for is little-endian.
 */
import { flattenTokens, type Trajectory, type Turn } from '@mathagent/shared';

const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;

export function encodeInt32(ids: readonly number[], what: string): Buffer {
  const a = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i]!;
    if (!Number.isInteger(v) || v < I32_MIN || v > I32_MAX) throw new RangeError(`${what}[${i}] = ${v} is not a 32-bit integer token id`);
    a[i] = v;
  }
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Copies into a fresh (aligned) buffer: SQLite buffers may start at any byte offset. */
export function decodeInt32(b: Buffer | null | undefined): number[] {
  if (!b || b.length === 0) return [];
  if (b.length % 4) throw new Error(`corrupt Int32 BLOB of ${b.length} bytes`);
  return Array.from(new Int32Array(new Uint8Array(b).buffer));
}

export function encodeFloat64(xs: readonly number[]): Buffer {
  const a = Float64Array.from(xs);
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

export function decodeFloat64(b: Buffer | null | undefined): number[] {
  if (!b || b.length === 0) return [];
  if (b.length % 8) throw new Error(`corrupt Float64 BLOB of ${b.length} bytes`);
  return Array.from(new Float64Array(new Uint8Array(b).buffer));
}

export function encodeMask(mask: readonly number[], what: string): Buffer {
  const a = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) {
    const v = mask[i];
    if (v !== 0 && v !== 1) throw new RangeError(`${what}[${i}] = ${String(v)}: an action mask holds only 0 and 1`);
    a[i] = v;
  }
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

export function decodeMask(b: Buffer | null | undefined): (0 | 1)[] {
  if (!b) return [];
  return Array.from(b, (v) => (v ? 1 : 0));
}

/** A turn as stored in JSON: the arrays emptied, their lengths in `n` = [action ids, logprobs, observation ids]. */
type StoredTurn = Omit<Turn, 'action' | 'observation'> & {
  action: { text: string };
  observation: (Omit<NonNullable<Turn['observation']>, 'tokenIds'>) | null;
  n: [number, number, number];
};

export interface TrajectoryRow {
  id: string;
  run_id: string;
  iteration: number;
  prompt_id: string;
  sample_index: number;
  split: 'train' | 'eval';
  policy: string;
  question: string;
  reference: string;
  template: string;
  prompt_text: string;
  prompt_token_ids: Buffer;
  turns: string;
  num_turns: number;
  turn_token_ids: Buffer;
  logprobs: Buffer;
  token_ids: Buffer | null;
  action_mask: Buffer | null;
  extracted_answer: string | null;
  reward: number;
  outcome: string;
  truncation: string | null;
  retokenized: number;
  created_at: string;
}

const sameArray = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

export function packTrajectory(t: Trajectory, split: 'train' | 'eval'): TrajectoryRow {
  const turnIds: number[] = [];
  const logprobs: number[] = [];
  const stored: StoredTurn[] = t.turns.map((turn) => {
    for (const id of turn.action.tokenIds) turnIds.push(id);
    for (const lp of turn.action.logprobs) logprobs.push(lp);
    const obs = turn.observation;
    if (obs) for (const id of obs.tokenIds) turnIds.push(id);
    const { tokenIds: _o, ...obsRest } = obs ?? { tokenIds: [] };
    return {
      index: turn.index,
      action: { text: turn.action.text },
      finishReason: turn.finishReason,
      toolCall: turn.toolCall,
      observation: obs ? (obsRest as StoredTurn['observation']) : null,
      n: [turn.action.tokenIds.length, turn.action.logprobs.length, obs ? obs.tokenIds.length : 0],
    };
  });
  const derived = flattenTokens(t.promptTokenIds, t.turns);
  return {
    id: t.id,
    run_id: t.runId,
    iteration: t.iteration,
    prompt_id: t.promptId,
    sample_index: t.sampleIndex,
    split,
    policy: t.policy,
    question: t.question,
    reference: t.reference,
    template: t.template,
    prompt_text: t.promptText,
    prompt_token_ids: encodeInt32(t.promptTokenIds, `trajectory ${t.id} promptTokenIds`),
    turns: JSON.stringify(stored),
    num_turns: t.turns.length,
    turn_token_ids: encodeInt32(turnIds, `trajectory ${t.id} turn tokenIds`),
    logprobs: encodeFloat64(logprobs),
    token_ids: sameArray(derived.tokenIds, t.tokenIds) ? null : encodeInt32(t.tokenIds, `trajectory ${t.id} tokenIds`),
    action_mask: sameArray(derived.actionMask, t.actionMask) ? null : encodeMask(t.actionMask, `trajectory ${t.id} actionMask`),
    extracted_answer: t.extractedAnswer,
    reward: t.reward,
    outcome: t.outcome,
    truncation: t.truncation,
    retokenized: t.retokenized ? 1 : 0,
    created_at: t.createdAt,
  };
}

export function unpackTrajectory(r: TrajectoryRow): Trajectory {
  const turnIds = decodeInt32(r.turn_token_ids);
  const lps = decodeFloat64(r.logprobs);
  let ti = 0;
  let li = 0;
  const stored = JSON.parse(r.turns) as StoredTurn[];
  const turns: Turn[] = stored.map((s) => {
    const [na, nl, no] = s.n;
    const action = { text: s.action.text, tokenIds: turnIds.slice(ti, ti + na), logprobs: lps.slice(li, li + nl) };
    ti += na;
    li += nl;
    let observation: Turn['observation'] = null;
    if (s.observation) {
      observation = { ...s.observation, tokenIds: turnIds.slice(ti, ti + no) };
      ti += no;
    }
    return { index: s.index, action, finishReason: s.finishReason, toolCall: s.toolCall, observation };
  });
  const promptTokenIds = decodeInt32(r.prompt_token_ids);
  const derived = r.token_ids === null || r.action_mask === null ? flattenTokens(promptTokenIds, turns) : null;
  return {
    id: r.id,
    runId: r.run_id,
    iteration: r.iteration,
    promptId: r.prompt_id,
    sampleIndex: r.sample_index,
    policy: r.policy,
    question: r.question,
    reference: r.reference,
    template: r.template,
    promptText: r.prompt_text,
    promptTokenIds,
    turns,
    extractedAnswer: r.extracted_answer,
    reward: r.reward,
    outcome: r.outcome as Trajectory['outcome'],
    truncation: r.truncation as Trajectory['truncation'],
    tokenIds: r.token_ids === null ? derived!.tokenIds : decodeInt32(r.token_ids),
    actionMask: r.action_mask === null ? derived!.actionMask : decodeMask(r.action_mask),
    retokenized: r.retokenized === 1,
    createdAt: r.created_at,
  };
}
