/**
 * The Pair panel: the chosen (correct) and rejected (wrong) trajectory of an M-DPO pair side by side, with
 * the first turn where they diverge highlighted. Steps through the pairs of an iteration.
 */
import * as vscode from 'vscode';
import type { Pair } from '@mathagent/shared';
import { firstDivergingTurn } from '../model/divergence';
import { type FromWebview, viewFromTrajectory } from '../webviewProtocol';
import { BasePanel, createPanel, type PanelContext } from './basePanel';

export class PairPanel extends BasePanel {
  static current: PairPanel | undefined;
  private pairs: Pair[] = [];
  private index = 0;
  private last: Parameters<PairPanel['post']>[0] | undefined;

  static async show(ctx: PanelContext, runId: string, iteration: number | null, pairIndex = 0, panel?: vscode.WebviewPanel): Promise<PairPanel> {
    let p = panel ? undefined : PairPanel.current;
    if (!p) { PairPanel.current?.dispose(); p = new PairPanel(panel ?? createPanel('pair', 'Pair', ctx.extensionUri), ctx); }
    else p.panel.reveal(undefined, false);
    await p.load(runId, iteration, pairIndex);
    return p;
  }

  private constructor(panel: vscode.WebviewPanel, ctx: PanelContext) {
    super(panel, 'pair', ctx);
    PairPanel.current = this;
  }

  private runId = '';
  private iteration: number | null = null;

  async load(runId: string, iteration: number | null, pairIndex: number): Promise<void> {
    this.runId = runId; this.iteration = iteration;
    try {
      const r = await this.ctx.conn.request('pair/list', iteration === null ? { runId } : { runId, iteration });
      this.pairs = r.pairs;
      if (!this.pairs.length) throw new Error(`run ${runId}${iteration !== null ? ` iteration ${iteration}` : ''} has no pairs yet (pairs are built after grading; prompts with all-correct or all-wrong samples give none)`);
      await this.showPair(Math.min(Math.max(0, pairIndex), this.pairs.length - 1));
    } catch (e) { this.fail(e); }
  }

  private async showPair(i: number): Promise<void> {
    const pair = this.pairs[i]!;
    this.index = i;
    const [c, r] = await Promise.all([
      this.ctx.conn.request('trajectory/get', { trajectoryId: pair.chosenId, withTokens: true }),
      this.ctx.conn.request('trajectory/get', { trajectoryId: pair.rejectedId, withTokens: true }),
    ]);
    this.panel.title = `Pair ${pair.promptId} (it ${pair.iteration})`;
    this.last = {
      type: 'pair', title: `${pair.promptId} · iteration ${pair.iteration}`, chosen: viewFromTrajectory(c), rejected: viewFromTrajectory(r),
      divergeTurn: firstDivergingTurn(c.trajectory.turns, r.trajectory.turns), position: { index: i + 1, total: this.pairs.length },
    };
    this.post(this.last);
  }

  protected resend(): void { if (this.last) this.post(this.last); }

  protected showsRun(runId: string): boolean { return this.runId === runId; }

  protected async onMessage(msg: FromWebview): Promise<void> {
    if (msg.type === 'stepPair') {
      const j = this.index + msg.delta;
      if (j >= 0 && j < this.pairs.length) await this.showPair(j);
    } else if (msg.type === 'openTrajectory') {
      await vscode.commands.executeCommand('mathagent.openTrajectory', msg.trajectoryId);
    } else if (msg.type === 'annotate') {
      await vscode.commands.executeCommand('mathagent.annotate', msg.trajectoryId, msg.turn);
    }
  }

  get state() { return { runId: this.runId, iteration: this.iteration, pairIndex: this.index }; }

  override dispose(): void {
    if (PairPanel.current === this) PairPanel.current = undefined;
    super.dispose();
  }
}
