/**
 * The daemon as an OpenAI-compatible server: `GET /v1/models` and `POST /v1/completions` (string or token-id
 * prompts, n, stop, temperature, top_p, max_tokens, seed, logprobs, vLLM's `return_token_ids` and
 * `include_stop_str_in_output`, `stream: true` as server-sent events) for a local checkpoint. This is what the
 * remote policy is tested against, and it lets any OpenAI client (or a pool of them) sample from our models.
 *
 * Security as for the WebSocket daemon: 127.0.0.1 by default, `Authorization: Bearer <token>` on every route
 * (the token file is the daemon's, mode 0600), requests carrying a browser `Origin` are refused, bodies are
 * bounded, every body is schema-checked, and every error is JSON in OpenAI's `{"error": {...}}` shape.
 *
 * Throughput: concurrent requests are collected for a few ms into one generate call (batcher.ts).
 *
 * Semantics that differ from OpenAI's, documented in docs/scale.md: `logprobs` gives the sampled token's
 * log-probability under the untempered distribution (top_logprobs hold only that token); a prompt that leaves
 * no room in the model's context gets an empty completion with finish_reason "length" (as the local policy
 * does), not an error.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { GenerateRequest, GenerateResult, Tokenizer } from '../env/policy';
import { bearerToken, defaultTokenFile, ensureToken, tokensEqual } from '../server/token';
import { GenerateBatcher, type BatchPolicy, type BatcherStats } from './batcher';
import { ApiError, CompletionRequest, checkUnsupported, fromZodError } from './schema';

export interface OpenAIServerOptions {
  policy: BatchPolicy & { readonly tokenizer: Tokenizer };
  /** The model id clients name (and /v1/models lists). */
  model: string;
  /** Longest sequence the model sees (reported as max_model_len). */
  contextLength: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Token file (created 0600 if missing). Default: the daemon's token file. Ignored when `token` is given. */
  tokenFile?: string;
  /** The token itself (tests, embedding). */
  token?: string;
  /** Largest accepted request body in bytes (default 1 MiB). */
  maxBodyBytes?: number;
  batchWindowMs?: number;
  maxBatch?: number;
  /** Most completions queued or running at once; more get 429 (default 1024). */
  maxQueued?: number;
  log?: (line: string) => void;
}

export interface OpenAIServer {
  readonly url: string;
  readonly port: number;
  readonly tokenFile: string | null;
  stats(): BatcherStats & { httpRequests: number; errors: number };
  /** Stop accepting, finish nothing new, close connections. */
  close(): Promise<void>;
  /** Drop every connection at once, as if the process died (tests of client failover). */
  kill(): void;
}

interface Choice { index: number; promptIds: number[]; req: GenerateRequest }

export async function startOpenAIServer(o: OpenAIServerOptions): Promise<OpenAIServer> {
  const tok = o.policy.tokenizer;
  const host = o.host ?? '127.0.0.1';
  const maxBody = o.maxBodyBytes ?? 1 << 20;
  const maxQueued = o.maxQueued ?? 1024;
  const tokenFile = o.token ? null : (o.tokenFile ?? defaultTokenFile());
  const token = o.token ?? ensureToken(tokenFile!);
  const log = o.log ?? (() => undefined);
  const batcher = new GenerateBatcher(o.policy, { windowMs: o.batchWindowMs, maxBatch: o.maxBatch });
  const created = Math.floor(Date.now() / 1000);
  const sockets = new Set<Socket>();
  let inFlight = 0;
  let httpRequests = 0;
  let errors = 0;

  const send = (res: ServerResponse, status: number, body: unknown) => {
    if (res.headersSent) { res.end(); return; }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const fail = (res: ServerResponse, e: unknown) => {
    errors++;
    const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`, 'server_error');
    if (err.status >= 500) log(`error: ${err.message}`);
    if (res.headersSent) {
      // Mid-stream: tell the client in the stream, then end it.
      res.end(`data: ${JSON.stringify(err.body())}\n\n`);
      return;
    }
    send(res, err.status, err.body());
  };

  const readBody = (req: IncomingMessage): Promise<unknown> => new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > maxBody) { reject(new ApiError(413, `request body of ${declared} bytes is larger than the limit of ${maxBody} bytes`)); req.resume(); return; }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > maxBody) { over = true; reject(new ApiError(413, `request body is larger than the limit of ${maxBody} bytes`)); return; }
      chunks.push(c);
    });
    req.on('end', () => {
      if (over) return;
      const text = Buffer.concat(chunks).toString('utf8');
      try { resolve(JSON.parse(text)); } catch (e) { reject(new ApiError(400, `the body is not valid JSON: ${(e as Error).message}`)); }
    });
    req.on('error', reject);
  });

  const models = () => ({ object: 'list', data: [{ id: o.model, object: 'model', created, owned_by: 'mathagent', max_model_len: o.contextLength }] });

  const completions = async (req: IncomingMessage, res: ServerResponse) => {
    const raw = await readBody(req);
    const parsed = CompletionRequest.safeParse(raw);
    if (!parsed.success) throw fromZodError(parsed.error);
    const r = parsed.data;
    checkUnsupported(r);
    if (r.model !== undefined && r.model !== o.model) throw new ApiError(404, `the model "${r.model}" does not exist; this server serves "${o.model}" (see GET /v1/models)`, 'invalid_request_error', 'model', 'model_not_found');
    const prompts: number[][] = toPromptIds(r.prompt, tok);
    const n = r.n ?? 1;
    if (inFlight + prompts.length * n > maxQueued) throw new ApiError(429, `server busy: ${inFlight} completions queued (limit ${maxQueued}); retry later`, 'rate_limit_error');
    const stops = typeof r.stop === 'string' ? [r.stop] : r.stop ?? [];
    const temperature = r.temperature ?? 1;
    const topP = r.top_p ?? 1;
    const maxTokens = r.max_tokens ?? 16;
    const baseSeed = r.seed ?? null;
    const choices: Choice[] = [];
    prompts.forEach((ids, p) => {
      for (let j = 0; j < n; j++) {
        const index = p * n + j;
        choices.push({
          index, promptIds: ids,
          // Distinct, reproducible seeds for each choice of a seeded request.
          req: { promptTokenIds: ids, promptText: '', maxTokens, stop: stops, temperature, topP, seed: baseSeed === null ? undefined : (baseSeed + index) >>> 0 },
        });
      }
    });
    const id = `cmpl-${randomBytes(12).toString('hex')}`;
    const now = Math.floor(Date.now() / 1000);
    const wantIds = r.return_token_ids === true;
    const wantLogprobs = r.logprobs != null;
    const keepStop = r.include_stop_str_in_output === true;
    inFlight += choices.length;
    try {
      if (r.stream) {
        await stream(res, { id, now, choices, wantIds, wantLogprobs, keepStop, stops });
        return;
      }
      const results = await Promise.all(choices.map((c) => batcher.submit(c.req)));
      let completionTokens = 0;
      const out = choices.map((c, k) => {
        const g = results[k]!;
        completionTokens += g.tokenIds.length;
        const { text, stopReason } = finalText(g, stops, keepStop, tok);
        return {
          index: c.index, text,
          logprobs: wantLogprobs ? logprobsOf(g, tok) : null,
          finish_reason: g.finishReason === 'length' ? 'length' : 'stop',
          stop_reason: stopReason,
          ...(wantIds ? { prompt_token_ids: c.promptIds, token_ids: g.tokenIds } : {}),
        };
      });
      const promptTokens = prompts.reduce((a, p) => a + p.length, 0);
      send(res, 200, { id, object: 'text_completion', created: now, model: o.model, choices: out, usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens } });
    } finally {
      inFlight -= choices.length;
    }
  };

  const stream = async (res: ServerResponse, s: { id: string; now: number; choices: Choice[]; wantIds: boolean; wantLogprobs: boolean; keepStop: boolean; stops: string[] }) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    let open = true;
    res.on('close', () => { open = false; });
    const write = (obj: unknown) => { if (open) res.write(`data: ${JSON.stringify(obj)}\n\n`); };
    const chunk = (index: number, text: string, extra: Record<string, unknown>) =>
      write({ id: s.id, object: 'text_completion', created: s.now, model: o.model, choices: [{ index, text, logprobs: null, finish_reason: null, ...extra }] });
    // Text that may still turn out to be (part of) a stop string is held back until we know.
    const holdback = s.keepStop ? 0 : Math.max(0, ...s.stops.map((x) => x.length - 1));
    const results = await Promise.all(s.choices.map((c) => {
      const ids: number[] = [];
      let emitted = 0;
      return batcher.submit(c.req, (tid, lp) => {
        // eos ends the text without being part of it (unless the client keeps stops).
        if (s.keepStop || tid !== tok.eosId) ids.push(tid);
        const text = tok.decode(ids);
        let safe = text.length - holdback;
        if (!s.keepStop) for (const st of s.stops) { const at = text.indexOf(st); if (at >= 0) safe = Math.min(safe, at); }
        while (safe > emitted && text.charCodeAt(safe - 1) === 0xfffd) safe--; // an unfinished UTF-8 character
        const delta = safe > emitted ? text.slice(emitted, safe) : '';
        if (safe > emitted) emitted = safe;
        chunk(c.index, delta, {
          ...(s.wantIds ? { token_ids: [tid] } : {}),
          ...(s.wantLogprobs ? { logprobs: { tokens: [tok.tokenText(tid)], token_logprobs: [lp], top_logprobs: [{ [tok.tokenText(tid)]: lp }], text_offset: [emitted] } } : {}),
        });
      }).then((g) => {
        const { text, stopReason } = finalText(g, s.stops, s.keepStop, tok);
        chunk(c.index, text.slice(Math.min(emitted, text.length)), { finish_reason: g.finishReason === 'length' ? 'length' : 'stop', stop_reason: stopReason, ...(s.wantIds ? { token_ids: [], prompt_token_ids: c.promptIds } : {}) });
        return g;
      });
    }));
    const promptTokens = s.choices.reduce((a, c) => a + c.promptIds.length, 0);
    const completionTokens = results.reduce((a, g) => a + g.tokenIds.length, 0);
    write({ id: s.id, object: 'text_completion', created: s.now, model: o.model, choices: [], usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens } });
    if (open) res.end('data: [DONE]\n\n');
  };

  const server = createServer((req, res) => {
    httpRequests++;
    void (async () => {
      try {
        if (req.headers.origin !== undefined) throw new ApiError(403, 'requests from browser pages (with an Origin header) are refused', 'permission_error');
        const given = bearerToken(req.headers.authorization);
        if (given === null || !tokensEqual(given, token)) throw new ApiError(401, 'missing or wrong API key: send `Authorization: Bearer <token>` with the token from the daemon\'s token file', 'invalid_request_error', null, 'invalid_api_key');
        const path = (req.url ?? '/').split('?')[0];
        if (path === '/v1/models' && req.method === 'GET') { send(res, 200, models()); return; }
        if (path === '/v1/completions' && req.method === 'POST') { await completions(req, res); return; }
        if (path === '/v1/models' || path === '/v1/completions') throw new ApiError(405, `method ${req.method} is not allowed on ${path}`);
        if (path === '/v1/chat/completions') throw new ApiError(404, 'chat completions are not served: the rollout renders its chat template itself; use POST /v1/completions', 'invalid_request_error', null, 'not_found');
        throw new ApiError(404, `no route ${req.method} ${path}; this server has GET /v1/models and POST /v1/completions`, 'invalid_request_error', null, 'not_found');
      } catch (e) {
        fail(res, e);
      }
    })();
  });
  server.on('connection', (sock: Socket) => { sockets.add(sock); sock.on('close', () => sockets.delete(sock)); });
  server.headersTimeout = 30_000;
  server.requestTimeout = 0; // generation may legitimately take long; the client's timeout governs
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, host, () => { server.off('error', reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log(`serving ${o.model} at ${url}/v1`);
  return {
    url, port, tokenFile,
    stats: () => ({ ...batcher.stats(), httpRequests, errors }),
    close: () => new Promise<void>((resolve) => {
      batcher.close();
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }),
    kill: () => {
      batcher.close();
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

function toPromptIds(prompt: CompletionRequest['prompt'], tok: Tokenizer): number[][] {
  const one = (p: string | number[], i: number): number[] => {
    if (typeof p === 'string') {
      const ids = tok.encode(p);
      if (!ids.length) throw new ApiError(400, `prompt${i >= 0 ? `[${i}]` : ''} is empty`, 'invalid_request_error', 'prompt');
      return ids;
    }
    for (const id of p) if (id >= tok.vocabSize) throw new ApiError(400, `prompt token id ${id} is outside the vocabulary [0, ${tok.vocabSize})`, 'invalid_request_error', 'prompt');
    return p;
  };
  if (typeof prompt === 'string') return [one(prompt, -1)];
  if (prompt.length && typeof prompt[0] === 'number') return [one(prompt as number[], -1)];
  return (prompt as Array<string | number[]>).map((p, i) => one(p, i));
}

/** The completion text as OpenAI returns it: without the stop string (or eos) unless asked to keep it. */
function finalText(g: GenerateResult, stops: string[], keepStop: boolean, tok: Tokenizer): { text: string; stopReason: string | null } {
  let text = g.text;
  if (g.finishReason === 'length') return { text, stopReason: null };
  // Earliest occurrence of any stop string: generation ended on it.
  let at = -1;
  let which: string | null = null;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) { at = i; which = s; }
  }
  if (which !== null) return { text: keepStop ? text.slice(0, at + which.length) : text.slice(0, at), stopReason: which };
  if (g.finishReason === 'eos' && tok.eosId !== null && !keepStop) {
    const eos = tok.decode([tok.eosId]);
    if (text.endsWith(eos)) text = text.slice(0, text.length - eos.length);
  }
  return { text, stopReason: null };
}

function logprobsOf(g: GenerateResult, tok: Tokenizer) {
  const tokens = g.tokenIds.map((id) => tok.tokenText(id));
  const offsets: number[] = [];
  let off = 0;
  for (const t of tokens) { offsets.push(off); off += t.length; }
  return {
    tokens,
    token_logprobs: g.logprobs,
    top_logprobs: g.tokenIds.map((_, k) => ({ [tokens[k]!]: g.logprobs[k]! })),
    text_offset: offsets,
  };
}
