/**
 * The Trajectory panel: one trajectory at a time, stepped by turn (n/p) and by trajectory (j/k), growing live
 * while it is being sampled. One panel per window, reused.
 */
import * as vscode from 'vscode';
import type { DaemonEvent } from '@mathagent/shared';
import { ErrorCodes } from '@mathagent/shared';
import { DaemonRpcError } from '../daemon/jsonRpc';
import { type FromWebview, type TrajectoryView, viewFromTrajectory } from '../webviewProtocol';
import { BasePanel, createPanel, type PanelContext } from './basePanel';
import type { LiveTrajectories } from './liveTrajectories';

export class TrajectoryPanel extends BasePanel {
  static current: TrajectoryPanel | undefined;
  private view: TrajectoryView | undefined;
  trajectoryId: string | undefined;
  turn = 0;

  static show(ctx: PanelContext, live: LiveTrajectories, trajectoryId: string, turn = 0): TrajectoryPanel {
    let p = TrajectoryPanel.current;
    if (!p) p = new TrajectoryPanel(createPanel('trajectory', 'Trajectory', ctx.extensionUri), ctx, live);
    else p.panel.reveal(undefined, false);
    void p.load(trajectoryId, turn);
    return p;
  }

  static revive(panel: vscode.WebviewPanel, ctx: PanelContext, live: LiveTrajectories, trajectoryId: string, turn: number): TrajectoryPanel {
    TrajectoryPanel.current?.dispose();
    const p = new TrajectoryPanel(panel, ctx, live);
    void p.load(trajectoryId, turn);
    return p;
  }

  private constructor(panel: vscode.WebviewPanel, ctx: PanelContext, private readonly live: LiveTrajectories) {
    super(panel, 'trajectory', ctx);
    TrajectoryPanel.current = this;
    this.track(ctx.conn.onEvent((ev) => this.onEvent(ev)));
    this.track(ctx.conn.onReset(() => { if (this.trajectoryId) void this.load(this.trajectoryId, this.turn); }));
  }

  /** Fetch and show a trajectory; a trajectory still being sampled is shown from the live events so far. */
  async load(trajectoryId: string, turn = 0): Promise<void> {
    this.trajectoryId = trajectoryId;
    this.turn = turn;
    try {
      let view: TrajectoryView;
      try {
        const r = await this.ctx.conn.request('trajectory/get', { trajectoryId, withTokens: true });
        view = viewFromTrajectory(r, this.ctx.tree.model.row(trajectoryId)?.split ?? 'train');
      } catch (e) {
        const sampling = this.live.view(trajectoryId);
        if (!(e instanceof DaemonRpcError && e.code === ErrorCodes.NotFound) || !sampling) throw e;
        view = sampling;
      }
      if (this.trajectoryId !== trajectoryId || this.disposed) return; // a newer load won
      this.view = view;
      this.turn = Math.min(turn, Math.max(0, view.turns.length - 1));
      this.panel.title = `Trajectory ${view.promptId}${view.sampleIndex !== null ? ` #${view.sampleIndex}` : ''}`;
      this.send();
      void this.ctx.tree.reveal(trajectoryId);
    } catch (e) { this.fail(e); }
  }

  private send(): void {
    if (!this.view) return;
    this.post({ type: 'trajectory', view: this.view, position: this.ctx.tree.model.position(this.view.id) ?? null, turn: this.turn });
  }

  protected resend(): void { this.send(); }

  protected showsRun(runId: string): boolean { return this.view?.runId === runId; }

  private onEvent(ev: DaemonEvent): void {
    const v = this.view;
    if (!v) return;
    if (ev.type === 'trajectory/turn' && ev.trajectoryId === v.id && v.live) {
      v.turns = [...v.turns.filter((t) => t.index !== ev.turn.index), ev.turn].sort((a, b) => a.index - b.index);
      this.post({ type: 'liveTurn', trajectoryId: v.id, turn: ev.turn });
    } else if (ev.type === 'trajectory/finished' && ev.header.id === v.id && v.live) {
      void this.load(v.id, this.turn);
    } else if (ev.type === 'annotation/changed' && ev.annotation.trajectoryId === v.id) {
      v.annotation = ev.annotation;
      this.post({ type: 'annotation', trajectoryId: v.id, annotation: ev.annotation });
    }
  }

  /** Palette Next/Previous Turn: the webview owns the focused turn and reports it back. */
  stepTurn(delta: 1 | -1): void { this.post({ type: 'stepTurn', delta }); }

  setAnnotation(a: TrajectoryView['annotation']): void {
    if (!this.view) return;
    this.view.annotation = a;
    this.post({ type: 'annotation', trajectoryId: this.view.id, annotation: a });
  }

  protected async onMessage(msg: FromWebview): Promise<void> {
    switch (msg.type) {
      case 'turnChanged': if (msg.trajectoryId === this.trajectoryId) this.turn = msg.turn; return;
      case 'stepTrajectory': await vscode.commands.executeCommand(msg.delta > 0 ? 'mathagent.nextTrajectory' : 'mathagent.previousTrajectory'); return;
      case 'annotate': await vscode.commands.executeCommand('mathagent.annotate', msg.trajectoryId, msg.turn); return;
      case 'openTrajectory': await this.load(msg.trajectoryId, 0); return;
      default: return;
    }
  }

  override dispose(): void {
    if (TrajectoryPanel.current === this) TrajectoryPanel.current = undefined;
    super.dispose();
  }
}

