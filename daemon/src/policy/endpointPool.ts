/**
 * A pool of OpenAI-compatible endpoints (vLLM / SGLang / llama.cpp servers, or `mathagent serve`).
 *
 * - Each endpoint has a concurrency limit; a request waits in the pool's queue until some endpoint has a free
 *   slot, and goes to the least loaded healthy one. Every request is dispatched on its own, so as long as the
 *   caller has work queued, every endpoint's slots stay full (the rollout keeps them fed while tools run).
 * - Each attempt has a timeout. A failed attempt (connection refused or reset, timeout, HTTP 5xx/408/429, an
 *   unreadable body) puts the endpoint in a cool-down that doubles with its consecutive failures (exponential
 *   back-off) and the request is retried, on another endpoint when one is healthy (failover), else on the same
 *   one after its cool-down. Other 4xx answers are the request's fault and are not retried.
 * - When a request runs out of attempts, the error names every endpoint that failed it and why.
 */
import { readFileSync } from 'node:fs';

export interface EndpointSpec {
  /** Base URL, with or without the trailing `/v1` (e.g. `http://127.0.0.1:8000`). */
  url: string;
  /** Most requests in flight on this endpoint (default: the pool's `concurrency`). */
  concurrency?: number;
  /** Bearer token. Prefer `apiKeyFile`: run configs are stored in the run database. */
  apiKey?: string;
  /** File holding the bearer token (e.g. the daemon's token file for `mathagent serve`). */
  apiKeyFile?: string;
}

export interface PoolOptions {
  /** Default concurrency per endpoint (default 8). */
  concurrency?: number;
  /** Time limit of one attempt in ms (default 120 000). */
  timeoutMs?: number;
  /** Retries after the first attempt (default 3). */
  retries?: number;
  /** First back-off in ms; doubles per consecutive failure of an endpoint (default 250). */
  backoffMs?: number;
  /** Longest back-off in ms (default 10 000). */
  maxBackoffMs?: number;
  log?: (line: string) => void;
}

export interface EndpointStats {
  url: string;
  concurrency: number;
  inFlight: number;
  /** Most requests seen in flight at once. */
  peakInFlight: number;
  ok: number;
  failed: number;
  healthy: boolean;
  lastError: string | null;
}

export interface PoolStats { requests: number; retries: number; failovers: number; errors: number; endpoints: EndpointStats[] }

/** An HTTP error answer from an endpoint. */
export class EndpointHttpError extends Error {
  constructor(readonly url: string, readonly status: number, readonly detail: string) {
    super(`HTTP ${status}: ${detail}`);
  }
}

/** Thrown when a request failed on every attempt; `attempts` says which endpoint failed how. */
export class PoolRequestError extends Error {
  constructor(message: string, readonly attempts: Array<{ endpoint: string; error: string }>) {
    super(message);
  }
}

interface Endpoint {
  base: string;
  concurrency: number;
  headers: Record<string, string>;
  inFlight: number;
  peak: number;
  ok: number;
  failed: number;
  consecutiveFailures: number;
  coolUntil: number;
  lastError: string | null;
  retired: boolean;
}

interface Job {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  attempts: Array<{ endpoint: string; error: string }>;
  lastEndpoint: Endpoint | null;
  resolve(v: { json: unknown; endpoint: string }): void;
  reject(e: Error): void;
}

/** `http://h:p/v1/` → `http://h:p` (paths are added with their `/v1/...`). */
export function normalizeBase(url: string): string {
  let u: URL;
  try { u = new URL(url); } catch { throw new Error(`endpoint "${url}" is not a URL; write e.g. http://127.0.0.1:8000`); }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`endpoint "${url}": only http:// and https:// are supported`);
  return `${u.origin}${u.pathname.replace(/\/+$/, '').replace(/\/v1$/, '')}`;
}

const RETRYABLE_STATUS = new Set([408, 409, 425, 429, 500, 502, 503, 504]);

export class EndpointPool {
  private endpoints: Endpoint[] = [];
  private readonly queue: Job[] = [];
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly o: Required<Omit<PoolOptions, 'log'>> & { log: (line: string) => void };
  private readonly counters = { requests: 0, retries: 0, failovers: 0, errors: 0 };

  constructor(endpoints: EndpointSpec[], opts: PoolOptions = {}) {
    this.o = {
      concurrency: opts.concurrency ?? 8, timeoutMs: opts.timeoutMs ?? 120_000, retries: opts.retries ?? 3,
      backoffMs: opts.backoffMs ?? 250, maxBackoffMs: opts.maxBackoffMs ?? 10_000, log: opts.log ?? (() => undefined),
    };
    const int = (name: string, v: number, min: number) => { if (!Number.isInteger(v) || v < min) throw new Error(`endpoint pool: ${name} must be an integer >= ${min}, got ${v}`); };
    int('concurrency', this.o.concurrency, 1);
    int('timeoutMs', this.o.timeoutMs, 1);
    int('retries', this.o.retries, 0);
    if (!(this.o.backoffMs >= 0) || !(this.o.maxBackoffMs >= this.o.backoffMs)) throw new Error('endpoint pool: need 0 <= backoffMs <= maxBackoffMs');
    this.setEndpoints(endpoints);
  }

  /** Point the pool at new endpoints (a new checkpoint was served). Requests in flight finish where they are. */
  setEndpoints(specs: EndpointSpec[]): void {
    if (!Array.isArray(specs) || specs.length === 0) throw new Error('endpoint pool: give at least one endpoint');
    const seen = new Set<string>();
    const next = specs.map((s, i) => {
      if (!s || typeof s.url !== 'string') throw new Error(`endpoint pool: endpoints[${i}].url must be a string`);
      const base = normalizeBase(s.url);
      if (seen.has(base)) throw new Error(`endpoint pool: endpoint ${base} is listed twice`);
      seen.add(base);
      const concurrency = s.concurrency ?? this.o.concurrency;
      if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`endpoint pool: endpoints[${i}].concurrency must be an integer >= 1, got ${concurrency}`);
      let key = s.apiKey;
      if (s.apiKeyFile) {
        try { key = readFileSync(s.apiKeyFile, 'utf8').trim(); } catch (e) { throw new Error(`endpoint ${base}: cannot read apiKeyFile ${s.apiKeyFile}: ${(e as Error).message}`); }
      }
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (key) headers.authorization = `Bearer ${key}`;
      const old = this.endpoints.find((e) => e.base === base && !e.retired);
      if (old) { old.concurrency = concurrency; old.headers = headers; return old; }
      return { base, concurrency, headers, inFlight: 0, peak: 0, ok: 0, failed: 0, consecutiveFailures: 0, coolUntil: 0, lastError: null, retired: false } satisfies Endpoint;
    });
    for (const e of this.endpoints) if (!next.includes(e)) e.retired = true;
    this.endpoints = next;
    this.pump();
  }

  get urls(): string[] { return this.endpoints.map((e) => e.base); }

  /** Total concurrency of the pool (how many requests a caller should keep queued to fill it). */
  get capacity(): number { return this.endpoints.reduce((a, e) => a + e.concurrency, 0); }

  request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ json: unknown; endpoint: string }> {
    if (this.closed) return Promise.reject(new Error('endpoint pool: closed'));
    this.counters.requests++;
    return new Promise((resolve, reject) => {
      this.queue.push({ method, path, body, attempts: [], lastEndpoint: null, resolve, reject });
      this.pump();
    });
  }

  /** GET `path` on every endpoint until each answers 200 (a freshly started server), or throw naming the ones that did not. */
  async waitReady(opts: { timeoutMs?: number; intervalMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
    const pending = new Map(this.endpoints.map((e) => [e.base, e]));
    const errors = new Map<string, string>();
    while (pending.size) {
      for (const [base, e] of [...pending]) {
        try {
          await this.once(e, 'GET', '/v1/models', undefined, Math.min(5000, this.o.timeoutMs));
          pending.delete(base);
        } catch (err) { errors.set(base, (err as Error).message); }
      }
      if (!pending.size) break;
      if (opts.signal?.aborted) throw new Error('endpoint pool: waiting for endpoints was aborted');
      if (Date.now() > deadline) throw new Error(`endpoint pool: not ready after ${opts.timeoutMs ?? 120_000} ms: ${[...pending.keys()].map((b) => `${b} (${errors.get(b)})`).join('; ')}`);
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 500));
    }
  }

  stats(): PoolStats {
    const now = Date.now();
    return {
      ...this.counters,
      endpoints: this.endpoints.map((e) => ({ url: e.base, concurrency: e.concurrency, inFlight: e.inFlight, peakInFlight: e.peak, ok: e.ok, failed: e.failed, healthy: e.coolUntil <= now, lastError: e.lastError })),
    };
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const j of this.queue.splice(0)) j.reject(new Error('endpoint pool: closed'));
  }

  private pick(job: Job, now: number): Endpoint | null {
    let best: Endpoint | null = null;
    let bestLoad = Infinity;
    for (const e of this.endpoints) {
      if (e.coolUntil > now || e.inFlight >= e.concurrency) continue;
      // Prefer an endpoint other than the one that just failed this request.
      const load = e.inFlight / e.concurrency + (e === job.lastEndpoint && this.endpoints.length > 1 ? 1 : 0);
      if (load < bestLoad) { best = e; bestLoad = load; }
    }
    return best;
  }

  private pump(): void {
    if (this.closed) return;
    const now = Date.now();
    while (this.queue.length) {
      const e = this.pick(this.queue[0]!, now);
      if (!e) break;
      const job = this.queue.shift()!;
      if (job.lastEndpoint && job.lastEndpoint !== e) this.counters.failovers++;
      void this.attempt(e, job);
    }
    if (this.queue.length && !this.timer) {
      // Nothing free: wake when the first cool-down ends (a slot freeing up calls pump itself).
      const cooling = this.endpoints.filter((e) => e.coolUntil > now).map((e) => e.coolUntil);
      if (cooling.length) {
        const wait = Math.max(1, Math.min(...cooling) - now);
        this.timer = setTimeout(() => { this.timer = null; this.pump(); }, wait);
      }
    }
  }

  private async attempt(e: Endpoint, job: Job): Promise<void> {
    e.inFlight++;
    e.peak = Math.max(e.peak, e.inFlight);
    try {
      const json = await this.once(e, job.method, job.path, job.body, this.o.timeoutMs);
      e.ok++;
      e.consecutiveFailures = 0;
      e.lastError = null;
      job.resolve({ json, endpoint: e.base });
    } catch (err) {
      const msg = (err as Error).message;
      const retryable = !(err instanceof EndpointHttpError) || RETRYABLE_STATUS.has(err.status);
      e.failed++;
      e.lastError = msg;
      job.attempts.push({ endpoint: e.base, error: msg });
      job.lastEndpoint = e;
      if (retryable) {
        e.consecutiveFailures++;
        const back = Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** (e.consecutiveFailures - 1));
        e.coolUntil = Math.max(e.coolUntil, Date.now() + back);
        if (e.consecutiveFailures === 1 || e.consecutiveFailures % 10 === 0) this.o.log(`endpoint ${e.base} failed (${msg}); cooling down ${back} ms`);
      }
      if (retryable && job.attempts.length <= this.o.retries && !this.closed) {
        this.counters.retries++;
        this.queue.unshift(job);
      } else {
        this.counters.errors++;
        const detail = job.attempts.map((a) => `${a.endpoint}: ${a.error}`).join('; ');
        const why = retryable ? `failed after ${job.attempts.length} attempt(s)` : 'was refused';
        job.reject(new PoolRequestError(`${job.method} ${job.path} ${why} (last endpoint ${e.base}): ${detail}`, job.attempts));
      }
    } finally {
      e.inFlight--;
      this.pump();
    }
  }

  /** One HTTP exchange with a timeout; throws EndpointHttpError for non-2xx answers. */
  private async once(e: Endpoint, method: 'GET' | 'POST', path: string, body: unknown, timeoutMs: number): Promise<unknown> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      let res: Response;
      try {
        res = await fetch(`${e.base}${path}`, { method, headers: e.headers, body: body === undefined ? undefined : JSON.stringify(body), signal: ctl.signal });
      } catch (err) {
        if (ctl.signal.aborted) throw new Error(`timed out after ${timeoutMs} ms`);
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        throw new Error(cause?.code ?? cause?.message ?? (err as Error).message);
      }
      let text: string;
      try { text = await res.text(); } catch (err) {
        if (ctl.signal.aborted) throw new Error(`timed out after ${timeoutMs} ms reading the answer`);
        throw new Error(`connection lost reading the answer (${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message})`);
      }
      if (!res.ok) {
        let detail = text.slice(0, 300);
        try { const j = JSON.parse(text) as { error?: { message?: string } | string; message?: string }; detail = (typeof j.error === 'string' ? j.error : j.error?.message) ?? j.message ?? detail; } catch { /* not JSON */ }
        throw new EndpointHttpError(e.base, res.status, detail);
      }
      try { return JSON.parse(text); } catch { throw new Error(`the answer is not JSON: ${JSON.stringify(text.slice(0, 120))}`); }
    } finally {
      clearTimeout(timer);
    }
  }
}
