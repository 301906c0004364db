/**
 * Parse a normalised answer into a small structure: lists, sets, tuples/intervals, unions, relations
 * (equations, inequalities, chains), ± pairs, text, or a scalar expression. The scalar leaves stay
 * LaTeX strings; they are compared numerically/symbolically by the grader.
 */
import { compact, isLabel } from './normalize';

export type RelOp = '=' | '<' | '<=' | '!=';

export type Node =
  | { k: 'expr'; key: string; s: string }
  | { k: 'text'; key: string; s: string }
  | { k: 'list'; key: string; items: Node[] }
  | { k: 'set'; key: string; items: Node[] }
  | { k: 'tuple'; key: string; open: string; close: string; items: Node[] }
  | { k: 'union'; key: string; items: Node[] }
  | { k: 'pm'; key: string; items: Node[] }
  | { k: 'rel'; key: string; op: RelOp; lhs: string; rhs: string; lhsLabel: boolean; rhsLabel: boolean };

const MAX_DEPTH = 12;
const MAX_ITEMS = 64;

/** Words that are math, not prose: they do not make an answer a text answer. */
const MATH_WORDS = new Set([
  'sqrt', 'sin', 'cos', 'tan', 'sec', 'csc', 'cot', 'log', 'ln', 'exp', 'abs', 'floor', 'ceil',
  'asin', 'acos', 'atan', 'arcsin', 'arccos', 'arctan', 'sinh', 'cosh', 'tanh', 'pi', 'infty',
]);

/**
 * Visit the top-level (bracket depth 0) positions of s. Depth counts (, [, {, \{ and \begin..\end;
 * intervals such as [0,1) are balanced by count, which is all the splitter needs.
 */
function topLevel(s: string, visit: (i: number) => number | void): void {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '\\') {
      if (s.startsWith('\\begin', i)) { depth++; i += 5; continue; }
      if (s.startsWith('\\end', i)) { depth--; i += 3; continue; }
      if (s[i + 1] === '{') { depth++; i++; continue; }
      if (s[i + 1] === '}') { depth--; i++; continue; }
      if (depth === 0) { const skip = visit(i); if (typeof skip === 'number' && skip > 0) { i += skip - 1; continue; } }
      // Skip the command name so that e.g. `\le` is seen once.
      const m = /^\\[A-Za-z]+/.exec(s.slice(i, i + 30));
      if (m) i += m[0].length - 1;
      continue;
    }
    if (ch === '(' || ch === '[' || ch === '{') { depth++; continue; }
    if (ch === ')' || ch === ']' || ch === '}') { depth--; continue; }
    if (depth === 0) { const skip = visit(i); if (typeof skip === 'number' && skip > 0) i += skip - 1; }
  }
}

/** Split on a top-level separator matched by a sticky regex; returns the parts and the separators. */
function splitTop(s: string, re: RegExp): { parts: string[]; seps: string[] } {
  const parts: string[] = [];
  const seps: string[] = [];
  let last = 0;
  topLevel(s, (i) => {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m || m.index !== i || !m[0].length) return;
    parts.push(s.slice(last, i));
    seps.push(m[0]);
    last = i + m[0].length;
    return m[0].length;
  });
  parts.push(s.slice(last));
  return { parts, seps };
}

/** Index of the bracket closing the one at 0, or -1. */
function closingIndex(s: string): number {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '\\') {
      if (s[i + 1] === '{') depth++;
      else if (s[i + 1] === '}') { depth--; if (depth === 0) return i + 1; }
      i++;
      continue;
    }
    if (ch === '(' || ch === '[' || ch === '{') depth++;
    else if (ch === ')' || ch === ']' || ch === '}') { depth--; if (depth === 0) return i; }
  }
  return -1;
}

const CONNECTOR_RE = /(?<![A-Za-z\\])(?:and|or)(?![A-Za-z])/y;
const SEMI_RE = /;/y;
const COMMA_RE = /,/y;
const CUP_RE = /\\cup(?![A-Za-z])/y;
const PM_RE = /\\(?:pm|mp)(?![A-Za-z])/y;
const REL_RE = /\\(?:le|ge|ne)(?![A-Za-z])|<=|>=|!=|=|<|>/y;

function isProse(s: string): boolean {
  const words = s.replace(/\\(?:begin|end)\s*\{[^{}]*\}/g, ' ').replace(/\\[A-Za-z]+/g, ' ').match(/[A-Za-z]{2,}/g) ?? [];
  return words.some((w) => !MATH_WORDS.has(w.toLowerCase()) && (w.length >= 3 ? /[aeiouy]/i.test(w) : false)) ||
    words.filter((w) => !MATH_WORDS.has(w.toLowerCase())).length >= 2 && /\s/.test(s.trim());
}

function textKey(s: string): string {
  return s.toLowerCase().replace(/[\s{}]/g, '').replace(/[.,;:!]+$/, '');
}

type NoKey<T> = T extends unknown ? Omit<T, 'key'> : never;

function mk(n: NoKey<Node>, key: string): Node {
  return { ...n, key } as Node;
}

function canonicalOp(op: string): { op: RelOp; flip: boolean } | null {
  switch (op) {
    case '=': return { op: '=', flip: false };
    case '<': return { op: '<', flip: false };
    case '>': return { op: '<', flip: true };
    case '<=': case '\\le': return { op: '<=', flip: false };
    case '>=': case '\\ge': return { op: '<=', flip: true };
    case '!=': case '\\ne': return { op: '!=', flip: false };
    default: return null;
  }
}

/** Parse a normalised answer string into a Node. Never throws. */
export function parseAnswer(raw: string, depth = 0): Node {
  const s = raw.trim();
  const key = compact(s);
  if (!s || depth > MAX_DEPTH) return { k: 'text', key, s: textKey(s) };

  // "6 and 8", "19, 46, and 82", "(11,7) or (7,11)", "p = 5, q = 2 and p = 7, q = 2".
  const conn = splitTop(s, CONNECTOR_RE);
  if (conn.parts.length > 1 && !isProse(s.replace(/\b(?:and|or)\b/g, ' '))) {
    const segs = conn.parts.map((p) => p.trim().replace(/^[,;]\s*|\s*[,;]$/g, '').trim()).filter(Boolean);
    if (segs.length > 1) {
      const grouped = segs.some((g) => g.includes('=') && splitTop(g, COMMA_RE).parts.length > 1);
      return parseAnswer(segs.join(grouped ? '; ' : ', '), depth + 1);
    }
  }

  // "p=5,q=2; p=7,q=2" -> ((5,2),(7,2)); "-12;-11;-10" -> a list.
  const semi = splitTop(s, SEMI_RE);
  if (semi.parts.length > 1) {
    const items: Node[] = [];
    for (const part of semi.parts.slice(0, MAX_ITEMS)) {
      if (!part.trim()) continue;
      const n = parseAnswer(part, depth + 1);
      if (n.k === 'list' && n.items.every((it) => it.k === 'rel' && it.op === '=' && it.lhsLabel)) {
        const vals = n.items.map((it) => parseAnswer((it as { rhs: string }).rhs, depth + 1));
        items.push(mk({ k: 'tuple', open: '(', close: ')', items: vals }, `(${vals.map((v) => v.key).join(',')})`));
      } else if (n.k === 'list') items.push(...n.items);
      else items.push(n);
    }
    return mk({ k: 'list', items }, key);
  }

  const commas = splitTop(s, COMMA_RE);
  if (commas.parts.length > 1) {
    const items = commas.parts.slice(0, MAX_ITEMS).map((p) => p.trim()).filter(Boolean).map((p) => parseAnswer(p, depth + 1));
    return mk({ k: 'list', items }, key);
  }

  const cup = splitTop(s, CUP_RE);
  if (cup.parts.length > 1) {
    return mk({ k: 'union', items: cup.parts.slice(0, MAX_ITEMS).map((p) => parseAnswer(p, depth + 1)) }, key);
  }

  const pm = splitTop(s, PM_RE);
  if (pm.parts.length === 2) {
    const plus = `${pm.parts[0]}+${pm.parts[1]}`;
    const minus = `${pm.parts[0]}-${pm.parts[1]}`;
    const swap = pm.seps[0].includes('mp');
    return mk({ k: 'pm', items: [parseAnswer(swap ? minus : plus, depth + 1), parseAnswer(swap ? plus : minus, depth + 1)] }, key);
  }

  const rel = splitTop(s, REL_RE);
  if (rel.parts.length > 1) return parseRelation(s, key, rel.parts.map((p) => p.trim()), rel.seps, depth);

  // Brackets wrapping the whole answer: tuples, intervals, sets.
  const first = s[0];
  if (first === '(' || first === '[' || first === '{' || s.startsWith('\\{')) {
    const close = closingIndex(s);
    if (close === s.length - 1) {
      const isEscSet = s.startsWith('\\{');
      const inner = isEscSet ? s.slice(2, -2) : s.slice(1, -1);
      const closeCh = s[s.length - 1];
      const parts = splitTop(inner, COMMA_RE).parts;
      const trailingComma = parts.length > 1 && !parts[parts.length - 1].trim();
      const items = parts.filter((p) => p.trim()).slice(0, MAX_ITEMS).map((p) => parseAnswer(p, depth + 1));
      if (isEscSet) return mk({ k: 'set', items }, key);
      if (first === '{') return items.length === 1 ? parseAnswer(inner, depth + 1) : mk({ k: 'set', items }, key);
      if (items.length === 1 && !trailingComma) {
        if (first === '(' && closeCh === ')') return parseAnswer(inner, depth + 1);
        if (inner.trim().startsWith('\\begin')) return parseAnswer(inner, depth + 1);
      }
      return mk({ k: 'tuple', open: first, close: closeCh, items }, key);
    }
  }
  if (/^\\(?:emptyset|varnothing)$/.test(s)) return mk({ k: 'set', items: [] }, key);

  if (isProse(s)) return { k: 'text', key, s: textKey(s) };
  return { k: 'expr', key, s };
}

function parseRelation(s: string, key: string, parts: string[], seps: string[], depth: number): Node {
  const ops = seps.map(canonicalOp);
  if (ops.some((o) => o === null) || parts.some((p) => !p)) return { k: 'text', key, s: textKey(s) };
  const canon = ops as Array<{ op: RelOp; flip: boolean }>;
  if (canon.every((o) => o.op === '=')) {
    if (parts.length >= 3) {
      // A chain of equalities "x = 5+5+1 = 11": the last member is the value.
      if (isLabel(parts[0])) return relNode(parts[0], '=', parts[parts.length - 1]);
      return parseAnswer(parts[parts.length - 1], depth + 1);
    }
    return relNode(parts[0], '=', parts[1]);
  }
  // "-2 \le x \le 7", "0 < f(x) < 1": an interval.
  if (parts.length === 3 && canon.every((o) => o.op === '<' || o.op === '<=') && canon[0].flip === canon[1].flip && isLabel(parts[1])) {
    const [lo, hi, oLo, oHi] = canon[0].flip ? [parts[2], parts[0], canon[1], canon[0]] : [parts[0], parts[2], canon[0], canon[1]];
    const open = oLo.op === '<' ? '(' : '[';
    const close = oHi.op === '<' ? ')' : ']';
    const items = [parseAnswer(lo, depth + 1), parseAnswer(hi, depth + 1)];
    return mk({ k: 'tuple', open, close, items }, key);
  }
  if (parts.length === 2) {
    const o = canon[0];
    return o.flip ? relNode(parts[1], o.op, parts[0]) : relNode(parts[0], o.op, parts[1]);
  }
  return { k: 'text', key, s: textKey(s) };
}

function relNode(lhs: string, op: RelOp, rhs: string): Node {
  return { k: 'rel', key: `${compact(lhs)}${op}${compact(rhs)}`, op, lhs, rhs, lhsLabel: isLabel(lhs), rhsLabel: isLabel(rhs) };
}

/** The value side of an assignment (`x = 2` -> 2, `2 = x` -> 2), or null for a real equation. */
export function assignmentValue(n: Node): string | null {
  if (n.k !== 'rel' || n.op !== '=') return null;
  // A computation between constants ("\frac{1}{2} = \frac{10}{9}"): its last member is the value.
  const noLetters = (x: string) => !/[A-Za-z]/.test(x.replace(/\\[A-Za-z]+/g, ''));
  if (noLetters(n.lhs) && noLetters(n.rhs)) return n.rhs;
  if (n.lhsLabel && !n.rhsLabel) return n.rhs;
  if (n.rhsLabel && !n.lhsLabel) return n.lhs;
  if (n.lhsLabel && n.rhsLabel) return n.rhs;
  return null;
}
