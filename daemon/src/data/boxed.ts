/**
 * The content of the last `\boxed{...}` (or `\fbox{...}`) in a MATH solution, with brace matching so nested
 * LaTeX such as `\boxed{\frac{1}{2}}` comes out whole. Two MATH train solutions use the brace-less form
 * `\boxed 9`; that is accepted too. Returns null when there is none or the braces do not close.
 * (The reward module has its own extractor for model outputs; this one only serves the loaders.)
 */
export function lastBoxed(text: string): string | null {
  const re = /\\(?:boxed|fbox)\b/g;
  let last = -1;
  let lastLen = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    last = m.index;
    lastLen = m[0].length;
  }
  if (last < 0) return null;
  let i = last + lastLen;
  const afterName = i;
  while (text[i] === ' ') i++;
  if (text[i] === '{') {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const c = text[j];
      if (c === '\\') {
        j++; // an escaped brace such as \{ does not count
        continue;
      }
      if (c === '{') depth++;
      else if (c === '}') {
        depth--;
        if (depth === 0) return text.slice(i + 1, j).trim();
      }
    }
    return null;
  }
  if (i > afterName) {
    // `\boxed 9`: the answer runs to the end of the math mode or the next whitespace
    const m = /^[^\s$]+/.exec(text.slice(i));
    return m ? m[0] : null;
  }
  return null;
}
