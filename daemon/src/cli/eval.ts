/**
 * `mathagent eval <checkpoint>`: greedy pass@1 (95% interval) and pass@k of a checkpoint on a dataset split,
 * with a per-subject / per-level breakdown where the dataset has them (MATH, MATH-500).
 */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { BackendName, DatasetName, type Trajectory } from '@mathagent/shared';
import { createTfEngine } from '../pipeline/tfEngine';
import { getProblems } from '../data';
import type { Problem } from '../data/types';
import { getTemplate } from '../env/templates';
import { SandboxPool } from '../env/sandbox';
import { rollout, type RolloutItem } from '../env/rollout';
import { summarizeEval, type EvalSummary } from '../pipeline/stats';
import { formatTable } from './progress';

/** The held-out problems of a dataset: the same split a run evaluates on. */
export function evalProblems(dataset: string, n: number, level: number, seed: number): Problem[] {
  const name = DatasetName.safeParse(dataset);
  if (!name.success) throw new Error(`--dataset must be one of ${DatasetName.options.join(', ')}; got "${dataset}"`);
  return getProblems({ dataset: name.data, split: 'eval', count: n, seed, level: level as 1 | 2 | 3 });
}

/** Group greedy results by a meta field (subject, level) for the breakdown table. */
export function breakdown(problems: Problem[], greedy: Trajectory[], field: string): Array<[string, number, number]> {
  const meta = new Map(problems.map((p) => [p.id, p.meta?.[field]]));
  const groups = new Map<string, { n: number; c: number }>();
  for (const g of greedy) {
    const key = meta.get(g.promptId);
    if (key === undefined) continue;
    const e = groups.get(String(key)) ?? { n: 0, c: 0 };
    e.n++; e.c += g.reward >= 1 ? 1 : 0;
    groups.set(String(key), e);
  }
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, v.n, v.c / v.n]);
}

export function register(program: Command): void {
  program
    .command('eval <checkpoint>')
    .description('greedy pass@1 and pass@k of a checkpoint on a dataset split')
    .option('--dataset <name>', 'synthetic | gsm8k | math | math500', 'synthetic')
    .option('-n, --n <count>', 'problems', (v) => Number.parseInt(v, 10), 200)
    .option('-k, --k <k>', 'samples per problem for pass@k (1 = greedy only)', (v) => Number.parseInt(v, 10), 1)
    .option('--temperature <t>', 'temperature of the pass@k samples', Number.parseFloat, 0.7)
    .option('--level <n>', 'synthetic task level', (v) => Number.parseInt(v, 10), 1)
    .option('--seed <n>', 'seed', (v) => Number.parseInt(v, 10), 1)
    .option('--max-turns <n>', 'H', (v) => Number.parseInt(v, 10), 6)
    .option('--backend <name>', 'auto | webgpu | tensorflow | wasm | cpu', 'auto')
    .option('--json', 'print JSON')
    .action(async (checkpoint: string, o: { dataset: string; n: number; k: number; temperature: number; level: number; seed: number; maxTurns: number; backend: string; json?: boolean }) => {
      const problems = evalProblems(o.dataset, o.n, o.level, o.seed); // bad input fails before the backend starts
      const engine = await createTfEngine({ backend: BackendName.parse(o.backend), log: (l) => process.stderr.write(`· ${l}\n`) });
      const model = await engine.load(checkpoint);
      const policy = engine.policy(model, checkpoint);
      const tools = new SandboxPool();
      const bar = process.stderr.isTTY ? new cliProgress.SingleBar({ format: '  eval |{bar}| {value}/{total} {eta_formatted}', stream: process.stderr, clearOnComplete: true }, cliProgress.Presets.shades_classic) : null;
      const total = problems.length * (o.k > 1 ? o.k + 1 : 1);
      bar?.start(total, 0);
      const base = { template: getTemplate('mathagent'), maxTurns: o.maxTurns, maxTurnTokens: 512, maxTrajectoryTokens: 2048, topP: 1, batchSize: 64, seed: o.seed };
      const items = (s: number): RolloutItem[] => problems.map((problem) => ({ id: `eval:${problem.id}:s${s}`, runId: 'eval', iteration: 0, sampleIndex: s, problem }));
      try {
        const greedy = await rollout(policy, items(0), { ...base, temperature: 0 }, tools, { onFinish: () => bar?.increment() });
        const correct = new Map<string, number>();
        if (o.k > 1) {
          const sampled = await rollout(policy, Array.from({ length: o.k }, (_, s) => items(s + 1)).flat(), { ...base, temperature: o.temperature }, tools, { onFinish: () => bar?.increment() });
          for (const s of sampled) correct.set(s.promptId, (correct.get(s.promptId) ?? 0) + (s.reward >= 1 ? 1 : 0));
        }
        bar?.stop();
        const summary: EvalSummary = summarizeEval(greedy, o.k, o.k > 1 ? correct : null);
        const bySubject = breakdown(problems, greedy, 'subject');
        const byLevel = breakdown(problems, greedy, 'level');
        if (o.json) {
          process.stdout.write(JSON.stringify({ checkpoint, dataset: o.dataset, backend: engine.backend, ...summary, bySubject, byLevel }) + '\n');
        } else {
          const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
          process.stdout.write(`${checkpoint} on ${o.dataset} (${summary.n} problems, ${engine.backend}): pass@1 ${pct(summary.pass1)} [${pct(summary.ci95[0])}, ${pct(summary.ci95[1])}]` +
            (summary.passK !== null ? `, pass@${o.k} ${pct(summary.passK)}` : '') + `, ${summary.meanTurns.toFixed(2)} turns, tool errors ${pct(summary.toolErrorRate)}\n`);
          for (const [title, rows] of [['subject', bySubject], ['level', byLevel]] as const) {
            if (rows.length) process.stdout.write('\n' + formatTable([title, 'n', 'pass@1'], rows.map(([k, n, p]) => [k, n, pct(p)])) + '\n');
          }
        }
      } finally {
        bar?.stop();
        policy.dispose?.();
        model.dispose();
        await tools.close();
      }
    });
}
