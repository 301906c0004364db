/** `mathagent runs list|show`: what the store holds, without a daemon. */
import type { Command } from 'commander';
import { openStore, defaultDbPath } from '../store';
import { formatTable } from './progress';
import { runSummary, summaryTable } from './run';

const when = (iso: string) => iso.replace('T', ' ').slice(0, 19);

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
        process.stdout.write(formatTable(['run', 'name', 'algorithm', 'state', 'iteration', 'best pass@1', 'created'],
          list.map((r) => [r.id, r.name, r.algorithm, r.state, `${r.iteration}/${r.iterations}`, r.bestPass1 === null ? '–' : `${(100 * r.bestPass1).toFixed(1)}%`, when(r.createdAt)])) + '\n');
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
        const trajectories = iterations.map((it) => store.listTrajectoryHeaders({ runId, iteration: it.iteration, split: 'train', limit: o.json ? 5000 : o.limit }));
        const pairs = store.listPairs(runId, o.iteration);
        if (o.json) { process.stdout.write(JSON.stringify({ summary: s, iterations, trajectories, pairs }) + '\n'); return; }
        const out: string[] = [];
        out.push(`run ${runId} "${got.run.name}" — ${got.config.algorithm}, ${got.run.state}${got.run.error ? ` (${got.run.error})` : ''}, created ${when(got.run.createdAt)}`);
        out.push('', summaryTable(s));
        for (const [i, it] of iterations.entries()) {
          const list = trajectories[i]!;
          out.push('', `iteration ${it.iteration}: ${it.trajectories} trajectories, ${it.correct} correct, ${it.pairs} pairs; skipped prompts ${JSON.stringify(it.skipped)}`);
          out.push(formatTable(['trajectory', 'outcome', 'reward', 'turns', 'answer', 'question'],
            list.trajectories.map((t) => [t.id, t.outcome, t.reward, t.turns, t.extractedAnswer ?? '–', t.question.length > 50 ? `${t.question.slice(0, 47)}...` : t.question])));
          if (list.total > list.trajectories.length) out.push(`… ${list.total - list.trajectories.length} more (use --limit)`);
        }
        out.push('', `pairs (${pairs.length}):`);
        out.push(formatTable(['pair', 'prompt', 'chosen', 'rejected'], pairs.slice(0, o.limit).map((p) => [p.id, p.promptId, p.chosenId, p.rejectedId])));
        if (pairs.length > o.limit) out.push(`… ${pairs.length - o.limit} more (use --limit)`);
        process.stdout.write(out.join('\n') + '\n');
      } finally { store.close(); }
    });
}
