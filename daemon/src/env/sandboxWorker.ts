/**
 * The mathjs interpreter, run inside a worker thread (see sandbox.ts, which owns the time limit and kills this
 * worker when a call runs too long or runs out of its memory limit).
 *
 * Security, following the mathjs "Expression parser security" docs (docs/expressions/security.md and the
 * example more_secure_eval.js): the functions that alter the instance or re-enter the parser (import, createUnit,
 * evaluate, parse, compile, simplify, derivative, ...) are replaced with functions that throw, after keeping a
 * private reference to `parse` for our own use. mathjs itself already refuses `constructor`, `__proto__` and
 * other unsafe properties. `config` and `parser` are removed too: `config(...)` would change number types and
 * precision for every later session served by this worker.
 *
 * Size limits: functions that make large arrays from small arguments (zeros(1e5,1e5), 1:1e9, ...) check the
 * element count first and refuse with a short error instead of allocating. Whatever slips through (an index
 * assignment that resizes a matrix, repeated concat) is caught by the worker's heap limit or the time limit.
 *
 * State across turns: a per-session scope (a Map, which mathjs treats as a plain variable store with no
 * prototype) is cached here, tagged with the number of cells it has seen. When the cache misses (a fresh worker
 * after a timeout kill, or another worker served the session before), the session's earlier successful cells
 * are replayed in a fresh scope first, as the paper's interpreter re-runs all earlier cells.
 */
import { parentPort } from 'node:worker_threads';
import type { MathJsInstance } from 'mathjs';

// The single-file browser build loads in ~0.1 s against ~1.2 s for the many-file CJS build, which matters
// because a worker is respawned after every timeout. It is the same library, exported by the package.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const mathjs = require('mathjs/lib/browser/math.js') as typeof import('mathjs');

export interface RunRequest {
  type: 'run';
  id: number;
  session: string;
  /** The session's earlier successful cells, replayed when this worker has no scope for the session. */
  history: string[];
  code: string;
  maxMatrixElements: number;
  maxOutputChars: number;
}
export interface DropRequest { type: 'drop'; session: string }
export type WorkerRequest = RunRequest | DropRequest;
export type WorkerReply =
  | { type: 'ready' }
  | { type: 'result'; id: number; output: string; error: boolean };

const math: MathJsInstance = mathjs.create(mathjs.all, {});
const parse = math.parse;
const format = math.format;

let maxElements = 1_000_000;

class LimitError extends Error {}

/** Element count of a size given as numbers, an array or a matrix; NaN when it cannot be told. */
function countOf(sizeArgs: unknown[]): number {
  let n = 1;
  for (const a of sizeArgs) {
    if (typeof a === 'string' || typeof a === 'boolean') continue; // format ('dense') or a flag
    const parts = math.isMatrix(a) ? (a.valueOf() as unknown[]) : Array.isArray(a) ? a : [a];
    for (const p of parts.flat(Infinity)) {
      const v = Number(p as number);
      if (!Number.isFinite(v)) return Infinity;
      n *= Math.max(0, Math.floor(Math.abs(v)));
    }
  }
  return n;
}

function check(name: string, count: number): void {
  if (count > maxElements) {
    throw new LimitError(`${name}: ${formatCount(count)} elements exceed the limit of ${formatCount(maxElements)}`);
  }
}

function formatCount(n: number): string {
  return Number.isFinite(n) ? (n >= 1e6 ? n.toExponential(1).replace('e+', 'e') : String(n)) : 'infinitely many';
}

/** Number of values range(start, end, step) would produce; strings like "1:10:2" are parsed. */
function rangeCount(args: unknown[]): number {
  let xs = args.filter((a) => typeof a !== 'boolean');
  if (xs.length === 1 && typeof xs[0] === 'string') xs = (xs[0] as string).split(':');
  if (xs.length < 2) return 0;
  const start = Number(xs[0]);
  const end = Number(xs[1]);
  const step = xs.length > 2 ? Number(xs[2]) : 1;
  if (!Number.isFinite(start) || !Number.isFinite(end) || !Number.isFinite(step)) {
    return Number.isNaN(start + end + step) ? 0 : Infinity;
  }
  if (step === 0) return 0;
  return Math.max(0, Math.floor((end - start) / step) + 1);
}

type AnyFn = ((...args: unknown[]) => unknown) & { transform?: (...args: unknown[]) => unknown };

/** Wrap a function (and its expression transform, e.g. the 1-based inclusive `range`) with a size check. */
function guarded(name: string, count: (args: unknown[]) => number): AnyFn {
  const m = math as unknown as Record<string, AnyFn>;
  const orig = m[name]!;
  const transforms = (math as unknown as { expression: { transform: Record<string, AnyFn> } }).expression.transform;
  const origTransform = transforms[name];
  const fn: AnyFn = (...args: unknown[]) => { check(name, count(args)); return orig(...args); };
  if (origTransform) fn.transform = (...args: unknown[]) => { check(name, count(args)); return origTransform(...args); };
  return fn;
}

const disabled = (name: string) => () => {
  throw new Error(`${name} is disabled in the sandbox`);
};

const sizeOfArg = (i: number) => (args: unknown[]) => {
  const a = args[i];
  return math.isMatrix(a) || Array.isArray(a) ? countOf([a]) : 0;
};
const numel = (x: unknown): number => (math.isMatrix(x) || Array.isArray(x) ? (math.size(x as number[]).valueOf() as number[]).reduce((p, q) => p * q, 1) : 1);

math.import(
  {
    import: disabled('import'),
    createUnit: disabled('createUnit'),
    evaluate: disabled('evaluate'),
    parse: disabled('parse'),
    compile: disabled('compile'),
    parser: disabled('parser'),
    simplify: disabled('simplify'),
    simplifyConstant: disabled('simplifyConstant'),
    simplifyCore: disabled('simplifyCore'),
    rationalize: disabled('rationalize'),
    derivative: disabled('derivative'),
    resolve: disabled('resolve'),
    symbolicEqual: disabled('symbolicEqual'),
    leafCount: disabled('leafCount'),
    reviver: disabled('reviver'),
    replacer: disabled('replacer'),
    config: disabled('config'),
    help: disabled('help'),
    zeros: guarded('zeros', countOf),
    ones: guarded('ones', countOf),
    identity: guarded('identity', (a) => {
      const sizes = a.filter((x) => typeof x !== 'string');
      const c = countOf(sizes);
      return sizes.length === 1 && !math.isMatrix(sizes[0]) && !Array.isArray(sizes[0]) ? c * c : c;
    }),
    range: guarded('range', rangeCount),
    random: guarded('random', sizeOfArg(0)),
    randomInt: guarded('randomInt', sizeOfArg(0)),
    pickRandom: guarded('pickRandom', (a) => {
      const n = a[1];
      return typeof n === 'number' ? n : 0;
    }),
    resize: guarded('resize', sizeOfArg(1)),
    kron: guarded('kron', (a) => numel(a[0]) * numel(a[1])),
    diag: guarded('diag', (a) => (math.isMatrix(a[0]) || Array.isArray(a[0]) ? numel(a[0]) ** 2 : 0)),
  } as unknown as Record<string, unknown>,
  { override: true },
);

interface CachedScope { cells: number; scope: Map<string, unknown>; used: number }
const scopes = new Map<string, CachedScope>();
const MAX_SCOPES = 256;
let clock = 0;

function evalCell(code: string, scope: Map<string, unknown>): unknown {
  return parse(code).compile().evaluate(scope);
}

/** The value the cell shows: the last visible expression of a block (`a = 3;` hides its value). */
function lastValue(result: unknown): unknown {
  if (result && typeof result === 'object' && math.isResultSet(result)) {
    const entries = (result as { entries: unknown[] }).entries;
    return entries.length ? entries[entries.length - 1] : undefined;
  }
  return result;
}

function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  return `${s.slice(0, max)}… [output truncated: ${s.length} chars]`;
}

function show(value: unknown, maxChars: number): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return truncate(value, maxChars);
  if (typeof value === 'function') return (value as { syntax?: string }).syntax ?? 'function';
  // Exact digits for integers a double holds exactly; mathjs's precision 14 would round 15-16 digit values.
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  if (math.isMatrix(value) || Array.isArray(value)) {
    const n = numel(value);
    if (n > maxChars) {
      const size = (math.size(value as number[]).valueOf() as number[]).join('x');
      return `[${size} matrix, ${n} elements: too large to print; index into it, e.g. A[1]]`;
    }
  }
  return truncate(format(value, { precision: 14 }), maxChars);
}

function errorText(e: unknown, maxChars: number): string {
  let msg: string;
  if (e instanceof RangeError && /call stack/i.test(e.message)) msg = 'too much recursion (call stack exceeded)';
  else if (e instanceof RangeError && /array length/i.test(e.message)) msg = 'array too large';
  else if (e instanceof Error) msg = e.message;
  else msg = String(e);
  return truncate(`Error: ${msg}`, Math.min(maxChars, 400));
}

function run(req: RunRequest): { output: string; error: boolean } {
  maxElements = req.maxMatrixElements;
  let cached = scopes.get(req.session);
  if (!cached || cached.cells !== req.history.length) {
    cached = { cells: 0, scope: new Map(), used: 0 };
    for (const cell of req.history) {
      // Earlier cells succeeded once; if one fails now (e.g. random values), keep going like a notebook would.
      try { evalCell(cell, cached.scope); } catch { /* replay is best effort */ }
      cached.cells++;
    }
    scopes.set(req.session, cached);
  }
  cached.used = ++clock;
  try {
    const value = lastValue(evalCell(req.code, cached.scope));
    cached.cells++;
    const output = show(value, req.maxOutputChars);
    if (scopes.size > MAX_SCOPES) evictOldest();
    return { output, error: false };
  } catch (e) {
    // A failed cell is not replayed later, and it may have assigned some variables before failing: drop the
    // cached scope so the next call rebuilds exactly the replay state.
    scopes.delete(req.session);
    return { output: errorText(e, req.maxOutputChars), error: true };
  }
}

function evictOldest(): void {
  let oldest: string | null = null;
  let t = Infinity;
  for (const [k, v] of scopes) if (v.used < t) { t = v.used; oldest = k; }
  if (oldest !== null) scopes.delete(oldest);
}

/**
 * mathjs creates most functions lazily on first use (~0.2 s for the first cell); do that before reporting
 * ready, so a fresh worker's first call is not charged for it against the time limit.
 */
function warmUp(): void {
  try {
    evalCell('a = 2^10 * 3 / 7 - 1\nb = [1, 2; 3, 4]\nf(x) = x^2 + sqrt(x)\nsum(1:3) + f(a) + det(b) + mod(17, 5) + round(2.5) + floor(a) + abs(-1) + max(b) + mean(1:3)', new Map());
  } catch { /* warm-up only */ }
}

if (parentPort) {
  const port = parentPort;
  warmUp();
  port.on('message', (msg: WorkerRequest) => {
    if (msg.type === 'drop') { scopes.delete(msg.session); return; }
    const r = run(msg);
    const reply: WorkerReply = { type: 'result', id: msg.id, output: r.output, error: r.error };
    port.postMessage(reply);
  });
  port.postMessage({ type: 'ready' } satisfies WorkerReply);
}
