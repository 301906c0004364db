/**
 * Code-block parsing for model turns: find the fenced blocks, take the LAST one that is code (blocks tagged
 * `output` are observations, e.g. the "```output" a ToRA-style turn ends with), and decide whether the tool
 * runs it. `mathjs`, `math` and an untagged block are mathjs; `python` only when the Python tool is enabled;
 * anything else becomes a tool error observation telling the model what to write instead.
 *
 * Lenient on purpose (small models are sloppy): a block whose closing fence is missing runs to the end of the
 * text (the model stopped at the tool marker before closing it), and a one-line "```1+2```" is an untagged block.
 */

export interface FencedBlock {
  /** Lower-cased tag after the opening fence ('' when none). */
  tag: string;
  code: string;
  /** Whether the closing fence was found. */
  closed: boolean;
  /** Offset of the opening fence in the text. */
  start: number;
}

export type ToolCallParse =
  | { ok: true; lang: 'mathjs' | 'python'; tag: string; code: string }
  | { ok: false; tag: string; code: string; error: string };

export interface ParseOptions {
  /** Accept ```python blocks (the Python tool is enabled). */
  python?: boolean;
}

const MATHJS_TAGS = new Set(['', 'mathjs', 'math', 'mathjs-expr']);
const PYTHON_TAGS = new Set(['python', 'py', 'python3']);
const TAG_RE = /^[A-Za-z][\w+.#-]*$/;

/** All fenced blocks of a text, in order. */
export function findFencedBlocks(text: string): FencedBlock[] {
  const blocks: FencedBlock[] = [];
  let i = 0;
  for (;;) {
    const open = text.indexOf('```', i);
    if (open < 0) break;
    const afterTicks = open + 3;
    const eol = text.indexOf('\n', afterTicks);
    const firstLine = eol < 0 ? text.slice(afterTicks) : text.slice(afterTicks, eol);
    const inlineClose = firstLine.indexOf('```');
    if (inlineClose >= 0) {
      // One-line block: ```2+3``` (no tag possible, the whole content is code).
      blocks.push({ tag: '', code: firstLine.slice(0, inlineClose).trim(), closed: true, start: open });
      i = afterTicks + inlineClose + 3;
      continue;
    }
    const head = firstLine.trim();
    let tag = '';
    let bodyStart: number;
    if (head === '' || TAG_RE.test(head)) {
      tag = head.toLowerCase();
      bodyStart = eol < 0 ? text.length : eol + 1;
    } else {
      // "```x = 1\ny```": code starts on the fence line.
      bodyStart = afterTicks;
    }
    const close = text.indexOf('```', bodyStart);
    if (close < 0) {
      blocks.push({ tag, code: trimBody(text.slice(bodyStart)), closed: false, start: open });
      break;
    }
    blocks.push({ tag, code: trimBody(text.slice(bodyStart, close)), closed: true, start: open });
    i = close + 3;
  }
  return blocks;
}

/** Drop the newline before the closing fence and blank edges; keep inner indentation. */
function trimBody(s: string): string {
  return s.replace(/^\s*\n/, '').replace(/\s+$/, '');
}

/** The tool call of a model turn (its last code block), or null when the turn has no code block. */
export function parseToolCall(text: string, opts: ParseOptions = {}): ToolCallParse | null {
  const blocks = findFencedBlocks(text).filter((b) => b.tag !== 'output');
  const b = blocks[blocks.length - 1];
  if (!b) return null;
  if (MATHJS_TAGS.has(b.tag)) {
    if (!b.code.trim()) return { ok: false, tag: b.tag, code: b.code, error: 'Error: empty code block' };
    return { ok: true, lang: 'mathjs', tag: b.tag, code: b.code };
  }
  if (PYTHON_TAGS.has(b.tag)) {
    if (opts.python) return { ok: true, lang: 'python', tag: b.tag, code: b.code };
    return { ok: false, tag: b.tag, code: b.code, error: 'Error: python is not enabled; use ```mathjs' };
  }
  return { ok: false, tag: b.tag, code: b.code, error: `Error: \`\`\`${b.tag} blocks are not run; use \`\`\`mathjs` };
}

/** Whether a turn gives a final answer (`\boxed{` or `\fbox{`), the paper's end-of-trajectory signal. */
export function hasBoxedAnswer(text: string): boolean {
  return /\\(?:boxed|fbox)\s*\{/.test(text);
}
