/**
 * The run-config language features as pure functions of the document text (and what the daemon host has):
 * diagnostics, hover, completions, code lens. index.ts wires them to an LSP connection.
 */
import { findNodeAtLocation, findNodeAtOffset, getLocation, getNodeValue, printParseErrorCode } from 'jsonc-parser';
import { RunConfig } from '@mathagent/shared';
import { fieldInfo, hoverMarkdown } from './schemaInfo';
import { parseJson, rangeForPath, type OffsetRange } from './jsonRanges';

/** What the daemon host has, for diagnostics that a local schema check cannot give. */
export interface HostProbe {
  datasets(): string[] | Promise<string[]>;
  backends(): string[] | Promise<string[]>;
  /** True when a checkpoint directory exists on the host. */
  checkpointExists(path: string): boolean | Promise<boolean>;
  /** Shown in messages, e.g. the host name. */
  name?: string;
}

export type Severity = 'error' | 'warning' | 'info';
export interface ConfigDiagnostic { range: OffsetRange; severity: Severity; message: string; code: string }

/** Edit distance, for "did you mean" on unknown keys (short strings only). */
export function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

function suggest(key: string, candidates: readonly string[]): string | null {
  let best: string | null = null, bestD = Infinity;
  for (const c of candidates) { const d = editDistance(key, c); if (d < bestD) { bestD = d; best = c; } }
  return best !== null && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : null;
}

export async function diagnose(text: string, host?: HostProbe): Promise<ConfigDiagnostic[]> {
  const out: ConfigDiagnostic[] = [];
  const { root, errors } = parseJson(text);
  for (const e of errors) out.push({ range: { start: e.offset, end: e.offset + Math.max(1, e.length) }, severity: 'error', message: `JSON: ${printParseErrorCode(e.error)}`, code: 'json' });
  if (!root) { if (!errors.length) out.push({ range: { start: 0, end: 0 }, severity: 'error', message: 'empty file: a run config is a JSON object, e.g. {"algorithm": "mdpo"}', code: 'json' }); return out; }
  if (root.type !== 'object') { out.push({ range: { start: root.offset, end: root.offset + root.length }, severity: 'error', message: 'a run config is a JSON object', code: 'schema' }); return out; }
  if (errors.length) return out; // schema errors on a broken document would only add noise
  const value = getNodeValue(root) as Record<string, unknown>;
  const parsed = RunConfig.safeParse(value);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.filter((p): p is string | number => typeof p === 'string' || typeof p === 'number');
      if (issue.code === 'unrecognized_keys') {
        const known = fieldInfo(path)?.keys ?? [];
        for (const k of issue.keys) {
          const hint = suggest(k, known);
          out.push({ range: rangeForPath(root, [...path, k], true), severity: 'error', code: 'unknown-key',
            message: `unknown key "${k}"${path.length ? ` in ${path.join('.')}` : ''}${hint ? ` — did you mean "${hint}"?` : ` (known: ${known.join(', ')})`}` });
        }
        continue;
      }
      const exists = rangeForPath(root, path);
      out.push({ range: exists, severity: 'error', code: 'schema', message: `${path.length ? path.join('.') : '(root)'}: ${issue.message}` });
    }
  }
  if (host) out.push(...await hostDiagnostics(root, value, host));
  return out;
}

async function hostDiagnostics(root: NonNullable<ReturnType<typeof parseJson>['root']>, v: Record<string, unknown>, host: HostProbe): Promise<ConfigDiagnostic[]> {
  const out: ConfigDiagnostic[] = [];
  const where = host.name ? ` on the daemon host ${host.name}` : ' on the daemon host';
  const data = v.data as Record<string, unknown> | undefined;
  if (typeof data?.dataset === 'string') {
    const have = await host.datasets();
    if (!have.includes(data.dataset)) out.push({ range: rangeForPath(root, ['data', 'dataset']), severity: 'error', code: 'host-dataset',
      message: `dataset "${data.dataset}" is not available${where} (available: ${have.join(', ') || 'none'}); copy it into the daemon's data/ folder or pick another` });
  }
  if (typeof v.backend === 'string' && v.backend !== 'auto') {
    const have = await host.backends();
    if (!have.includes(v.backend)) out.push({ range: rangeForPath(root, ['backend']), severity: 'error', code: 'host-backend',
      message: `backend "${v.backend}" is not available${where} (available: ${have.join(', ') || 'none'}); use "auto" to pick the best one` });
  }
  const model = v.model as Record<string, unknown> | undefined;
  if (typeof model?.init === 'string' && model.init.trim()) {
    if (!(await host.checkpointExists(model.init))) out.push({ range: rangeForPath(root, ['model', 'init']), severity: 'error', code: 'host-checkpoint',
      message: `checkpoint directory "${model.init}" was not found${where} (paths are resolved on the daemon's machine)` });
  }
  return out;
}

export interface HoverResult { markdown: string; range: OffsetRange }

export function hover(text: string, offset: number): HoverResult | null {
  const { root } = parseJson(text);
  if (!root) return null;
  const node = findNodeAtOffset(root, offset, false);
  if (!node) return null;
  const loc = getLocation(text, offset);
  // On a key or its value, the location path ends with that key.
  const path = loc.path.filter((p): p is string => typeof p === 'string');
  if (!path.length || path.includes('')) return null; // inside `{}` with no key yet
  const info = fieldInfo(path);
  if (!info) return { markdown: `**${path.join('.')}** is not a run-config field`, range: { start: node.offset, end: node.offset + node.length } };
  return { markdown: hoverMarkdown(info), range: { start: node.offset, end: node.offset + node.length } };
}

export interface Completion { label: string; kind: 'property' | 'value'; detail: string | null; documentation: string | null; insertText: string; replace: OffsetRange | null; snippet: boolean }

export function complete(text: string, offset: number, hostDatasets?: readonly string[]): Completion[] {
  const loc = getLocation(text, offset);
  const { root } = parseJson(text);
  const node = root ? findNodeAtOffset(root, offset, true) : undefined;
  const inString = node?.type === 'string' && offset > node.offset && offset < node.offset + node.length;
  const replace = inString && node ? { start: node.offset, end: node.offset + node.length } : null;
  if (loc.isAtPropertyKey) {
    const parentPath = loc.path.slice(0, -1).filter((p): p is string => typeof p === 'string');
    const parent = fieldInfo(parentPath);
    if (!parent?.keys) return [];
    const parentNode = root ? (parentPath.length ? findNodeAtLocation(root, parentPath) : root) : undefined;
    const present = new Set((parentNode?.type === 'object' ? parentNode.children ?? [] : []).map((p) => p.children?.[0]?.value as string));
    const current = loc.path[loc.path.length - 1];
    return parent.keys.filter((k) => k === current || !present.has(k)).map((k) => {
      const f = fieldInfo([...parentPath, k])!;
      const value = f.type === 'object' ? '{$1}' : f.defaultJson !== null ? `\${1:${f.defaultJson.replace(/[$}\\]/g, '\\$&')}}` : '$1';
      return {
        label: k, kind: 'property' as const, detail: f.type === 'object' ? 'section' : f.enumValues && f.type === 'enum' ? f.enumValues.join(' | ') : f.type,
        documentation: hoverMarkdown(f), insertText: replace ? `"${k}"` : `"${k}": ${value}`, replace, snippet: !replace,
      };
    });
  }
  const path = loc.path.filter((p): p is string => typeof p === 'string');
  const f = fieldInfo(path);
  if (!f) return [];
  const items: Completion[] = [];
  const doc = hoverMarkdown(f);
  if (f.type === 'enum' && f.enumValues) {
    const host = path.join('.') === 'data.dataset' && hostDatasets ? new Set(hostDatasets) : null;
    for (const v of f.enumValues) items.push({ label: `"${v}"`, kind: 'value', detail: host && !host.has(v) ? 'not on the daemon host' : (f.defaultJson === JSON.stringify(v) ? 'default' : null), documentation: doc, insertText: `"${v}"`, replace, snippet: false });
  } else if (f.type === 'boolean') {
    for (const v of ['true', 'false']) items.push({ label: v, kind: 'value', detail: f.defaultJson === v ? 'default' : null, documentation: doc, insertText: v, replace, snippet: false });
  } else if (f.defaultJson !== null && f.type !== 'object') {
    items.push({ label: f.defaultJson, kind: 'value', detail: 'default', documentation: doc, insertText: f.defaultJson, replace, snippet: false });
  }
  if (f.nullable && !items.some((i) => i.label === 'null')) items.push({ label: 'null', kind: 'value', detail: null, documentation: doc, insertText: 'null', replace, snippet: false });
  return items;
}
