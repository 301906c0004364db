/**
 * The "MathAgent: ..." commands. Each accepts the argument shapes it can be invoked with (none from the
 * palette, a TreeNode from the Runs view's menus, an id from a panel or a code lens).
 */
import * as vscode from 'vscode';
import { userInfo } from 'node:os';
import { Algorithm, AnnotationLabel, DatasetName, ErrorCodes, type TrajectoryHeader } from '@mathagent/shared';
import { DaemonRpcError } from './daemon/jsonRpc';
import type { Connection } from './connection';
import type { TreeNode } from './model/runsModel';
import { formatJsonl, toExportRows } from './model/annotationsExport';
import type { RunsTree } from './views/runsTree';
import type { PanelContext } from './panels/basePanel';
import { TrajectoryPanel } from './panels/trajectoryPanel';
import { PairPanel } from './panels/pairPanel';
import { ComparePanel } from './panels/comparePanel';
import { MetricsPanel } from './panels/metricsPanel';
import type { LiveTrajectories } from './panels/liveTrajectories';
import { ANNOTATION_LABELS } from './webviewProtocol';

/**
 * Options for the pickers of a multi-step command: they stay open when focus moves. A webview panel that takes
 * focus as it settles (after the previous step's picker closed) would otherwise close the next picker at once,
 * and the command would end silently, as if the user had pressed Escape.
 */
const STEP = { ignoreFocusOut: true } as const;

const isNode = (a: unknown): a is TreeNode => typeof a === 'object' && a !== null && 'kind' in a;

function runIdOf(arg: unknown): string | undefined {
  if (typeof arg === 'string') return arg;
  if (isNode(arg) && (arg.kind === 'run' || arg.kind === 'iteration' || arg.kind === 'evalGroup')) return arg.runId;
  return undefined;
}

function withProgress<T>(title: string, fn: () => Promise<T>): Thenable<T> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: false }, fn);
}

export function registerCommands(ctx: vscode.ExtensionContext, conn: Connection, tree: RunsTree, live: LiveTrajectories, panels: PanelContext): void {
  const model = tree.model;
  const reg = (id: string, fn: (...args: unknown[]) => unknown) =>
    ctx.subscriptions.push(vscode.commands.registerCommand(id, async (...args: unknown[]) => {
      try { return await fn(...args); } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        conn.log.error(`${id}: ${msg}`);
        void vscode.window.showErrorMessage(`MathAgent: ${msg}`);
        return undefined;
      }
    }));

  // ---------------------------------------------------------------------------------------- connection
  const connectAndReport = async (fn: () => Promise<unknown>, title: string) => {
    try {
      await withProgress(title, fn);
      await tree.loadRuns();
    } catch (e) {
      const msg = (e as Error).message;
      conn.log.error(msg);
      const pick = await vscode.window.showErrorMessage(`MathAgent: ${msg}`, 'Start Local Daemon', 'Enter Token', 'Open Settings');
      if (pick === 'Start Local Daemon') await vscode.commands.executeCommand('mathagent.startLocalDaemon');
      else if (pick === 'Enter Token') { if (await conn.promptToken()) await vscode.commands.executeCommand('mathagent.connect'); }
      else if (pick === 'Open Settings') await vscode.commands.executeCommand('workbench.action.openSettings', 'mathagent.');
    }
  };
  reg('mathagent.connect', () => connectAndReport(() => conn.connect(), `Connecting to the MathAgent daemon at ${conn.url}…`));
  reg('mathagent.startLocalDaemon', () => connectAndReport(async () => {
    // Only when none answers: a daemon already on the configured address is used as it is.
    try { await conn.connect(); void vscode.window.showInformationMessage(`MathAgent: a daemon already answers at ${conn.url}.`); return; } catch { /* none: start one */ }
    await conn.startLocalDaemon();
  }, 'Starting a local MathAgent daemon…'));

  // ---------------------------------------------------------------------------------------- runs
  async function pickRun(title: string, filter: (s: string) => boolean = () => true): Promise<string | undefined> {
    await tree.loadRuns();
    const runs = model.roots().map((n) => model.run((n as { runId: string }).runId)!).filter((r) => r && filter(r.state));
    if (!runs.length) throw new Error('no run to choose from');
    if (runs.length === 1) return runs[0]!.id;
    const p = await vscode.window.showQuickPick(runs.map((r) => ({ label: r.name, description: `${r.algorithm} · ${r.state} · it ${r.iteration}/${r.iterations}`, detail: r.id, id: r.id })), { title, ...STEP });
    return p?.id;
  }

  async function startRun(params: { preset?: string; config?: Record<string, unknown> }, label: string): Promise<void> {
    const { runId } = await withProgress(`Starting run ${label}…`, () => conn.request('run/start', params));
    conn.log.info(`started run ${runId} (${label})`);
    await tree.loadRuns();
    await vscode.commands.executeCommand('mathagent.runs.focus');
    try { await tree.view.reveal({ kind: 'run', runId }, { expand: true, select: true, focus: false }); } catch { /* not listed yet */ }
    void vscode.window.showInformationMessage(`MathAgent: run ${label} started (${runId}).`);
  }

  async function configFromFile(uri: vscode.Uri): Promise<Record<string, unknown>> {
    const doc = await vscode.workspace.openTextDocument(uri);
    let cfg: unknown;
    try { cfg = JSON.parse(doc.getText()); } catch (e) { throw new Error(`${vscode.workspace.asRelativePath(uri)} is not valid JSON: ${(e as Error).message}`); }
    if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw new Error(`${vscode.workspace.asRelativePath(uri)} must hold a JSON object (a run config)`);
    return cfg as Record<string, unknown>;
  }

  reg('mathagent.startRunFromFile', async (arg?: unknown) => {
    const uri = arg instanceof vscode.Uri ? arg : typeof arg === 'string' ? vscode.Uri.parse(arg) : vscode.window.activeTextEditor?.document.uri;
    if (!uri) throw new Error('open a *.mathagent.json run config first');
    await startRun({ config: await configFromFile(uri) }, vscode.workspace.asRelativePath(uri));
  });

  reg('mathagent.startRun', async (arg?: unknown) => {
    if (arg instanceof vscode.Uri) return vscode.commands.executeCommand('mathagent.startRunFromFile', arg);
    const info = conn.require().info;
    const files = await vscode.workspace.findFiles('**/*.mathagent.json', '**/node_modules/**', 50);
    type Src = vscode.QuickPickItem & { preset?: string; file?: vscode.Uri };
    const sources: Src[] = [
      ...(info?.presets ?? []).map((p) => ({ label: `$(rocket) ${p}`, description: 'preset', preset: p })),
      ...files.map((f) => ({ label: `$(file-code) ${vscode.workspace.asRelativePath(f)}`, description: 'run config file', file: f })),
      { label: '$(settings) Defaults', description: 'no preset: the run config defaults' },
    ];
    const src = await vscode.window.showQuickPick(sources, { title: 'Start Run (1/3): preset or run config', placeHolder: 'smoke trains a tiny model on CPU in minutes', ...STEP });
    if (!src) return;
    let config: Record<string, unknown> = src.file ? await configFromFile(src.file) : {};
    const keep = src.preset ? 'as the preset says' : src.file ? 'as the file says' : 'default';
    const algo = await vscode.window.showQuickPick([{ label: keep, value: undefined as string | undefined }, ...Algorithm.options.map((a) => ({ label: a, value: a as string | undefined,
      description: { mdpo: 'multi-turn DPO, action tokens only', mkto: 'multi-turn KTO', raft: 'rejection-sampling fine-tuning', dpo_unmasked: 'ablation: DPO over all tokens' }[a] }))], { title: 'Start Run (2/3): algorithm', ...STEP });
    if (!algo) return;
    const hostSets = new Set(info?.datasets ?? DatasetName.options);
    const ds = await vscode.window.showQuickPick([{ label: keep, value: undefined as string | undefined }, ...DatasetName.options.map((d) => ({ label: d, value: d as string | undefined, description: hostSets.has(d) ? '' : 'not on the daemon host' }))], { title: 'Start Run (3/3): dataset', ...STEP });
    if (!ds) return;
    if (algo.value) config = { ...config, algorithm: algo.value };
    if (ds.value) config = { ...config, data: { ...((config.data as object | undefined) ?? {}), dataset: ds.value } };
    const params: { preset?: string; config?: Record<string, unknown> } = {};
    if (src.preset) params.preset = src.preset;
    if (Object.keys(config).length) params.config = config;
    await startRun(params, src.preset ?? (src.file ? vscode.workspace.asRelativePath(src.file) : 'defaults'));
  });

  reg('mathagent.stopRun', async (arg?: unknown) => {
    const runId = runIdOf(arg) ?? await pickRun('Stop which run?', (s) => s === 'running' || s === 'queued');
    if (!runId) return;
    const r = await withProgress('Stopping run…', () => conn.request('run/stop', { runId }));
    void vscode.window.showInformationMessage(r.stopped ? `MathAgent: run ${runId} stops at the next safe point.` : `MathAgent: run ${runId} was not running.`);
  });

  reg('mathagent.deleteRun', async (arg?: unknown) => {
    const runId = runIdOf(arg) ?? await pickRun('Delete which run?', (s) => s !== 'running' && s !== 'queued');
    if (!runId) return;
    const sure = await vscode.window.showWarningMessage(`Delete run ${runId}?`, { modal: true, detail: 'Its trajectories, pairs, metrics, annotations and checkpoints are deleted on the daemon host. This cannot be undone.' }, 'Delete');
    if (sure !== 'Delete') return;
    const del = (force: boolean) => withProgress('Deleting run…', () => conn.request('run/delete', { runId, force }));
    try {
      await del(false);
    } catch (e) {
      // Declined (looks active, or other runs start from its checkpoints): say why, and offer to go ahead.
      if (!(e instanceof DaemonRpcError && e.code === ErrorCodes.RequestFailed)) throw e;
      const go = await vscode.window.showWarningMessage(`MathAgent: ${e.message.replace(/^run\/delete: /, '')}`, { modal: true }, 'Delete Anyway');
      if (go !== 'Delete Anyway') return;
      await del(true);
    }
    model.clear();
    await tree.loadRuns();
    void vscode.window.showInformationMessage(`MathAgent: run ${runId} deleted.`);
  });

  reg('mathagent.refreshRuns', async () => { model.clear(); await tree.loadRuns(); });
  reg('mathagent.filterRuns', () => tree.pickFilters());
  reg('mathagent.clearFilters', () => tree.clearFilters());
  reg('mathagent.toggleFailedOnly', () => tree.setFilters({ ...model.filters, failedOnly: !model.filters.failedOnly }));
  reg('mathagent.toggleUnannotatedOnly', () => tree.setFilters({ ...model.filters, unannotatedOnly: !model.filters.unannotatedOnly }));

  // ---------------------------------------------------------------------------------------- trajectories
  const selectedTrajectory = (): string | undefined => {
    const sel = tree.view.selection[0];
    return sel?.kind === 'trajectory' ? sel.id : undefined;
  };
  const currentTrajectory = () => TrajectoryPanel.current?.trajectoryId ?? selectedTrajectory();

  reg('mathagent.openTrajectory', async (arg?: unknown, turn?: unknown) => {
    let id = typeof arg === 'string' ? arg : isNode(arg) && arg.kind === 'trajectory' ? arg.id : undefined;
    if (!id) {
      const runId = await pickRun('Open a trajectory of which run?');
      if (!runId) return;
      const r = await withProgress('Listing trajectories…', () => conn.request('trajectory/list', { runId, limit: 2000 }));
      const p = await vscode.window.showQuickPick(r.trajectories.map((h) => ({ label: `${h.promptId} #${h.sampleIndex}`, description: `it ${h.iteration} · ${h.outcome} · r=${h.reward}`, detail: h.question.slice(0, 120), id: h.id })), { title: 'Open Trajectory', matchOnDetail: true });
      id = p?.id;
    }
    if (id) TrajectoryPanel.show(panels, live, id, typeof turn === 'number' ? turn : 0);
  });

  const step = (delta: 1 | -1) => () => {
    const cur = currentTrajectory();
    if (!cur) throw new Error('open a trajectory first (Runs view or "MathAgent: Open Trajectory")');
    const next = model.neighbor(cur, delta);
    if (!next) { void vscode.window.setStatusBarMessage(`MathAgent: no ${delta > 0 ? 'next' : 'previous'} trajectory`, 2000); return; }
    TrajectoryPanel.show(panels, live, next, 0);
  };
  reg('mathagent.nextTrajectory', step(1));
  reg('mathagent.previousTrajectory', step(-1));
  const stepTurn = (delta: 1 | -1) => () => {
    if (!TrajectoryPanel.current) throw new Error('open a trajectory first');
    TrajectoryPanel.current.stepTurn(delta);
  };
  reg('mathagent.nextTurn', stepTurn(1));
  reg('mathagent.previousTurn', stepTurn(-1));

  // ---------------------------------------------------------------------------------------- annotations
  reg('mathagent.annotate', async (arg?: unknown, turnArg?: unknown) => {
    const id = typeof arg === 'string' ? arg : isNode(arg) && arg.kind === 'trajectory' ? arg.id : currentTrajectory();
    if (!id) throw new Error('select or open a trajectory to annotate');
    const panel = TrajectoryPanel.current;
    const turn = typeof turnArg === 'number' ? turnArg : panel?.trajectoryId === id ? panel.turn : null;
    const existing = (await conn.request('trajectory/get', { trajectoryId: id, withTokens: false })).annotation;
    const label = await vscode.window.showQuickPick(AnnotationLabel.options.map((l) => ({ label: ANNOTATION_LABELS[l], description: l === existing?.label ? `${l} (current)` : l, value: l })),
      { title: `Annotate failure${turn !== null ? ` (turn ${turn + 1})` : ''}`, placeHolder: 'What went wrong?', ...STEP });
    if (!label) return;
    const note = await vscode.window.showInputBox({ title: `Note for "${ANNOTATION_LABELS[label.value]}"`, prompt: 'Free text (optional); Enter to save', value: existing?.note ?? '', ...STEP });
    if (note === undefined) return;
    let rewardOverride: number | null = null;
    if (label.value === 'grader_disagreement') {
      const o = await vscode.window.showQuickPick([
        { label: 'Count it as correct (reward 1)', value: 1 as number | null },
        { label: 'Count it as wrong (reward 0)', value: 0 as number | null },
        { label: 'No override', value: null as number | null },
      ], { title: 'Reward to use for future pairs', ...STEP });
      if (!o) return;
      rewardOverride = o.value;
    }
    const r = await conn.request('annotation/set', { trajectoryId: id, label: label.value, note, turn, rewardOverride, author: userInfo().username });
    model.setAnnotation(id, r.annotation.label);
    tree.refresh();
    if (TrajectoryPanel.current?.trajectoryId === id) TrajectoryPanel.current.setAnnotation(r.annotation);
    void vscode.window.setStatusBarMessage(`MathAgent: annotated ${id} as ${r.annotation.label}`, 4000);
  });

  reg('mathagent.exportAnnotations', async (arg?: unknown) => {
    await tree.loadRuns();
    let runId = runIdOf(arg);
    if (!runId && arg === undefined) {
      const runs = model.roots().map((n) => model.run((n as { runId: string }).runId)!);
      const p = await vscode.window.showQuickPick([{ label: 'All runs', id: undefined as string | undefined }, ...runs.map((r) => ({ label: r.name, description: r.id, id: r.id as string | undefined }))], { title: 'Export annotations of' });
      if (!p) return;
      runId = p.id;
    }
    const target = await vscode.window.showSaveDialog({ title: 'Export annotations (JSONL)', filters: { 'JSON Lines': ['jsonl'] },
      defaultUri: vscode.Uri.joinPath(vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(process.cwd()), `annotations${runId ? `-${runId}` : ''}.jsonl`) });
    if (!target) return;
    const n = await withProgress('Exporting annotations…', async () => {
      const { annotations } = await conn.request('annotation/list', runId ? { runId } : {});
      // Join each with its trajectory's header (question, outcome, reward) so the file stands alone.
      const headers = new Map<string, TrajectoryHeader>();
      for (const a of annotations) {
        const row = model.row(a.trajectoryId);
        if (row && row.outcome !== null && row.sampleIndex !== null && row.reward !== null) {
          headers.set(a.trajectoryId, { ...row, outcome: row.outcome, sampleIndex: row.sampleIndex, reward: row.reward });
        } else {
          try {
            const t = (await conn.request('trajectory/get', { trajectoryId: a.trajectoryId, withTokens: false })).trajectory;
            headers.set(a.trajectoryId, { id: t.id, runId: t.runId, iteration: t.iteration, promptId: t.promptId, sampleIndex: t.sampleIndex, split: 'train', question: t.question, outcome: t.outcome, reward: t.reward, extractedAnswer: t.extractedAnswer, turns: t.turns.length, annotation: a.label });
          } catch { /* trajectory gone: export the annotation alone */ }
        }
      }
      await vscode.workspace.fs.writeFile(target, Buffer.from(formatJsonl(toExportRows(annotations, headers)), 'utf8'));
      return annotations.length;
    });
    void vscode.window.showInformationMessage(`MathAgent: exported ${n} annotation${n === 1 ? '' : 's'} to ${vscode.workspace.asRelativePath(target)}.`);
  });

  // ---------------------------------------------------------------------------------------- panels
  reg('mathagent.showMetrics', async (arg?: unknown) => {
    const runId = runIdOf(arg) ?? await pickRun('Metrics of which run?');
    if (runId) await MetricsPanel.show(panels, runId);
  });

  async function pickIteration(runId: string, title: string, preferred?: number): Promise<number | undefined> {
    const r = await conn.request('run/get', { runId });
    if (!r.iterations.length) throw new Error(`run ${r.run.name} has no iterations yet`);
    const items = r.iterations.map((it) => ({ label: `Iteration ${it.iteration}`, description: `${it.stage} · ${it.pairs} pairs${it.pass1 !== null ? ` · pass@1 ${(it.pass1 * 100).toFixed(1)}%` : ''}`, value: it.iteration }));
    if (preferred !== undefined) items.sort((a, b) => (a.value === preferred ? -1 : b.value === preferred ? 1 : 0));
    return (await vscode.window.showQuickPick(items, { title, ...STEP }))?.value;
  }

  reg('mathagent.comparePair', async (arg?: unknown) => {
    const runId = runIdOf(arg) ?? await pickRun('Pairs of which run?');
    if (!runId) return;
    const iteration = isNode(arg) && arg.kind === 'iteration' ? arg.iteration : await pickIteration(runId, 'Pairs of which iteration?');
    if (iteration === undefined) return;
    await withProgress('Loading pairs…', () => PairPanel.show(panels, runId, iteration));
  });

  reg('mathagent.compareIterations', async (arg?: unknown) => {
    const runA = runIdOf(arg) ?? await pickRun('Compare: first run');
    if (!runA) return;
    const itB = isNode(arg) && arg.kind === 'iteration' ? arg.iteration : await pickIteration(runA, 'Compare: the later iteration (b)');
    if (itB === undefined) return;
    const other = await vscode.window.showQuickPick([{ label: 'An earlier iteration of the same run', same: true }, { label: 'An iteration of another run', same: false }], { title: 'Compare it with', ...STEP });
    if (!other) return;
    const runB = other.same ? runA : await pickRun('Compare: the other run (a)');
    if (!runB) return;
    const itA = await pickIteration(runB, 'Compare: the earlier iteration (a)', other.same ? itB - 1 : undefined);
    if (itA === undefined) return;
    await withProgress('Comparing held-out outcomes…', () => ComparePanel.show(panels, { runId: runB, iteration: itA }, { runId: runA, iteration: itB }));
  });
}
