/**
 * What the run-config language server knows about each field, read from the RunConfig zod schema itself
 * (description from `.describe()`, default, enum values, numeric bounds) plus the paper's value. One source of
 * truth: a field added to the schema gets hover and completion without touching this file.
 */
import type { z } from 'zod';
import { PAPER_VALUES, RunConfig } from '@mathagent/shared';

export interface FieldInfo {
  path: string[];
  description: string | null;
  /** The default as JSON text, if any. */
  defaultJson: string | null;
  /** 'object' | 'string' | 'number' | 'boolean' | 'enum' | ... (zod def type of the innermost schema). */
  type: string;
  enumValues: string[] | null;
  nullable: boolean;
  isInt: boolean;
  min: number | null;
  max: number | null;
  /** Child keys for objects. */
  keys: string[] | null;
  paper: string | null;
}

// Zod 4 keeps the structure in `_zod.def` (documented for library authors); only this file looks at it.
interface Def { type: string; innerType?: Schema; shape?: Record<string, Schema>; defaultValue?: unknown; entries?: Record<string, string> }
type Schema = { _zod: { def: Def }; description?: string; shape?: Record<string, Schema>; minValue?: number | null; maxValue?: number | null; isInt?: boolean; options?: unknown[] };

const WRAPPERS = new Set(['default', 'prefault', 'optional', 'nullable', 'readonly', 'catch']);

function describeSchema(root: Schema, path: string[]): FieldInfo {
  let s: Schema = root;
  let description: string | null = s.description ?? null;
  let defaultJson: string | null = null;
  let nullable = false;
  for (;;) {
    const def = s._zod.def;
    if (def.type === 'default' && defaultJson === null) {
      const v = typeof def.defaultValue === 'function' ? (def.defaultValue as () => unknown)() : def.defaultValue;
      defaultJson = JSON.stringify(v) ?? null;
    }
    if (def.type === 'nullable') nullable = true;
    if (!WRAPPERS.has(def.type) || !def.innerType) break;
    s = def.innerType;
    description ??= s.description ?? null;
  }
  const def = s._zod.def;
  const shape = def.type === 'object' ? (s.shape ?? def.shape ?? {}) : null;
  return {
    path, description, defaultJson, type: def.type,
    enumValues: def.type === 'enum' ? (s.options as string[] | undefined) ?? Object.values(def.entries ?? {}) : def.type === 'boolean' ? ['true', 'false'] : null,
    nullable, isInt: s.isInt === true, min: numberOrNull(s.minValue), max: numberOrNull(s.maxValue),
    keys: shape ? Object.keys(shape) : null,
    paper: PAPER_VALUES[path.join('.')] ?? null,
  };
}

const numberOrNull = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function unwrap(s: Schema): Schema {
  while (WRAPPERS.has(s._zod.def.type) && s._zod.def.innerType) s = s._zod.def.innerType;
  return s;
}

/** The schema at a key path (undefined for a path the schema does not have). */
function schemaAt(path: readonly (string | number)[]): Schema | undefined {
  let s: Schema = RunConfig as unknown as Schema;
  for (const k of path) {
    const inner = unwrap(s);
    const shape = inner._zod.def.type === 'object' ? (inner.shape ?? inner._zod.def.shape) : undefined;
    if (!shape || typeof k !== 'string' || !(k in shape)) return undefined;
    s = shape[k]!;
  }
  return s;
}

export function fieldInfo(path: readonly (string | number)[]): FieldInfo | undefined {
  const s = schemaAt(path);
  return s ? describeSchema(s, path.map(String)) : undefined;
}

/** Markdown shown on hover. */
export function hoverMarkdown(f: FieldInfo): string {
  const lines = [`**${f.path.join('.') || 'run config'}**${f.type !== 'object' ? ` · \`${f.enumValues && f.type === 'enum' ? f.enumValues.join(' | ') : f.isInt ? 'integer' : f.type}${f.nullable ? ' | null' : ''}\`` : ''}`];
  if (f.description) lines.push('', f.description);
  const facts: string[] = [];
  if (f.defaultJson !== null && f.type !== 'object') facts.push(`default: \`${f.defaultJson}\``);
  if (f.min !== null || f.max !== null) facts.push(`range: ${f.min ?? '−∞'} … ${f.max ?? '∞'}`);
  if (f.paper) facts.push(`paper: ${f.paper}`);
  if (facts.length) lines.push('', facts.join(' · '));
  return lines.join('\n');
}

export type { z };
