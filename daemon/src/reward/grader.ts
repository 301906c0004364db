/**
 * The equivalence grader (DESIGN.md §2): is a predicted answer equal to the reference answer?
 *
 * Either side may be a bare answer (`\frac{1}{2}`, `$9$`, `1,000.99`) or a text that contains one
 * (`the answer is \boxed{9}`, `so she pays 12.50 dollars`, a GSM8K solution ending in `#### 12`): the
 * answer is extracted first, normalised (normalize.ts), parsed into a structure (structure.ts) and then
 * compared: lists and sets as sets (order and duplicates ignored), tuples and intervals element-wise with matching brackets,
 * equations up to a constant factor, inequalities up to a positive factor, assignments (`x = 2`) by
 * their value, percentages as either v or v/100, and scalars numerically (relative tolerance 1e-4, exact
 * for integers) or symbolically (numeric.ts). Never throws; bounded time (input caps, a work budget,
 * guarded mathjs use).
 */
import { extractAnswer, MAX_TEXT_CHARS } from './extract';
import { latexToMathjs } from './latexToMathjs';
import { compact, normalizeAnswer } from './normalize';
import { closeNumbers, exprEqual, proportional } from './numeric';
import { assignmentValue, parseAnswer, type Node } from './structure';

/** Extracted answers longer than this are compared as strings only. */
const MAX_ANSWER_CHARS = 1500;
/** Scalar comparisons allowed per isEquivalent call (bounds nested set/tuple matching). */
const WORK_BUDGET = 20_000;

let budget = WORK_BUDGET;

/** Is `pred` equivalent to `gold`? Both may be bare answers or texts containing one. Never throws. */
export function isEquivalent(gold: string, pred: string): boolean {
  try {
    const g = asText(gold);
    const p = asText(pred);
    if (g === null || p === null) return false;
    const gt = g.trim();
    const pt = p.trim();
    if (!gt || !pt) return false;
    if (gt === pt) return true;
    const a = extractAnswer(gt);
    const b = extractAnswer(pt);
    if (a === null || b === null) return false;
    return compareAnswers(a, b);
  } catch {
    return false;
  }
}

/** Grade a model's final text against a reference answer: reward 1 iff `correct`. Never throws. */
export function gradeAnswer(solutionText: string, reference: string): { extracted: string | null; correct: boolean } {
  try {
    const text = asText(solutionText);
    const extracted = text === null ? null : extractAnswer(text);
    if (extracted === null) return { extracted: null, correct: false };
    const ref = asText(reference);
    return { extracted, correct: ref !== null && isEquivalent(ref, extracted) };
  } catch {
    return { extracted: null, correct: false };
  }
}

function asText(v: unknown): string | null {
  if (typeof v === 'string') return v.length > MAX_TEXT_CHARS * 5 ? v.slice(v.length - MAX_TEXT_CHARS * 5) : v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return null;
}

/** Compare two extracted (bare) answers. */
export function compareAnswers(a: string, b: string): boolean {
  budget = WORK_BUDGET;
  if (a.length > MAX_ANSWER_CHARS || b.length > MAX_ANSWER_CHARS) return compact(a) === compact(b);
  const na = normalizeAnswer(a);
  const nb = normalizeAnswer(b);
  const ca = compact(na.text);
  const cb = compact(nb.text);
  if (!ca || !cb) return false;
  if (ca === cb) return true;
  if (multipleChoice(ca, cb) || multipleChoice(cb, ca)) return true;
  const ra = readings(na.text);
  const rb = readings(nb.text);
  for (const x of ra) {
    for (const y of rb) {
      if (nodeEq(x, y, 0)) return true;
      // A percent on one side only: 50\% matches 50 and 0.5.
      if (na.percent !== nb.percent) {
        const scaled = na.percent ? [percentOf(x), y] : [x, percentOf(y)];
        if (scaled[0] && scaled[1] && nodeEq(scaled[0], scaled[1], 0)) return true;
      }
    }
  }
  return false;
}

/** `C` vs `C. x = 42` / `(C)` / `C)`: a multiple-choice letter. */
function multipleChoice(letter: string, other: string): boolean {
  if (!/^[A-J]$/.test(letter)) return false;
  const m = /^\(?([A-J])(?:[.):]|$)/.exec(other);
  return !!m && m[1] === letter;
}

function percentOf(n: Node): Node | null {
  if (n.k !== 'expr') return null;
  const s = `\\frac{${n.s}}{100}`;
  return { k: 'expr', key: compact(s), s };
}

const COMMA_NUMBER = /^[+-]?\d+(?:,\d+)+(?:\.\d+)?$/;
const THOUSANDS = /^[+-]?[1-9]\d{0,2}(?:,\d{2,3})*,\d{3}(?:\.\d+)?$/;
const MIXED = /^([+-]?)(\d+) (\d+)\/(\d+)$/;

/**
 * The ways an answer can be read. `1,000` is a number (thousands) or a list; `1000,99` a decimal comma;
 * `1 000` spaced thousands; `4 4/9` a mixed number. Any reading that matches counts.
 */
function readings(text: string): Node[] {
  const out: Node[] = [];
  const c = compact(text);
  const expr = (s: string): Node => ({ k: 'expr', key: compact(s), s });
  const t = text.trim();
  if (COMMA_NUMBER.test(t)) {
    if (THOUSANDS.test(t)) out.push(expr(t.replace(/,/g, '')));
    else if (/^[+-]?\d+,\d+$/.test(t)) out.push(expr(t.replace(',', '.')));
  }
  if (/^[+-]?\d{1,3}(?: \d{3})+(?:\.\d+)?$/.test(text)) out.push(expr(c));
  const mixed = MIXED.exec(text);
  if (mixed) {
    out.push(expr(`${mixed[1]}(${mixed[2]}+\\frac{${mixed[3]}}{${mixed[4]}})`));
    return out;
  }
  out.push(parseAnswer(text));
  return out;
}

// ---------------------------------------------------------------------------------------------------
// structural comparison

function nodeEq(a: Node, b: Node, d: number): boolean {
  if (d > 16 || budget <= 0) return false;
  if (a.key === b.key && a.k === b.k) return true;
  // Assignments compare by their value against anything that is not a relation.
  if (a.k === 'rel' && b.k !== 'rel') { const v = assignmentValue(a); return v !== null && nodeEq(parseAnswer(v), b, d + 1); }
  if (b.k === 'rel' && a.k !== 'rel') { const v = assignmentValue(b); return v !== null && nodeEq(a, parseAnswer(v), d + 1); }
  if (a.k === 'rel' && b.k === 'rel') return relEq(a, b, d);
  if (a.k === 'pm' || b.k === 'pm') {
    const ia = a.k === 'pm' || a.k === 'list' || a.k === 'set' ? a.items : null;
    const ib = b.k === 'pm' || b.k === 'list' || b.k === 'set' ? b.items : null;
    return !!ia && !!ib && setEq(ia, ib, d);
  }
  switch (a.k) {
    case 'expr':
      return b.k === 'expr' && scalarEq(a.s, b.s);
    case 'text':
      return (b.k === 'text' || b.k === 'expr') && a.s === textOf(b);
    case 'list':
    case 'set':
      if (b.k === 'list' || b.k === 'set') return setEq(a.items, b.items, d);
      if (b.k === 'tuple' && b.open === '(' && b.close === ')') return orderedEq(a.items, b.items, d);
      return false;
    case 'tuple':
      if (b.k === 'tuple') return a.open === b.open && a.close === b.close && orderedEq(a.items, b.items, d);
      if ((b.k === 'set' || b.k === 'list') && a.open === '(' && a.close === ')') return orderedEq(a.items, b.items, d);
      return false;
    case 'union':
      return b.k === 'union' && setEq(a.items, b.items, d);
    default:
      return false;
  }
}

function textOf(n: Node): string {
  return n.k === 'text' ? n.s : n.key.toLowerCase();
}

function orderedEq(a: Node[], b: Node[], d: number): boolean {
  return a.length === b.length && a.every((x, i) => nodeEq(x, b[i], d + 1));
}

/**
 * Set equality: every element of one side equals some element of the other (duplicates collapse, as
 * in Math-Verify; order does not matter). Bounded by the item caps and the work budget.
 */
function setEq(a: Node[], b: Node[], d: number): boolean {
  if (!a.length || !b.length) return a.length === b.length;
  const covers = (xs: Node[], ys: Node[]) => xs.every((x) => ys.some((y) => nodeEq(x, y, d + 1)));
  return covers(a, b) && covers(b, a);
}

function labelKey(s: string): string {
  return compact(s).replace(/\\(?:text|mathrm|mathbf|operatorname)\{([^{}]*)\}/g, '$1').toLowerCase();
}

function relEq(a: Extract<Node, { k: 'rel' }>, b: Extract<Node, { k: 'rel' }>, d: number): boolean {
  if (a.op !== b.op) return false;
  // Same label on the left: compare the right-hand sides (x = 2 vs x = 1+1, k \ge 2 vs k \ge 2).
  if (a.lhsLabel && b.lhsLabel && labelKey(a.lhs) === labelKey(b.lhs)) {
    return nodeEq(parseAnswer(a.rhs), parseAnswer(b.rhs), d + 1);
  }
  // Otherwise a real equation/inequality: f = lhs - rhs must agree up to a constant (positive) factor.
  const fa = latexToMathjs(`(${a.lhs})-(${a.rhs})`);
  const fb = latexToMathjs(`(${b.lhs})-(${b.rhs})`);
  if (fa && fb) {
    budget--;
    const r = proportional(fa, fb, a.op === '<' || a.op === '<=');
    if (r !== null) return r;
  }
  return nodeEq(parseAnswer(a.lhs), parseAnswer(b.lhs), d + 1) && nodeEq(parseAnswer(a.rhs), parseAnswer(b.rhs), d + 1);
}

// ---------------------------------------------------------------------------------------------------
// scalars

const INT = /^[+-]?\d+$/;
const SIMPLE = /^([+-]?)(?:(\d+(?:\.\d+)?|\.\d+)|(\d+)\/(\d+)|\\frac\{(\d+)\}\{(\d+)\})$/;

const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$/;

/**
 * Two written decimals are equal only by value (12.5 = 12.50 = 12.500): both are exact as written, and
 * a relative tolerance would accept 988.48 for 988.41, which is wrong money. The 1e-4 tolerance is for
 * a decimal against an exact form (\frac{1}{3} vs 0.3333, \sqrt{2} vs 1.41421).
 */
function decimalEq(a: string, b: string): boolean {
  const norm = (x: string) => {
    const neg = x.startsWith('-');
    let t = x.replace(/^[+-]/, '');
    if (t.includes('.')) t = t.replace(/0+$/, '').replace(/\.$/, '');
    t = t.replace(/^0+(?=\d)/, '');
    if (t === '' || t === '.') t = '0';
    if (t.startsWith('.')) t = `0${t}`;
    return (neg && t !== '0' ? '-' : '') + t;
  };
  return norm(a) === norm(b);
}

/** Plain numbers, a/b and \frac{a}{b} without mathjs (the common case, and the fast path). */
function simpleNumber(c: string): number | null {
  const m = SIMPLE.exec(c);
  if (!m) return null;
  const sign = m[1] === '-' ? -1 : 1;
  if (m[2] !== undefined) return sign * Number(m[2]);
  const [n, dd] = m[3] !== undefined ? [m[3], m[4]] : [m[5], m[6]];
  const den = Number(dd);
  return den === 0 ? null : (sign * Number(n)) / den;
}

function scalarEq(x: string, y: string): boolean {
  budget--;
  const cx = compact(x);
  const cy = compact(y);
  if (cx === cy) return true;
  if (INT.test(cx) && INT.test(cy) && cx.length < 4000 && cy.length < 4000) return BigInt(cx) === BigInt(cy);
  if (DECIMAL.test(cx) && DECIMAL.test(cy)) return decimalEq(cx, cy);
  const nx = simpleNumber(cx);
  const ny = simpleNumber(cy);
  if (nx !== null && ny !== null) return closeNumbers(nx, ny);
  const ex = latexToMathjs(x);
  const ey = latexToMathjs(y);
  if (ex === null || ey === null) return false;
  if (ex === ey) return true;
  return exprEqual(ex, ey) === true;
}
