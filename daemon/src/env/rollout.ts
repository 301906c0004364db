/**
 * The multi-turn tool-integrated rollout loop (DESIGN.md §2 "Trajectory"), independent of any model.
 *
 * Batched: up to `batchSize` trajectories are active; each step calls `policy.generate` once for every
 * trajectory that is waiting for its next model turn, while the tool calls of the others run in the sandbox
 * concurrently (generation never waits for a tool). A trajectory whose tool call finishes during a generate
 * call joins the next step.
 *
 * Token-in/token-out: the prompt's ids are `tokenizer.encode(promptText)`, each action's ids are exactly the ids
 * the policy returned (re-encoded only when a text-only policy returns none, and then the trajectory says
 * `retokenized`), each observation's ids are `tokenizer.encode(observationText)`. The flat sequence and action
 * mask come from `flattenTokens`.
 *
 * Limits (paper: H = 6 turns, 512 tokens per turn, 2048 per trajectory, prompt included): a turn's maxTokens is
 * capped by what is left of the trajectory budget; running out of turns or tokens gives outcome `truncated`.
 */
import { flattenTokens, type Trajectory, type Turn, type TruncationReason, type Observation } from '@mathagent/shared';
import type { Problem } from '../data/types';
import { gradeAnswer } from '../reward/grader';
import type { GenerateRequest, GenerateResult, Policy } from './policy';
import type { SandboxPool, ToolSession } from './sandbox';
import type { ChatTemplate } from './templates';
import { endingStop, stripStop } from './templates';
import { hasBoxedAnswer, parseToolCall } from './codeBlocks';
import { yieldToEventLoop } from '../util/yieldLoop';

export interface RolloutItem {
  /** Trajectory id. */
  id: string;
  runId: string;
  iteration: number;
  sampleIndex: number;
  problem: Problem;
}

export interface RolloutOptions {
  template: ChatTemplate;
  /** H: the most model turns. */
  maxTurns: number;
  maxTurnTokens: number;
  /** Budget of the whole sequence, prompt included. */
  maxTrajectoryTokens: number;
  temperature: number;
  topP: number;
  /** Most trajectories in flight at once. */
  batchSize: number;
  seed: number;
  /** Accept ```python blocks (the Python tool is enabled). */
  python?: boolean;
  signal?: AbortSignal;
}

export interface RolloutHooks {
  onStart?(item: RolloutItem): void;
  onTurn?(itemId: string, turn: Turn): void;
  onFinish?(t: Trajectory): void;
}

/** The tool side of the rollout: the sandbox pool (or anything that hands out sessions). */
export type ToolProvider = Pick<SandboxPool, 'session'>;

interface State {
  item: RolloutItem;
  index: number;
  session: ToolSession;
  createdAt: string;
  promptText: string;
  promptTokenIds: number[];
  /** The whole history as text and ids (prompt, actions, observations). */
  text: string;
  ids: number[];
  turns: Turn[];
  retokenized: boolean;
  sawToolError: boolean;
}

interface Ending {
  outcome: Trajectory['outcome'];
  truncation: TruncationReason | null;
  extracted: string | null;
  reward: number;
}

export async function rollout(
  policy: Policy,
  items: RolloutItem[],
  opts: RolloutOptions,
  tools: ToolProvider,
  hooks: RolloutHooks = {},
): Promise<Trajectory[]> {
  validate(opts);
  const tok = policy.tokenizer;
  const tpl = opts.template;
  const results: Trajectory[] = new Array(items.length);
  const active = new Set<State>();
  const waiting: State[] = [];
  let next = 0;
  let fatal: Error | null = null;
  /** Set once rollout() returns or throws: late answers of in-flight turns are dropped. */
  let settled = false;
  let wake: (() => void) | null = null;
  const signalWake = () => { const w = wake; wake = null; w?.(); };
  const onAbort = () => signalWake();
  opts.signal?.addEventListener('abort', onAbort);

  const finish = (st: State, end: Ending) => {
    const { tokenIds, actionMask } = flattenTokens(st.promptTokenIds, st.turns);
    const t: Trajectory = {
      id: st.item.id,
      runId: st.item.runId,
      iteration: st.item.iteration,
      promptId: st.item.problem.id,
      sampleIndex: st.item.sampleIndex,
      policy: policy.name,
      question: st.item.problem.question,
      reference: st.item.problem.answer,
      template: tpl.name,
      promptText: st.promptText,
      promptTokenIds: st.promptTokenIds,
      turns: st.turns,
      extractedAnswer: end.extracted,
      reward: end.reward,
      outcome: end.outcome,
      truncation: end.truncation,
      tokenIds,
      actionMask,
      retokenized: st.retokenized,
      createdAt: st.createdAt,
    };
    results[st.index] = t;
    active.delete(st);
    st.session.dispose();
    policy.forget?.(st.item.id);
    hooks.onFinish?.(t);
  };
  const truncated = (reason: TruncationReason): Ending => ({ outcome: 'truncated', truncation: reason, extracted: null, reward: 0 });

  /** Queue a trajectory for generation, or end it when no budget is left for another turn. */
  const enqueue = (st: State) => {
    if (st.turns.length >= opts.maxTurns) finish(st, truncated('max_turns'));
    else if (opts.maxTrajectoryTokens - st.ids.length <= 0) finish(st, truncated('trajectory_tokens'));
    else waiting.push(st);
  };

  const runTool = async (st: State, turn: Turn, lang: string, code: string, parseError: string | null) => {
    let output: string;
    let error: boolean;
    let durationMs = 0;
    if (parseError !== null) {
      output = parseError;
      error = true;
    } else {
      try {
        const r = await st.session.run(code, lang);
        output = r.output;
        error = r.error;
        durationMs = r.durationMs;
      } catch (e) {
        // The tool failing is the model's observation, never the rollout's failure.
        output = `Error: the tool failed: ${e instanceof Error ? e.message : String(e)}`;
        error = true;
      }
    }
    const text = tpl.renderObservation(output, error);
    const obs: Observation = { output, text, tokenIds: tok.encode(text), error, durationMs };
    turn.observation = obs;
    st.sawToolError ||= error;
    st.text += text;
    st.ids.push(...obs.tokenIds);
    hooks.onTurn?.(st.item.id, turn);
    enqueue(st);
  };

  const handleResult = (st: State, req: GenerateRequest, res: GenerateResult) => {
    let actionIds = res.tokenIds;
    if (actionIds.length === 0 && res.text.length > 0) {
      actionIds = tok.encode(res.text);
      st.retokenized = true;
    }
    const turn: Turn = {
      index: st.turns.length,
      action: { text: res.text, tokenIds: [...actionIds], logprobs: res.logprobs.length === actionIds.length ? [...res.logprobs] : [] },
      finishReason: res.finishReason,
      toolCall: null,
      observation: null,
    };
    st.turns.push(turn);
    st.text += res.text;
    st.ids.push(...actionIds);

    if (res.finishReason === 'length') {
      hooks.onTurn?.(st.item.id, turn);
      finish(st, truncated(req.maxTokens < opts.maxTurnTokens ? 'trajectory_tokens' : 'turn_tokens'));
      return;
    }
    const stop = endingStop(res.text, req.stop);
    const body = stripStop(res.text, req.stop);
    if (hasBoxedAnswer(body)) {
      hooks.onTurn?.(st.item.id, turn);
      finish(st, grade(body, st.item.problem.answer, st.sawToolError));
      return;
    }
    const call = parseToolCall(body, { python: opts.python });
    if (call) {
      turn.toolCall = { lang: call.ok ? call.lang : call.tag, code: call.code };
      void runTool(st, turn, call.ok ? call.lang : call.tag, call.code, call.ok ? null : call.error)
        .catch((e: unknown) => { fatal ??= e instanceof Error ? e : new Error(String(e)); })
        .finally(signalWake);
      return;
    }
    if (tpl.toolStop !== null && stop === tpl.toolStop) {
      // Asked to run code but wrote none: tell it, the next turn may fix it.
      turn.toolCall = null;
      void runTool(st, turn, 'mathjs', '', `Error: no code block found; write \`\`\`${tpl.codeBlockLangs[0] ?? 'mathjs'} ... \`\`\` before ${tpl.toolStop}`)
        .catch((e: unknown) => { fatal ??= e instanceof Error ? e : new Error(String(e)); })
        .finally(signalWake);
      return;
    }
    // End of turn with neither code nor a boxed answer: the trajectory ends without an answer.
    hooks.onTurn?.(st.item.id, turn);
    finish(st, { outcome: 'no_answer', truncation: null, extracted: null, reward: 0 });
  };

  const startItem = (item: RolloutItem, index: number) => {
    const promptText = tpl.renderPrompt(item.problem.question);
    const promptTokenIds = tok.encode(promptText);
    const st: State = {
      item, index, session: tools.session(), createdAt: new Date().toISOString(), promptText, promptTokenIds,
      text: promptText, ids: [...promptTokenIds], turns: [], retokenized: false, sawToolError: false,
    };
    active.add(st);
    hooks.onStart?.(item);
    enqueue(st);
  };

  try {
    while (next < items.length || active.size > 0) {
      await yieldToEventLoop();
      if (fatal) throw fatal;
      if (opts.signal?.aborted) throw abortError(opts.signal);
      while (active.size < opts.batchSize && next < items.length) {
        startItem(items[next]!, next);
        next++;
      }
      if (waiting.length === 0) {
        if (active.size === 0) continue;
        // Everyone active is in a tool call: sleep until one comes back (or abort).
        await new Promise<void>((resolve) => { wake = resolve; });
        continue;
      }
      const batch = waiting.splice(0);
      const reqs = batch.map((st): GenerateRequest => ({
        promptTokenIds: [...st.ids],
        promptText: st.text,
        maxTokens: Math.min(opts.maxTurnTokens, opts.maxTrajectoryTokens - st.ids.length),
        stop: [...tpl.stop],
        temperature: opts.temperature,
        topP: opts.topP,
        seed: requestSeed(opts.seed, st.item, st.turns.length),
        cacheKey: st.item.id,
      }));
      if (policy.generateOne) {
        // Each turn on its own: a slow turn never holds back the others, and generation overlaps tool calls.
        batch.forEach((st, i) => {
          const req = reqs[i]!;
          void policy.generateOne!(req).then(
            (res) => { if (!settled) handleResult(st, req, res); },
            (e: unknown) => {
              const msg = e instanceof Error ? e.message : String(e);
              fatal ??= new Error(`rollout: policy "${policy.name}" failed to generate a turn: ${msg}`, { cause: e });
            },
          ).catch((e: unknown) => { fatal ??= e instanceof Error ? e : new Error(String(e)); }).finally(signalWake);
        });
        continue;
      }
      let out: GenerateResult[];
      try {
        out = await policy.generate(reqs);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        throw new Error(`rollout: policy "${policy.name}" failed to generate ${reqs.length} turn(s): ${msg}`, { cause: e });
      }
      if (!Array.isArray(out) || out.length !== reqs.length) {
        throw new Error(`rollout: policy "${policy.name}" returned ${Array.isArray(out) ? out.length : 'no'} results for ${reqs.length} requests`);
      }
      batch.forEach((st, i) => handleResult(st, reqs[i]!, out[i]!));
    }
    if (fatal) throw fatal;
    return results;
  } finally {
    settled = true;
    opts.signal?.removeEventListener('abort', onAbort);
    for (const st of active) { st.session.dispose(); policy.forget?.(st.item.id); }
  }
}

function grade(finalText: string, reference: string, sawToolError: boolean): Ending {
  let extracted: string | null = null;
  let correct = false;
  try {
    const g = gradeAnswer(finalText, reference);
    extracted = g.extracted;
    correct = g.correct;
  } catch {
    // The grader must not throw; if it does, count the answer as not verified.
  }
  if (correct) return { outcome: 'correct', truncation: null, extracted, reward: 1 };
  if (extracted === null) return { outcome: 'no_answer', truncation: null, extracted, reward: 0 };
  return { outcome: sawToolError ? 'tool_error' : 'wrong', truncation: null, extracted, reward: 0 };
}

/**
 * Per-request seed from the rollout seed, the problem, the sample index, the iteration and the turn: reproducible
 * whatever the batching, and whatever the run is called. Not the trajectory id: that names the run (a timestamp
 * and a random suffix), so two runs of one config used to draw different samples; now runs with the same seed
 * draw the same samples from the same model (an experiment's arms share their first iteration's samples).
 */
export function requestSeed(seed: number, item: Pick<RolloutItem, 'iteration' | 'sampleIndex' | 'problem'>, turn: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  const s = `${item.iteration}/${item.problem.id}/${item.sampleIndex}#${turn}`;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function abortError(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error('rollout aborted');
  e.name = 'AbortError';
  return e;
}

function validate(o: RolloutOptions): void {
  const int = (name: keyof RolloutOptions, min: number) => {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new Error(`rollout: ${name} must be an integer >= ${min}, got ${String(v)}`);
  };
  if (!o.template || typeof o.template.renderPrompt !== 'function') throw new Error('rollout: options.template must be a ChatTemplate (see getTemplate)');
  int('maxTurns', 1);
  int('maxTurnTokens', 1);
  int('maxTrajectoryTokens', 1);
  int('batchSize', 1);
  if (!(o.temperature >= 0)) throw new Error(`rollout: temperature must be >= 0, got ${o.temperature}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new Error(`rollout: topP must be in (0, 1], got ${o.topP}`);
}
