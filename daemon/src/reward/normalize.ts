/**
 * String normalisation of one extracted answer, before it is parsed into a structure:
 * math delimiters, \left/\right, spacing commands, dfrac/tfrac, degrees, \$ and currency, units
 * (\text{ cm}, "dollars"), percent (remembered as a flag), trailing punctuation, "x \in S", "\approx".
 * Pure string work: never throws on malformed LaTeX (unbalanced input simply stays as it is).
 */

export interface Normalized {
  /** The normalised answer (single spaces kept: they separate tokens such as `\sqrt 2` or `4 4/9`). */
  text: string;
  /** The answer ended in a percent marker (`\%`, `%`, `percent`, `pct`), which was removed. */
  percent: boolean;
}

const UNICODE: Array<[RegExp, string]> = [
  [/[\u2212\u2013\u2014]/g, '-'], [/\u00d7/g, '\\times '], [/[\u00b7\u22c5]/g, '\\cdot '], [/\u00f7/g, '\\div '],
  [/\u221a/g, '\\sqrt'], [/\u03c0/g, '\\pi '], [/\u221e/g, '\\infty '], [/\u2264/g, '\\le '], [/\u2265/g, '\\ge '],
  [/\u2260/g, '\\ne '], [/\u2248/g, '\\approx '], [/\u222a/g, '\\cup '], [/\u2208/g, '\\in '], [/\u00b1/g, '\\pm '],
  [/\u00a0/g, ' '],
];

const WRAPPERS = 'text|textbf|textit|textrm|textsf|texttt|textnormal|mbox|mathrm|mathbf|mathit|mathsf|mathcal|mathbb|mathfrak|boldsymbol|bm|operatorname|textup|emph';
const UNIT_GROUP_RE = new RegExp(`\\s*\\\\(?:${WRAPPERS})\\s*\\{([^{}]*)\\}\\s*(?:\\^\\s*\\{?\\s*[23]\\s*\\}?|[\\u00b2\\u00b3])?\\s*$`);
const WRAPPER_RE = new RegExp(`\\\\(?:${WRAPPERS})\\s*\\{([^{}]*)\\}`, 'g');
const PERCENT_END_RE = /\s*(?:\\%|%|\\text\s*\{\s*(?:percent(?:age)?|pct)\s*\}|\bpercent(?:age)?\b|\bpct\b)\s*\.?\s*$/;
const NOT_UNITS = new Set(['and', 'or', 'pi', 'sqrt', 'sin', 'cos', 'tan', 'log', 'ln', 'exp', 'infty', 'i', 'e']);

/** Strip one layer of $..$, $$..$$, \(..\), \[..\] around the whole string, repeatedly. */
export function stripDelimiters(s: string): string {
  let t = s.trim();
  for (let k = 0; k < 4; k++) {
    const m = /^\$\$([\s\S]*)\$\$$/.exec(t) ?? /^\$([\s\S]*)\$$/.exec(t) ?? /^\\\(([\s\S]*)\\\)$/.exec(t) ?? /^\\\[([\s\S]*)\\\]$/.exec(t);
    if (!m) break;
    t = m[1].trim();
  }
  return t;
}

/** Remove a `\boxed{...}` wrapper around the whole string (answers written as `$\boxed{5}$`). */
function stripBoxWrapper(s: string): string {
  let t = s;
  for (let k = 0; k < 3; k++) {
    const m = /^\\(?:boxed|fbox)\s*\{([\s\S]*)\}$/.exec(t);
    if (!m || !balanced(m[1])) break;
    t = m[1].trim();
  }
  return t;
}

/** Braces balanced (ignoring escaped ones). */
export function balanced(s: string): boolean {
  let d = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\') { i++; continue; }
    if (s[i] === '{') d++;
    else if (s[i] === '}') { d--; if (d < 0) return false; }
  }
  return d === 0;
}

/**
 * A "label" is the left side of an assignment-like answer (`x = 2`, `(p,q) = (3,2)`, `AB = 4`,
 * `\angle APC = 74`, `f(x) = ...`, `S_{MBCN}:S = 7:32`, `\frac{NO}{BO} = ...`): no arithmetic at top level.
 */
export function isLabel(s: string): boolean {
  let t = s.trim();
  if (!t || t.length > 60) return false;
  t = t.replace(WRAPPER_RE, '$1');
  t = t.replace(/_\s*\{[^{}]*\}|_\s*[A-Za-z0-9]/g, ''); // subscripts
  t = t.replace(/\\(?:angle|measuredangle|triangle|overline|overrightarrow|vec|hat|bar|widehat|arc|overarc)\b\s*/g, '');
  t = t.replace(/\\[dtc]?frac\s*\{([A-Za-z\s]*)\}\s*\{([A-Za-z\s]*)\}/g, '$1$2');
  t = t.replace(/\\(?:alpha|beta|gamma|delta|theta|phi|varphi|psi|omega|lambda|mu|sigma|tau|rho)\b/g, 'a');
  // A tuple of names: (p,q), (x, y, z).
  if (/^\(\s*[A-Za-z](?:\s*[,;]\s*[A-Za-z])*\s*\)$/.test(t)) return true;
  t = t.replace(/\([^()]*\)/g, (g) => (/^[(\sA-Za-z0-9,;'+\-]*\)$/.test(g) ? '' : g)); // f(x), (p,q), P(2)
  t = t.replace(/[{}\s']/g, '');
  return /^[A-Za-z][A-Za-z:]*$/.test(t) && t.length <= 12;
}

/** Normalise one extracted answer string. */
export function normalizeAnswer(raw: string): Normalized {
  // Fast path for the most common answer: a plain number.
  const plain = raw.trim();
  if (/^[+-]?(?:\d+(?:\.\d+)?|\.\d+)$/.test(plain)) return { text: plain, percent: false };
  let s = raw;
  for (const [re, rep] of UNICODE) s = s.replace(re, rep);
  s = s.replace(/\r/g, '');
  // Python-style answers: `2**(1/4)`.
  s = s.replace(/\*\*/g, '^');
  // A doubled backslash before a command (`\\frac`) is an escaping artefact, except in matrices (row breaks).
  if (!s.includes('\\begin')) s = s.replace(/\\\\(?=[a-zA-Z{}$%,!])/g, '\\');
  s = stripDelimiters(s);
  s = stripBoxWrapper(s);
  s = stripDelimiters(s);
  // Escaped dollar = currency sign; other stray `$` are leftover delimiters ("12 $ and $13").
  s = s.replace(/\\\$/g, ' ').replace(/\$/g, ' ');
  s = s.replace(/[€£¥]/g, ' ');
  // Thousands written `14{,}916`, `10,\!000`, `1\,234`.
  s = s.replace(/(\d)\s*\{\s*,\s*\}\s*(?=\d)/g, '$1,');
  s = s.replace(/,\s*\\!\s*/g, ',');
  s = s.replace(/(\d)\\,(?=\d{3}(?!\d))/g, '$1');
  s = s.replace(/\\!/g, '');
  s = s.replace(/\\(?:left|right)\s*\./g, '');
  s = s.replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg)(?![a-zA-Z])/g, '');
  s = s.replace(/\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits)(?![a-zA-Z])/g, '');
  s = s.replace(/\\(?:quad|qquad)(?![a-zA-Z])/g, ' ').replace(/(?<!\\)\\[,;: ]/g, ' ').replace(/~/g, ' ');
  s = s.replace(/\\[dtc]frac(?![a-zA-Z])/g, '\\frac').replace(/\\[dt]binom(?![a-zA-Z])/g, '\\binom');
  s = s.replace(/\\(?:lt)(?![a-zA-Z])/g, '<').replace(/\\(?:gt)(?![a-zA-Z])/g, '>');
  s = s.replace(/\\(?:leqslant|leq|le)(?![a-zA-Z])/g, '\\le ').replace(/\\(?:geqslant|geq|ge)(?![a-zA-Z])/g, '\\ge ');
  s = s.replace(/\\(?:neq|ne)(?![a-zA-Z])/g, '\\ne ');
  // Degrees.
  s = s.replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\circ(?![a-zA-Z])|\u00b0|\\degree(?![a-zA-Z])/g, ' ');
  // Percent: remembered, then removed (also inside lists, where the flag is not used).
  let percent = false;
  for (let k = 0; k < 2; k++) {
    const t = s.replace(PERCENT_END_RE, '');
    if (t !== s) { percent = true; s = t; }
  }
  s = s.replace(/\\%|%/g, ' ');
  // Units in text groups at the end: `10\text{ cm}`, `15\mbox{ cm}^2`, `125\textnormal{ miles}`.
  for (let k = 0; k < 3; k++) {
    const m = UNIT_GROUP_RE.exec(s);
    if (!m) break;
    const before = s.slice(0, m.index);
    const content = m[1];
    const isUnit = /\d/.test(before) && (/[A-Za-z]{2,}/.test(content) || /^\s+[A-Za-z]/.test(content));
    if (!isUnit) break;
    s = before;
  }
  // Remaining text-like wrappers keep their content: \text{odd}, \mathrm{e}, \mathbf{A}.
  for (let k = 0; k < 3; k++) {
    const t = s.replace(WRAPPER_RE, '$1');
    if (t === s) break;
    s = t;
  }
  s = s.replace(/\s+/g, ' ').trim();
  // Plain unit words after a number: `12.50 dollars`, `5 cm`, `0.06 yuan`, `3 cm^2`.
  s = stripUnitWords(s);
  // A leading "Answer:"-style label ("Total: 12"), not a ratio like `7:32` or `S:T`.
  s = s.replace(/^[A-Za-z][A-Za-z ]{1,30}:\s+(?=\S)/, '');
  // Trailing sentence punctuation and stray backslashes (but not an ellipsis).
  for (let k = 0; k < 3; k++) {
    const t = s.replace(/\s*\\+\s*$/, '').replace(/(?<!\.)\s*[.,;:!]\s*$/, '').trim();
    if (t === s) break;
    s = t;
  }
  // "x \approx 1.3": the exact value before \approx, or the value after it when the left side is a label.
  if (/\\approx(?![a-zA-Z])/.test(s)) {
    const parts = s.split(/\\approx(?![a-zA-Z])/);
    s = (isLabel(parts[0]) ? parts[parts.length - 1] : parts[0]).trim();
  }
  // "x \in [-2, 7]" -> the set.
  const inM = /^([^=<>]*?)\\in(?![a-zA-Z])\s*(.+)$/.exec(s);
  if (inM && isLabel(inM[1])) s = inM[2].trim();
  // Multiple-choice letter in parentheses: (C).
  const mc = /^\(\s*([A-Z])\s*\)$/.exec(s);
  if (mc) s = mc[1];
  return { text: s, percent };
}

/**
 * Remove trailing unit words (two letters or more, not math words) after a purely numeric prefix.
 * Written as a backwards scan rather than a regex to keep the cost linear on hostile input.
 */
function stripUnitWords(s: string): string {
  let t = s;
  const sup = /(?:\^\s*\{?\s*[23]\s*\}?|[\u00b2\u00b3])$/.exec(t);
  if (sup) t = t.slice(0, sup.index);
  let i = t.length;
  while (i > 0 && /[A-Za-z. ]/.test(t[i - 1])) i--;
  const tail = t.slice(i);
  const prefix = t.slice(0, i);
  const words = tail.split(/\s+/).map((w) => w.replace(/\.+$/, '')).filter(Boolean);
  if (!words.length || prefix.endsWith('\\')) return s;
  const ok = words.every((w) => /^[A-Za-z]{2,}$/.test(w) && !NOT_UNITS.has(w.toLowerCase()));
  const prefixLetters = prefix.replace(/\\[a-zA-Z]+/g, '');
  if (!ok || !/\d/.test(prefix) || /[A-Za-z]/.test(prefixLetters) || /[=<>]/.test(prefix)) return s;
  return prefix.trim();
}

/** Whitespace-free form used for exact string comparison. */
export function compact(s: string): string {
  return s.replace(/\s+/g, '');
}
