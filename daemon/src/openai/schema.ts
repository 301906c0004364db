/**
 * Request schema and error shape of the daemon's OpenAI-compatible completions API.
 *
 * The request follows OpenAI's legacy `/v1/completions` plus the vLLM extensions a rollout needs
 * (`return_token_ids`, `include_stop_str_in_output`, `seed`). Unknown fields are ignored like OpenAI does, but a
 * known feature we do not implement (echo, suffix, best_of, penalties, logit_bias) is refused with a message
 * rather than silently ignored: a client relying on it would otherwise get wrong samples.
 */
import { z } from 'zod';

const TokenIds = z.array(z.number().int().nonnegative()).min(1, 'a token-id prompt must hold at least one id');

export const CompletionRequest = z.looseObject({
  model: z.string().optional(),
  prompt: z.union([z.string(), TokenIds, z.array(z.string()).min(1), z.array(TokenIds).min(1)]),
  max_tokens: z.number().int().min(0).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  n: z.number().int().min(1).max(128).nullable().optional(),
  stop: z.union([z.string(), z.array(z.string()).max(16)]).nullable().optional(),
  logprobs: z.number().int().min(0).max(20).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  stream: z.boolean().nullable().optional(),
  return_token_ids: z.boolean().nullable().optional(),
  include_stop_str_in_output: z.boolean().nullable().optional(),
  echo: z.boolean().nullable().optional(),
  suffix: z.string().nullable().optional(),
  best_of: z.number().int().nullable().optional(),
  presence_penalty: z.number().nullable().optional(),
  frequency_penalty: z.number().nullable().optional(),
  logit_bias: z.record(z.string(), z.number()).nullable().optional(),
  user: z.string().optional(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

/** An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly type = 'invalid_request_error', readonly param: string | null = null, readonly code: string | null = null) {
    super(message);
  }
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Refuse features we do not implement, naming the field. */
export function checkUnsupported(r: CompletionRequest): void {
  const no = (param: string, why: string) => { throw new ApiError(400, `${param}: ${why}`, 'invalid_request_error', param, 'unsupported'); };
  if (r.echo) no('echo', 'echo is not supported; send the prompt yourself');
  if (r.suffix) no('suffix', 'suffix (insertion) is not supported by this server');
  if (r.best_of != null && r.best_of !== (r.n ?? 1)) no('best_of', 'best_of must equal n (no server-side ranking)');
  if (r.presence_penalty) no('presence_penalty', 'penalties are not supported; omit the field or send 0');
  if (r.frequency_penalty) no('frequency_penalty', 'penalties are not supported; omit the field or send 0');
  if (r.logit_bias && Object.keys(r.logit_bias).length) no('logit_bias', 'logit_bias is not supported');
  const stops = typeof r.stop === 'string' ? [r.stop] : r.stop ?? [];
  if (stops.some((s) => s === '')) no('stop', 'stop strings must not be empty');
}

/** Format zod issues as `field: message` (OpenAI's `param` is the first failing field). */
export function fromZodError(e: z.ZodError): ApiError {
  const first = e.issues[0];
  const param = first && first.path.length ? first.path.join('.') : null;
  const msg = e.issues.map((i) => `${i.path.length ? i.path.join('.') : '(body)'}: ${i.message}`).join('; ');
  return new ApiError(400, `invalid request: ${msg}`, 'invalid_request_error', param);
}
