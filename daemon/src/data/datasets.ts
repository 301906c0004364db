/**
 * Loaders for the real datasets under the repository's data/ folder (copied from ../shared/data with their
 * LICENSE and SOURCE.md files): GSM8K (train/test), MATH (train/test) and MATH-500 (test).
 * Each row becomes a normalised Problem whose `answer` is the reference final answer:
 *   GSM8K: the number after `####` (thousands separators removed);
 *   MATH: the content of the last \boxed{} in the solution (brace matched);
 *   MATH-500: its `answer` field.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { lastBoxed } from './boxed';
import { hash32 } from './rng';
import type { Problem } from './types';

export type RealDatasetName = 'gsm8k' | 'math' | 'math500';
export type RealSplit = 'train' | 'test';

/** The files that exist: dataset -> splits. */
export const DATASET_SPLITS: Readonly<Record<RealDatasetName, readonly RealSplit[]>> = {
  gsm8k: ['train', 'test'],
  math: ['train', 'test'],
  math500: ['test'],
};

export interface LoadOptions {
  /** The data/ folder; default: dataDir(). */
  dataDir?: string;
  /** Keep only the first `limit` rows (the rest of the file is not parsed). */
  limit?: number;
}

/** Error for bad dataset files and bad loader arguments; the message says what to fix. */
export class DatasetError extends Error {
  override name = 'DatasetError';
}

/** Walk up from `start` looking for a folder that holds `data/gsm8k`; returns that data/ folder or null. */
function findDataUp(start: string): string | null {
  let dir = resolve(start);
  for (;;) {
    const candidate = join(dir, 'data');
    if (existsSync(join(candidate, 'gsm8k'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/**
 * The repository's data/ folder. MATHAGENT_DATA_DIR wins; otherwise walk up from this module's folder, which
 * works both from the TS sources (daemon/src/data) and from the esbuild bundle (daemon/dist/cli.cjs, where
 * __dirname is daemon/dist), then from the working directory.
 */
export function dataDir(): string {
  const env = process.env.MATHAGENT_DATA_DIR;
  if (env && env.trim() !== '') return resolve(env);
  const starts: string[] = [];
  // __dirname exists under CommonJS (tsx without "type": "module", and the cjs bundle); guard for ESM hosts.
  if (typeof __dirname === 'string') starts.push(__dirname);
  starts.push(process.cwd());
  for (const s of starts) {
    const found = findDataUp(s);
    if (found) return found;
  }
  throw new DatasetError(
    `cannot find the datasets folder: no data/gsm8k above ${starts.join(' or ')}. ` +
      'Run from inside the MathAgent Studio checkout, or set MATHAGENT_DATA_DIR to the data/ folder ' +
      '(the one that holds gsm8k/, math/ and math500/).',
  );
}

/** Path of one dataset file, validating the name and split. */
export function datasetPath(name: string, split: string, dir?: string): string {
  const splits = (DATASET_SPLITS as Record<string, readonly string[] | undefined>)[name];
  if (!splits) {
    throw new DatasetError(`unknown dataset "${name}"; valid datasets: ${Object.keys(DATASET_SPLITS).join(', ')} (and "synthetic", generated, not loaded)`);
  }
  if (!splits.includes(split)) {
    throw new DatasetError(`dataset "${name}" has no split "${split}"; valid splits for ${name}: ${splits.join(', ')}`);
  }
  return join(dir ?? dataDir(), name, `${split}.jsonl`);
}

type Row = Record<string, unknown>;

function str(row: Row, key: string, where: string): string {
  const v = row[key];
  if (typeof v !== 'string') {
    throw new DatasetError(`${where}: ${v === undefined ? 'missing' : `non-string (${typeof v})`} field "${key}"; each line must be a JSON object with a string "${key}"`);
  }
  return v;
}

/** GSM8K: the number after the last `####`, thousands separators removed. */
export function gsm8kAnswer(solution: string): string | null {
  const i = solution.lastIndexOf('####');
  if (i < 0) return null;
  const ans = solution.slice(i + 4).trim().replace(/,/g, '');
  return /^-?\d+(\.\d+)?$/.test(ans) ? ans : null;
}

function parseLevel(level: unknown): number | string {
  if (typeof level === 'number') return level;
  const m = typeof level === 'string' ? /^Level (\d)$/.exec(level) : null;
  return m ? Number(m[1]) : String(level ?? '?').replace(/^Level /, '');
}

function toProblem(name: RealDatasetName, split: RealSplit, index: number, row: Row, where: string): Problem {
  const id = `${name}/${split}/${index}`;
  if (name === 'gsm8k') {
    const question = str(row, 'question', where);
    const solution = str(row, 'answer', where);
    const answer = gsm8kAnswer(solution);
    if (answer === null) throw new DatasetError(`${where}: the "answer" field does not end with "#### <number>" (GSM8K format)`);
    return { id, question, answer, source: name, meta: { solution } };
  }
  const question = str(row, 'problem', where);
  const solution = str(row, 'solution', where);
  let answer: string | null;
  if (name === 'math500') {
    answer = str(row, 'answer', where);
  } else {
    answer = lastBoxed(solution);
    if (answer === null) throw new DatasetError(`${where}: the "solution" field has no \\boxed{...} final answer (or its braces do not match)`);
  }
  const subject = typeof row.type === 'string' ? row.type : typeof row.subject === 'string' ? row.subject : '?';
  const meta: Record<string, string | number> = { subject, level: parseLevel(row.level), solution };
  if (typeof row.unique_id === 'string') meta.uniqueId = row.unique_id;
  // Two MATH train rows (number_theory/7115 and 7117) end in an empty \boxed{} in the original release. They are
  // kept, so row counts and ids match the files, but flagged: no answer can be graded against them.
  if (answer === '') meta.noReference = 1;
  return { id, question, answer, source: name, meta };
}

/**
 * Load one split of a real dataset. Throws a DatasetError that names the file (and line) and says what to fix
 * for a missing file, a line that is not JSON, or a row without the expected fields.
 */
export function loadDataset(name: RealDatasetName, split: RealSplit, opts: LoadOptions = {}): Problem[] {
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 0)) {
    throw new DatasetError(`limit must be a non-negative integer, got ${opts.limit}`);
  }
  const file = datasetPath(name, split, opts.dataDir);
  if (!existsSync(file)) {
    throw new DatasetError(
      `dataset file not found: ${file}. Copy it from ../shared/data/${name}/ (with its LICENSE and SOURCE.md) into ` +
        `${dirname(file)}, or point MATHAGENT_DATA_DIR (or dataDir) at a data/ folder that has ${name}/${split}.jsonl.`,
    );
  }
  const text = readFileSync(file, 'utf8');
  const out: Problem[] = [];
  const limit = opts.limit ?? Infinity;
  let start = 0;
  let lineNo = 0;
  while (start < text.length && out.length < limit) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end).trim();
    start = end + 1;
    lineNo++;
    if (line === '') continue; // blank lines (a trailing newline, CRLF leftovers) carry no row
    const where = `${file}:${lineNo}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new DatasetError(`${where}: not valid JSON (${(e as Error).message}); each line must be one JSON object`);
    }
    if (row === null || typeof row !== 'object' || Array.isArray(row)) {
      throw new DatasetError(`${where}: expected a JSON object, got ${Array.isArray(row) ? 'an array' : row === null ? 'null' : typeof row}`);
    }
    out.push(toProblem(name, split, out.length, row as Row, where));
  }
  return out;
}

export interface SplitOptions {
  seed: number;
  /** Share of problems for the held-out eval part, in [0, 1]. */
  evalFraction: number;
  /** Share for a dev part (checkpoint selection), in [0, 1]; default 0. */
  devFraction?: number;
}

/**
 * Deterministic split of a problem list into train / dev / eval. Membership depends only on (seed, problem id),
 * not on the input order; part sizes are exact (rounded); each part keeps the input order.
 */
export function splitProblems(problems: readonly Problem[], opts: SplitOptions): { train: Problem[]; dev: Problem[]; eval: Problem[] } {
  const devFraction = opts.devFraction ?? 0;
  for (const [k, v] of [['evalFraction', opts.evalFraction], ['devFraction', devFraction]] as const) {
    if (!(v >= 0 && v <= 1)) throw new DatasetError(`splitProblems: ${k} must be in [0, 1], got ${v}`);
  }
  if (opts.evalFraction + devFraction > 1) throw new DatasetError('splitProblems: evalFraction + devFraction must be at most 1');
  const ids = new Set<string>();
  for (const p of problems) {
    if (ids.has(p.id)) throw new DatasetError(`splitProblems: duplicate problem id "${p.id}"`);
    ids.add(p.id);
  }
  const n = problems.length;
  const nEval = Math.round(n * opts.evalFraction);
  const nDev = Math.min(n - nEval, Math.round(n * devFraction));
  const ranked = problems
    .map((p, i) => ({ i, key: hash32('split', opts.seed, p.id) }))
    .sort((a, b) => a.key - b.key || (problems[a.i]!.id < problems[b.i]!.id ? -1 : 1));
  const part = new Array<0 | 1 | 2>(n).fill(0);
  ranked.forEach((r, rank) => {
    part[r.i] = rank < nEval ? 2 : rank < nEval + nDev ? 1 : 0;
  });
  const res = { train: [] as Problem[], dev: [] as Problem[], eval: [] as Problem[] };
  problems.forEach((p, i) => (part[i] === 2 ? res.eval : part[i] === 1 ? res.dev : res.train).push(p));
  return res;
}
