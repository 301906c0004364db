/**
 * The paper-mini experiment (issue 6): one SFT model per seed, then 3 online iterations of each arm from it —
 * M-DPO (reference = previous iteration), M-DPO (fixed SFT reference), single-turn DPO (no observation mask),
 * M-KTO, RAFT, and RAFT trained only on the chosen side of M-DPO's pairs (an ablation) — with the same prompts,
 * budgets and seeds. Each SFT and each arm is an ordinary run in the store
 * (so the extension shows them live); the experiment's own state is a JSON file mapping arms to run ids, so a
 * re-invocation resumes unfinished runs and skips finished ones.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Algorithm, RunConfigInput } from '@mathagent/shared';
import type { Store } from '../store';
import type { RunManager } from './runManager';
import { deepMerge, PRESETS } from './config';

export interface Arm {
  key: string;
  label: string;
  algorithm: Algorithm;
  reference: 'previous' | 'sft';
  /** More `train` fields for this arm (an ablation's one changed knob). */
  train?: NonNullable<RunConfigInput['train']>;
}

export const ARMS: Arm[] = [
  { key: 'mdpo', label: 'M-DPO (ref = previous)', algorithm: 'mdpo', reference: 'previous' },
  { key: 'mdpo_sftref', label: 'M-DPO (fixed SFT ref)', algorithm: 'mdpo', reference: 'sft' },
  { key: 'dpo_unmasked', label: 'DPO (no observation mask)', algorithm: 'dpo_unmasked', reference: 'previous' },
  { key: 'mkto', label: 'M-KTO', algorithm: 'mkto', reference: 'previous' },
  { key: 'raft', label: 'RAFT', algorithm: 'raft', reference: 'previous' },
  // The ablation that says why RAFT is ahead: RAFT on exactly the chosen trajectories M-DPO trains on (same samples
  // in iteration 1, same pairs), so the two differ only by M-DPO's preference term.
  { key: 'raft_pairs', label: 'RAFT (pairs\' chosen only)', algorithm: 'raft', reference: 'previous', train: { raftFrom: 'pairs' } },
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

/**
 * SFT, M-DPO, RAFT and RAFT on the pairs' chosen trajectories on every seed (≥ 3 for their confidence, and so that
 * the M-DPO-vs-RAFT comparison is not decided by one seed's SFT model); the other arms on the first seed.
 */
export const EVERY_SEED = new Set(['mdpo', 'raft', 'raft_pairs']);
export function planFor(seeds: number[]): ExperimentPlan {
  return { seeds, armSeeds: Object.fromEntries(ARMS.map((a) => [a.key, EVERY_SEED.has(a.key) ? seeds : seeds.slice(0, 1)])) };
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

/**
 * Executes the experiment's runs. `slots` runs may execute at once: 1 in this process (tfjs kernels of one
 * process share one backend), more as child processes (wasm runs one core per process, so 2 cores run 2 runs).
 */
export interface RunLauncher {
  slots: number;
  /** Create a run from `config` (calling `created` with its id before it executes) or continue `runId`; resolves when it has stopped, whatever its end state. */
  launch(p: { key: string; runId?: string; config?: Record<string, unknown>; created: (runId: string) => void }): Promise<string>;
}

/** The in-process launcher: the run manager executes one run at a time. */
export function managerLauncher(manager: Pick<RunManager, 'start' | 'resume' | 'idle'>): RunLauncher {
  return {
    slots: 1,
    async launch(p) {
      let runId = p.runId;
      if (runId) await manager.resume(runId);
      else { runId = (await manager.start({ config: p.config })).runId; p.created(runId); }
      await manager.idle();
      return runId;
    },
  };
}

/** One run of the experiment: its state key (`sft/1`, `mdpo/2`), the keys it waits for, and its config once those have finished. */
export interface ExperimentTask { key: string; after: string[]; config: () => Record<string, unknown> }

/**
 * Run tasks with at most `slots` at once, each after the tasks it waits for, in list order among the ready ones.
 * A failed task lets the running ones finish, starts nothing new, and is rethrown at the end.
 */
export async function runTasks(tasks: ExperimentTask[], slots: number, exec: (t: ExperimentTask) => Promise<void>): Promise<void> {
  const done = new Set<string>();
  const waiting = [...tasks];
  const running = new Map<string, Promise<void>>();
  let failure: unknown = null;
  for (;;) {
    if (failure === null) {
      for (let i = 0; i < waiting.length && running.size < slots;) {
        const t = waiting[i]!;
        if (!t.after.every((k) => done.has(k))) { i++; continue; }
        waiting.splice(i, 1);
        const p = Promise.resolve().then(() => exec(t)).then(() => { done.add(t.key); }, (e: unknown) => { failure ??= e; })
          .finally(() => running.delete(t.key));
        running.set(t.key, p);
      }
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }
  if (failure !== null) throw failure;
  if (waiting.length) throw new Error(`experiment tasks wait for tasks that are not in the plan: ${waiting.map((t) => t.key).join(', ')}`);
}

function check(store: Store, runId: string, key: string): string {
  const run = store.getRunSummary(runId);
  if (run?.state !== 'finished') throw new Error(`experiment run ${key} (${runId}) ended ${run?.state ?? 'missing'}${run?.error ? `: ${run.error}` : ''}; re-run the same command to resume`);
  return runId;
}

export async function runExperiment(opts: {
  store: Store; manager: Pick<RunManager, 'start' | 'resume' | 'idle'>; stateFile: string; preset: string; overrides: Record<string, unknown>; seeds: number[];
  /** Defaults to the in-process launcher over `manager`. */
  launcher?: RunLauncher;
  onStage?: (message: string) => void;
}): Promise<ExperimentState> {
  const base = PRESETS[opts.preset];
  if (!base) throw new Error(`unknown preset ${opts.preset}`);
  const { store } = opts;
  const launcher = opts.launcher ?? managerLauncher(opts.manager);
  const state = loadState(opts.stateFile, opts.preset, opts.overrides);
  // Wall time is banked after every run, so an interrupted experiment still reports the time it took in all.
  let mark = Date.now();
  const bank = () => { const t = Date.now(); state.wallSeconds += (t - mark) / 1000; mark = t; save(opts.stateFile, state); };
  const plan = planFor(opts.seeds);
  const common = deepMerge(base as Record<string, unknown>, opts.overrides);
  const tasks: ExperimentTask[] = [];
  const labels: Record<string, string> = {};
  // Every SFT run first: they are the longest runs and every arm waits for one, so with --jobs the last seed's SFT
  // no longer starts only after the first seeds' arms (which left a core idle while it trained).
  for (const seed of plan.seeds) {
    const sftKey = `sft/${seed}`;
    labels[sftKey] = `SFT, seed ${seed}`;
    tasks.push({ key: sftKey, after: [], config: () => deepMerge(common, { name: `${opts.preset} SFT s${seed}`, seed, iterations: 0 }) });
  }
  for (const seed of plan.seeds) {
    const sftKey = `sft/${seed}`;
    for (const arm of ARMS) {
      if (!plan.armSeeds[arm.key]!.includes(seed)) continue;
      const key = `${arm.key}/${seed}`;
      labels[key] = `${arm.label}, seed ${seed}`;
      tasks.push({
        key, after: [sftKey], config: () => {
          const sftId = state.runs[sftKey]!;
          const sftCkpt = store.listCheckpoints(sftId).find((c) => c.iteration === 0);
          if (!sftCkpt) throw new Error(`SFT run ${sftId} has no iteration-0 checkpoint`);
          return deepMerge(common, {
            name: `${opts.preset} ${arm.key} s${seed}`, seed, algorithm: arm.algorithm,
            model: { init: sftCkpt.path }, sft: { enabled: false }, train: { reference: arm.reference, ...arm.train },
            // The SFT run already evaluated this very model on the same problems (same seed): the report takes it from there.
            eval: { initial: false },
          } satisfies RunConfigInput);
        },
      });
    }
  }
  await runTasks(tasks, launcher.slots, async (t) => {
    const existing = state.runs[t.key];
    const run = existing ? store.getRunSummary(existing) : undefined;
    if (run?.state === 'finished') return;
    opts.onStage?.(labels[t.key]!);
    const created = (runId: string) => { state.runs[t.key] = runId; save(opts.stateFile, state); };
    const runId = await launcher.launch(run ? { key: t.key, runId: existing, created } : { key: t.key, config: t.config(), created });
    bank();
    check(store, runId, t.key);
  });
  bank();
  return state;
}
