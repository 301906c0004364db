/**
 * The Metrics panel of one run: loss, rewards/margins, chosen/rejected log-probs per step and pass@1 per
 * iteration; filled from `metrics/get`, then live from `train/metrics` and `eval/result` events. Under the charts,
 * held-out pass@1 by subject and level (MATH, MATH-500) from `run/get`'s evals, fetched again after each evaluation.
 */
import * as vscode from 'vscode';
import type { EvalResult, MetricPoint } from '@mathagent/shared';
import { eventToPoints, mergePoints } from '../model/metrics';
import type { FromWebview } from '../webviewProtocol';
import { BasePanel, createPanel, type PanelContext } from './basePanel';

export class MetricsPanel extends BasePanel {
  static readonly open = new Map<string, MetricsPanel>();
  private points: MetricPoint[] = [];
  private evals: EvalResult[] = [];
  private pending: MetricPoint[] = [];
  private flushTimer: NodeJS.Timeout | undefined;

  static async show(ctx: PanelContext, runId: string, panel?: vscode.WebviewPanel): Promise<MetricsPanel> {
    const existing = MetricsPanel.open.get(runId);
    if (existing && !panel) { existing.panel.reveal(undefined, false); return existing; }
    const p = new MetricsPanel(panel ?? createPanel('metrics', 'Metrics', ctx.extensionUri), ctx, runId);
    await p.load();
    return p;
  }

  private constructor(panel: vscode.WebviewPanel, ctx: PanelContext, readonly runId: string) {
    super(panel, 'metrics', ctx);
    MetricsPanel.open.get(runId)?.dispose();
    MetricsPanel.open.set(runId, this);
    this.track(ctx.conn.onEvent((ev) => {
      if (ev.runId !== runId) return;
      // The event carries the summary only; the breakdown is in the store by the time it is emitted.
      if (ev.type === 'eval/result') void this.loadEvals();
      const pts = eventToPoints(ev);
      if (!pts.length) return;
      // Steps come fast during training: batch them into one message per 250 ms.
      this.pending.push(...pts);
      this.flushTimer ??= setTimeout(() => this.flushPoints(), 250);
    }));
    this.track(ctx.conn.onReset(() => void this.load()));
  }

  private title(): string { return `Metrics · ${this.ctx.tree.model.run(this.runId)?.name ?? this.runId}`; }

  private async load(): Promise<void> {
    try {
      const [r, run] = await Promise.all([this.ctx.conn.request('metrics/get', { runId: this.runId }), this.ctx.conn.request('run/get', { runId: this.runId })]);
      // pass@1 per iteration lives in the iteration summaries; live `eval/result` events add to it.
      const evals: MetricPoint[] = run.iterations.flatMap((it) => [
        ...(it.pass1 !== null ? [{ runId: this.runId, iteration: it.iteration, step: 0, name: 'eval/pass1', value: it.pass1 }] : []),
        ...(it.passK !== null ? [{ runId: this.runId, iteration: it.iteration, step: 0, name: 'eval/passK', value: it.passK }] : []),
      ]);
      this.points = mergePoints(mergePoints(r.points, evals), this.pending);
      this.pending = [];
      this.evals = run.evals;
      this.panel.title = this.title();
      this.post({ type: 'metrics', runId: this.runId, title: this.title(), points: this.points, replace: true });
      this.post({ type: 'evals', runId: this.runId, evals: this.evals });
    } catch (e) { this.fail(e); }
  }

  private async loadEvals(): Promise<void> {
    try {
      const run = await this.ctx.conn.request('run/get', { runId: this.runId });
      if (this.disposed) return;
      this.evals = run.evals;
      this.post({ type: 'evals', runId: this.runId, evals: this.evals });
    } catch (e) { this.ctx.log.warn(`metrics panel: evaluations of ${this.runId} not refreshed: ${e instanceof Error ? e.message : String(e)}`); }
  }

  private flushPoints(): void {
    this.flushTimer = undefined;
    const pts = this.pending;
    this.pending = [];
    this.points = mergePoints(this.points, pts);
    this.post({ type: 'metrics', runId: this.runId, title: this.title(), points: pts, replace: false });
  }

  protected showsRun(runId: string): boolean { return this.runId === runId; }

  protected resend(): void {
    this.post({ type: 'metrics', runId: this.runId, title: this.title(), points: this.points, replace: true });
    this.post({ type: 'evals', runId: this.runId, evals: this.evals });
  }
  protected onMessage(_msg: FromWebview): void { /* the metrics view only displays */ }

  override dispose(): void {
    clearTimeout(this.flushTimer);
    if (MetricsPanel.open.get(this.runId) === this) MetricsPanel.open.delete(this.runId);
    super.dispose();
  }
}
