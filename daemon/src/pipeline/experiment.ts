/**
 * The paper-mini experiment (issue 6): one SFT model per seed, then 3 online iterations of each arm from it —
 * M-DPO (reference = previous iteration), M-DPO (fixed SFT reference), single-turn DPO (no observation mask),
 * M-KTO and RAFT — with the same prompts, budgets and seeds. Each SFT and each arm is an ordinary run in the store
 * (so the extension shows them live); the experiment's own state is a JSON file mapping arms to run ids, so a
 * re-invocation resumes unfinished runs and skips finished ones.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Algorithm, RunConfigInput } from '@mathagent/shared';
import type { Store } from '../store';
import type { RunManager } from './runManager';
import { deepMerge, PRESETS } from './config';

export interface Arm { key: string; label: string; algorithm: Algorithm; reference: 'previous' | 'sft' }

export const ARMS: Arm[] = [
  { key: 'mdpo', label: 'M-DPO (ref = previous)', algorithm: 'mdpo', reference: 'previous' },
  { key: 'mdpo_sftref', label: 'M-DPO (fixed SFT ref)', algorithm: 'mdpo', reference: 'sft' },
  { key: 'dpo_unmasked', label: 'DPO (no observation mask)', algorithm: 'dpo_unmasked', reference: 'previous' },
  { key: 'mkto', label: 'M-KTO', algorithm: 'mkto', reference: 'previous' },
  { key: 'raft', label: 'RAFT', algorithm: 'raft', reference: 'previous' },
];

export interface ExperimentState {
  preset: string;
  overrides: Record<string, unknown>;
  /** `sft/<seed>` and `<arm>/<seed>` → run id. */
  runs: Record<string, string>;
  startedAt: string;
  wallSeconds: number;
}

export interface ExperimentPlan { seeds: number[]; armSeeds: Record<string, number[]> }

/** SFT and M-DPO on every seed (≥ 3 for their confidence), the other arms on the first seed. */
export function planFor(seeds: number[]): ExperimentPlan {
  return { seeds, armSeeds: Object.fromEntries(ARMS.map((a) => [a.key, a.key === 'mdpo' ? seeds : seeds.slice(0, 1)])) };
}

function loadState(file: string, preset: string, overrides: Record<string, unknown>): ExperimentState {
  if (existsSync(file)) {
    const s = JSON.parse(readFileSync(file, 'utf8')) as ExperimentState;
    if (s.preset !== preset || JSON.stringify(s.overrides) !== JSON.stringify(overrides)) {
      throw new Error(`${file} belongs to a different experiment (${s.preset} ${JSON.stringify(s.overrides)}); use --state to pick another file`);
    }
    return s;
  }
  return { preset, overrides, runs: {}, startedAt: new Date().toISOString(), wallSeconds: 0 };
}

function save(file: string, s: ExperimentState): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(s, null, 2));
}

/** Start (or resume) one run and wait for it; returns its id. */
async function ensureRun(store: Store, manager: RunManager, state: ExperimentState, file: string, key: string, config: Record<string, unknown>): Promise<string> {
  const existing = state.runs[key];
  if (existing) {
    const run = store.getRunSummary(existing);
    if (run?.state === 'finished') return existing;
    if (run) { await manager.resume(existing); await manager.idle(); return check(store, existing, key); }
  }
  const { runId } = await manager.start({ config });
  state.runs[key] = runId;
  save(file, state);
  await manager.idle();
  return check(store, runId, key);
}

function check(store: Store, runId: string, key: string): string {
  const run = store.getRunSummary(runId);
  if (run?.state !== 'finished') throw new Error(`experiment run ${key} (${runId}) ended ${run?.state ?? 'missing'}${run?.error ? `: ${run.error}` : ''}; re-run the same command to resume`);
  return runId;
}

export async function runExperiment(opts: {
  store: Store; manager: RunManager; stateFile: string; preset: string; overrides: Record<string, unknown>; seeds: number[];
  onStage?: (message: string) => void;
}): Promise<ExperimentState> {
  const base = PRESETS[opts.preset];
  if (!base) throw new Error(`unknown preset ${opts.preset}`);
  const state = loadState(opts.stateFile, opts.preset, opts.overrides);
  // Wall time is banked after every run, so an interrupted experiment still reports the time it took in all.
  let mark = Date.now();
  const bank = () => { const t = Date.now(); state.wallSeconds += (t - mark) / 1000; mark = t; save(opts.stateFile, state); };
  const plan = planFor(opts.seeds);
  const common = deepMerge(base as Record<string, unknown>, opts.overrides);
  for (const seed of plan.seeds) {
    opts.onStage?.(`SFT, seed ${seed}`);
    const sftId = await ensureRun(opts.store, opts.manager, state, opts.stateFile, `sft/${seed}`, deepMerge(common, { name: `${opts.preset} SFT s${seed}`, seed, iterations: 0 }));
    bank();
    const sftCkpt = opts.store.listCheckpoints(sftId).find((c) => c.iteration === 0);
    if (!sftCkpt) throw new Error(`SFT run ${sftId} has no iteration-0 checkpoint`);
    for (const arm of ARMS) {
      if (!plan.armSeeds[arm.key]!.includes(seed)) continue;
      opts.onStage?.(`${arm.label}, seed ${seed}`);
      const cfg: RunConfigInput = deepMerge(common, {
        name: `${opts.preset} ${arm.key} s${seed}`, seed, algorithm: arm.algorithm,
        model: { init: sftCkpt.path }, sft: { enabled: false }, train: { reference: arm.reference },
        // The SFT run already evaluated this very model on the same problems (same seed): the report takes it from there.
        eval: { initial: false },
      });
      await ensureRun(opts.store, opts.manager, state, opts.stateFile, `${arm.key}/${seed}`, cfg as Record<string, unknown>);
      bank();
    }
  }
  bank();
  return state;
}
