/**
 * OpenAIPolicy: the rollout's Policy backed by OpenAI-compatible completion servers (vLLM, SGLang, llama.cpp,
 * or `mathagent serve`) through an EndpointPool.
 *
 * Each model turn is one `POST /v1/completions` with the history rendered by the trajectory's chat template
 * (so the paper's Gemma/ToRA formats work), the template's stop strings, temperature, top_p, max_tokens, n=1
 * and a per-request seed. We ask for `logprobs` and vLLM's `return_token_ids` and `include_stop_str_in_output`:
 *
 * - Token-out: when the server returns the sampled ids AND they are ids of our tokenizer (they decode to the
 *   returned text, and the server's prompt ids equal our encoding of the prompt), the turn keeps those exact
 *   ids and their logprobs. Otherwise the result carries text only and the rollout re-encodes it with the named
 *   tokenizer, marking the trajectory `retokenized` (see rollout.ts).
 * - Stops: our convention is that the stop string is part of the action. Servers that strip it anyway (plain
 *   OpenAI, llama.cpp) report it as `stop_reason` (vLLM) or not at all; we put the reported stop back, and a
 *   `stop` finish without a stop string (an EOS token) gets the template's end-of-turn text, finish `eos`.
 *
 * `generateOne` lets the rollout dispatch each trajectory's turn on its own, so the pool's slots stay full while
 * other trajectories wait for their tool calls.
 */
import type { GenerateRequest, GenerateResult, Policy, Tokenizer } from '../env/policy';
import type { ChatTemplate } from '../env/templates';
import { endingStop } from '../env/templates';
import { EndpointPool, type EndpointSpec, type PoolOptions, type PoolStats } from './endpointPool';

export interface OpenAIPolicyOptions {
  /** Endpoints (a pool is created) or an existing pool (shared, re-pointed by the external trainer). */
  endpoints: EndpointSpec[] | EndpointPool;
  /** Model id sent with every request; null = the first id of the first endpoint's GET /v1/models. */
  model: string | null;
  template: ChatTemplate;
  /** The named tokenizer for prompts, observations and text-only results. */
  tokenizer: Tokenizer;
  name?: string;
  /** Send the prompt as token ids (only when `tokenizer` is the server's own; default false: text). */
  sendTokenIds?: boolean;
  /** Ask for logprobs (default true). */
  logprobs?: boolean;
  /** Extra fields merged into every request body (e.g. vLLM's `repetition_penalty`). */
  extraBody?: Record<string, unknown>;
  pool?: PoolOptions;
  log?: (line: string) => void;
}

export interface RemoteStats { turns: number; tokens: number; tokenIdsUsed: number; retokenized: number; pool: PoolStats }

interface CompletionChoice {
  text?: unknown;
  finish_reason?: unknown;
  stop_reason?: unknown;
  token_ids?: unknown;
  prompt_token_ids?: unknown;
  logprobs?: { token_logprobs?: unknown } | null;
}

const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.every((v) => Number.isInteger(v) && v >= 0);

export class OpenAIPolicy implements Policy {
  readonly name: string;
  readonly tokenizer: Tokenizer;
  readonly pool: EndpointPool;
  private model: string | null;
  private modelPromise: Promise<string> | null = null;
  private readonly ownsPool: boolean;
  private readonly counters = { turns: 0, tokens: 0, tokenIdsUsed: 0, retokenized: 0 };
  private warnedMismatch = false;

  constructor(private readonly o: OpenAIPolicyOptions) {
    if (!o.template || typeof o.template.renderPrompt !== 'function') throw new Error('OpenAIPolicy: template must be a ChatTemplate (see getTemplate)');
    this.ownsPool = !(o.endpoints instanceof EndpointPool);
    this.pool = o.endpoints instanceof EndpointPool ? o.endpoints : new EndpointPool(o.endpoints, { ...o.pool, log: o.pool?.log ?? o.log });
    this.tokenizer = o.tokenizer;
    this.model = o.model;
    this.name = o.name ?? `openai:${o.model ?? 'auto'}`;
  }

  /** Point at a new model id (e.g. a freshly served checkpoint). */
  setModel(model: string | null): void { this.model = model; this.modelPromise = null; }

  stats(): RemoteStats { return { ...this.counters, pool: this.pool.stats() }; }

  generate(requests: GenerateRequest[]): Promise<GenerateResult[]> {
    return Promise.all(requests.map((r) => this.generateOne(r)));
  }

  async generateOne(r: GenerateRequest): Promise<GenerateResult> {
    if (r.maxTokens <= 0) return { text: '', tokenIds: [], logprobs: [], finishReason: 'length' };
    const model = await this.resolveModel();
    const body: Record<string, unknown> = {
      ...this.o.extraBody,
      model,
      prompt: this.o.sendTokenIds ? r.promptTokenIds : r.promptText,
      max_tokens: r.maxTokens,
      temperature: r.temperature,
      top_p: r.topP,
      n: 1,
      stop: r.stop,
      ...(r.seed !== undefined ? { seed: r.seed } : {}),
      ...(this.o.logprobs === false ? {} : { logprobs: 0 }),
      return_token_ids: true,
      include_stop_str_in_output: true,
      skip_special_tokens: false,
    };
    const { json, endpoint } = await this.pool.request('POST', '/v1/completions', body);
    return this.parse(json, r, endpoint);
  }

  dispose(): void {
    if (this.ownsPool) this.pool.close();
  }

  private resolveModel(): Promise<string> {
    if (this.model !== null) return Promise.resolve(this.model);
    this.modelPromise ??= this.pool.request('GET', '/v1/models').then(({ json, endpoint }) => {
      const id = (json as { data?: Array<{ id?: unknown }> }).data?.[0]?.id;
      if (typeof id !== 'string') throw new Error(`remote policy: ${endpoint}/v1/models lists no model; set policy.model`);
      this.model = id;
      return id;
    }).catch((e: unknown) => { this.modelPromise = null; throw e; });
    return this.modelPromise;
  }

  private parse(json: unknown, r: GenerateRequest, endpoint: string): GenerateResult {
    const bad = (what: string) => new Error(`remote policy: ${endpoint}/v1/completions answered ${what}`);
    const choice = (json as { choices?: CompletionChoice[] })?.choices?.[0];
    if (!choice || typeof choice.text !== 'string') throw bad('without choices[0].text');
    let text = choice.text;
    let finishReason: GenerateResult['finishReason'];
    if (choice.finish_reason === 'length') finishReason = 'length';
    else if (choice.finish_reason === 'stop' || choice.finish_reason === 'eos') {
      const stop = endingStop(text, [...r.stop, this.o.template.eos]);
      if (stop !== null) finishReason = stop === this.o.template.eos ? 'eos' : 'stop';
      else if (typeof choice.stop_reason === 'string' && r.stop.includes(choice.stop_reason)) {
        // The server stripped the stop string: it was sampled, so it is part of the action.
        text += choice.stop_reason;
        finishReason = choice.stop_reason === this.o.template.eos ? 'eos' : 'stop';
      } else {
        // An EOS token (not in the text): end the turn as the template ends it.
        text += this.o.template.eos;
        finishReason = 'eos';
      }
    } else throw bad(`an unknown finish_reason ${JSON.stringify(choice.finish_reason)}`);

    this.counters.turns++;
    let tokenIds: number[] = [];
    let logprobs: number[] = [];
    if (isIds(choice.token_ids) && this.idsAreOurs(choice, text, r)) {
      tokenIds = choice.token_ids;
      const lps = choice.logprobs?.token_logprobs;
      if (Array.isArray(lps) && lps.length === tokenIds.length && lps.every((x) => typeof x === 'number')) logprobs = lps as number[];
      this.counters.tokenIdsUsed++;
    } else {
      this.counters.retokenized++;
    }
    this.counters.tokens += tokenIds.length || this.tokenizer.encode(text).length;
    return { text, tokenIds, logprobs, finishReason };
  }

  /** The server's ids are usable only if they are our tokenizer's ids for this text and prompt. */
  private idsAreOurs(choice: CompletionChoice, text: string, r: GenerateRequest): boolean {
    let ok: boolean;
    try {
      ok = this.tokenizer.decode(choice.token_ids as number[]) === text;
      if (ok && !this.o.sendTokenIds && isIds(choice.prompt_token_ids)) {
        const p = choice.prompt_token_ids;
        ok = p.length === r.promptTokenIds.length && p.every((id, i) => id === r.promptTokenIds[i]);
      }
    } catch {
      ok = false;
    }
    if (!ok && !this.warnedMismatch) {
      this.warnedMismatch = true;
      this.o.log?.(`remote policy: the server's token ids are not ids of tokenizer "${this.tokenizer.name}"; using text and re-tokenising (trajectories are marked retokenized)`);
    }
    return ok;
  }
}
