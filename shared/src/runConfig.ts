/**
 * The run configuration (`*.mathagent.json`). Every field has a default and a description: the description is
 * what the language server shows on hover, and `paper` is the value the paper used (Xiong et al., ICLR 2025).
 */
import { z } from 'zod';

export const Algorithm = z.enum(['mdpo', 'mkto', 'raft', 'dpo_unmasked']);
export type Algorithm = z.infer<typeof Algorithm>;

export const DatasetName = z.enum(['synthetic', 'gsm8k', 'math', 'math500']);
export type DatasetName = z.infer<typeof DatasetName>;

export const BackendName = z.enum(['auto', 'webgpu', 'tensorflow', 'wasm', 'cpu']);
export type BackendName = z.infer<typeof BackendName>;

/** Paper values, shown on hover next to each field's meaning. */
export const PAPER_VALUES: Record<string, string> = {
  'sampling.samplesPerPrompt': '30',
  'sampling.temperature': '1.0',
  'limits.maxTurns': '6',
  'limits.maxTurnTokens': '512',
  'limits.maxTrajectoryTokens': '2048',
  'train.beta': '0.1 (η)',
  'train.lr': '4e-7 / 2e-7 for 7–9B models',
  'train.batchSize': '32',
  'train.warmupSteps': '40',
  'train.epochs': '≤ 1',
  iterations: '3',
  'train.reference': 'previous (83.9/51.2 vs 79.9/48.0 with a fixed SFT reference)',
};

const d = <T extends z.ZodTypeAny>(s: T, text: string) => s.describe(text);

/** One OpenAI-compatible server of a remote policy. Keys are read from a file: run configs are stored. */
export const EndpointConfig = z.strictObject({
  url: d(z.string().min(1), 'Base URL, e.g. http://127.0.0.1:8000 (with or without /v1).'),
  concurrency: d(z.number().int().min(1).optional(), 'Most requests in flight on this endpoint (default: policy.concurrency).'),
  apiKeyFile: d(z.string().optional(), 'File holding the bearer token (e.g. the daemon token file for `mathagent serve`).'),
});

export const PolicyConfig = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('local') }),
  z.strictObject({
    kind: z.literal('openai'),
    endpoints: d(z.array(EndpointConfig).min(1), 'The servers of the pool.'),
    model: d(z.string().nullable().default(null), 'Model id sent with each request; null = the first id of GET /v1/models.'),
    template: d(z.enum(['mathagent', 'gemma', 'tora']).default('mathagent'), 'Chat template of the served model (gemma/tora: the paper\'s formats).'),
    concurrency: d(z.number().int().min(1).default(8), 'Default requests in flight per endpoint.'),
    timeoutMs: d(z.number().int().min(1).default(120_000), 'Time limit of one request (ms).'),
    retries: d(z.number().int().min(0).default(3), 'Retries of a failed request (with exponential back-off, on another endpoint when one is healthy).'),
    tokenizer: d(z.string().default('byte'), 'Tokenizer for prompts, observations and text-only results: byte (with the template\'s specials) or a MathAgent checkpoint folder.'),
    sendTokenIds: d(z.boolean().default(false), 'Send prompts as token ids (only when the tokenizer is the server\'s own).'),
  }),
]);
export type PolicyConfig = z.infer<typeof PolicyConfig>;

export const ExternalTrainerConfig = z.strictObject({
  command: d(z.string().min(1), 'Shell command run per iteration; placeholders {pairs} (TRL jsonl), {pairs_openrlhf}, {iteration}, {prev_checkpoint}, {out_dir}, {run_dir}.'),
  serve: d(z.string().nullable().default(null), 'Shell command that serves {checkpoint} on {port} (e.g. `vllm serve {checkpoint} --port {port}`); the pool is pointed at it once GET /v1/models answers.'),
  endpoint: d(z.string().nullable().default(null), 'Instead of serve: a fixed endpoint that serves the new checkpoint.'),
  readyTimeoutMs: d(z.number().int().min(1).default(600_000), 'How long to wait for the served checkpoint to answer (ms).'),
});
export type ExternalTrainerConfig = z.infer<typeof ExternalTrainerConfig>;

export const RunConfig = z.strictObject({
  name: d(z.string().default('run'), 'A name for the run, shown in the Runs view.'),
  seed: d(z.number().int().default(1), 'Seed for data generation, sampling and initialisation.'),
  algorithm: d(Algorithm.default('mdpo'), 'Preference-learning algorithm: mdpo (masked multi-turn DPO), mkto, raft (rejection-sampling fine-tuning), dpo_unmasked (single-turn DPO ablation).'),
  iterations: d(z.number().int().min(0).max(100).default(3), 'Online iterations of Algorithm 1 (sample → grade → pairs → train → eval).'),
  backend: d(BackendName.default('auto'), 'Compute backend; auto tries webgpu, tensorflow (tfjs-node-gpu), wasm, cpu.'),
  model: z.strictObject({
    preset: d(z.enum(['tiny', 'small', 'base']).default('small'), 'Model size preset: tiny (tests), small (~1M params, CPU), base (~25M, GPU).'),
    init: d(z.string().nullable().default(null), 'Checkpoint directory to start from instead of training an SFT model; null = train from scratch.'),
  }).prefault({}),
  data: z.strictObject({
    dataset: d(DatasetName.default('synthetic'), 'Training prompts: synthetic tool-arithmetic task, gsm8k, math or math500.'),
    trainPrompts: d(z.number().int().min(1).default(64), 'Prompts sampled per iteration.'),
    evalPrompts: d(z.number().int().min(1).default(200), 'Held-out prompts for greedy pass@1.'),
    devPrompts: d(z.number().int().min(0).default(0), 'Separate dev prompts used to select the best checkpoint (0 = use the eval split).'),
    difficulty: d(z.number().int().min(0).max(3).default(1), 'Synthetic task difficulty: 0 = yes/no version of level 1 (smoke tests: a guess is right half the time), 1 = two tool calls with 2–4 digit operands, 2 = three calls, 4-digit, 3 = three calls, 5-digit.'),
    heldOut: d(z.enum(['shifted', 'same']).default('shifted'), 'Synthetic task: shifted = dev/eval use other sentence frames and larger numbers than train (a generalisation test); same = all splits share the training distribution, disjoint questions (1/8 eval, 1/8 dev by a hash of the text; demonstrations never use them).'),
    promptsFromDemos: d(z.boolean().default(false), 'Synthetic task: the online prompts are the problems of the SFT demonstrations (as in the paper, where SFT data and online prompts both come from the GSM8K/MATH train sets), taken in turn; false = fresh train problems every iteration.'),
  }).prefault({}),
  sft: z.strictObject({
    enabled: d(z.boolean().default(true), 'Train an SFT model on demonstrations before the online iterations.'),
    demos: d(z.number().int().min(0).default(2000), 'Number of synthetic demonstrations.'),
    flawedShare: d(z.number().min(0).max(1).default(0.3), 'Share of flawed demonstrations, so the SFT model is imperfect.'),
    flawFamilies: d(z.array(z.enum(['shopping', 'production', 'sharing', 'discount', 'units', 'budget'])).nullable().default(null), 'Synthetic families that receive the flawed demonstrations (null = all); concentrating flaws makes a learnable mistake.'),
    steps: d(z.number().int().min(0).default(300), 'SFT optimiser steps.'),
    lr: d(z.number().positive().default(1e-3), 'SFT learning rate.'),
    schedule: d(z.enum(['cosine', 'linear', 'constant']).default('cosine'), 'SFT learning-rate decay after warm-up. A from-scratch model learns to copy digits only after a few hundred steps at a high rate (docs/model.md): a short cosine schedule decays before that; constant keeps the rate up.'),
    batchSize: d(z.number().int().min(1).default(16), 'SFT batch size (sequences).'),
    copyDrills: d(z.number().min(0).max(4).default(0), 'Copy drills ("Repeat: the 4821 also 7730." → "4821 7730") added per demonstration: pure copying practice for a from-scratch model (0 = none). Measured (docs/model.md): with 0.5 drills per demo the small model still copied 23% of digits at step 500, against 88% without drills.'),
  }).prefault({}),
  sampling: z.strictObject({
    samplesPerPrompt: d(z.number().int().min(1).default(8), 'N trajectories sampled per prompt per iteration.'),
    temperature: d(z.number().min(0).max(2).default(0.7), 'Sampling temperature for training trajectories.'),
    topP: d(z.number().gt(0).max(1).default(1), 'Nucleus sampling threshold.'),
    previousPolicyShare: d(z.number().min(0).max(1).default(0), 'Share of samples drawn from the previous iteration\'s policy (mixture sampling).'),
    batchSize: d(z.number().int().min(1).default(64), 'Trajectories generated together (KV-cache batch).'),
  }).prefault({}),
  limits: z.strictObject({
    maxTurns: d(z.number().int().min(1).default(6), 'H: maximum model turns per trajectory.'),
    maxTurnTokens: d(z.number().int().min(1).default(512), 'Maximum tokens generated in one turn.'),
    maxTrajectoryTokens: d(z.number().int().min(1).default(2048), 'Maximum tokens in a whole trajectory.'),
    toolTimeoutMs: d(z.number().int().min(1).default(2000), 'Time limit per tool call (ms).'),
  }).prefault({}),
  tool: z.strictObject({
    python: d(z.boolean().default(false), 'Enable the Python tool (runs code in a python3 subprocess; a risk on shared hosts).'),
    pythonTimeoutMs: d(z.number().int().min(1).default(20_000), 'Time limit of one Python tool call, earlier cells re-run included (ms).'),
  }).prefault({}),
  train: z.strictObject({
    beta: d(z.number().positive().default(0.1), 'β (the paper\'s η): KL regularisation strength in M-DPO / M-KTO.'),
    lr: d(z.number().positive().default(1e-5), 'Learning rate for preference training.'),
    batchSize: d(z.number().int().min(1).default(8), 'Pairs per optimiser step.'),
    microBatchSize: d(z.number().int().min(1).default(8), 'Pairs per forward pass (gradient accumulation when smaller than batchSize).'),
    epochs: d(z.number().min(0).default(1), 'Passes over each iteration\'s pairs.'),
    warmupSteps: d(z.number().int().min(0).default(5), 'Linear warm-up steps.'),
    schedule: d(z.enum(['cosine', 'linear', 'constant']).default('cosine'), 'Learning-rate decay after warm-up.'),
    gradClip: d(z.number().positive().default(1), 'Global gradient-norm clip.'),
    weightDecay: d(z.number().min(0).default(0), 'AdamW decoupled weight decay.'),
    labelSmoothing: d(z.number().min(0).max(0.5).default(0), 'Conservative DPO label smoothing.'),
    nllWeight: d(z.number().min(0).default(0.2), 'Weight of an NLL term on the chosen trajectory\'s action tokens.'),
    reference: d(z.enum(['previous', 'sft']).default('previous'), 'Reference model: the previous iteration\'s model, or the fixed SFT model.'),
    raftKeep: d(z.number().int().min(1).default(1), 'RAFT: correct trajectories kept per prompt.'),
    raftFrom: d(z.enum(['all', 'pairs']).default('all'), 'RAFT\'s data: correct samples of every prompt that has one (all), or only the chosen trajectories of the pairs M-DPO would train on (pairs: the same positive data as M-DPO, an ablation; raftKeep does not apply).'),
    pairsPerPrompt: d(z.number().int().min(1).default(1), 'Pairs drawn per prompt: the paper\'s one random correct against one random wrong trajectory, plus distinct further pairs from the same samples when > 1.'),
  }).prefault({}),
  eval: z.strictObject({
    passK: d(z.number().int().min(1).default(8), 'k for pass@k (sampled at evalTemperature).'),
    passKPrompts: d(z.number().int().min(1).nullable().default(null), 'How many of the held-out problems (the first ones) also get k samples for pass@k; null = all. Sampling k per problem costs k times the greedy pass.'),
    passKAt: d(z.enum(['every', 'ends']).default('every'), 'When pass@k is sampled: every evaluation, or only the starting model\'s and the final iteration\'s (ends).'),
    initial: d(z.boolean().default(true), 'Evaluate the starting model (iteration 0) before the first iteration. The paper-mini experiment turns it off for its arms: its SFT run already evaluated that model on the same problems.'),
    evalTemperature: d(z.number().min(0).max(2).default(0.7), 'Temperature for pass@k samples.'),
    everySteps: d(z.number().int().min(0).default(0), 'Also evaluate every K training steps (0 = once per iteration).'),
    split: d(z.enum(['eval', 'dev', 'train']).default('eval'), 'Problems evaluated: eval (the held-out test split, default), dev, or train (how well the policy fits training-distribution prompts).'),
  }).prefault({}),
  policy: d(PolicyConfig.default({ kind: 'local' }), 'Who samples trajectories: local (this daemon\'s model) or openai (a pool of OpenAI-compatible servers: vLLM, SGLang, llama.cpp, `mathagent serve`).'),
  externalTrainer: d(ExternalTrainerConfig.nullable().default(null), 'Train each iteration with an external command (TRL, OpenRLHF) instead of in the daemon; needs policy.kind "openai". null = train in the daemon.'),
});
export type RunConfig = z.infer<typeof RunConfig>;
export type RunConfigInput = z.input<typeof RunConfig>;

/** Format zod issues as `path: message` lines a person can act on. */
export function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('\n');
}
