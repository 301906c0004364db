/**
 * The data module's public face: real dataset loaders, the synthetic task, and `getProblems`, one entry point
 * that maps (dataset, train/dev/eval) to problems the way a run uses them.
 */
import { loadDataset, splitProblems, DatasetError, type RealDatasetName } from './datasets';
import { generateProblems, type HeldOutMode, type Level, type SyntheticSplit } from './synthetic';
import { rngFor, shuffled } from './rng';
import type { Problem } from './types';

export * from './datasets';
export * from './synthetic';
export { lastBoxed } from './boxed';
export type { Problem, Demo } from './types';

export interface GetProblemsOptions {
  dataset: 'synthetic' | RealDatasetName;
  split: SyntheticSplit;
  count: number;
  seed: number;
  /** Synthetic difficulty (default 1). */
  level?: Level;
  /** Synthetic: how dev/eval relate to train (default 'shifted'). */
  heldOut?: HeldOutMode;
  dataDir?: string;
}

/** Share of a real dataset's train file held out as its dev split (fixed, so dev is the same for every run seed). */
export const REAL_DEV_FRACTION = 0.05;

/**
 * Problems for one role of a run.
 * - synthetic: generateProblems (train / dev / eval splits of the generator).
 * - gsm8k, math: eval = the first `count` rows of the test file (the same for every seed); dev = a fixed 5% of the
 *   train file (first `count`); train = the rest of the train file, shuffled by `seed`, first `count`.
 * - math500: eval = its 500 test problems; train and dev come from the MATH train file as above
 *   (MATH-500 is a subset of the MATH test split, so MATH train never overlaps it).
 * Rows without a gradable reference (meta.noReference) are left out. Asking for more than there are returns all.
 */
export function getProblems(opts: GetProblemsOptions): Problem[] {
  if (!Number.isInteger(opts.count) || opts.count < 0) throw new DatasetError(`count must be a non-negative integer, got ${opts.count}`);
  if (opts.dataset === 'synthetic') {
    return generateProblems({ seed: opts.seed, count: opts.count, split: opts.split, level: opts.level ?? 1, heldOut: opts.heldOut });
  }
  const load = { dataDir: opts.dataDir };
  if (opts.split === 'eval') return loadDataset(opts.dataset, 'test', { ...load, limit: opts.count });
  if (opts.split !== 'train' && opts.split !== 'dev') {
    throw new DatasetError(`unknown split "${String(opts.split)}"; valid splits: train, dev, eval`);
  }
  const trainFile = opts.dataset === 'math500' ? 'math' : opts.dataset;
  const gradable = loadDataset(trainFile, 'train', load).filter((p) => !p.meta?.noReference);
  const parts = splitProblems(gradable, { seed: 0, evalFraction: 0, devFraction: REAL_DEV_FRACTION });
  if (opts.split === 'dev') return parts.dev.slice(0, opts.count);
  return shuffled(rngFor('train-order', opts.seed), parts.train).slice(0, opts.count);
}
