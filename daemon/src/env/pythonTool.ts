/**
 * The Python tool (opt-in: run config `tool.python`): for models trained on Python like the paper's, each tool
 * call runs in a fresh `python3` subprocess that first re-runs the trajectory's earlier successful cells (the
 * paper's stateful interpreter) and returns only the last cell's output, or the last line of its traceback.
 *
 * THE RISK: this runs code a model wrote on the daemon's host. The layers below contain mistakes and the usual
 * hostile snippets (fork bombs, infinite loops, huge allocations, writes outside the temp dir, network access),
 * but they are not a security boundary against code written to escape; on a shared host run the daemon in a
 * container or VM. That is why it is off by default.
 *
 * Layers, each used where the OS allows it (`pythonSandboxInfo()` says which are active):
 * - `unshare --net --pid --fork --kill-child`: no network interfaces, own PID namespace (killing the call kills
 *   everything it started); tried as root, then with a user namespace (`--user --map-root-user`) otherwise;
 * - running as `nobody` (setpriv) when the daemon is root and that user can run the interpreter, so the
 *   process limit (RLIMIT_NPROC, ignored for root) and file permissions apply;
 * - a new process group, killed whole (SIGKILL) at the time limit (default 20 s);
 * - in the interpreter (pythonRunner.ts): RLIMIT_AS/CPU/FSIZE/NPROC/NOFILE, and an audit hook refusing process
 *   creation, signals, sockets, and writes outside the call's temp dir, which is removed afterwards;
 * - a minimal environment (HOME and TMPDIR = the temp dir), `-I -B` (isolated mode, no bytecode writes),
 *   output captured and truncated (maxOutputChars), at most 1 MiB read from the process.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ToolResult, ToolSession } from './sandbox';
import { PYTHON_RUNNER } from './pythonRunner';

export interface PythonToolOptions {
  /** Interpreter to run (default `python3` from PATH). */
  python?: string;
  /** Wall-clock limit of one call, earlier cells included (default 20 000 ms). */
  timeoutMs?: number;
  /** Address-space limit in MiB (default 1024). */
  memoryMb?: number;
  /** Longest output returned (default 1000 characters). */
  maxOutputChars?: number;
  /** Longest accepted cell (default 20 000 characters). */
  maxCodeChars?: number;
  /** Largest file a call may write, in MiB (default 16). */
  maxFileMb?: number;
  /** Most processes/threads of the sandbox user (only enforced for non-root users; default 64). */
  maxProcesses?: number;
  /** Calls running at once; more wait (default: the number of cores). */
  concurrency?: number;
  /** Allow sockets (default false). */
  network?: boolean;
  /** Use unshare/setpriv when available (default true); false = only the in-process layers (tests). */
  osIsolation?: boolean;
  /** Install the in-process audit hook (default true); false only to test the OS layers on their own. */
  auditHook?: boolean;
}

export interface PythonSandboxInfo {
  /** Absolute path of the interpreter, or null when none was found. */
  executable: string | null;
  version: string | null;
  /** The unshare flags in use, or null. */
  unshare: string[] | null;
  /** Whether calls run as `nobody`. */
  unprivileged: boolean;
  /** Why a layer is missing. */
  notes: string[];
}

const NOBODY = 65534;
const MAX_READ_BYTES = 1 << 20;
const probed = new Map<string, PythonSandboxInfo>();

/** Find the interpreter and which OS layers work here (cached per interpreter). */
export function pythonSandboxInfo(python = 'python3', osIsolation = true): PythonSandboxInfo {
  const key = `${python}\0${osIsolation}`;
  const hit = probed.get(key);
  if (hit) return hit;
  const notes: string[] = [];
  const info: PythonSandboxInfo = { executable: null, version: null, unshare: null, unprivileged: false, notes };
  const probe = 'import sys; print(sys.executable); print(sys.version.split()[0]); print(sys.prefix)';
  const p = spawnSync(python, ['-I', '-c', probe], { encoding: 'utf8', timeout: 10_000 });
  if (p.status !== 0 || !p.stdout) {
    notes.push(`${python} is not available (${p.error ? p.error.message : (p.stderr || `exit ${p.status}`).trim().slice(0, 200)})`);
    probed.set(key, info);
    return info;
  }
  const [exe, version, prefix] = p.stdout.trim().split('\n');
  info.executable = exe ?? null;
  info.version = version ?? null;
  if (osIsolation && info.executable) {
    const ok = (argv: string[]) => spawnSync(argv[0]!, argv.slice(1), { timeout: 10_000, stdio: 'ignore' }).status === 0;
    const base = ['--net', '--pid', '--fork', '--kill-child'];
    for (const flags of [base, ['--user', '--map-root-user', ...base]]) {
      if (ok(['unshare', ...flags, '--', info.executable, '-c', 'pass'])) { info.unshare = flags; break; }
    }
    if (!info.unshare) notes.push('unshare is not permitted here: no network/PID namespace (the audit hook still refuses sockets and process creation)');
    if (process.getuid?.() === 0) {
      // As nobody the interpreter must see the same installation (a prefix under /root is unreadable to nobody:
      // Python would silently fall back to another stdlib without the packages).
      const drop = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', info.executable, '-I', '-c', probe], { encoding: 'utf8', timeout: 10_000 });
      if (drop.status === 0 && drop.stdout.trim().split('\n')[2] === prefix) info.unprivileged = true;
      else notes.push(`the daemon runs as root and user nobody cannot use ${info.executable} (unreadable installation, or no setpriv): calls run as root, so RLIMIT_NPROC does not apply`);
    }
  }
  probed.set(key, info);
  return info;
}

/** Is this code-block language the Python tool's? */
export function isPythonLang(lang: string | undefined): boolean {
  return lang !== undefined && ['python', 'py', 'python3'].includes(lang.toLowerCase());
}

interface Waiter { start(): void }

export class PythonTool {
  readonly timeoutMs: number;
  readonly memoryMb: number;
  readonly maxOutputChars: number;
  readonly maxCodeChars: number;
  private readonly o: Required<PythonToolOptions>;
  private running = 0;
  private readonly waiting: Waiter[] = [];
  private readonly children = new Set<number>();
  private closed = false;

  constructor(opts: PythonToolOptions = {}) {
    this.o = {
      python: opts.python ?? 'python3', timeoutMs: opts.timeoutMs ?? 20_000, memoryMb: opts.memoryMb ?? 1024,
      maxOutputChars: opts.maxOutputChars ?? 1000, maxCodeChars: opts.maxCodeChars ?? 20_000, maxFileMb: opts.maxFileMb ?? 16,
      maxProcesses: opts.maxProcesses ?? 64, concurrency: opts.concurrency ?? Math.max(1, availableParallelism()),
      network: opts.network ?? false, osIsolation: opts.osIsolation ?? true, auditHook: opts.auditHook ?? true,
    };
    for (const k of ['timeoutMs', 'memoryMb', 'maxOutputChars', 'maxCodeChars', 'maxFileMb', 'maxProcesses', 'concurrency'] as const) {
      const v = this.o[k];
      if (!(Number.isFinite(v) && v > 0)) throw new Error(`python tool: ${k} must be a positive number, got ${String(v)}`);
    }
    this.timeoutMs = this.o.timeoutMs;
    this.memoryMb = this.o.memoryMb;
    this.maxOutputChars = this.o.maxOutputChars;
    this.maxCodeChars = this.o.maxCodeChars;
  }

  /** Which layers are active (probes the host on first use). */
  info(): PythonSandboxInfo { return pythonSandboxInfo(this.o.python, this.o.osIsolation); }

  /** A stateful interpreter for one trajectory: successful cells are re-run before each new one. */
  session(): ToolSession {
    const history: string[] = [];
    let chain: Promise<unknown> = Promise.resolve();
    let disposed = false;
    return {
      run: (code: string): Promise<ToolResult> => {
        if (disposed) return Promise.reject(new Error('python tool: this session was disposed'));
        const p = chain.then(async () => {
          const r = await this.runCells(history, code);
          if (!r.error) history.push(code);
          return r;
        });
        chain = p.catch(() => undefined);
        return p;
      },
      dispose: () => { disposed = true; },
    };
  }

  /** Run `code` after re-running `history`; never rejects for bad code (errors are `error: true`). */
  async runCells(history: readonly string[], code: string): Promise<ToolResult> {
    if (code.length > this.maxCodeChars) return { output: `Error: code too long (${code.length} characters; the limit is ${this.maxCodeChars})`, error: true, durationMs: 0 };
    if (!code.trim()) return { output: 'Error: empty code block', error: true, durationMs: 0 };
    const info = this.info();
    if (!info.executable) return { output: `Error: no python interpreter is available on the daemon host (${info.notes[0] ?? 'python3 not found'})`, error: true, durationMs: 0 };
    await this.acquire();
    try {
      return await this.spawnOnce(info, history, code);
    } finally {
      this.release();
    }
  }

  /** Kill every running call (daemon shutdown). */
  close(): void {
    this.closed = true;
    for (const pid of this.children) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
  }

  private acquire(): Promise<void> {
    if (this.running < this.o.concurrency) { this.running++; return Promise.resolve(); }
    return new Promise((resolve) => this.waiting.push({ start: () => { this.running++; resolve(); } }));
  }

  private release(): void {
    this.running--;
    this.waiting.shift()?.start();
  }

  private spawnOnce(info: PythonSandboxInfo, history: readonly string[], code: string): Promise<ToolResult> {
    if (this.closed) return Promise.resolve({ output: 'Error: the python tool was shut down', error: true, durationMs: 0 });
    const dir = mkdtempSync(join(tmpdir(), 'mathagent-py-'));
    if (info.unprivileged) chownSync(dir, NOBODY, NOBODY);
    let argv = [info.executable!, '-I', '-B', '-c', PYTHON_RUNNER];
    if (info.unprivileged) argv = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', ...argv];
    if (info.unshare) argv = ['unshare', ...info.unshare, '--', ...argv];
    const job = {
      dir, history, code, maxOutputChars: this.maxOutputChars, network: this.o.network,
      memoryBytes: this.memoryMb * 1024 * 1024, cpuSeconds: Math.ceil(this.timeoutMs / 1000) + 1,
      fileBytes: this.o.maxFileMb * 1024 * 1024, nproc: this.o.maxProcesses, auditHook: this.o.auditHook,
    };
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, TMPDIR: dir, LANG: 'C.UTF-8', MPLCONFIGDIR: dir,
      OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', NUMEXPR_NUM_THREADS: '1',
    };
    const started = performance.now();
    return new Promise<ToolResult>((resolve) => {
      let out = Buffer.alloc(0);
      let timedOut = false;
      let settled = false;
      const child = spawn(argv[0]!, argv.slice(1), { cwd: dir, env, detached: true, stdio: ['pipe', 'pipe', 'ignore'] });
      const pid = child.pid;
      if (pid !== undefined) this.children.add(pid);
      const killGroup = () => { if (pid !== undefined) { try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ } } };
      const timer = setTimeout(() => { timedOut = true; killGroup(); }, this.timeoutMs);
      const done = (r: Omit<ToolResult, 'durationMs'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        killGroup(); // stragglers (a process the cell left behind) die with the call
        if (pid !== undefined) this.children.delete(pid);
        try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
        resolve({ ...r, durationMs: Math.round((performance.now() - started) * 10) / 10 });
      };
      child.stdout!.on('data', (c: Buffer) => { if (out.length < MAX_READ_BYTES) out = Buffer.concat([out, c.subarray(0, MAX_READ_BYTES - out.length)]); });
      child.on('error', (e) => done({ output: `Error: could not start python (${e.message})`, error: true }));
      child.stdin!.on('error', () => undefined); // the process may die before reading its job
      child.stdin!.end(JSON.stringify(job));
      child.on('close', (status, signal) => {
        if (timedOut) { done({ output: `Error: time limit exceeded (${this.timeoutMs / 1000} s); the program was stopped`, error: true }); return; }
        const line = out.toString('utf8').trim().split('\n').pop() ?? '';
        const r = parseResult(line);
        if (r && typeof r.output === 'string') {
          let output = r.output;
          if (r.truncated === true) output += `\n... (output truncated to ${this.maxOutputChars} characters)`;
          if (typeof r.error === 'string') done({ output: r.error, error: true });
          else done({ output: output.replace(/\n$/, ''), error: false });
          return;
        }
        const why = signal === 'SIGXCPU' || status === 128 + 24 ? 'CPU time limit exceeded'
          : signal === 'SIGKILL' || status === 137 ? 'the program was killed (out of memory or a limit)'
          : `the program exited without a result (${signal ? `signal ${signal}` : `exit code ${status}`})`;
        done({ output: `Error: ${why}`, error: true });
      });
    });
  }
}

function parseResult(line: string): { output?: unknown; error?: unknown; truncated?: unknown } | null {
  try {
    const v: unknown = JSON.parse(line);
    return v && typeof v === 'object' ? (v as { output?: unknown; error?: unknown; truncated?: unknown }) : null;
  } catch { return null; }
}

/** A tool provider whose sessions send python cells to the Python tool and everything else to `base`. */
export function withPython<P extends { session(): ToolSession }>(base: P, python: PythonTool): { session(): ToolSession } {
  return {
    session(): ToolSession {
      const s = base.session();
      const p = python.session();
      return {
        run: (code: string, lang?: string) => (isPythonLang(lang) ? p.run(code) : s.run(code, lang)),
        dispose: () => { s.dispose(); p.dispose(); },
      };
    },
  };
}

/** The warning logged when a run enables the Python tool. */
export function pythonRiskMessage(info: PythonSandboxInfo, timeoutMs: number): string {
  const layers = [
    info.unshare ? `network and PID namespaces (unshare ${info.unshare.join(' ')})` : 'no namespaces',
    info.unprivileged ? 'runs as nobody' : 'runs as the daemon\'s user',
    `${timeoutMs / 1000} s limit`,
  ];
  return `the Python tool is ON: model-written code runs in ${info.executable ?? 'python3'} subprocesses on this host (${layers.join(', ')}; memory/CPU/file limits and an audit hook). ` +
    'It contains mistakes and common hostile code but is not a security boundary: use a container or VM on shared hosts.' + (info.notes.length ? ` Notes: ${info.notes.join('; ')}` : '');
}
