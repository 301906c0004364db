/**
 * Micro-batching of concurrent completion requests: requests that arrive within `windowMs` of each other (or
 * while the model is busy) go to the policy as one `generate` call, so N concurrent HTTP clients share one
 * KV-cache batch instead of queueing behind each other. One generate runs at a time (one model, one device).
 */
import type { GenerateRequest, GenerateResult } from '../env/policy';

/** What the batcher needs: a batched generate, optionally reporting each token as it is sampled. */
export interface BatchPolicy {
  generate(requests: GenerateRequest[], opts?: { onToken?: (requestIndex: number, id: number, logprob: number) => void }): Promise<GenerateResult[]>;
}

export interface BatcherOptions {
  /** How long the first request of a batch waits for company (default 5 ms). */
  windowMs?: number;
  /** Most requests per generate call (default 64). */
  maxBatch?: number;
}

interface Entry {
  req: GenerateRequest;
  onToken?: (id: number, logprob: number) => void;
  resolve(r: GenerateResult): void;
  reject(e: Error): void;
}

export interface BatcherStats { batches: number; requests: number; largestBatch: number }

export class GenerateBatcher {
  private readonly windowMs: number;
  private readonly maxBatch: number;
  private readonly queue: Entry[] = [];
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly counters: BatcherStats = { batches: 0, requests: 0, largestBatch: 0 };

  constructor(private readonly policy: BatchPolicy, opts: BatcherOptions = {}) {
    this.windowMs = opts.windowMs ?? 5;
    this.maxBatch = opts.maxBatch ?? 64;
    if (!(this.windowMs >= 0)) throw new Error(`batcher: windowMs must be >= 0, got ${this.windowMs}`);
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new Error(`batcher: maxBatch must be an integer >= 1, got ${this.maxBatch}`);
  }

  /** Queue one request; `onToken` sees its tokens as they are sampled (streaming). */
  submit(req: GenerateRequest, onToken?: (id: number, logprob: number) => void): Promise<GenerateResult> {
    if (this.closed) return Promise.reject(new Error('the server is shutting down'));
    return new Promise<GenerateResult>((resolve, reject) => {
      this.queue.push({ req, onToken, resolve, reject });
      this.schedule();
    });
  }

  stats(): BatcherStats { return { ...this.counters }; }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const err = new Error('the server is shutting down');
    for (const e of this.queue.splice(0)) e.reject(err);
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) return;
    if (this.queue.length >= this.maxBatch) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => { this.timer = null; void this.flush(); }, this.windowMs);
    }
  }

  private async flush(): Promise<void> {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    const batch = this.queue.splice(0, this.maxBatch);
    this.counters.batches++;
    this.counters.requests += batch.length;
    this.counters.largestBatch = Math.max(this.counters.largestBatch, batch.length);
    try {
      const streaming = batch.some((e) => e.onToken);
      const out = await this.policy.generate(batch.map((e) => e.req), streaming ? { onToken: (i, id, lp) => batch[i]?.onToken?.(id, lp) } : undefined);
      batch.forEach((e, i) => {
        const r = out[i];
        if (r) e.resolve(r);
        else e.reject(new Error(`the model returned ${out.length} results for ${batch.length} requests`));
      });
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      for (const x of batch) x.reject(e);
    } finally {
      this.running = false;
      // Requests that queued during this generate have already waited: start the next batch at once.
      if (this.queue.length && !this.closed) setImmediate(() => void this.flush());
    }
  }
}
