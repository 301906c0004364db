/**
 * A small LaTeX -> mathjs expression converter for scalar answers (and matrix literals).
 *
 * It is the grader's safety boundary: its output only ever contains numbers, operators, parentheses,
 * matrix brackets, single-letter (optionally subscripted) symbol names, `gr_*` Greek symbols, the
 * constants pi/e/i/Infinity and a fixed whitelist of functions, so nothing a model writes can reach
 * mathjs as arbitrary code. Anything it does not understand makes it return null (the caller then
 * falls back to string comparison), and it never throws.
 *
 * Handles: \frac (also \frac12, \frac34i), \sqrt / \sqrt[n], ^ and _ (subscripted symbols, base-n
 * numerals like 204_5), \cdot \times \div, implicit multiplication, |x|, \lfloor \rceil, \binom,
 * \pi \infty, Greek letters, \sin^2 x, \log_2 8, factorial, mixed numbers (918\frac{1}{2}),
 * pmatrix/bmatrix/array environments, plain-text functions (sqrt(3)).
 */

type Tok =
  | { t: 'num'; v: string }
  | { t: 'id'; v: string }
  | { t: 'word'; v: string }
  | { t: 'cmd'; v: string }
  | { t: 'op'; v: string }
  | { t: 'env'; rows: string[][] };

class ConvError extends Error {}

const MAX_TOKENS = 800;
const MAX_DEPTH = 60;

const CMD_FUNCS: Record<string, string> = {
  sin: 'sin', cos: 'cos', tan: 'tan', sec: 'sec', csc: 'csc', cot: 'cot',
  arcsin: 'asin', arccos: 'acos', arctan: 'atan', sinh: 'sinh', cosh: 'cosh', tanh: 'tanh',
  ln: 'log', log: 'log10', exp: 'exp',
};
const WORD_FUNCS: Record<string, string> = {
  sqrt: 'sqrt', sin: 'sin', cos: 'cos', tan: 'tan', sec: 'sec', csc: 'csc', cot: 'cot',
  asin: 'asin', acos: 'acos', atan: 'atan', arcsin: 'asin', arccos: 'acos', arctan: 'atan',
  sinh: 'sinh', cosh: 'cosh', tanh: 'tanh', log: 'log', ln: 'log', exp: 'exp', abs: 'abs',
  floor: 'floor', ceil: 'ceil',
};
const GREEK = new Set([
  'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'varepsilon', 'zeta', 'eta', 'theta', 'vartheta', 'iota',
  'kappa', 'lambda', 'mu', 'nu', 'xi', 'rho', 'varrho', 'sigma', 'varsigma', 'tau', 'upsilon', 'phi',
  'varphi', 'chi', 'psi', 'omega', 'Gamma', 'Delta', 'Theta', 'Lambda', 'Xi', 'Sigma', 'Upsilon', 'Phi',
  'Psi', 'Omega',
]);
/** Whitelisted mathjs functions the converter may emit. */
export const EMITTED_FUNCTIONS = new Set([
  ...Object.values(CMD_FUNCS), ...Object.values(WORD_FUNCS), 'nthRoot', 'combinations', 'floor', 'ceil', 'abs',
]);
const MATRIX_ENVS = new Set(['pmatrix', 'bmatrix', 'Bmatrix', 'vmatrix', 'Vmatrix', 'matrix', 'smallmatrix', 'array']);

/** Split the body of a matrix environment into rows of cells (top-level `\\` and `&`). */
function splitMatrix(body: string): string[][] {
  const rows: string[][] = [];
  let cells: string[] = [];
  let cur = '';
  let depth = 0;
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (ch === '\\' && body[i + 1] === '\\' && depth === 0) {
      cells.push(cur); rows.push(cells); cells = []; cur = ''; i++; continue;
    }
    if (ch === '\\') { cur += ch + (body[i + 1] ?? ''); i++; continue; }
    if (ch === '{') depth++;
    if (ch === '}') depth--;
    if (ch === '&' && depth === 0) { cells.push(cur); cur = ''; continue; }
    cur += ch;
  }
  cells.push(cur);
  rows.push(cells);
  // A trailing `\\` leaves an empty last row.
  while (rows.length > 1 && rows[rows.length - 1].every((c) => c.trim() === '')) rows.pop();
  return rows.map((r) => r.map((c) => c.trim()));
}

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    if (out.length > MAX_TOKENS) throw new ConvError('too long');
    const ch = src[i];
    if (/\s/.test(ch)) { i++; continue; }
    if (/\d/.test(ch) || (ch === '.' && /\d/.test(src[i + 1] ?? ''))) {
      // Scientific notation (1.5e6) only when the exponent digits follow at once; `2e` stays 2 * e.
      const m = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3}(?![\d.]))?/.exec(src.slice(i, i + 400));
      if (!m) throw new ConvError('number');
      out.push({ t: 'num', v: /^\d+\.$/.test(m[0]) ? m[0].slice(0, -1) : m[0] });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z]/.test(ch)) {
      let j = i;
      while (j < src.length && /[A-Za-z]/.test(src[j])) j++;
      const run = src.slice(i, j);
      let k = j;
      while (k < src.length && src[k] === ' ') k++;
      const lower = run.toLowerCase();
      if (WORD_FUNCS[lower] && run.length > 1 && src[k] === '(') { out.push({ t: 'word', v: WORD_FUNCS[lower] }); i = j; continue; }
      if (run === 'pi') { out.push({ t: 'cmd', v: 'pi' }); i = j; continue; }
      for (const c of run) out.push({ t: 'id', v: c });
      i = j;
      continue;
    }
    if (ch === '\\') {
      const m = /^\\([A-Za-z]+)/.exec(src.slice(i, i + 40));
      if (m) {
        const name = m[1];
        if (name === 'begin') {
          const env = /^\\begin\s*\{([A-Za-z*]+)\}/.exec(src.slice(i, i + 60));
          if (!env || !MATRIX_ENVS.has(env[1])) throw new ConvError('environment');
          const endTag = `\\end{${env[1]}}`;
          let start = i + env[0].length;
          if (env[1] === 'array') {
            const spec = /^\s*\{[^{}]*\}/.exec(src.slice(start, start + 80));
            if (spec) start += spec[0].length;
          }
          const end = src.indexOf(endTag, start);
          if (end < 0) throw new ConvError('unclosed environment');
          out.push({ t: 'env', rows: splitMatrix(src.slice(start, end)) });
          i = end + endTag.length;
          continue;
        }
        if (name === 'lvert' || name === 'rvert' || name === 'vert' || name === 'mid') out.push({ t: 'op', v: '|' });
        else out.push({ t: 'cmd', v: name });
        i += m[0].length;
        continue;
      }
      const next = src[i + 1] ?? '';
      if (next === '{' || next === '}') { out.push({ t: 'op', v: '\\' + next }); i += 2; continue; }
      if (next === '|') { out.push({ t: 'op', v: '|' }); i += 2; continue; }
      if (' ,;:!'.includes(next)) { i += 2; continue; }
      throw new ConvError('escape');
    }
    if ('+-*/^_()[]{}|!\'=<>,&'.includes(ch)) { out.push({ t: 'op', v: ch }); i++; continue; }
    throw new ConvError(`character ${ch}`);
  }
  return out;
}

const INT_RE = /^\d+$/;

class Parser {
  private pos = 0;
  private depth = 0;
  private bars = 0;
  constructor(private toks: Tok[], private nest: number) {}

  private peek(): Tok | undefined { return this.toks[this.pos]; }
  private isOp(v: string): boolean { const t = this.peek(); return !!t && t.t === 'op' && t.v === v; }
  private isCmd(...v: string[]): boolean { const t = this.peek(); return !!t && t.t === 'cmd' && v.includes(t.v); }
  private expectOp(v: string): void { if (!this.isOp(v)) throw new ConvError(`expected ${v}`); this.pos++; }

  parseAll(): string {
    const e = this.parseExpr();
    if (this.pos !== this.toks.length) throw new ConvError('trailing tokens');
    return e;
  }

  private enter(): void { if (++this.depth > MAX_DEPTH) throw new ConvError('too deep'); }

  parseExpr(): string {
    this.enter();
    let acc = this.parseTerm();
    for (;;) {
      if (this.isOp('+') || this.isOp('-')) {
        const op = (this.toks[this.pos++] as { v: string }).v;
        acc = `${acc} ${op} ${this.parseTerm()}`;
      } else break;
    }
    this.depth--;
    return acc;
  }

  private startsAtom(): boolean {
    const t = this.peek();
    if (!t) return false;
    if (t.t === 'num' || t.t === 'id' || t.t === 'word' || t.t === 'env') return true;
    if (t.t === 'op') return t.v === '(' || t.v === '{' || t.v === '[' || (t.v === '|' && this.bars === 0);
    if (t.t === 'cmd') return !['cdot', 'times', 'div', 'ast', 'pm', 'mp', 'rfloor', 'rceil', 'cup', 'cap', 'in', 'le', 'ge', 'ne', 'to', 'approx'].includes(t.v);
    return false;
  }

  private parseTerm(): string {
    let acc = this.parseUnary();
    let accInt = INT_RE.test(acc);
    for (;;) {
      if (this.isOp('*') || this.isCmd('cdot', 'times', 'ast')) {
        this.pos++;
        acc = `(${acc}) * (${this.parseUnary()})`;
      } else if (this.isOp('/') || this.isCmd('div')) {
        this.pos++;
        acc = `(${acc}) / (${this.parseUnary()})`;
      } else if (this.startsAtom()) {
        // Mixed number: an integer directly followed by a fraction of integers (918\frac{1}{2}).
        const start = this.pos;
        const rhs = this.parsePower();
        const first = this.toks[start];
        const mixed = accInt && first?.t === 'cmd' && first.v === 'frac' && /^\d+\/\d+$/.test(rhs.replace(/[()\s]/g, ''));
        acc = mixed ? `(${acc} + ${rhs})` : `(${acc}) * (${rhs})`;
      } else break;
      accInt = false;
    }
    return acc;
  }

  private parseUnary(): string {
    if (this.isOp('-')) { this.pos++; return `-(${this.parseUnary()})`; }
    if (this.isOp('+')) { this.pos++; return this.parseUnary(); }
    return this.parsePower();
  }

  private parsePower(): string {
    this.enter();
    const base = this.parsePostfix();
    let out = base;
    if (this.isOp('^')) {
      this.pos++;
      const exp = this.parseExponent();
      out = `(${base}) ^ (${exp})`;
    }
    this.depth--;
    return out;
  }

  /** `^2`, `^{n+1}`, `^-1`, `^\frac12`: a braced group, or a signed single power. */
  private parseExponent(): string {
    if (this.isOp('{')) return this.parseGroup('{', '}');
    if (this.isOp('-')) { this.pos++; return `-(${this.parsePower()})`; }
    if (this.isOp('+')) { this.pos++; }
    return this.parsePower();
  }

  private parsePostfix(): string {
    let a = this.parseAtom();
    while (this.isOp('!')) { this.pos++; a = `(${a})!`; }
    return a;
  }

  private parseGroup(open: string, close: string): string {
    this.expectOp(open);
    const saved = this.bars;
    this.bars = 0;
    const e = this.parseExpr();
    this.bars = saved;
    this.expectOp(close);
    return `(${e})`;
  }

  /** Argument of \frac, \sqrt, \binom: a braced group or a single token (\frac12 -> 1 and 2). */
  private parseArg(): string {
    const t = this.peek();
    if (!t) throw new ConvError('missing argument');
    if (t.t === 'op' && t.v === '{') return this.parseGroup('{', '}');
    if (t.t === 'num') {
      if (t.v.length > 1 && INT_RE.test(t.v)) {
        this.toks[this.pos] = { t: 'num', v: t.v.slice(1) };
        return t.v[0];
      }
      this.pos++;
      return t.v;
    }
    if (t.t === 'id') { this.pos++; return this.symbolName(t.v); }
    if (t.t === 'cmd') return this.parseAtom();
    throw new ConvError('bad argument');
  }

  private symbolName(letter: string): string {
    let name = letter;
    if (this.isOp('_')) {
      this.pos++;
      const t = this.peek();
      let sub: string;
      if (t && t.t === 'op' && t.v === '{') {
        // Raw subscript text, sanitised into the symbol name (a_{37}, F_{n-k-1}).
        let depth = 0;
        const parts: string[] = [];
        do {
          const u = this.toks[this.pos++];
          if (!u) throw new ConvError('unclosed subscript');
          if (u.t === 'op' && u.v === '{') depth++;
          else if (u.t === 'op' && u.v === '}') depth--;
          else parts.push(u.t === 'env' ? 'm' : u.v);
        } while (depth > 0);
        sub = parts.join('_');
      } else if (t && (t.t === 'num' || t.t === 'id' || t.t === 'cmd')) {
        this.pos++;
        sub = t.v;
      } else throw new ConvError('bad subscript');
      sub = sub.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_+|_+$/g, '');
      if (!sub || sub.length > 24) throw new ConvError('bad subscript');
      name = `${letter}_${sub}`;
    }
    while (this.isOp("'")) { this.pos++; name += '_p'; }
    return name;
  }

  private parseFunction(fn: string): string {
    let power: string | null = null;
    let base: string | null = null;
    for (let k = 0; k < 2; k++) {
      if (this.isOp('^')) { this.pos++; power = this.parseExponent(); }
      else if (this.isOp('_') && fn === 'log10') { this.pos++; base = this.parseArg(); }
    }
    let arg: string;
    if (this.isOp('(') || this.isOp('{') || this.isOp('[')) {
      const t = this.peek() as { v: string };
      arg = this.parseGroup(t.v, t.v === '(' ? ')' : t.v === '{' ? '}' : ']');
    } else {
      // `\sin 2x`, `\sin b \cos a`: the argument is the product of plain atoms that follow.
      const parts: string[] = [];
      for (;;) {
        const t = this.peek();
        if (!t) break;
        const plain = t.t === 'num' || t.t === 'id' || (t.t === 'cmd' && (GREEK.has(t.v) || t.v === 'pi' || t.v === 'frac' || t.v === 'sqrt'));
        if (!plain || (parts.length && t.t === 'cmd' && CMD_FUNCS[t.v])) break;
        parts.push(this.parsePower());
      }
      if (!parts.length) throw new ConvError('missing function argument');
      arg = parts.map((p) => `(${p})`).join(' * ');
    }
    const call = base !== null ? `log(${arg}, ${base})` : `${fn}(${arg})`;
    return power !== null ? `(${call}) ^ (${power})` : call;
  }

  private parseAtom(): string {
    const t = this.peek();
    if (!t) throw new ConvError('unexpected end');
    this.pos++;
    switch (t.t) {
      case 'num': {
        if (this.isOp('_')) {
          // Base-n numeral: 204_5, 1112112_{3}.
          this.pos++;
          const b = this.isOp('{') ? this.rawInt() : this.takeInt();
          const base = Number(b);
          if (!INT_RE.test(t.v) || base < 2 || base > 36) throw new ConvError('bad base');
          const v = parseInt(t.v, base);
          if (!Number.isFinite(v) || v.toString(base) !== t.v.replace(/^0+(?=.)/, '').toLowerCase()) throw new ConvError('bad digits');
          return String(v);
        }
        return t.v;
      }
      case 'id':
        return this.symbolName(t.v);
      case 'word': {
        const arg = this.parseGroup('(', ')');
        return `${t.v}${arg}`;
      }
      case 'env': {
        const width = t.rows[0].length;
        if (t.rows.length * width > 400 || t.rows.some((r) => r.length !== width)) throw new ConvError('matrix shape');
        if (this.nest > 3) throw new ConvError('matrix nesting');
        const rows = t.rows.map((r) => r.map((cell) => {
          const c = convert(cell, this.nest + 1);
          if (c === null) throw new ConvError('matrix cell');
          return c;
        }));
        return `[${rows.map((r) => `[${r.join(', ')}]`).join(', ')}]`;
      }
      case 'op': {
        if (t.v === '(') { this.pos--; return this.parseGroup('(', ')'); }
        if (t.v === '[') { this.pos--; return this.parseGroup('[', ']'); }
        if (t.v === '{') { this.pos--; return this.parseGroup('{', '}'); }
        if (t.v === '|') {
          this.bars++;
          const e = this.parseExpr();
          this.bars--;
          this.expectOp('|');
          return `abs(${e})`;
        }
        throw new ConvError(`unexpected ${t.v}`);
      }
      case 'cmd': {
        const v = t.v;
        if (v === 'frac') { const a = this.parseArg(); const b = this.parseArg(); return `((${a}) / (${b}))`; }
        if (v === 'sqrt') {
          if (this.isOp('[')) {
            this.pos++;
            const n = this.takeInt();
            this.expectOp(']');
            return `nthRoot(${this.parseArg()}, ${n})`;
          }
          return `sqrt(${this.parseArg()})`;
        }
        if (v === 'binom') {
          const a = this.parseArg(); const b = this.parseArg();
          if (!INT_RE.test(a) || !INT_RE.test(b) || Number(a) > 10000) throw new ConvError('binom');
          return `combinations(${a}, ${b})`;
        }
        if (v === 'pi') return 'pi';
        if (v === 'infty' || v === 'infin') return 'Infinity';
        if (GREEK.has(v)) return `gr_${v}`;
        if (CMD_FUNCS[v]) return this.parseFunction(CMD_FUNCS[v]);
        if (v === 'lfloor' || v === 'lceil') {
          const e = this.parseExpr();
          if (!this.isCmd(v === 'lfloor' ? 'rfloor' : 'rceil')) throw new ConvError('unclosed floor');
          this.pos++;
          return `${v === 'lfloor' ? 'floor' : 'ceil'}(${e})`;
        }
        throw new ConvError(`command ${v}`);
      }
    }
  }

  private takeInt(): string {
    const t = this.peek();
    if (!t || t.t !== 'num' || !INT_RE.test(t.v)) throw new ConvError('integer expected');
    this.pos++;
    return t.v;
  }

  private rawInt(): string {
    this.expectOp('{');
    const v = this.takeInt();
    this.expectOp('}');
    return v;
  }
}

function convert(src: string, nest: number): string | null {
  try {
    if (src.length > 2000) return null;
    const toks = tokenize(src);
    if (!toks.length) return null;
    return new Parser(toks, nest).parseAll();
  } catch {
    return null;
  }
}

/** Convert a LaTeX (or plain) scalar expression to a mathjs expression string; null if not understood. */
export function latexToMathjs(src: string): string | null {
  return convert(src, 0);
}
