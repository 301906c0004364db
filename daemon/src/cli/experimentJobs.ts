/**
 * Parallel jobs for `mathagent experiment`: each run executes in its own `mathagent run --resume <id>` process.
 * The wasm backend runs its kernels on one core per process, so on a 2-core machine two runs at once take about
 * half the wall time of one after the other. The parent creates each run in the shared SQLite store (WAL mode
 * lets the processes write side by side), so the experiment state names it before it starts and a crash of
 * either side leaves a run that the same command resumes.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RunLauncher } from '../pipeline/experiment';
import type { RunManager } from '../pipeline/runManager';

export interface ChildLauncherOptions {
  manager: Pick<RunManager, 'create'>;
  dbPath: string;
  backend: string;
  slots: number;
  /** Each run's progress (the child's stderr) goes to `<logDir>/<key>.log`. */
  logDir: string;
  /** Where one line per started and finished run goes. */
  out: NodeJS.WritableStream;
  /** The command that runs the CLI: defaults to this process's own node, its flags (`--import tsx` from sources) and script. */
  argv0?: string[];
}

export function childLauncher(o: ChildLauncherOptions): RunLauncher {
  const argv0 = o.argv0 ?? [process.execPath, ...process.execArgv, process.argv[1]!];
  const children = new Set<ReturnType<typeof spawn>>();
  // A SIGTERM to the parent alone (not the terminal's process group) still stops the runs at a safe point.
  const onTerm = () => { for (const c of children) c.kill('SIGINT'); };
  return {
    slots: o.slots,
    async launch(p) {
      let runId = p.runId;
      if (!runId) { runId = o.manager.create({ config: p.config }).runId; p.created(runId); }
      mkdirSync(o.logDir, { recursive: true });
      const logFile = join(o.logDir, `${p.key.replace(/[^\w.-]+/g, '-')}.log`);
      const log = createWriteStream(logFile, { flags: 'a' });
      const started = Date.now();
      o.out.write(`  ${p.key}: run ${runId} started (log ${logFile})\n`);
      const child = spawn(argv0[0]!, [...argv0.slice(1), 'run', '--resume', runId, '--db', o.dbPath, '--backend', o.backend, '--json'],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      if (children.size === 0) process.on('SIGTERM', onTerm);
      children.add(child);
      let summary = '';
      child.stdout!.on('data', (d: Buffer) => { summary += d.toString(); });
      child.stderr!.pipe(log);
      const code = await new Promise<number | null>((res) => {
        child.on('error', (e) => { log.write(`\ncould not start ${argv0.join(' ')}: ${e.message}\n`); res(null); });
        child.on('close', (c) => res(c));
      });
      children.delete(child);
      if (children.size === 0) process.off('SIGTERM', onTerm);
      await new Promise<void>((res) => log.end(res));
      const minutes = ((Date.now() - started) / 60000).toFixed(1);
      o.out.write(`  ${p.key}: run ${runId} ${code === 0 ? 'done' : `exited with ${code ?? 'an error'}`} after ${minutes} min${describe(summary)}\n`);
      return runId;
    },
  };
}

/** ", pass@1 47.6% (iteration 3)" from the child's `--json` summary line, when it printed one. */
function describe(summary: string): string {
  try {
    const s = JSON.parse(summary.trim().split('\n').pop() ?? '') as { iterations?: Array<{ iteration: number; pass1: number }>; state?: string };
    const last = s.iterations?.[s.iterations.length - 1];
    return last ? `, pass@1 ${(100 * last.pass1).toFixed(1)}% (iteration ${last.iteration})` : s.state ? `, ${s.state}` : '';
  } catch { return ''; }
}
