/**
 * A small syntax highlighter for the tool-call code (mathjs expressions, or Python when that tool is on):
 * numbers, strings, keywords, function names, comments, operators. Pure: returns classified tokens.
 */
export type CodeTokenKind = 'kw' | 'num' | 'str' | 'fn' | 'com' | 'op' | 'id' | 'ws';
export interface CodeToken { kind: CodeTokenKind; text: string }

const KEYWORDS: Record<string, Set<string>> = {
  mathjs: new Set(['to', 'in', 'and', 'or', 'not', 'xor', 'mod', 'true', 'false', 'null', 'end', 'function']),
  python: new Set(['def', 'return', 'if', 'elif', 'else', 'for', 'while', 'in', 'import', 'from', 'as', 'and', 'or', 'not', 'True', 'False', 'None', 'print', 'lambda', 'is', 'with', 'try', 'except', 'pass', 'break', 'continue', 'class']),
};

const RULES: Array<[CodeTokenKind, RegExp]> = [
  ['ws', /^\s+/],
  ['com', /^(#[^\n]*|\/\/[^\n]*)/],
  ['str', /^("(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)/],
  ['num', /^(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/],
  ['id', /^[A-Za-z_][A-Za-z0-9_]*/],
  ['op', /^(\*\*|\/\/|==|!=|<=|>=|[-+*/%^=<>!&|(),[\]{}:;.'?~])/],
];

export function highlight(code: string, lang: string): CodeToken[] {
  const kws = KEYWORDS[lang] ?? KEYWORDS.mathjs!;
  // In mathjs `#` starts a comment, in Python too; `//` is Python's floor division, so only mathjs treats it as a comment.
  const out: CodeToken[] = [];
  let i = 0;
  while (i < code.length) {
    const rest = code.slice(i);
    let matched = false;
    for (const [kind, re] of RULES) {
      if (kind === 'com' && lang === 'python' && rest.startsWith('//')) continue;
      const m = re.exec(rest);
      if (!m || !m[0]) continue;
      let k: CodeTokenKind = kind;
      if (kind === 'id') {
        if (kws.has(m[0])) k = 'kw';
        else if (/^\s*\(/.test(code.slice(i + m[0].length))) k = 'fn';
      }
      const prev = out[out.length - 1];
      if (prev && prev.kind === k && (k === 'ws' || k === 'op')) prev.text += m[0];
      else out.push({ kind: k, text: m[0] });
      i += m[0].length;
      matched = true;
      break;
    }
    if (!matched) { out.push({ kind: 'op', text: code[i]! }); i++; }
  }
  return out;
}

/**
 * The model's reasoning without its code block (the code is shown highlighted on its own). Removes the first
 * fenced block whose body is the tool call's code.
 */
export function reasoningWithoutCode(text: string, code: string | null): string {
  if (code === null) return text;
  const re = /```[^\n`]*\n([\s\S]*?)```/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    if (m[1]!.trim() === code.trim()) return (text.slice(0, m.index) + text.slice(m.index + m[0].length)).replace(/\n{3,}/g, '\n\n').trim();
  }
  return text;
}
