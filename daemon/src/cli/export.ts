/** `mathagent export`: a run's pairs as JSONL (TRL conversational DPO format with per-message action masks). */
import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { openStore, defaultDbPath } from '../store';
import { exportPair } from '../pipeline/exportPairs';

export function register(program: Command): void {
  program
    .command('export <runId>')
    .description('export preference pairs as JSONL in the TRL DPO conversational format (action mask per message)')
    .option('--db <path>', 'SQLite database')
    .option('--iteration <n>', 'only this iteration', (v) => Number.parseInt(v, 10))
    .option('--tokens', 'include the exact token ids and flat action masks')
    .option('-o, --out <file>', 'write to a file instead of stdout')
    .action(async (runId: string, o: { db?: string; iteration?: number; tokens?: boolean; out?: string }) => {
      const store = openStore(o.db ?? defaultDbPath());
      try {
        if (!store.getRunSummary(runId)) throw new Error(`no run with id ${runId}; see \`mathagent runs list\``);
        const pairs = store.listPairs(runId, o.iteration);
        const out = o.out ? createWriteStream(o.out) : process.stdout;
        let n = 0;
        for (const p of pairs) {
          const chosen = store.getTrajectory(p.chosenId);
          const rejected = store.getTrajectory(p.rejectedId);
          if (!chosen || !rejected) continue;
          out.write(JSON.stringify(exportPair(chosen, rejected, { tokens: o.tokens })) + '\n');
          n++;
        }
        if (o.out) await new Promise<void>((res, rej) => (out as NodeJS.WritableStream).end(() => res()).on?.('error', rej));
        process.stderr.write(`exported ${n} pairs${o.out ? ` to ${o.out}` : ''}\n`);
      } finally { store.close(); }
    });
}
