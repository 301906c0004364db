/** `mathagent runs list|show|delete`: what the store holds, without a daemon. */
import type { Command } from 'commander';
import { openStore, defaultDbPath, runsDirFor } from '../store';
import { deleteRuns } from '../pipeline/deleteRuns';
import { formatTable } from './progress';
import { runSummary, summaryTable } from './run';
import { formatBreakdown } from './eval';

const when = (iso: string) => iso.replace('T', ' ').slice(0, 19);
/** A question on one table row: whitespace (MATH problems have newlines) collapsed, cut at 50 characters. */
const oneLine = (q: string) => { const t = q.replace(/\s+/g, ' ').trim(); return t.length > 50 ? `${t.slice(0, 47)}...` : t; };

/** Per iteration and metric: steps, first and last value, min and max (how a training stage moved; NaN-free). */
export interface MetricRange { iteration: number; name: string; steps: number; first: number; last: number; min: number; max: number }
export function metricRanges(points: ReadonlyArray<{ iteration: number; step: number; name: string; value: number }>): MetricRange[] {
  const by = new Map<string, MetricRange>();
  for (const p of points) {
    const key = `${p.iteration}\u0000${p.name}`;
    const r = by.get(key);
    if (!r) by.set(key, { iteration: p.iteration, name: p.name, steps: 1, first: p.value, last: p.value, min: p.value, max: p.value });
    else { r.steps++; r.last = p.value; r.min = Math.min(r.min, p.value); r.max = Math.max(r.max, p.value); }
  }
  return [...by.values()].sort((a, b) => a.iteration - b.iteration || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
const num = (x: number) => (Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(2) : x.toFixed(4).replace(/\.?0+$/, '') || '0');

export function register(program: Command): void {
  const runs = program.command('runs').description('list runs, or show one run with its iterations, trajectories and pairs');
  runs
    .command('list')
    .description('all runs, newest first')
    .option('--db <path>', 'SQLite database (default: under the user data dir, or $MATHAGENT_DB)')
    .option('--json', 'print JSON')
    .action((o: { db?: string; json?: boolean }) => {
      const store = openStore(o.db ?? defaultDbPath());
      try {
        const list = store.listRuns({ limit: 1000 });
        if (o.json) { process.stdout.write(JSON.stringify(list) + '\n'); return; }
        if (!list.length) { process.stdout.write('no runs yet: start one with `mathagent run --preset smoke`\n'); return; }
        process.stdout.write(formatTable(['run', 'name', 'kind', 'algorithm', 'state', 'iteration', 'best pass@1', 'created'],
          list.map((r) => [r.id, r.name, r.kind, r.kind === 'eval' ? '–' : r.algorithm, r.state, `${r.iteration}/${r.iterations}`, r.bestPass1 === null ? '–' : `${(100 * r.bestPass1).toFixed(1)}%`, when(r.createdAt)])) + '\n');
      } finally { store.close(); }
    });
  runs
    .command('show <runId>')
    .description('one run: per-iteration results, trajectories and pairs')
    .option('--db <path>', 'SQLite database')
    .option('--iteration <n>', 'only this iteration', (v) => Number.parseInt(v, 10))
    .option('--limit <n>', 'trajectories listed per iteration (default 20)', (v) => Number.parseInt(v, 10), 20)
    .option('--json', 'print JSON')
    .action((runId: string, o: { db?: string; iteration?: number; limit: number; json?: boolean }) => {
      const store = openStore(o.db ?? defaultDbPath());
      try {
        const got = store.getRun(runId);
        if (!got) throw new Error(`no run with id ${runId}; see \`mathagent runs list\``);
        const s = runSummary(store, runId);
        const iterations = store.listIterations(runId).filter((i) => o.iteration === undefined || i.iteration === o.iteration);
        // An eval run has only held-out trajectories (and no pairs): list those instead of the (empty) training samples.
        const isEval = got.run.kind === 'eval';
        const trajectories = iterations.map((it) => store.listTrajectoryHeaders({ runId, iteration: it.iteration, split: isEval ? 'eval' : 'train', limit: o.json ? 5000 : o.limit }));
        const pairs = store.listPairs(runId, o.iteration);
        const ranges = metricRanges(store.getMetrics(runId)).filter((r) => o.iteration === undefined || r.iteration === o.iteration);
        if (o.json) { process.stdout.write(JSON.stringify({ summary: s, iterations, trajectories, pairs, metrics: ranges }) + '\n'); return; }
        const out: string[] = [];
        const pc = got.config.policy;
        const subject = pc.kind === 'openai' ? `${pc.model ?? 'the served model'} at ${pc.endpoints.map((e) => e.url).join(', ')}` : got.config.model.init ?? 'a fresh model';
        const what = got.run.kind === 'eval' ? `evaluation of ${subject} on ${got.config.data.dataset} (${got.config.eval.split} split)` : got.config.algorithm;
        out.push(`run ${runId} "${got.run.name}" — ${what}, ${got.run.state}${got.run.error ? ` (${got.run.error})` : ''}, created ${when(got.run.createdAt)}`);
        out.push('', summaryTable(s));
        for (const e of s.iterations) {
          if (e.breakdown && (o.iteration === undefined || o.iteration === e.iteration)) out.push('', `held-out pass@1 of iteration ${e.iteration} by subject and level:`, formatBreakdown(e.breakdown));
        }
        if (ranges.length) {
          out.push('', 'training metrics per iteration (over its optimiser steps):');
          out.push(formatTable(['iteration', 'metric', 'steps', 'first', 'last', 'min', 'max'],
            ranges.map((r) => [r.iteration, r.name, r.steps, num(r.first), num(r.last), num(r.min), num(r.max)])));
        }
        for (const [i, it] of iterations.entries()) {
          const list = trajectories[i]!;
          out.push('', isEval ? `greedy held-out trajectories (${list.total}):` : `iteration ${it.iteration}: ${it.trajectories} trajectories, ${it.correct} correct, ${it.pairs} pairs; skipped prompts ${JSON.stringify(it.skipped)}`);
          out.push(formatTable(['trajectory', 'outcome', 'reward', 'turns', 'answer', 'question'],
            list.trajectories.map((t) => [t.id, t.outcome, t.reward, t.turns, t.extractedAnswer ?? '–', oneLine(t.question)])));
          if (list.total > list.trajectories.length) out.push(`… ${list.total - list.trajectories.length} more (use --limit)`);
        }
        if (!isEval) {
          out.push('', `pairs (${pairs.length}):`);
          out.push(formatTable(['pair', 'prompt', 'chosen', 'rejected'], pairs.slice(0, o.limit).map((p) => [p.id, p.promptId, p.chosenId, p.rejectedId])));
          if (pairs.length > o.limit) out.push(`… ${pairs.length - o.limit} more (use --limit)`);
        }
        process.stdout.write(out.join('\n') + '\n');
      } finally { store.close(); }
    });
  runs
    .command('delete <runId...>')
    .description('delete runs: their trajectories, pairs, metrics, annotations and checkpoint folders')
    .option('--db <path>', 'SQLite database')
    .option('--force', 'also delete runs that look active, or whose checkpoints other runs start from')
    .action((ids: string[], o: { db?: string; force?: boolean }) => {
      const dbPath = o.db ?? defaultDbPath();
      const store = openStore(dbPath);
      try {
        for (const line of deleteRuns(store, runsDirFor(dbPath), ids, { force: o.force })) process.stdout.write(line + '\n');
      } finally { store.close(); }
    });
}
