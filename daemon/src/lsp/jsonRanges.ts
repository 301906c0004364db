/**
 * JSON path → text range for diagnostics (a zod issue path like `train.beta` points at the value of that key;
 * a missing key points at its nearest existing parent's key). Built on jsonc-parser's tolerant parse, so a
 * half-typed file still maps.
 */
import { findNodeAtLocation, parseTree, type Node, type ParseError } from 'jsonc-parser';

export interface OffsetRange { start: number; end: number }

export function parseJson(text: string): { root: Node | undefined; errors: ParseError[] } {
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: false, disallowComments: true });
  return { root, errors };
}

/** The property node (key + value) holding `path`'s value, when the path exists. */
function propertyOf(root: Node, path: readonly (string | number)[]): Node | undefined {
  const value = findNodeAtLocation(root, [...path]);
  return value?.parent?.type === 'property' ? value.parent : undefined;
}

/**
 * Range for a diagnostic on `path`. `onKey`: underline the key (unknown keys), else the value.
 * Falls back to the deepest existing ancestor's key, then to the first character of the document.
 */
export function rangeForPath(root: Node | undefined, path: readonly (string | number)[], onKey = false): OffsetRange {
  if (!root) return { start: 0, end: 0 };
  for (let n = path.length; n > 0; n--) {
    const sub = path.slice(0, n);
    const value = findNodeAtLocation(root, [...sub]);
    if (!value) continue;
    if (n === path.length && !onKey) return { start: value.offset, end: value.offset + value.length };
    const prop = propertyOf(root, sub);
    const key = prop?.children?.[0];
    if (key) return { start: key.offset, end: key.offset + key.length };
    return { start: value.offset, end: value.offset + Math.min(value.length, 1) };
  }
  // The root object itself: its opening brace.
  return { start: root.offset, end: root.offset + 1 };
}

/** Line/character of an offset (LSP positions; UTF-16 code units, which is what JS string offsets are). */
export function positionAt(text: string, offset: number): { line: number; character: number } {
  let line = 0, last = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) if (text.charCodeAt(i) === 10) { line++; last = i + 1; }
  return { line, character: end - last };
}
