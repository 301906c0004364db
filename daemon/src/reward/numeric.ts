/**
 * Numeric and symbolic equality of converted (mathjs) expressions.
 *
 * Only strings produced by latexToMathjs reach mathjs here (whitelisted functions, symbols, numbers).
 * Constants compare by value (relative tolerance 1e-4, complex numbers and matrices element-wise);
 * expressions with variables compare at deterministic pseudo-random sample points, with
 * mathjs simplify(a - b) == 0 as a guarded last resort when no sample point evaluates.
 * Every mathjs call is wrapped: a failure means "unknown", never an exception.
 */
import { create, all, type EvalFunction, type MathNode } from 'mathjs';

const math = create(all, {});

/** Relative tolerance for numbers (DESIGN.md §2). */
export const REL_TOL = 1e-4;
const ABS_TOL = 1e-9;
/** Symbols that are constants rather than free variables. */
const CONSTANTS = new Set(['pi', 'e', 'i', 'Infinity']);
const CACHE_MAX = 4000;
const SAMPLE_POINTS = 10;
const MIN_AGREEING_POINTS = 3;

interface Compiled { fn: EvalFunction; vars: string[]; src: string }
const cache = new Map<string, Compiled | null>();

/** Parse and compile a converter output once (LRU-ish cache); null when mathjs rejects it. */
export function compile(expr: string): Compiled | null {
  const hit = cache.get(expr);
  if (hit !== undefined) return hit;
  let out: Compiled | null = null;
  try {
    const node = math.parse(expr);
    const vars = new Set<string>();
    node.traverse((n: MathNode, path: string, parent: MathNode | null) => {
      if (n.type === 'SymbolNode' && !(parent && parent.type === 'FunctionNode' && path === 'fn')) {
        const name = (n as unknown as { name: string }).name;
        if (!CONSTANTS.has(name)) vars.add(name);
      }
    });
    out = { fn: node.compile(), vars: [...vars].sort(), src: expr };
  } catch {
    out = null;
  }
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(expr, out);
  return out;
}

/** A value as plain data: complex scalars, or a matrix of them with its shape. */
type Value = { re: number; im: number } | { shape: number[]; items: Array<{ re: number; im: number }> };

function toValue(v: unknown): Value | null {
  if (typeof v === 'number') return { re: v, im: 0 };
  if (math.isComplex(v)) return { re: (v as { re: number }).re, im: (v as { im: number }).im };
  if (math.isMatrix(v) || Array.isArray(v)) {
    const arr = math.isMatrix(v) ? (v as { toArray(): unknown[] }).toArray() : (v as unknown[]);
    const shape = math.size(arr as number[]) as unknown as number[];
    const items: Array<{ re: number; im: number }> = [];
    for (const x of (arr as unknown[]).flat(8)) {
      const s = toValue(x);
      if (!s || 'shape' in s) return null;
      items.push(s);
    }
    return { shape: Array.from(shape as ArrayLike<number>), items };
  }
  return null;
}

function finiteScalar(x: { re: number; im: number }): boolean {
  return Number.isFinite(x.re) && Number.isFinite(x.im);
}

/** |a - b| <= tol * max(|a|, |b|) (+ a tiny absolute slack for values that should be 0). */
export function closeNumbers(a: number, b: number, rel = REL_TOL, abs = ABS_TOL): boolean {
  if (a === b) return true;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  const diff = Math.abs(a - b);
  return diff <= rel * Math.max(Math.abs(a), Math.abs(b)) * (1 + 1e-9) + abs;
}

function closeScalars(a: { re: number; im: number }, b: { re: number; im: number }, rel: number, abs: number): boolean {
  const scale = Math.max(Math.hypot(a.re, a.im), Math.hypot(b.re, b.im));
  const diff = Math.hypot(a.re - b.re, a.im - b.im);
  return diff <= rel * scale * (1 + 1e-9) + abs;
}

function closeValues(a: Value, b: Value, rel = REL_TOL, abs = ABS_TOL): boolean {
  if ('shape' in a || 'shape' in b) {
    if (!('shape' in a) || !('shape' in b)) return false;
    if (a.shape.join('x') !== b.shape.join('x')) return false;
    return a.items.every((x, k) => closeScalars(x, b.items[k], rel, abs));
  }
  return closeScalars(a, b, rel, abs);
}

function isFiniteValue(v: Value): boolean {
  return 'shape' in v ? v.items.every(finiteScalar) : finiteScalar(v);
}

/** Which entries are real, as a string: a point where the two sides differ in it is skipped. */
function realness(v: Value): string {
  return 'shape' in v ? v.items.map((x) => (x.im === 0 ? 'r' : 'c')).join('') : v.im === 0 ? 'r' : 'c';
}

function evaluate(c: Compiled, scope: Map<string, number>): Value | null {
  try {
    return toValue(c.fn.evaluate(scope));
  } catch {
    return null;
  }
}

/** Deterministic pseudo-random sample value for variable j at point k, in [-3, 3] away from 0. */
function sample(j: number, k: number): number {
  const x = Math.sin(12.9898 * (k + 1) + 78.233 * (j + 1) + 0.5) * 43758.5453;
  const u = x - Math.floor(x);
  const v = u * 6 - 3;
  return Math.abs(v) < 0.2 ? v + 0.7 : v;
}

function scopeAt(vars: string[], k: number): Map<string, number> {
  const m = new Map<string, number>();
  vars.forEach((name, j) => m.set(name, sample(j, k)));
  return m;
}

const LITERAL_INF = /^(-?)\(?Infinity\)?$/;

/**
 * Are two converted expressions equal? true / false, or null when it cannot be decided numerically
 * (evaluation failed everywhere, or a constant overflowed).
 */
export function exprEqual(a: string, b: string): boolean | null {
  const ia = LITERAL_INF.exec(a.replace(/\s/g, ''));
  const ib = LITERAL_INF.exec(b.replace(/\s/g, ''));
  if (ia || ib) return !!(ia && ib && ia[1] === ib[1]);
  const ca = compile(a);
  const cb = compile(b);
  if (!ca || !cb) return null;
  const vars = [...new Set([...ca.vars, ...cb.vars])];
  if (!vars.length) {
    const va = evaluate(ca, new Map());
    const vb = evaluate(cb, new Map());
    if (!va || !vb || !isFiniteValue(va) || !isFiniteValue(vb)) return null;
    return closeValues(va, vb);
  }
  if (vars.length > 12) return null;
  let agree = 0;
  for (let k = 0; k < SAMPLE_POINTS; k++) {
    const scope = scopeAt(vars, k);
    const va = evaluate(ca, scope);
    const vb = evaluate(cb, scope);
    if (!va || !vb || !isFiniteValue(va) || !isFiniteValue(vb)) continue;
    // A point where one side is real and the other complex (a branch cut) says nothing either way.
    if (realness(va) !== realness(vb)) continue;
    if (!closeValues(va, vb, 1e-6, 1e-8)) return false;
    agree++;
  }
  if (agree >= MIN_AGREEING_POINTS) return true;
  if (agree > 0) return null;
  return symbolicZero(`(${a}) - (${b})`);
}

/**
 * Is f = c * g for a constant c (c > 0 when `positive`)? Used for equations (`2x+4y-3=0` vs
 * `y = -x/2 + 3/4`) and inequalities, with f and g the "left minus right" sides.
 */
export function proportional(f: string, g: string, positive: boolean): boolean | null {
  const cf = compile(f);
  const cg = compile(g);
  if (!cf || !cg) return null;
  const vars = [...new Set([...cf.vars, ...cg.vars])];
  if (vars.length > 12) return null;
  let ratio: number | null = null;
  let used = 0;
  const points = vars.length ? SAMPLE_POINTS : 1;
  for (let k = 0; k < points; k++) {
    const scope = scopeAt(vars, k);
    const vf = evaluate(cf, scope);
    const vg = evaluate(cg, scope);
    if (!vf || !vg || 'shape' in vf || 'shape' in vg || vf.im !== 0 || vg.im !== 0) continue;
    if (!Number.isFinite(vf.re) || !Number.isFinite(vg.re)) continue;
    const zf = Math.abs(vf.re) < 1e-12;
    const zg = Math.abs(vg.re) < 1e-12;
    if (zf || zg) { if (zf !== zg) return false; used++; continue; }
    const r = vg.re / vf.re;
    if (ratio === null) ratio = r;
    else if (!closeNumbers(r, ratio, 1e-6, 1e-12)) return false;
    used++;
  }
  if (used < Math.min(points, MIN_AGREEING_POINTS)) return null;
  if (ratio === null) return !positive;
  return positive ? ratio > 0 : true;
}

/** Evaluate a constant converted expression to a real number (null if it has variables or is complex). */
export function constantValue(expr: string): number | null {
  const c = compile(expr);
  if (!c || c.vars.length) return null;
  const v = evaluate(c, new Map());
  if (!v || 'shape' in v || v.im !== 0 || !Number.isFinite(v.re)) return null;
  return v.re;
}

/**
 * simplify(a - b) == 0, only on small inputs whose constant exponents are small and that have no
 * factorials or big literals: mathjs simplify folds constants exactly and would otherwise spend unbounded
 * time on `9^{9^9}`.
 */
function symbolicZero(diff: string): boolean | null {
  if (diff.length > 160 || /!|combinations|\d{7,}/.test(diff)) return null;
  try {
    const node = math.parse(diff);
    let safe = true;
    node.traverse((n: MathNode) => {
      if (!safe || n.type !== 'OperatorNode') return;
      const op = n as unknown as { op: string; args: MathNode[] };
      if (op.op !== '^') return;
      const exp = op.args[1];
      const vars = exp.filter((x: MathNode) => x.type === 'SymbolNode' && !CONSTANTS.has((x as unknown as { name: string }).name));
      if (vars.length) { safe = false; return; }
      const v = exp.compile().evaluate();
      if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > 64) safe = false;
      // A power inside an exponent is refused outright (towers).
      if (exp.filter((x: MathNode) => x.type === 'OperatorNode' && (x as unknown as { op: string }).op === '^').length) safe = false;
    });
    if (!safe) return null;
    return math.simplify(node).toString() === '0' ? true : null;
  } catch {
    return null;
  }
}
