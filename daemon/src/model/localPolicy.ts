/**
 * LocalPolicy: the Policy of the environment backed by our own GPT. Token-in/token-out: prompts arrive as ids
 * and are used as given; the sampled ids and their log-probabilities (under the untempered distribution) come
 * back exactly. Stop strings are checked on the incrementally decoded text (special tokens such as
 * '<|output|>' are single ids, so a stop can complete on any token); the stop string stays in the output.
 */
import type { GenerateRequest, GenerateResult, Policy } from '../env/policy';
import { mulberry32, type Rng } from '../data/rng';
import type { GPT } from './gpt';
import { ByteTokenizer, StreamDecoder } from './tokenizer';
import { HostKVDecoder, NoCacheDecoder, TensorKVDecoder, type Decoder, type KVSnapshot } from './sampler';
import { isHostBackend } from './backends';
import { yieldToEventLoop } from '../util/yieldLoop';

export interface LocalPolicyOptions {
  name?: string;
  /** Most requests decoded together; larger lists are split into batches of this size. */
  maxBatch?: number;
  /** 'auto': host decoder on wasm/cpu, tensor decoder elsewhere. */
  decoder?: 'auto' | 'host' | 'tensor';
  /** Most conversations whose key/value cache is kept between calls (host decoder; 0 = none). Default 4 × maxBatch. */
  prefixCache?: number;
  /** Host decoder: batches of at least this many rows prefill token by token (default STEP_PREFILL_ROWS = 1: always, for batch-independent results; Infinity = never). */
  stepPrefillRows?: number;
}

/** A kept cache: the tokens it covers (a later prompt must start with them) and their keys and values. */
interface CachedPrefix { ids: number[]; kv: KVSnapshot }

export interface GenerateOptions {
  /** Re-run the whole sequence for every token (the reference path; slow). */
  noCache?: boolean;
  /** Called for every sampled token as it is sampled (index into the request list): streaming servers. */
  onToken?: (requestIndex: number, id: number, logprob: number) => void;
}

/** Index of the sampled token and its untempered log-probability. */
export function sampleToken(logits: Float32Array, off: number, V: number, temperature: number, topP: number, rng: Rng, scratch: Float64Array): { id: number; logprob: number } {
  let mx = -Infinity;
  let arg = 0;
  for (let j = 0; j < V; j++) {
    const l = logits[off + j]!;
    if (l > mx) {
      mx = l;
      arg = j;
    }
  }
  let z = 0;
  for (let j = 0; j < V; j++) {
    const e = Math.exp(logits[off + j]! - mx);
    scratch[j] = e;
    z += e;
  }
  const lse = mx + Math.log(z);
  if (temperature === 0) return { id: arg, logprob: logits[off + arg]! - lse };
  let total = z;
  if (temperature !== 1) {
    total = 0;
    for (let j = 0; j < V; j++) {
      const e = Math.exp((logits[off + j]! - mx) / temperature);
      scratch[j] = e;
      total += e;
    }
  }
  // Top-p: keep tokens at least as likely as the last one of the smallest prefix (by decreasing p) whose mass
  // reaches topP; then pick by inverse CDF in id order (the same rule as sampleOnDevice in sampler.ts).
  let pMin = 0;
  if (topP < 1) {
    const order = Array.from({ length: V }, (_, j) => j).sort((a, b) => scratch[b]! - scratch[a]!);
    let before = 0;
    for (let k = 0; k < V; k++) {
      const pk = scratch[order[k]!]!;
      if (before >= topP * total) break;
      pMin = pk;
      before += pk;
    }
  }
  let kept = 0;
  for (let j = 0; j < V; j++) if (scratch[j]! >= pMin) kept += scratch[j]!;
  let u = rng() * kept;
  let id = -1;
  for (let j = 0; j < V; j++) {
    if (scratch[j]! < pMin) continue;
    u -= scratch[j]!;
    if (u < 0) {
      id = j;
      break;
    }
  }
  if (id < 0) id = arg; // rounding left u ≥ 0 at the end
  return { id, logprob: logits[off + id]! - lse };
}

function checkRequest(r: GenerateRequest, i: number, V: number): void {
  const bad = (what: string) => new Error(`generate: request ${i}: ${what}`);
  if (!Array.isArray(r.promptTokenIds) || r.promptTokenIds.length === 0) throw bad('promptTokenIds must be a non-empty array of token ids');
  for (const id of r.promptTokenIds) if (!Number.isInteger(id) || id < 0 || id >= V) throw bad(`prompt token id ${id} is outside the vocabulary [0, ${V})`);
  if (!Number.isInteger(r.maxTokens) || r.maxTokens < 0) throw bad(`maxTokens must be an integer ≥ 0, got ${r.maxTokens}`);
  if (!(r.temperature >= 0) || !Number.isFinite(r.temperature)) throw bad(`temperature must be ≥ 0, got ${r.temperature}`);
  if (!(r.topP > 0 && r.topP <= 1)) throw bad(`topP must be in (0, 1], got ${r.topP}`);
  if (!Array.isArray(r.stop) || r.stop.some((s) => typeof s !== 'string' || s === '')) throw bad('stop must be an array of non-empty strings');
}

export class LocalPolicy implements Policy {
  readonly name: string;
  private readonly maxBatch: number;
  private readonly decoderKind: 'auto' | 'host' | 'tensor';
  /**
   * Prefix cache by GenerateRequest.cacheKey. Measured on the wasm backend (small preset, level-1 task): re-reading
   * every turn's whole history was ~80% of a rollout's time; with the cache a later turn feeds only its new tokens.
   * Oldest entries go first when it is full (the rollout forgets finished trajectories itself).
   */
  private readonly prefixes = new Map<string, CachedPrefix>();
  private readonly prefixCap: number;
  private readonly stepPrefillRows: number | undefined;

  /** The policy samples from `model` but does not own it: dispose the model yourself. */
  constructor(readonly model: GPT, readonly tokenizer: ByteTokenizer, opts: LocalPolicyOptions = {}) {
    if (tokenizer.vocabSize !== model.config.vocabSize) {
      throw new Error(`LocalPolicy: tokenizer has ${tokenizer.vocabSize} ids but the model's vocabSize is ${model.config.vocabSize}`);
    }
    this.name = opts.name ?? 'local';
    this.maxBatch = opts.maxBatch ?? 64;
    this.decoderKind = opts.decoder ?? 'auto';
    this.prefixCap = opts.prefixCache ?? 4 * this.maxBatch;
    this.stepPrefillRows = opts.stepPrefillRows;
  }

  forget(cacheKey: string): void {
    this.prefixes.delete(cacheKey);
  }

  /** The kept cache of a request when its prompt extends the cached tokens (taken out: it is re-kept after the call). */
  private takePrefix(r: GenerateRequest): KVSnapshot | null {
    if (r.cacheKey === undefined) return null;
    const c = this.prefixes.get(r.cacheKey);
    if (!c) return null;
    this.prefixes.delete(r.cacheKey);
    const p = r.promptTokenIds;
    if (c.ids.length >= p.length) return null;
    for (let i = 0; i < c.ids.length; i++) if (c.ids[i] !== p[i]) return null;
    return c.kv;
  }

  private keepPrefix(key: string, ids: number[], kv: KVSnapshot): void {
    if (this.prefixCap <= 0) return;
    while (this.prefixes.size >= this.prefixCap) this.prefixes.delete(this.prefixes.keys().next().value!);
    this.prefixes.set(key, { ids, kv });
  }

  async generate(requests: GenerateRequest[], opts: GenerateOptions = {}): Promise<GenerateResult[]> {
    const V = this.model.config.vocabSize;
    requests.forEach((r, i) => checkRequest(r, i, V));
    const results: GenerateResult[] = new Array(requests.length);
    const blockSize = this.model.config.blockSize;
    const todo: number[] = [];
    requests.forEach((r, i) => {
      // No room left in the context (or nothing asked for): an empty, truncated continuation.
      if (r.maxTokens === 0 || r.promptTokenIds.length >= blockSize) results[i] = { text: '', tokenIds: [], logprobs: [], finishReason: 'length' };
      else todo.push(i);
    });
    for (let s = 0; s < todo.length; s += this.maxBatch) {
      const idx = todo.slice(s, s + this.maxBatch);
      const onToken = opts.onToken;
      const out = await this.generateBatch(idx.map((i) => requests[i]!), { ...opts, onToken: onToken && ((b, id, lp) => onToken(idx[b]!, id, lp)) });
      idx.forEach((i, k) => (results[i] = out[k]!));
    }
    return results;
  }

  private makeDecoder(maxNew: number, noCache: boolean): Decoder {
    const pad = this.tokenizer.padId;
    if (noCache) return new NoCacheDecoder(this.model, pad);
    const host = this.decoderKind === 'host' || (this.decoderKind === 'auto' && isHostBackend());
    return host ? new HostKVDecoder(this.model, pad, maxNew, this.stepPrefillRows) : new TensorKVDecoder(this.model, pad, maxNew);
  }

  private async generateBatch(reqs: GenerateRequest[], opts: GenerateOptions): Promise<GenerateResult[]> {
    const B = reqs.length;
    const V = this.model.config.vocabSize;
    const blockSize = this.model.config.blockSize;
    const eos = this.tokenizer.eosId;
    const limit = reqs.map((r) => Math.min(r.maxTokens, blockSize - r.promptTokenIds.length));
    const maxNew = Math.max(...limit);
    const rngs = reqs.map((r) => mulberry32(r.seed ?? Math.floor(Math.random() * 2 ** 32)));
    const streams = reqs.map(() => new StreamDecoder(this.tokenizer));
    const ids: number[][] = reqs.map(() => []);
    const lps: number[][] = reqs.map(() => []);
    const reason: Array<GenerateResult['finishReason'] | null> = reqs.map(() => null);
    const active = new Uint8Array(B).fill(1);
    const tokens = new Int32Array(B).fill(this.tokenizer.padId);
    const scratch = new Float64Array(V);
    const decoder = this.makeDecoder(maxNew, !!opts.noCache);
    const host = decoder instanceof HostKVDecoder ? decoder : null;
    try {
      if (host) await host.start(reqs.map((r) => r.promptTokenIds), reqs.map((r) => this.takePrefix(r)));
      else await decoder.start(reqs.map((r) => r.promptTokenIds));
      const spec = { temperature: Float32Array.from(reqs, (r) => r.temperature), topP: Float32Array.from(reqs, (r) => r.topP), uniform: new Float32Array(B) };
      for (let step = 0; step < maxNew; step++) {
        await yieldToEventLoop();
        // Decoders whose logits live on a GPU sample there and send back only ids and logprobs.
        let onDevice: { ids: Int32Array; logprobs: Float32Array } | null = null;
        let logits: Float32Array | null = null;
        if (decoder.sample) {
          for (let b = 0; b < B; b++) spec.uniform[b] = active[b] && reqs[b]!.temperature > 0 ? rngs[b]!() : 0;
          onDevice = await decoder.sample(spec);
        } else logits = await decoder.logits();
        for (let b = 0; b < B; b++) {
          if (!active[b]) continue;
          const r = reqs[b]!;
          const { id, logprob } = onDevice
            ? { id: onDevice.ids[b]!, logprob: onDevice.logprobs[b]! }
            : sampleToken(logits!, b * V, V, r.temperature, r.topP, rngs[b]!, scratch);
          ids[b]!.push(id);
          lps[b]!.push(logprob);
          opts.onToken?.(b, id, logprob);
          tokens[b] = id;
          const before = streams[b]!.value.length;
          streams[b]!.push(id);
          const text = streams[b]!.value;
          if (eos !== null && id === eos) reason[b] = 'eos';
          else if (r.stop.some((st) => text.includes(st, Math.max(0, before - st.length + 1)))) reason[b] = 'stop';
          else if (ids[b]!.length >= limit[b]!) reason[b] = 'length';
          if (reason[b]) active[b] = 0;
        }
        if (!active.some((a) => a)) break;
        await decoder.step(tokens, active);
      }
      // Keep each conversation's cache for its next turn (the last sampled token was never fed: it is not in it).
      if (host && this.prefixCap > 0) {
        reqs.forEach((r, b) => {
          if (r.cacheKey === undefined) return;
          const kv = host.snapshot(b);
          this.keepPrefix(r.cacheKey, [...r.promptTokenIds, ...ids[b]!].slice(0, kv.len), kv);
        });
      }
    } finally {
      decoder.dispose();
    }
    return reqs.map((_, b) => ({
      text: this.tokenizer.decode(ids[b]!),
      tokenIds: ids[b]!,
      logprobs: lps[b]!,
      finishReason: reason[b] ?? 'length',
    }));
  }

  dispose(): void {
    // Decoders free their caches after every generate(); kept prefixes go here; the model belongs to the caller.
    this.prefixes.clear();
  }
}
