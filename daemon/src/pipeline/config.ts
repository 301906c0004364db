/**
 * Run configuration: named presets, config files, and validation with errors that name the field path.
 * Precedence: schema defaults < preset < config file < explicit overrides (CLI flags / run/start params).
 */
import { readFileSync } from 'node:fs';
import { RunConfig, formatIssues, type RunConfigInput } from '@mathagent/shared';

/** Deep-merge plain objects (arrays and scalars are replaced). */
export function deepMerge<T extends Record<string, unknown>>(base: T, over: Record<string, unknown>): T {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlain(b) && isPlain(v) ? deepMerge(b, v) : v;
  }
  return out as T;
}
function isPlain(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * Presets. `smoke` exercises every stage (SFT, sampling with tool calls, grading, pairs, M-DPO, eval) in well
 * under 3 minutes on 2 CPU cores; `paper-mini` is the miniature reproduction of the paper (issue 6).
 */
export const PRESETS: Record<string, RunConfigInput> = {
  smoke: {
    name: 'smoke',
    iterations: 2,
    backend: 'auto',
    model: { preset: 'tiny' },
    // Level 0 (yes/no answers): a model this small, trained for a minute from scratch, learns the multi-turn tool
    // format but not to copy digits; with 0/1 answers its samples are right about half the time, so prompts get
    // both correct and wrong trajectories and the pair and M-DPO stages run on real data.
    data: { dataset: 'synthetic', trainPrompts: 16, evalPrompts: 32, difficulty: 0 },
    sft: { enabled: true, demos: 800, flawedShare: 0.3, steps: 200, lr: 3e-3, batchSize: 16 },
    sampling: { samplesPerPrompt: 4, temperature: 0.7, batchSize: 64 },
    limits: { maxTurns: 5, maxTurnTokens: 160, maxTrajectoryTokens: 512 },
    train: { lr: 1e-4, batchSize: 8, microBatchSize: 8, warmupSteps: 2, epochs: 1 },
    eval: { passK: 2, evalTemperature: 0.7 },
  },
  /**
   * SFT only (no online iterations) of the `small` model on 60k lightly flawed demonstrations: a starting checkpoint
   * for other runs (`model.init`). Meant for a GPU (`--backend webgpu`); on 2 CPU cores it takes over an hour.
   */
  'smoke-sft': {
    name: 'smoke-sft',
    iterations: 0,
    model: { preset: 'small' },
    data: { dataset: 'synthetic', trainPrompts: 16, evalPrompts: 200, difficulty: 1 },
    sft: { enabled: true, demos: 60000, flawedShare: 0.1, steps: 1500, lr: 2e-3, batchSize: 64 },
    limits: { maxTurns: 4, maxTurnTokens: 160, maxTrajectoryTokens: 512 },
    eval: { passK: 1 },
  },
  /**
   * The miniature reproduction (issue 6; docs/results/paper-mini.md). Level-1 problems (two tool calls), held-out
   * problems from the training distribution (heldOut 'same': the 'shifted' split left the SFT model at 10%, too hard
   * for any effect to show), and a learnable mistake: 60% of the discount and units demonstrations are flawed.
   * 1200 SFT steps at a constant rate: the small model learns to copy digits between steps ~430 and 500
   * (docs/model.md), and at 600 it still slipped on digits often enough to hide most of what preference learning
   * does (docs/results/sft600/). Budgets sized for a 2-core CPU: see the report for where the time goes.
   */
  'paper-mini': {
    name: 'paper-mini',
    iterations: 3,
    model: { preset: 'small' },
    data: { dataset: 'synthetic', trainPrompts: 96, evalPrompts: 1000, devPrompts: 0, difficulty: 1, heldOut: 'same' },
    sft: { enabled: true, demos: 8000, flawedShare: 0.2, flawFamilies: ['discount', 'units'], steps: 1200, lr: 2e-3, schedule: 'constant', batchSize: 16 },
    sampling: { samplesPerPrompt: 8, temperature: 0.7, batchSize: 64 },
    limits: { maxTurns: 5, maxTurnTokens: 160, maxTrajectoryTokens: 512 },
    train: { lr: 2e-4, batchSize: 16, microBatchSize: 8, warmupSteps: 2, epochs: 2, nllWeight: 1 },
    eval: { passK: 8, evalTemperature: 0.7, passKPrompts: 100, passKAt: 'ends' },
  },
};

export class ConfigError extends Error {}

export function presetNames(): string[] {
  return Object.keys(PRESETS);
}

/** Build and validate a run config; throws ConfigError with `path: message` lines on a bad field. */
export function resolveConfig(opts: { preset?: string; file?: string; overrides?: Record<string, unknown> }): RunConfig {
  let raw: Record<string, unknown> = {};
  if (opts.preset !== undefined) {
    const p = PRESETS[opts.preset];
    if (!p) throw new ConfigError(`unknown preset "${opts.preset}"; known presets: ${presetNames().join(', ')}`);
    raw = deepMerge(raw, p as Record<string, unknown>);
  }
  if (opts.file !== undefined) {
    let text: string;
    try { text = readFileSync(opts.file, 'utf8'); } catch (e) {
      throw new ConfigError(`cannot read config file ${opts.file}: ${(e as Error).message}`);
    }
    let parsed: unknown;
    try { parsed = JSON.parse(text); } catch (e) {
      throw new ConfigError(`config file ${opts.file} is not valid JSON: ${(e as Error).message}`);
    }
    if (!isPlain(parsed)) throw new ConfigError(`config file ${opts.file} must hold a JSON object`);
    const { preset, ...rest } = parsed as Record<string, unknown>;
    if (typeof preset === 'string' && opts.preset === undefined) return resolveConfig({ preset, overrides: deepMerge(rest, opts.overrides ?? {}) });
    raw = deepMerge(raw, rest);
  }
  if (opts.overrides) raw = deepMerge(raw, opts.overrides);
  const r = RunConfig.safeParse(raw);
  if (!r.success) {
    const where = opts.file ? ` in ${opts.file}` : '';
    throw new ConfigError(`invalid run config${where}:\n${formatIssues(r.error)}`);
  }
  return r.data;
}
