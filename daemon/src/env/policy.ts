/**
 * The Policy interface: what the rollout loop needs from a model, local (tfjs) or remote (OpenAI-compatible).
 * The environment never sees tensors; a policy never sees the tool.
 */

/** Text <-> token ids. For our own models a char/byte tokenizer with the template's special tokens. */
export interface Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  /** Encode text; special-token strings of the template map to single ids. */
  encode(text: string): number[];
  decode(ids: number[]): string;
  /** Decoded text of each id, for the token view. */
  tokenText(id: number): string;
  /** End-of-sequence / end-of-turn id, when the tokenizer has one. */
  readonly eosId: number | null;
}

export interface GenerateRequest {
  /** The whole history so far (prompt, earlier actions and observations) as token ids: token-in. */
  promptTokenIds: number[];
  /** The same history as text (remote policies that only take text use this). */
  promptText: string;
  maxTokens: number;
  /** Generation stops right after any of these strings is produced; the stop string is part of the output. */
  stop: string[];
  temperature: number;
  topP: number;
  /** Per-request seed for reproducible sampling. */
  seed?: number;
  /**
   * Names the conversation (the rollout uses the trajectory id): a local policy keeps this request's key/value
   * cache and reuses it when the next request with the same key extends the same tokens. Others ignore it.
   */
  cacheKey?: string;
}

export interface GenerateResult {
  text: string;
  /** The sampled ids, exactly: token-out. */
  tokenIds: number[];
  /** log π(token) for each sampled token (under the sampling distribution before temperature), or [] if unknown. */
  logprobs: number[];
  finishReason: 'stop' | 'eos' | 'length';
}

export interface Policy {
  readonly name: string;
  readonly tokenizer: Tokenizer;
  /** Generate continuations for a batch of histories at once (a KV-cache batch for local models). */
  generate(requests: GenerateRequest[]): Promise<GenerateResult[]>;
  /**
   * Generate one request on its own (remote policies): the rollout then dispatches each trajectory's turn as
   * soon as it is ready instead of waiting for a whole batch, which keeps a pool of servers busy while other
   * trajectories are in tool calls.
   */
  generateOne?(request: GenerateRequest): Promise<GenerateResult>;
  /** Drop what is kept for `cacheKey` (the conversation ended). */
  forget?(cacheKey: string): void;
  /** Release resources (tensors, connections). */
  dispose?(): void;
}
