/**
 * The tool sandbox: a pool of worker threads running the mathjs interpreter (sandboxWorker.ts).
 *
 * Why workers: mathjs evaluation is synchronous, so a runaway expression (exponential recursion, a huge matrix
 * product) can only be stopped by killing the thread that runs it. Each call gets a time limit; on timeout the
 * worker is terminated and a fresh one is started, and the call returns an error observation. A worker that
 * exhausts its heap limit dies alone (the daemon keeps serving). A failing tool call is an observation, never a
 * daemon crash.
 *
 * State across turns: each ToolSession remembers its earlier successful cells. The worker caches a scope per
 * session; when the session lands on a worker without that scope (after a kill, or on another worker), the
 * worker replays the cells first, so variables from turn 1 are visible in turn 3 whatever happened in between.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import type { RunRequest, WorkerReply, WorkerRequest } from './sandboxWorker';

export interface SandboxOptions {
  /** Wall-clock limit of one call in ms (default 2000). The worker is killed and respawned past it. */
  timeoutMs?: number;
  /** Longest accepted cell, in characters (default 4000). */
  maxExprChars?: number;
  /** Largest matrix/array a call may create (default 1e6 elements). */
  maxMatrixElements?: number;
  /** Longest output returned; longer output is cut with a marker (default 1000). */
  maxOutputChars?: number;
  /** Number of worker threads (default: cores - 1, between 1 and 4). */
  workers?: number;
  /** Heap limit of each worker in MiB (default 256). */
  memoryMb?: number;
  /** Worker script to run instead of the resolved one (tests, unusual layouts). */
  workerFile?: string;
}

export interface ToolResult { output: string; error: boolean; durationMs: number }

export interface ToolSession {
  /** Run one cell in this session's state. Never rejects for bad code: errors come back as `error: true`. */
  run(code: string, lang?: string): Promise<ToolResult>;
  /** Forget the session's state (the pool stays up). */
  dispose(): void;
}

export interface SandboxStats { calls: number; errors: number; timeouts: number; crashes: number; workerStarts: number }

interface Job {
  session: string;
  history: string[];
  code: string;
  resolve(r: ToolResult): void;
  reject(e: Error): void;
}

interface Slot {
  worker: Worker | null;
  ready: boolean;
  job: Job | null;
  jobId: number;
  startedAt: number;
  timer: NodeJS.Timeout | null;
  /** Sessions whose scope this worker has cached (best effort, used to prefer it). */
  sessions: Set<string>;
}

const DEFAULTS = { timeoutMs: 2000, maxExprChars: 4000, maxMatrixElements: 1_000_000, maxOutputChars: 1000, memoryMb: 256 };
/** Consecutive worker start failures after which queued calls fail instead of retrying forever. */
const MAX_START_FAILURES = 3;

interface WorkerSpec { file: string; eval: boolean; code: string }

/**
 * Where the worker script is. Under tsx (tests, a development checkout) this module is sandbox.ts and the worker
 * is the sibling .ts file, loaded through tsx's CommonJS hook; in the esbuild bundle this code lives in
 * daemon/dist/cli.cjs and the worker is daemon/dist/sandboxWorker.cjs next to it.
 */
export function resolveWorker(override?: string): WorkerSpec {
  const here = typeof __filename === 'string' ? __filename : '';
  if (!here && !override) throw new Error('sandbox: cannot locate the worker script (no __filename); pass workerFile');
  const file = override ?? (here.endsWith('.ts') ? join(dirname(here), 'sandboxWorker.ts') : join(dirname(here), 'sandboxWorker.cjs'));
  if (!existsSync(file)) {
    throw new Error(`sandbox: worker script not found at ${file}; run \`npm run build\` (it bundles daemon/src/env/sandboxWorker.ts)`);
  }
  if (!file.endsWith('.ts')) return { file, eval: false, code: file };
  // Node 20 does not apply `--import tsx` to a worker's entry file, so a tiny CommonJS bootstrap registers tsx's
  // require hook and then loads the TypeScript worker.
  const tsxCjs = createRequire(here || file).resolve('tsx/cjs');
  return { file, eval: true, code: `require(${JSON.stringify(tsxCjs)}); require(${JSON.stringify(file)});` };
}

let sessionCounter = 0;

export class SandboxPool {
  readonly timeoutMs: number;
  readonly maxExprChars: number;
  readonly maxMatrixElements: number;
  readonly maxOutputChars: number;
  readonly memoryMb: number;
  private readonly spec: WorkerSpec;
  private readonly slots: Slot[];
  private readonly queue: Job[] = [];
  private closed = false;
  private startFailures = 0;
  private nextJobId = 1;
  private readonly counters: SandboxStats = { calls: 0, errors: 0, timeouts: 0, crashes: 0, workerStarts: 0 };

  constructor(opts: SandboxOptions = {}) {
    this.timeoutMs = positive('timeoutMs', opts.timeoutMs ?? DEFAULTS.timeoutMs);
    this.maxExprChars = positive('maxExprChars', opts.maxExprChars ?? DEFAULTS.maxExprChars);
    this.maxMatrixElements = positive('maxMatrixElements', opts.maxMatrixElements ?? DEFAULTS.maxMatrixElements);
    this.maxOutputChars = positive('maxOutputChars', opts.maxOutputChars ?? DEFAULTS.maxOutputChars);
    this.memoryMb = positive('memoryMb', opts.memoryMb ?? DEFAULTS.memoryMb);
    const n = opts.workers ?? Math.max(1, Math.min(4, availableParallelism() - 1));
    if (!Number.isInteger(n) || n < 1) throw new Error(`sandbox: workers must be an integer >= 1, got ${n}`);
    this.spec = resolveWorker(opts.workerFile);
    this.slots = Array.from({ length: n }, () => ({ worker: null, ready: false, job: null, jobId: 0, startedAt: 0, timer: null, sessions: new Set<string>() }));
  }

  /** A new interpreter state (one per trajectory). */
  session(): ToolSession {
    if (this.closed) throw new Error('sandbox: the pool is closed');
    const id = `s${++sessionCounter}`;
    const history: string[] = [];
    let chain: Promise<unknown> = Promise.resolve();
    let disposed = false;
    const pool = this;
    return {
      run(code: string, lang = 'mathjs'): Promise<ToolResult> {
        if (disposed) return Promise.reject(new Error('sandbox: this tool session was disposed'));
        // Calls of one session run in order: each cell sees the state the previous one left.
        const p = chain.then(() => pool.runCell(id, history, code, lang));
        chain = p.catch(() => undefined);
        return p;
      },
      dispose(): void {
        if (disposed) return;
        disposed = true;
        for (const s of pool.slots) {
          if (s.sessions.delete(id) && s.worker && s.ready) s.worker.postMessage({ type: 'drop', session: id } satisfies WorkerRequest);
        }
      },
    };
  }

  /** One call without state (a fresh session, disposed afterwards). */
  async run(code: string): Promise<ToolResult> {
    const s = this.session();
    try { return await s.run(code); } finally { s.dispose(); }
  }

  stats(): SandboxStats { return { ...this.counters }; }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new Error('sandbox: the pool was closed');
    for (const j of this.queue.splice(0)) j.reject(err);
    await Promise.all(this.slots.map(async (s) => {
      if (s.timer) clearTimeout(s.timer);
      s.job?.reject(err);
      s.job = null;
      const w = s.worker;
      s.worker = null;
      s.ready = false;
      if (w) await w.terminate();
    }));
  }

  private async runCell(session: string, history: string[], code: string, lang: string): Promise<ToolResult> {
    this.counters.calls++;
    const tag = lang.toLowerCase();
    if (tag !== 'mathjs') {
      this.counters.errors++;
      return { output: `Error: no ${tag} interpreter is available; use \`\`\`mathjs`, error: true, durationMs: 0 };
    }
    if (code.length > this.maxExprChars) {
      this.counters.errors++;
      return { output: `Error: code too long (${code.length} characters; the limit is ${this.maxExprChars})`, error: true, durationMs: 0 };
    }
    if (!code.trim()) {
      this.counters.errors++;
      return { output: 'Error: empty code block', error: true, durationMs: 0 };
    }
    const result = await new Promise<ToolResult>((resolve, reject) => {
      this.queue.push({ session, history: [...history], code, resolve, reject });
      this.dispatch();
    });
    if (result.error) this.counters.errors++;
    else history.push(code);
    return result;
  }

  private dispatch(): void {
    if (this.closed) return;
    for (const s of this.slots) if (!s.worker) this.spawn(s);
    while (this.queue.length) {
      const idle = this.slots.filter((s) => s.worker && s.ready && !s.job);
      if (!idle.length) break;
      const job = this.queue.shift()!;
      // Prefer the worker that already holds the session's scope (no replay needed).
      const slot = idle.find((s) => s.sessions.has(job.session)) ?? idle[0]!;
      this.start(slot, job);
    }
    this.updateRefs();
  }

  /**
   * Workers keep the process alive only while there is work (a queued or running call): an idle pool that
   * nobody closed must not stop the daemon's CLI or a test from exiting.
   */
  private updateRefs(): void {
    const busy = this.queue.length > 0 || this.slots.some((s) => s.job !== null);
    for (const s of this.slots) {
      if (!s.worker) continue;
      if (busy) s.worker.ref();
      else s.worker.unref();
    }
  }

  private start(slot: Slot, job: Job): void {
    const w = slot.worker!;
    slot.job = job;
    slot.jobId = this.nextJobId++;
    slot.startedAt = performance.now();
    slot.sessions.add(job.session);
    const jobId = slot.jobId;
    slot.timer = setTimeout(() => this.onTimeout(slot, jobId), this.timeoutMs);
    const req: RunRequest = {
      type: 'run', id: slot.jobId, session: job.session, history: job.history, code: job.code,
      maxMatrixElements: this.maxMatrixElements, maxOutputChars: this.maxOutputChars,
    };
    w.postMessage(req satisfies WorkerRequest);
  }

  private finish(slot: Slot, output: string, error: boolean): void {
    const job = slot.job;
    if (!job) return;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    slot.job = null;
    const durationMs = Math.round((performance.now() - slot.startedAt) * 10) / 10;
    job.resolve({ output, error, durationMs });
    this.updateRefs();
  }

  /**
   * The timer runs on this thread. After a long synchronous stretch here (a batched prefill, say), it can come due
   * in the same loop turn as the worker's reply, and timers run before messages: a call that took microseconds
   * was reported as "time limit exceeded" (seen under load: 13 of 768 sampled trajectories of two otherwise
   * identical runs differed that way). Look once more after the pending messages (setImmediate runs after the
   * poll phase) before killing.
   */
  private onTimeout(slot: Slot, jobId: number): void {
    slot.timer = null;
    setImmediate(() => {
      if (slot.job && slot.jobId === jobId) this.expire(slot);
    });
  }

  private expire(slot: Slot): void {
    this.counters.timeouts++;
    const secs = this.timeoutMs / 1000;
    this.kill(slot);
    this.finish(slot, `Error: time limit exceeded (${secs} s); the computation was stopped`, true);
    this.dispatch();
  }

  /** Terminate a worker that is running away; the slot gets a fresh worker on the next dispatch. */
  private kill(slot: Slot): void {
    const w = slot.worker;
    slot.worker = null;
    slot.ready = false;
    slot.sessions.clear();
    if (w) {
      w.removeAllListeners();
      w.on('error', () => undefined); // a late error from a dying worker must not become an uncaught exception
      void w.terminate();
    }
  }

  private spawn(slot: Slot): void {
    if (this.closed) return;
    this.counters.workerStarts++;
    let w: Worker;
    try {
      w = new Worker(this.spec.code, {
        eval: this.spec.eval,
        resourceLimits: { maxOldGenerationSizeMb: this.memoryMb, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
      });
    } catch (e) {
      this.startFailed(slot, e);
      return;
    }
    slot.worker = w;
    slot.ready = false;
    w.on('message', (msg: WorkerReply) => {
      if (slot.worker !== w) return;
      if (msg.type === 'ready') {
        slot.ready = true;
        this.startFailures = 0;
        this.dispatch();
      } else if (msg.type === 'result' && slot.job && msg.id === slot.jobId) {
        this.finish(slot, msg.output, msg.error);
        this.dispatch();
      }
    });
    w.on('error', (e: Error & { code?: string }) => {
      if (slot.worker !== w) return;
      const wasReady = slot.ready;
      this.kill(slot);
      if (!wasReady && !slot.job) { this.startFailed(slot, e); return; }
      this.counters.crashes++;
      const oom = e.code === 'ERR_WORKER_OUT_OF_MEMORY';
      this.finish(slot, oom ? `Error: out of memory (the interpreter's limit is ${this.memoryMb} MB)` : `Error: the interpreter crashed (${e.message})`, true);
      this.dispatch();
    });
    w.on('exit', (code) => {
      if (slot.worker !== w) return;
      // An exit without an error event (should not happen): treat like a crash.
      this.kill(slot);
      this.counters.crashes++;
      this.finish(slot, `Error: the interpreter exited (code ${code})`, true);
      this.dispatch();
    });
    // After the listeners: attaching a 'message' listener refs the worker again.
    this.updateRefs();
  }

  private startFailed(slot: Slot, e: unknown): void {
    slot.worker = null;
    slot.ready = false;
    this.startFailures++;
    const msg = e instanceof Error ? e.message : String(e);
    if (this.startFailures >= MAX_START_FAILURES) {
      const err = new Error(`sandbox: the interpreter worker failed to start ${this.startFailures} times: ${msg}`);
      for (const j of this.queue.splice(0)) j.reject(err);
      this.startFailures = 0;
      return;
    }
    setTimeout(() => this.dispatch(), 50);
  }
}

function positive(name: string, v: number): number {
  if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new Error(`sandbox: ${name} must be a positive number, got ${String(v)}`);
  return v;
}
