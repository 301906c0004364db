/**
 * `mathagent eval [checkpoint]`: greedy pass@1 (95% interval) and pass@k of a checkpoint, or of a model served by
 * OpenAI-compatible endpoints (vLLM, SGLang, `mathagent serve`), on a dataset split, with a per-subject / per-level
 * breakdown where the dataset has subjects (MATH, MATH-500).
 *
 * The evaluation is a run of kind `eval` (iterations 0, no SFT) executed by the pipeline like any run: its greedy
 * trajectories, summary and breakdown go to the run store (the extension shows and steps through them), it is
 * resumable (`mathagent run --resume <id>`), and the remote policy is built exactly as a run's `policy` config.
 * `--no-store` keeps it in an in-memory store that is dropped at exit.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { DatasetName, PolicyConfig, RunConfig, formatIssues, type EvalBreakdown, type RunConfigInput } from '@mathagent/shared';
import { openContext, stopRunOnSigint } from './context';
import { ProgressView, formatTable } from './progress';
import { parseSets } from './run';
import { deepMerge } from '../pipeline/config';
import { resolveCheckpoint, runProblems } from '../pipeline/execute';
import { checkEvalConfig } from '../pipeline/runManager';

export interface EvalOptions {
  dataset: string; split: string; n: number; k: number; temperature: number; level: number; seed: number; maxTurns: number;
  backend: string; endpoint: string[]; model?: string; template: string; apiKeyFile?: string; set: string[];
  db?: string; store: boolean; json?: boolean;
}

const SPLITS = ['eval', 'dev', 'train'] as const;

/**
 * The run config of an evaluation: iterations 0, SFT off, the checkpoint as `model.init` or the endpoints as an
 * `openai` policy; `--set` overrides last. Throws a one-line error naming the flag to fix.
 */
export function evalRunConfig(checkpoint: string | undefined, o: EvalOptions): RunConfig {
  const dataset = DatasetName.safeParse(o.dataset);
  if (!dataset.success) throw new Error(`--dataset must be one of ${DatasetName.options.join(', ')}; got "${o.dataset}"`);
  if (!(SPLITS as readonly string[]).includes(o.split)) throw new Error(`--split must be one of ${SPLITS.join(', ')}; got "${o.split}"`);
  for (const [flag, v, min] of [['-n', o.n, 1], ['-k', o.k, 1], ['--max-turns', o.maxTurns, 1], ['--seed', o.seed, 0]] as const) {
    if (!Number.isInteger(v) || v < min) throw new Error(`${flag} must be an integer ≥ ${min}; got ${String(v)}`);
  }
  if (checkpoint !== undefined && o.endpoint.length) throw new Error('give a checkpoint to evaluate locally, or --endpoint for a served model, not both');
  if (checkpoint === undefined && !o.endpoint.length) throw new Error('nothing to evaluate: give a checkpoint folder, or --endpoint <url> (repeatable) for a served model');
  if (!o.endpoint.length && (o.model !== undefined || o.apiKeyFile !== undefined)) throw new Error('--model and --api-key-file apply to --endpoint');
  let policy: Record<string, unknown> = { kind: 'local' };
  if (o.endpoint.length) {
    const parsed = PolicyConfig.safeParse({
      kind: 'openai', model: o.model ?? null, template: o.template,
      endpoints: o.endpoint.map((url) => ({ url, ...(o.apiKeyFile !== undefined ? { apiKeyFile: o.apiKeyFile } : {}) })),
    });
    if (!parsed.success) throw new Error(`--endpoint / --model / --template: ${formatIssues(parsed.error).replace(/\n/g, '; ')}`);
    policy = parsed.data;
  } else if (!existsSync(resolveCheckpoint(checkpoint!))) {
    throw new Error(`checkpoint ${checkpoint} not found: give the folder a run saved (e.g. <runs dir>/<run id>/iter-2)`);
  }
  const what = checkpoint !== undefined ? basename(checkpoint) : (o.model ?? o.endpoint[0]!);
  const base: RunConfigInput = {
    name: `eval ${what} on ${dataset.data}${o.split === 'eval' ? '' : ` (${o.split})`}`,
    seed: o.seed,
    iterations: 0,
    backend: o.backend as RunConfigInput['backend'],
    model: { init: checkpoint ?? null },
    data: { dataset: dataset.data, evalPrompts: o.n, difficulty: o.level },
    sft: { enabled: false },
    limits: { maxTurns: o.maxTurns },
    eval: { passK: o.k, evalTemperature: o.temperature, split: o.split as (typeof SPLITS)[number] },
  };
  const raw = deepMerge({ ...base, policy } as Record<string, unknown>, parseSets(o.set));
  const cfg = RunConfig.safeParse(raw);
  if (!cfg.success) throw new Error(`invalid evaluation settings:\n${formatIssues(cfg.error)}`);
  checkEvalConfig(cfg.data);
  return cfg.data;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The breakdown as two aligned tables (subject, then level): key, n, correct, pass@1. */
export function formatBreakdown(b: EvalBreakdown): string {
  const out: string[] = [];
  for (const [title, rows] of [['subject', b.subject], ['level', b.level]] as const) {
    if (rows.length) out.push(formatTable([title, 'n', 'correct', 'pass@1'], rows.map((r) => [r.key, r.n, r.correct, pct(r.pass1)])));
  }
  return out.join('\n\n');
}

export function register(program: Command): void {
  program
    .command('eval [checkpoint]')
    .description('greedy pass@1 and pass@k of a checkpoint (or of a served model: --endpoint) on a dataset split, stored as a run of kind "eval"')
    .option('--dataset <name>', 'synthetic | gsm8k | math | math500', 'synthetic')
    .option('-n, --n <count>', 'problems', (v) => Number.parseInt(v, 10), 200)
    .option('-k, --k <k>', 'samples per problem for pass@k (1 = greedy only)', (v) => Number.parseInt(v, 10), 1)
    .option('--temperature <t>', 'temperature of the pass@k samples', Number.parseFloat, 0.7)
    .option('--split <name>', 'eval | dev | train (eval: the held-out split a run evaluates on)', 'eval')
    .option('--level <n>', 'synthetic task level', (v) => Number.parseInt(v, 10), 1)
    .option('--seed <n>', 'seed', (v) => Number.parseInt(v, 10), 1)
    .option('--max-turns <n>', 'H', (v) => Number.parseInt(v, 10), 6)
    .option('--backend <name>', 'auto | webgpu | tensorflow | wasm | cpu', 'auto')
    .option('--endpoint <url>', 'OpenAI-compatible server of the model to evaluate (repeatable: a pool)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--model <name>', 'model id for --endpoint (default: the first of GET /v1/models)')
    .option('--template <name>', 'chat template of the served model: mathagent | gemma | tora', 'mathagent')
    .option('--api-key-file <file>', 'bearer token file for --endpoint (e.g. the token file of `mathagent serve`)')
    .option('-s, --set <key=value>', 'override one run config field, e.g. --set policy.concurrency=32 (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--db <path>', 'SQLite database (default: under the user data dir, or $MATHAGENT_DB)')
    .option('--no-store', 'do not store the evaluation (nothing is written)')
    .option('--json', 'print JSON')
    .action(async (checkpoint: string | undefined, o: EvalOptions) => {
      // Bad input fails here, before a run is created or the backend starts.
      const config = evalRunConfig(checkpoint, o);
      if (!runProblems(config, config.eval.split, config.data.evalPrompts).length) throw new Error(`no ${config.eval.split} problems in ${config.data.dataset}`);
      if (!o.store && o.db !== undefined) throw new Error('--db and --no-store contradict each other');
      const view = new ProgressView(process.stderr, false);
      // A served model needs no local compute: the cheapest backend (plain JS, nothing to initialise) stands in.
      const ctx = openContext({ db: o.store ? o.db : ':memory:', backend: config.policy.kind === 'openai' ? 'cpu' : config.backend, log: (l) => process.stderr.write(`· ${l}\n`) });
      let backend = 'remote';
      if (config.policy.kind === 'local') ctx.manager.onEngine((b) => { backend = b; });
      let runId = '';
      const unsub = ctx.bus.subscribe((e) => { if (e.runId === runId) view.handle(e); });
      const offSigint = stopRunOnSigint(ctx, () => runId);
      try {
        ({ runId } = await ctx.manager.start({ config: config as unknown as Record<string, unknown>, kind: 'eval' }));
        if (o.store) process.stderr.write(`eval run ${runId} (database ${ctx.dbPath})\n`);
        await ctx.manager.idle();
        view.stop();
        const run = ctx.store.getRunSummary(runId)!;
        if (run.state === 'failed') throw new Error(`evaluation failed: ${run.error ?? 'unknown error'}`);
        const e = ctx.store.getEval(runId, 0);
        if (run.state !== 'finished' || !e) {
          throw new Error(`evaluation ${run.state} before it finished${o.store ? `; continue it with \`mathagent run --resume ${runId}\`` : ''}`);
        }
        const stored = o.store ? runId : null;
        const target = checkpoint ?? `${config.policy.kind === 'openai' ? config.policy.model ?? 'served model' : ''} at ${o.endpoint.join(', ')}`;
        if (o.json) {
          const { problems: _problems, createdAt: _createdAt, runId: _runId, iteration: _iteration, ...summary } = e;
          process.stdout.write(JSON.stringify({ runId: stored, checkpoint: checkpoint ?? null, endpoints: o.endpoint, dataset: config.data.dataset, split: config.eval.split, backend, ...summary }) + '\n');
          return;
        }
        process.stdout.write(`${target} on ${config.data.dataset}${config.eval.split === 'eval' ? '' : ` (${config.eval.split} split)`} (${e.n} problems, ${backend}): ` +
          `pass@1 ${pct(e.pass1)} [${pct(e.ci95[0])}, ${pct(e.ci95[1])}]` + (e.passK !== null ? `, pass@${e.k} ${pct(e.passK)}` : '') +
          `, ${e.meanTurns.toFixed(2)} turns, tool errors ${pct(e.toolErrorRate)}\n`);
        if (e.breakdown) process.stdout.write('\n' + formatBreakdown(e.breakdown) + '\n');
        process.stdout.write(stored ? `\nstored as run ${stored}: mathagent runs show ${stored}\n` : '\nnot stored (--no-store)\n');
      } finally {
        offSigint();
        unsub();
        view.stop();
        await ctx.close();
      }
    });
}
