/**
 * Renders a run's events on a terminal: a progress bar per stage (begin/report/end), log lines above the bars,
 * and per-iteration results as they arrive. Without a TTY (CI, pipes, an experiment's per-run log files) it prints a
 * line at every tenth of a stage and one when the stage ends, so `tail -f` on a log shows where a long run is.
 */
import cliProgress from 'cli-progress';
import type { DaemonEvent } from '@mathagent/shared';

const STAGE_NAMES: Record<string, string> = { sft: 'SFT', sample: 'sample', grade: 'grade', pairs: 'pairs', train: 'train', eval: 'eval', done: 'done' };

export class ProgressView {
  private bar: cliProgress.SingleBar | null = null;
  private readonly tty: boolean;
  private stageStart = 0;
  private lastLoss: number | null = null;
  /** Without a TTY: the share of the current stage at which the next progress line is printed. */
  private nextMark = 0.1;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr, private readonly quiet = false) {
    this.tty = Boolean(out.isTTY) && !quiet;
  }

  private print(line: string): void {
    if (this.quiet) return;
    if (this.bar) { this.out.write('\r\x1b[K'); }
    this.out.write(line + '\n');
    if (this.bar) this.bar.render();
  }

  handle(e: DaemonEvent): void {
    switch (e.type) {
      case 'run/status': {
        const p = e.progress;
        if (!p || !e.stage) {
          if (e.state === 'failed') this.print(`✗ run failed: ${e.error ?? ''}`);
          return;
        }
        const label = `${STAGE_NAMES[e.stage] ?? e.stage}${e.stage === 'sft' ? '' : ` it${e.iteration}`}`;
        if (p.kind === 'begin') {
          this.stop();
          this.stageStart = Date.now();
          this.nextMark = 0.1;
          if (this.tty) {
            this.bar = new cliProgress.SingleBar({
              format: `  {label} |{bar}| {value}/{total} {msg} {eta_formatted}`, barsize: 28, hideCursor: true, clearOnComplete: true, stream: this.out,
              etaBuffer: 20, fps: 8,
            }, cliProgress.Presets.shades_classic);
            this.bar.start(Math.max(1, p.total), 0, { label: label.padEnd(9), msg: p.message ?? '' });
          }
        } else if (p.kind === 'report') {
          const withLoss = `${p.message ?? ''}${this.lastLoss !== null ? ` loss ${this.lastLoss.toFixed(4)}` : ''}`;
          const share = p.total > 0 ? p.done / p.total : 0;
          if (!this.tty && share >= this.nextMark && p.done < p.total) {
            this.nextMark = Math.floor(share * 10 + 1) / 10;
            const secs = ((Date.now() - this.stageStart) / 1000).toFixed(0);
            this.print(`… ${label.padEnd(9)} ${String(p.done).padStart(5)}/${p.total} ${withLoss} (${secs}s)`);
          }
          // lastLoss is set by train/metrics (train and sft stages) and cleared when a stage ends: other stages show the plain message.
          this.bar?.update(p.done, { msg: withLoss });
        } else {
          this.stop();
          const secs = ((Date.now() - this.stageStart) / 1000).toFixed(1);
          this.print(`✓ ${label.padEnd(9)} ${String(p.done).padStart(5)}/${p.total} ${p.message ?? ''} (${secs}s)`);
          this.lastLoss = null;
        }
        return;
      }
      case 'train/metrics':
        this.lastLoss = e.metrics.loss ?? null;
        return;
      case 'eval/result':
        this.print(`  → iteration ${e.iteration}: pass@1 ${(100 * e.pass1).toFixed(1)}% [${(100 * e.ci95[0]).toFixed(1)}, ${(100 * e.ci95[1]).toFixed(1)}] on ${e.n}` +
          (e.passK !== null ? `, pass@${e.k} ${(100 * e.passK).toFixed(1)}%` : '') + `, ${e.meanTurns.toFixed(2)} turns, tool errors ${(100 * e.toolErrorRate).toFixed(1)}%`);
        return;
      case 'log':
        if (e.level !== 'debug') this.print(`${e.level === 'error' ? '✗' : e.level === 'warn' ? '!' : '·'} ${e.message}`);
        return;
      default:
        return;
    }
  }

  stop(): void {
    if (this.bar) { this.bar.stop(); this.bar = null; }
  }
}

/** A plain aligned table (no dependency): header row, separator, rows. */
export function formatTable(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '─'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** Wall time per stage (from begin/end progress events), for the smoke run's stage breakdown. */
export class StageTimer {
  private readonly open = new Map<string, number>();
  readonly seconds: Record<string, number> = {};
  handle(e: DaemonEvent): void {
    if (e.type !== 'run/status' || !e.progress || !e.stage) return;
    const key = `${e.stage}/${e.iteration}/${e.progress.message ?? ''}`;
    if (e.progress.kind === 'begin') this.open.set(key, Date.parse(e.time));
    else if (e.progress.kind === 'end') {
      const start = this.open.get(key);
      if (start === undefined) return;
      this.open.delete(key);
      this.seconds[e.stage] = (this.seconds[e.stage] ?? 0) + (Date.parse(e.time) - start) / 1000;
    }
  }
  /** "sft 41% · sample 12% · ..." of the given wall time. */
  breakdown(wallSeconds: number): string {
    return Object.entries(this.seconds).map(([k, v]) => `${k} ${v.toFixed(1)} s (${((100 * v) / Math.max(1e-9, wallSeconds)).toFixed(0)}%)`).join(' · ');
  }
}
