/**
 * `mathagent experiment paper-mini`: the miniature reproduction of the paper's findings (issue 6). Resumable: the
 * state file maps every SFT model and arm to its run; running the same command again continues where it stopped.
 * At the end it writes docs/results/<preset>.md and the SVG plot next to it.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { cpus, totalmem } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { BackendName } from '@mathagent/shared';
import { openContext } from './context';
import { ProgressView } from './progress';
import { parseSets } from './run';
import { runExperiment, type RunLauncher } from '../pipeline/experiment';
import { childLauncher } from './experimentJobs';
import { initBackend } from '../model/backends';
import { experimentReport } from '../pipeline/experimentReport';

export function register(program: Command): void {
  program
    .command('experiment <preset>')
    .description('run the paper-mini experiment: SFT, then 3 iterations of M-DPO, M-DPO (SFT ref), DPO (unmasked), M-KTO, RAFT and RAFT on the pairs\' chosen trajectories')
    .option('--seeds <list>', 'comma-separated seeds (SFT, M-DPO and RAFT run on all; the other arms on the first)', '1,2,3')
    .option('-s, --set <key=value...>', 'override a config field for every run (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--backend <name>', 'auto | webgpu | tensorflow | wasm | cpu', 'auto')
    .option('--db <path>', 'SQLite database')
    .option('--state <file>', 'experiment state file (default: next to the database)')
    .option('--out <dir>', 'where the report goes', 'docs/results')
    .option('-j, --jobs <n>', 'runs at once, each in its own process (a wasm run keeps one core busy); default: one per core (at most 4) on the CPU backends, 1 on a GPU')
    .action(async (preset: string, o: { seeds: string; set: string[]; backend: string; db?: string; state?: string; out: string; jobs?: string }) => {
      const jobsFlag = o.jobs === undefined ? undefined : Number(o.jobs);
      if (jobsFlag !== undefined && !(Number.isInteger(jobsFlag) && jobsFlag >= 1)) throw new Error(`--jobs must be a whole number ≥ 1, got "${o.jobs}"`);
      const seeds = o.seeds.split(',').map((s) => Number.parseInt(s.trim(), 10));
      if (!seeds.length || seeds.some((s) => !Number.isInteger(s))) throw new Error(`--seeds must be comma-separated integers, got "${o.seeds}"`);
      const backend = BackendName.parse(o.backend);
      const overrides = { ...parseSets(o.set), backend };
      const ctx = openContext({ db: o.db, backend, log: (l) => process.stderr.write(`· ${l}\n`) });
      // The CPU backends run a process's kernels on one core, so the default runs one job per core there; a GPU is
      // shared by every process on it, so it gets one. `auto` is resolved here the way each run will resolve it.
      const resolved = backend === 'auto' && (jobsFlag === undefined || jobsFlag > 1) ? (await initBackend('auto', { log: (l) => process.stderr.write(`· ${l}\n`) })).name : backend;
      const jobs = jobsFlag ?? defaultJobs(resolved);
      const view = new ProgressView(process.stderr);
      const unsub = ctx.bus.subscribe((e) => view.handle(e));
      const stateFile = resolve(o.state ?? join(dirname(ctx.dbPath), 'experiments', `${preset}.json`));
      // With jobs > 1 the runs execute in child processes: Ctrl-C reaches them through the terminal's process group,
      // each stops its run at the next safe point, and the same command resumes them.
      // Named after the state file, so two experiments (`--state other.json --set …`) keep their logs apart.
      const logDir = join(dirname(stateFile), `${basename(stateFile, '.json')}-logs`);
      const launcher: RunLauncher | undefined = jobs > 1 ? childLauncher({ manager: ctx.manager, dbPath: ctx.dbPath, backend, slots: jobs, logDir, out: process.stderr }) : undefined;
      const onSigint = () => { process.stderr.write('\nstopping; run the same command again to resume\n'); void ctx.manager.shutdown(); };
      process.on('SIGINT', onSigint);
      try {
        if (launcher) process.stderr.write(`${jobs} runs at once, each in its own process; their progress goes to ${logDir}/\n`);
        const state = await runExperiment({ store: ctx.store, manager: ctx.manager, launcher, stateFile, preset, overrides, seeds,
          onStage: (m) => process.stderr.write(launcher ? `▶ ${m}\n` : `\n=== ${m}\n`) });
        view.stop();
        const command = `mathagent experiment ${preset} --seeds ${o.seeds}${o.set.map((s) => ` --set ${s}`).join('')} --backend ${o.backend} --jobs ${jobs}`;
        // The backend the runs used in this process (auto resolves to one); a resumed experiment names this session's.
        const used = tf.getBackend() ?? backend;
        const { markdown, svg } = experimentReport({ store: ctx.store, state, command, backend: backend === 'auto' ? `${used} (auto)` : used,
          machine: `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}` });
        mkdirSync(o.out, { recursive: true });
        const mdFile = join(o.out, `${preset}.md`);
        // A hand-written discussion (from a "## Discussion" heading on) survives regenerating the report.
        const previous = existsSync(mdFile) ? readFileSync(mdFile, 'utf8') : '';
        const at = previous.indexOf('\n## Discussion');
        writeFileSync(mdFile, at >= 0 ? `${markdown.trimEnd()}\n${previous.slice(at)}` : markdown);
        writeFileSync(join(o.out, `${preset}.svg`), svg);
        process.stdout.write(markdown + `\nwrote ${join(o.out, `${preset}.md`)} and ${join(o.out, `${preset}.svg`)}\n`);
      } finally {
        process.off('SIGINT', onSigint);
        unsub();
        await ctx.close();
      }
    });
}

/** One run per core on wasm/cpu (a run keeps one core busy), at most 4 (more would share the memory bandwidth); 1 on a GPU. */
export function defaultJobs(backend: string): number {
  return backend === 'wasm' || backend === 'cpu' ? Math.max(1, Math.min(4, cpus().length)) : 1;
}
