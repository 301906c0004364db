/**
 * `mathagent run`: the main job, in process (no daemon needed): Algorithm 1 from a preset or a config file,
 * progress bars per stage, and a table of pass@1 per iteration at the end (`--json`: one summary line).
 */
import type { Command } from 'commander';
import { BackendName, type BackendName as Backend } from '@mathagent/shared';
import { openContext, stopRunOnSigint } from './context';
import { ProgressView, StageTimer, formatTable } from './progress';
import { presetNames } from '../pipeline/config';
import type { Store } from '../store';

/** `--set train.lr=1e-5` → { train: { lr: 1e-5 } } (values parsed as JSON when they parse, else strings). */
export function parseSets(sets: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new Error(`--set expects key.path=value, got "${s}"`);
    const path = s.slice(0, eq).split('.');
    let value: unknown = s.slice(eq + 1);
    try { value = JSON.parse(value as string); } catch { /* keep the string */ }
    let node = out;
    for (const k of path.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
    node[path[path.length - 1]!] = value;
  }
  return out;
}

export function runSummary(store: Store, runId: string) {
  const got = store.getRun(runId);
  if (!got) throw new Error(`no run with id ${runId}`);
  const evals = store.listEvals(runId);
  const iterations = store.listIterations(runId);
  return {
    runId, name: got.run.name, kind: got.run.kind, state: got.run.state, error: got.run.error, algorithm: got.config.algorithm,
    bestPass1: got.run.bestPass1, bestIteration: got.run.bestIteration,
    iterations: evals.map((e) => {
      const it = iterations.find((i) => i.iteration === e.iteration);
      return { iteration: e.iteration, pass1: e.pass1, ci95: e.ci95, passK: e.passK, k: e.k, n: e.n, meanTurns: e.meanTurns, toolErrorRate: e.toolErrorRate,
        trajectories: it?.trajectories ?? 0, trainCorrect: it?.correct ?? 0, pairs: it?.pairs ?? 0, breakdown: e.breakdown };
    }),
  };
}

export function summaryTable(s: ReturnType<typeof runSummary>): string {
  const pct = (x: number | null) => (x === null ? '–' : `${(100 * x).toFixed(1)}%`);
  return formatTable(
    ['iteration', 'samples', 'correct', 'pairs', 'pass@1', '95% CI', 'pass@k', 'turns', 'tool err'],
    s.iterations.map((r) => [
      r.iteration === 0 && s.kind !== 'eval' ? '0 (SFT)' : String(r.iteration), r.trajectories || '–', r.trajectories ? pct(r.trainCorrect / r.trajectories) : '–', r.iteration === 0 ? '–' : r.pairs,
      pct(r.pass1), `${(100 * r.ci95[0]).toFixed(1)}–${(100 * r.ci95[1]).toFixed(1)}`, r.passK === null ? '–' : `${pct(r.passK)} (k=${r.k})`, r.meanTurns.toFixed(2), pct(r.toolErrorRate),
    ]),
  );
}

export function register(program: Command): void {
  program
    .command('run')
    .description('run Algorithm 1 (SFT → sample → grade → pairs → train → eval, per iteration) in this process')
    .option('-p, --preset <name>', `preset (${presetNames().join(', ')})`)
    .option('-c, --config <file>', 'run config file (*.mathagent.json); its fields override the preset')
    .option('-s, --set <key=value...>', 'override one config field, e.g. --set train.lr=1e-5 (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--algorithm <name>', 'mdpo | mkto | raft | dpo_unmasked')
    .option('--backend <name>', 'auto | webgpu | tensorflow | wasm | cpu')
    .option('--db <path>', 'SQLite database (default: under the user data dir, or $MATHAGENT_DB)')
    .option('--resume <runId>', 'continue an interrupted or stopped run')
    .option('--json', 'print one JSON summary line instead of the table')
    .action(async (o: { preset?: string; config?: string; set: string[]; algorithm?: string; backend?: string; db?: string; resume?: string; json?: boolean }) => {
      const backend = o.backend === undefined ? undefined : BackendName.parse(o.backend) as Backend;
      const overrides = parseSets(o.set);
      if (o.algorithm) overrides.algorithm = o.algorithm;
      if (backend) overrides.backend = backend;
      const view = new ProgressView(process.stderr, false);
      const timer = new StageTimer();
      const ctx = openContext({ db: o.db, backend, log: (l) => process.stderr.write(`· ${l}\n`) });
      let runId: string;
      const unsub = ctx.bus.subscribe((e) => { if (e.runId === runId) { view.handle(e); timer.handle(e); } });
      const offSigint = stopRunOnSigint(ctx, () => runId, '; resume with --resume');
      try {
        if (o.resume) {
          runId = o.resume;
          if (!(await ctx.manager.resume(runId))) throw new Error(`run ${runId} cannot be resumed (finished or unknown)`);
        } else {
          const preset = o.preset ?? (o.config ? undefined : 'smoke');
          ({ runId } = await ctx.manager.start({ preset, file: o.config, config: overrides }));
        }
        process.stderr.write(`run ${runId} (database ${ctx.dbPath})\n`);
        const started = Date.now();
        await ctx.manager.idle();
        view.stop();
        const s = runSummary(ctx.store, runId);
        const wallSeconds = (Date.now() - started) / 1000;
        if (o.json) {
          process.stdout.write(JSON.stringify({ ...s, wallSeconds, stageSeconds: timer.seconds }) + '\n');
        } else {
          process.stdout.write(`\n${summaryTable(s)}\n\nrun ${runId}: ${s.state}${s.error ? ` (${s.error})` : ''} in ${wallSeconds.toFixed(1)} s; ` +
            `best pass@1 ${s.bestPass1 === null ? '–' : `${(100 * s.bestPass1).toFixed(1)}% at iteration ${s.bestIteration}`}\n` +
            `time by stage: ${timer.breakdown(wallSeconds)}\n` +
            `inspect it: mathagent runs show ${runId}\n`);
        }
        if (s.state === 'failed') process.exitCode = 1;
      } finally {
        offSigint();
        unsub();
        await ctx.close();
      }
    });
}
