/**
 * Final-answer extraction from a model's solution text (or from a reference solution).
 *
 * Order of evidence, latest in the text wins among the explicit markers:
 *   - the last `\boxed{...}` / `\fbox{...}` / `\boxed 5` (brace-matched; adjacent boxes joined by
 *     "," / "and" / `\quad` become one list answer, e.g. `\boxed{1}, \boxed{2}`),
 *   - the last GSM8K marker `#### N`,
 *   - the last "the answer is X" / "Final Answer: X" phrase.
 * Without any marker: a bare answer (a short string that is not a sentence) is returned as is; otherwise
 * the last math span ($...$, \(...\), \[...\]) or the last plain number, whichever ends later.
 * Never throws; returns null when nothing answer-like is found.
 */

import { stripDelimiters } from './normalize';

/** Texts longer than this are cut to their tail: answers sit at the end, and scanning stays bounded. */
export const MAX_TEXT_CHARS = 200_000;
/** A box that never closes yields at most this much of the rest of the text. */
const MAX_UNCLOSED_BOX = 400;

export interface Span { start: number; end: number; content: string }

/** Extract the final answer from a solution text. Never throws. */
export function extractAnswer(text: string): string | null {
  try {
    if (typeof text !== 'string') return null;
    const s = text.length > MAX_TEXT_CHARS ? text.slice(text.length - MAX_TEXT_CHARS) : text;
    const out = extractInner(s);
    if (out === null) return null;
    const t = stripDelimiters(out);
    return t.length ? t : null;
  } catch {
    return null;
  }
}

function extractInner(s: string): string | null {
  // Fast path: a bare number (the usual reference answer).
  if (s.length < 64 && /^\s*[+-]?\d[\d,]*(?:\.\d+)?\s*$/.test(s)) return s.trim();
  const box = lastBoxGroup(s);
  const hash = lastHashAnswer(s);
  const phrase = lastAnswerPhrase(s);
  let best: Span | null = null;
  for (const c of [box, hash, phrase]) if (c && (!best || c.start > best.start)) best = c;
  if (best) return best.content;
  const trimmed = s.trim();
  if (!trimmed) return null;
  const joined = joinedMathSpans(trimmed);
  if (joined !== null) return joined;
  if (isBareAnswer(trimmed) && !isNumberSequence(trimmed)) return trimmed;
  return sentenceFallback(s);
}

// ---------------------------------------------------------------------------------------------------
// \boxed{...}

/** Index just past the brace group opening at `open` (s[open] === '{'), or -1 when it never closes. */
export function matchBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const ch = s[i];
    if (ch === '\\') { i++; continue; } // \{ and \} are literal braces, not grouping
    if (ch === '{') depth++;
    else if (ch === '}') { depth--; if (depth === 0) return i + 1; }
  }
  return -1;
}

/** Every box in the text, in order. `\beginboxed{..}` (a real model mutation) counts as a box. */
export function findBoxes(s: string): Span[] {
  const out: Span[] = [];
  const re = /\\(?:begin)?(?:boxed|fbox)(?![a-zA-Z])/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    let i = m.index + m[0].length;
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
    if (s[i] === '{') {
      const end = matchBrace(s, i);
      if (end < 0) {
        const rest = s.slice(i + 1, i + 1 + MAX_UNCLOSED_BOX);
        out.push({ start: m.index, end: s.length, content: rest.replace(/\$+\s*$/, '') });
        break;
      }
      out.push({ start: m.index, end, content: s.slice(i + 1, end - 1) });
      re.lastIndex = end;
    } else {
      // `\boxed 5`: the box holds the next token.
      const tok = /^[^\s$]+/.exec(s.slice(i, i + 200));
      if (tok && i > m.index + m[0].length) {
        out.push({ start: m.index, end: i + tok[0].length, content: tok[0].replace(/[.,;]+$/, '') });
        re.lastIndex = i + tok[0].length;
      }
    }
  }
  return out;
}

/** True when the text between two boxes only joins them ("," / ";" / "and" / "or" / \quad / \text{..}). */
function isJoiner(sep: string): boolean {
  if (sep === '') return true;
  if (sep.includes('$$') || sep.length > 120) return false;
  const hadConnector = /[,;]|\band\b|\bor\b|\\text\s*\{/.test(sep);
  const rest = sep
    .replace(/\\text\s*\{[^{}]*\}/g, ' ')
    .replace(/\\(?:quad|qquad|[,;:! ()])/g, ' ')
    .replace(/\b(?:and|or)\b/g, ' ')
    .replace(/[$\\]/g, ' ');
  return hadConnector && /^[\s,;~.]*$/.test(rest);
}

function hasTopLevelComma(s: string): boolean {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '\\') { i++; continue; }
    if (ch === '(' || ch === '[' || ch === '{') depth++;
    else if (ch === ')' || ch === ']' || ch === '}') depth--;
    else if (ch === ',' && depth === 0) return true;
  }
  return false;
}

function lastBoxGroup(s: string): Span | null {
  const boxes = findBoxes(s);
  if (!boxes.length) return null;
  let first = boxes.length - 1;
  while (first > 0 && boxes.length - first < 64 && isJoiner(s.slice(boxes[first - 1].end, boxes[first].start))) first--;
  const group = boxes.slice(first);
  if (group.length === 1) return group[0];
  const parts = group.map((b) => b.content.trim());
  const sep = parts.some(hasTopLevelComma) ? '; ' : ', ';
  return { start: group[0].start, end: group[group.length - 1].end, content: parts.join(sep) };
}

// ---------------------------------------------------------------------------------------------------
// #### N and "the answer is"

function lastHashAnswer(s: string): Span | null {
  const i = s.lastIndexOf('####');
  if (i < 0) return null;
  const line = s.slice(i + 4).split('\n', 1)[0].trim();
  if (!line) return null;
  return { start: i, end: i + 4 + line.length, content: line };
}

/** End of the sentence that starts at `from`: a period followed by space/end, a newline, or a chat marker. */
function sentenceEnd(s: string, from: number): number {
  // A display block right after the phrase is taken whole.
  const head = s.slice(from, from + 3);
  if (head.startsWith('$$') || head.startsWith('\\[')) {
    const close = head.startsWith('$$') ? s.indexOf('$$', from + 2) : s.indexOf('\\]', from + 2);
    if (close > 0) return close + 2;
  }
  const limit = Math.min(s.length, from + 2000);
  let inMath = false;
  for (let i = from; i < limit; i++) {
    const ch = s[i];
    if (ch === '\\' && s[i + 1] === '$') { i++; continue; }
    if (ch === '$') { inMath = !inMath; continue; }
    if (ch === '\n') return i;
    if (s.startsWith('<|', i)) return i;
    if (!inMath && ch === '.' && (i + 1 >= s.length || /\s/.test(s[i + 1]))) return i;
  }
  return limit;
}

function lastAnswerPhrase(s: string): Span | null {
  const re = /(?:final\s+answer|\banswer)\s*(?:is\b\s*:?|:|=)\s*/gi;
  let m: RegExpExecArray | null;
  let last: RegExpExecArray | null = null;
  while ((m = re.exec(s)) !== null) { last = m; if (m[0].length === 0) re.lastIndex++; }
  if (!last) return null;
  const from = last.index + last[0].length;
  const end = sentenceEnd(s, from);
  const seg = s.slice(from, end).trim().replace(/^(?:\\?["'\u201c\u201d])+|(?:\\?["'\u201c\u201d])+$/g, '').trim();
  if (!seg) return null;
  const inner = extractSegment(seg);
  if (inner === null) return null;
  return { start: last.index, end, content: inner };
}

/** The answer inside a phrase segment: a box, the segment itself when bare, else its last number/math. */
function extractSegment(seg: string): string | null {
  const box = lastBoxGroup(seg);
  if (box) return box.content;
  const joined = joinedMathSpans(seg);
  if (joined !== null) return joined;
  if (isBareAnswer(seg)) return seg;
  return sentenceFallback(seg) ?? seg;
}

// ---------------------------------------------------------------------------------------------------
// bare answers, math spans, numbers

const KNOWN_WORDS = new Set([
  'sqrt', 'sin', 'cos', 'tan', 'sec', 'csc', 'cot', 'log', 'ln', 'exp', 'abs', 'pi', 'and', 'or',
  'arcsin', 'arccos', 'arctan', 'sinh', 'cosh', 'tanh', 'infty', 'inf',
]);

/** Count of English-looking words outside LaTeX commands and \text{...} groups. */
function wordCount(s: string): number {
  const stripped = s
    .replace(/\\(?:begin|end)\s*\{[^{}]*\}/g, ' ')
    .replace(/\\(?:text|textbf|textit|textrm|mbox|mathrm|textnormal|operatorname|mathbf)\s*\{[^{}]*\}/g, ' ')
    .replace(/\\[a-zA-Z]+/g, ' ');
  let n = 0;
  for (const w of stripped.match(/[A-Za-z]{2,}/g) ?? []) if (!KNOWN_WORDS.has(w.toLowerCase())) n++;
  return n;
}

/** Unescaped `$` count outside a leading/trailing wrapper, i.e. math delimiters in the middle of text. */
function hasInnerMathDelimiters(s: string): boolean {
  let t = s.trim();
  for (let k = 0; k < 3; k++) {
    const m = /^\$\$([\s\S]*)\$\$$/.exec(t) ?? /^\$([\s\S]*)\$$/.exec(t) ?? /^\\\(([\s\S]*)\\\)$/.exec(t) ?? /^\\\[([\s\S]*)\\\]$/.exec(t);
    if (!m) break;
    t = m[1].trim();
  }
  return /(?<!\\)\$|\\\(|\\\[/.test(t);
}

/** A short answer that is not a sentence: `\frac{1}{2}`, `$9$`, `1,000.99`, `10 units`, `odd`. */
export function isBareAnswer(s: string): boolean {
  const t = s.trim();
  if (!t) return false;
  // A long string is a sentence unless it has no words at all (a long formula stays a formula).
  if (t.length > 300) return t.length <= 200_000 && !/\s[A-Za-z]{2,}/.test(t) && wordCount(t.slice(0, 5000)) === 0;
  if (t.includes('\n') && wordCount(t) > 0) return false;
  if (hasInnerMathDelimiters(t)) return false;
  return wordCount(t) <= 2;
}

/** "4 4/9 2": numbers separated by spaces that are neither spaced thousands nor a mixed number. */
function isNumberSequence(s: string): boolean {
  if (!/^[-+]?[\d./]+(?: [-+]?[\d./]+)+$/.test(s)) return false;
  return !/^[-+]?\d{1,3}(?: \d{3})+(?:\.\d+)?$/.test(s) && !/^[-+]?\d+ \d+\/\d+$/.test(s);
}

/** All math spans ($..$, $$..$$, \(..\), \[..\]) in order. Inline `$` spans do not cross blank lines. */
export function findMathSpans(s: string): Span[] {
  const out: Span[] = [];
  let i = 0;
  while (i < s.length) {
    const ch = s[i];
    if (ch === '\\' && (s[i + 1] === '(' || s[i + 1] === '[')) {
      const close = s.indexOf(s[i + 1] === '(' ? '\\)' : '\\]', i + 2);
      if (close < 0) { i += 2; continue; }
      out.push({ start: i, end: close + 2, content: s.slice(i + 2, close) });
      i = close + 2;
      continue;
    }
    if (ch === '\\') { i += 2; continue; }
    if (ch === '$') {
      const display = s[i + 1] === '$';
      const open = display ? 2 : 1;
      let j = i + open;
      let found = -1;
      while (j < s.length) {
        if (s[j] === '\\') { j += 2; continue; }
        if (s[j] === '$') {
          if (!display || s[j + 1] === '$') { found = j; break; }
        }
        if (!display && s[j] === '\n' && s[j + 1] === '\n') break;
        j++;
      }
      if (found < 0) { i += open; continue; }
      out.push({ start: i, end: found + open, content: s.slice(i + open, found) });
      i = found + open;
      continue;
    }
    i++;
  }
  return out;
}

/** "$1$ and $2$ and $3$" / "$21,16$ or $11$": only math spans joined by connectors -> one list answer. */
function joinedMathSpans(s: string): string | null {
  const spans = findMathSpans(s);
  if (spans.length < 2) return null;
  if (s.slice(0, spans[0].start).trim() || s.slice(spans[spans.length - 1].end).trim().replace(/^[.,;]$/, '')) return null;
  for (let k = 1; k < spans.length; k++) {
    const sep = s.slice(spans[k - 1].end, spans[k].start);
    if (!/^\s*(?:,|;|and|or|,\s*and|,\s*or)\s*$/.test(sep)) return null;
  }
  return spans.map((sp) => sp.content.trim()).join(', ');
}

// A number as written in prose: LaTeX fraction, mixed number, a/b, grouped thousands, decimals, a percent.
const NUMBER_RE = /-?\\[dtc]?frac\s*\{[^{}]{1,40}\}\s*\{[^{}]{1,40}\}|-?\\sqrt\s*\{[^{}]{1,40}\}|(?<![\w.])-?\d+\s\d+\/\d+(?![\d/])|(?<![\w.])-?\d+\/\d+(?![\d/])|(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|(?<![\w.])-?\d+(?:[.,]\d+)?|(?<![\w.])-?\.\d+/g;

function lastNumber(s: string): Span | null {
  let last: Span | null = null;
  NUMBER_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = NUMBER_RE.exec(s)) !== null) {
    let end = m.index + m[0].length;
    let content = m[0];
    const pct = /^\s?(?:\\%|%|percent\b)/.exec(s.slice(end, end + 9));
    if (pct) { content += pct[0].includes('percent') ? '%' : pct[0].trim(); end += pct[0].length; }
    last = { start: m.index, end, content };
  }
  return last;
}

/** The last math span or the last number, whichever ends later. */
export function sentenceFallback(text: string): string | null {
  // Numbers inside code are not answers: fenced blocks and inline code are dropped, and code-like
  // text (calls with string literals, dunder names) yields nothing.
  const s = text.replace(/```[\s\S]*?(?:```|$)/g, ' ').replace(/`[^`\n]*`/g, ' ');
  if (/__\w+__|\w\(\s*['"]/.test(s)) return null;
  const spans = findMathSpans(s).filter((sp) => sp.content.trim().length > 0);
  const span = spans.length ? spans[spans.length - 1] : null;
  // Numbers inside math spans are covered by the span itself; look at the prose after it.
  const num = lastNumber(span ? s.slice(span.end) : s);
  if (num) return num.content;
  if (span) return span.content;
  return null;
}
