/**
 * The Compare panel: two iterations (or two runs) on the same held-out prompts — which prompts flipped
 * wrong → right (fixed) and right → wrong (broken), and both trajectories of a selected prompt side by side.
 */
import * as vscode from 'vscode';
import type { ResultOf } from '@mathagent/shared';
import { firstDivergingTurn } from '../model/divergence';
import { type FromWebview, type ToWebview, viewFromTrajectory } from '../webviewProtocol';
import { BasePanel, createPanel, type PanelContext } from './basePanel';

type Side = { runId: string; iteration: number };

export class ComparePanel extends BasePanel {
  private result: ResultOf<'compare/iterations'> | undefined;
  private summary: ToWebview | undefined;
  private detail: ToWebview | undefined;
  private sides: Side[] = [];

  static async show(ctx: PanelContext, a: Side, b: Side, promptId: string | null = null, panel?: vscode.WebviewPanel): Promise<ComparePanel> {
    const p = new ComparePanel(panel ?? createPanel('compare', 'Compare', ctx.extensionUri), ctx);
    await p.load(a, b, promptId);
    return p;
  }

  private constructor(panel: vscode.WebviewPanel, ctx: PanelContext) { super(panel, 'compare', ctx); }

  private async load(a: Side, b: Side, promptId: string | null): Promise<void> {
    this.sides = [a, b];
    try {
      const r = await this.ctx.conn.request('compare/iterations', { a, b });
      this.result = r;
      const label = (s: Side) => `${this.ctx.tree.model.run(s.runId)?.name ?? s.runId} · it ${s.iteration}`;
      this.panel.title = `Compare ${label(a)} → ${label(b)}`;
      this.summary = { type: 'compare', a: { ...a, label: label(a) }, b: { ...b, label: label(b) }, fixed: r.fixed, broken: r.broken, sameCorrect: r.sameCorrect, sameWrong: r.sameWrong };
      this.post(this.summary);
      const first = promptId ?? r.fixed[0]?.promptId ?? r.broken[0]?.promptId;
      if (first) await this.select(first);
    } catch (e) { this.fail(e); }
  }

  private async select(promptId: string): Promise<void> {
    const row = [...(this.result?.fixed ?? []), ...(this.result?.broken ?? [])].find((x) => x.promptId === promptId);
    if (!row) return;
    const [a, b] = await Promise.all([
      this.ctx.conn.request('trajectory/get', { trajectoryId: row.a.id, withTokens: true }),
      this.ctx.conn.request('trajectory/get', { trajectoryId: row.b.id, withTokens: true }),
    ]);
    this.detail = { type: 'compareDetail', promptId, a: viewFromTrajectory(a, 'eval'), b: viewFromTrajectory(b, 'eval'), divergeTurn: firstDivergingTurn(a.trajectory.turns, b.trajectory.turns) };
    this.post(this.detail);
  }

  protected showsRun(runId: string): boolean { return this.sides.some((s) => s.runId === runId); }

  protected resend(): void {
    if (this.summary) this.post(this.summary);
    if (this.detail) this.post(this.detail);
  }

  protected async onMessage(msg: FromWebview): Promise<void> {
    if (msg.type === 'selectCompare') await this.select(msg.promptId);
    else if (msg.type === 'openTrajectory') await vscode.commands.executeCommand('mathagent.openTrajectory', msg.trajectoryId);
    else if (msg.type === 'annotate') await vscode.commands.executeCommand('mathagent.annotate', msg.trajectoryId, msg.turn);
  }
}
