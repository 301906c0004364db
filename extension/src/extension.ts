/**
 * MathAgent Studio for VS Code: connects to the daemon, shows runs and trajectories live, steps through them,
 * stores annotations, charts metrics, and gives `*.mathagent.json` run configs language support served by the
 * daemon. Entry point (bundled to dist/extension.js by scripts/build.mjs; `vscode` stays external).
 */
import * as vscode from 'vscode';
import { Connection } from './connection';
import { RunsTree } from './views/runsTree';
import { LiveTrajectories } from './panels/liveTrajectories';
import type { PanelContext } from './panels/basePanel';
import { TrajectoryPanel } from './panels/trajectoryPanel';
import { PairPanel } from './panels/pairPanel';
import { ComparePanel } from './panels/comparePanel';
import { MetricsPanel } from './panels/metricsPanel';
import { registerCommands } from './commands';
import { RunConfigLanguage } from './lsp/lspClient';
import { PanelState, VIEW_TYPES, type PanelKind } from './webviewProtocol';

let connection: Connection | undefined;

export async function activate(ctx: vscode.ExtensionContext): Promise<{ connection: Connection }> {
  const log = vscode.window.createOutputChannel('MathAgent', { log: true });
  const conn = new Connection(ctx, log);
  connection = conn;
  const tree = new RunsTree(conn);
  const live = new LiveTrajectories();
  const panels: PanelContext = { extensionUri: ctx.extensionUri, conn, tree, log };
  ctx.subscriptions.push(log, conn, tree, conn.onEvent((ev) => {
    live.apply(ev);
    if (ev.type === 'log') log[ev.level === 'warn' ? 'warn' : ev.level === 'error' ? 'error' : ev.level === 'debug' ? 'debug' : 'info'](`[${ev.runId}] ${ev.message}`);
  }));
  void vscode.commands.executeCommand('setContext', 'mathagent.connected', false);

  registerCommands(ctx, conn, tree, live, panels);
  ctx.subscriptions.push(new RunConfigLanguage(conn, log));

  // Panels come back after a reload: the webview saved its state (getState/setState), VS Code hands it here.
  const revive = (kind: PanelKind) => vscode.window.registerWebviewPanelSerializer(VIEW_TYPES[kind], {
    async deserializeWebviewPanel(panel: vscode.WebviewPanel, raw: unknown) {
      const s = PanelState.safeParse(raw);
      if (!s.success || s.data.panel !== kind) { log.warn(`could not restore a ${kind} panel (no saved state)`); panel.dispose(); return; }
      const st = s.data;
      if (!conn.connected) await conn.connect().catch((e) => log.warn(`restore ${kind}: ${(e as Error).message}`));
      if (st.panel === 'trajectory') TrajectoryPanel.revive(panel, panels, live, st.trajectoryId, st.turn);
      else if (st.panel === 'pair') await PairPanel.show(panels, st.runId, st.iteration, st.pairIndex, panel);
      else if (st.panel === 'compare') await ComparePanel.show(panels, st.a, st.b, st.promptId, panel);
      else if (st.panel === 'metrics') await MetricsPanel.show(panels, st.runId, panel);
    },
  });
  ctx.subscriptions.push(revive('trajectory'), revive('pair'), revive('compare'), revive('metrics'));

  ctx.subscriptions.push(vscode.workspace.onDidChangeConfiguration((e) => {
    if (e.affectsConfiguration('mathagent.daemonUrl') || e.affectsConfiguration('mathagent.tokenFile')) {
      void conn.connect().then(() => tree.loadRuns(), (err) => log.warn((err as Error).message));
    }
  }));

  // Quietly try the configured daemon once; the status bar offers to connect if none answers.
  if (vscode.workspace.getConfiguration('mathagent').get<boolean>('autoConnect', true)) {
    void conn.connect().then(() => tree.loadRuns(), (e) => log.info(`not connected: ${(e as Error).message}`));
  }
  return { connection: conn };
}

export function deactivate(): void {
  connection?.dispose();
  connection = undefined;
}
