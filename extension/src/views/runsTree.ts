/**
 * The Runs view: runs → iterations → trajectories (RunsModel), loaded lazily on expand and kept live from
 * daemon events. Refreshes are coalesced: a run samples many trajectories per second.
 */
import * as vscode from 'vscode';
import { OutcomeLabel } from '@mathagent/shared';
import type { Connection } from '../connection';
import { NO_FILTERS, OUTCOME_ICON, RunsModel, describeRow, nodeKey, shortPromptId, type Filters, type TreeNode } from '../model/runsModel';

export class RunsTree implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  readonly model = new RunsModel();
  private readonly changed = new vscode.EventEmitter<TreeNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  readonly view: vscode.TreeView<TreeNode>;
  private refreshTimer: NodeJS.Timeout | undefined;
  private refetchTimers = new Map<string, NodeJS.Timeout>();
  private loadingRuns: Promise<void> | undefined;
  private disposables: { dispose(): void }[] = [];

  constructor(private readonly conn: Connection) {
    this.view = vscode.window.createTreeView('mathagent.runs', { treeDataProvider: this, showCollapseAll: true });
    this.disposables.push(
      this.view,
      conn.onEvent((ev) => {
        const c = this.model.apply(ev);
        if (c.unknownRun) this.scheduleRefetch('', () => this.loadRuns());
        if (c.refetchRun) { const id = c.refetchRun; this.scheduleRefetch(id, () => this.loadRun(id)); }
        if (c.refresh) this.scheduleRefresh();
      }),
      conn.onReset(() => { this.model.clear(); void this.loadRuns(); }),
      conn.onClient((c) => { if (!c) { this.model.clear(); this.refresh(); } }),
    );
    this.updateFilterContext();
  }

  refresh(): void { clearTimeout(this.refreshTimer); this.refreshTimer = undefined; this.changed.fire(undefined); }

  private scheduleRefresh(): void {
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => this.refresh(), 150);
  }

  private scheduleRefetch(key: string, fn: () => Promise<void>): void {
    if (this.refetchTimers.has(key)) return;
    this.refetchTimers.set(key, setTimeout(() => { this.refetchTimers.delete(key); fn().catch((e) => this.conn.log.warn(`refresh failed: ${(e as Error).message}`)); }, 300));
  }

  async loadRuns(): Promise<void> {
    if (!this.conn.connected) { this.refresh(); return; }
    this.loadingRuns ??= (async () => {
      try {
        const { runs } = await this.conn.request('run/list', { limit: 200 });
        this.model.setRuns(runs);
        this.refresh();
      } finally { this.loadingRuns = undefined; }
    })();
    return this.loadingRuns;
  }

  async loadRun(runId: string): Promise<void> {
    const r = await this.conn.request('run/get', { runId });
    this.model.upsertRun(r.run);
    this.model.setIterations(runId, r.iterations);
    this.scheduleRefresh();
  }

  async loadIteration(runId: string, iteration: number): Promise<void> {
    const r = await this.conn.request('trajectory/list', { runId, iteration, limit: 5000 });
    this.model.setTrajectories(runId, iteration, r.trajectories);
    if (r.total > r.trajectories.length) this.conn.log.warn(`iteration ${iteration} of ${runId} has ${r.total} trajectories; the view shows the first ${r.trajectories.length}`);
  }

  // ------------------------------------------------------------------------------------------- provider
  async getChildren(node?: TreeNode): Promise<TreeNode[]> {
    if (!this.conn.connected) return [];
    try {
      if (!node) {
        if (!this.model.roots().length) await this.loadRuns();
        return this.model.roots();
      }
      if (node.kind === 'run' && !this.model.hasIterations(node.runId)) await this.loadRun(node.runId);
      if ((node.kind === 'iteration' || node.kind === 'evalGroup') && !this.model.isIterationLoaded(node.runId, node.iteration)) await this.loadIteration(node.runId, node.iteration);
      return this.model.children(node);
    } catch (e) {
      this.conn.log.error(`Runs view: ${(e as Error).message}`);
      return [{ kind: 'message', text: `could not load: ${(e as Error).message}`, parentKey: node ? nodeKey(node) : 'root' }];
    }
  }

  getParent(node: TreeNode): TreeNode | undefined { return this.model.parent(node); }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    const C = vscode.TreeItemCollapsibleState;
    switch (node.kind) {
      case 'run': {
        const r = this.model.run(node.runId);
        const item = new vscode.TreeItem(r?.name ?? node.runId, C.Collapsed);
        if (r) {
          const best = r.bestPass1 !== null ? ` · best pass@1 ${(r.bestPass1 * 100).toFixed(1)}% (it ${r.bestIteration})` : '';
          item.description = `${r.kind === 'eval' ? 'eval' : r.algorithm} · ${r.state}${r.stage && r.state === 'running' ? ` (${r.stage}, it ${r.iteration}/${r.iterations})` : ''}${best}`;
          item.tooltip = new vscode.MarkdownString(`**${r.name}** \`${r.id}\`\n\n${r.kind === 'eval' ? 'evaluation only' : `${r.algorithm}, ${r.iterations} iterations`}, created ${r.createdAt}${r.error ? `\n\n$(error) ${r.error}` : ''}`, true);
          item.iconPath = new vscode.ThemeIcon(r.state === 'running' ? 'sync~spin' : r.state === 'failed' ? 'error' : r.state === 'finished' ? 'check-all' : 'debug-pause');
          item.contextValue = r.state === 'running' || r.state === 'queued' ? 'run.active' : 'run';
        }
        item.id = nodeKey(node);
        return item;
      }
      case 'iteration': {
        const it = this.model.iteration(node.runId, node.iteration);
        const item = new vscode.TreeItem(`Iteration ${node.iteration}`, C.Collapsed);
        if (it) {
          const pass = it.pass1 !== null ? ` · pass@1 ${(it.pass1 * 100).toFixed(1)}%` : '';
          item.description = `${it.stage} · ${it.correct}/${it.trajectories} correct · ${it.pairs} pairs${pass}`;
        }
        item.iconPath = new vscode.ThemeIcon('layers');
        item.contextValue = 'iteration';
        item.id = nodeKey(node);
        return item;
      }
      case 'evalGroup': {
        const item = new vscode.TreeItem('Held-out eval', C.Collapsed);
        item.description = `${this.model.visible(node.runId, node.iteration, 'eval').length} of ${this.model.total(node.runId, node.iteration, 'eval')}`;
        item.iconPath = new vscode.ThemeIcon('beaker');
        item.id = nodeKey(node);
        return item;
      }
      case 'trajectory': {
        const r = this.model.row(node.id);
        const item = new vscode.TreeItem(r ? `${shortPromptId(r.promptId)}${r.sampleIndex !== null ? ` #${r.sampleIndex}` : ''}` : node.id, C.None);
        if (r) {
          item.description = describeRow(r);
          const icon = r.outcome ? OUTCOME_ICON[r.outcome] : undefined;
          item.iconPath = icon ? new vscode.ThemeIcon(icon.icon, new vscode.ThemeColor(icon.color)) : new vscode.ThemeIcon('loading~spin');
          item.tooltip = new vscode.MarkdownString().appendMarkdown(`\`${r.promptId}\`\n\n`).appendText(r.question.slice(0, 600)).appendMarkdown(r.extractedAnswer !== null ? `\n\nanswer: \`${r.extractedAnswer.replace(/`/g, "'")}\`` : '');
          // The whole identity (the same prompt and sample index recur in every iteration), then the result.
          item.accessibilityInformation = { label: `${r.promptId} sample ${r.sampleIndex ?? ''} iteration ${r.iteration} ${r.split === 'eval' ? 'held-out' : 'train'} ${r.outcome ?? 'sampling'} reward ${r.reward ?? ''}${r.annotation ? ` annotated ${r.annotation}` : ''}` };
        }
        item.contextValue = 'trajectory';
        item.command = { command: 'mathagent.openTrajectory', title: 'Open Trajectory', arguments: [node.id] };
        item.id = nodeKey(node);
        return item;
      }
      case 'message': {
        const item = new vscode.TreeItem(node.text, C.None);
        item.iconPath = new vscode.ThemeIcon('info');
        item.id = nodeKey(node);
        return item;
      }
    }
  }

  // ------------------------------------------------------------------------------------------- filters
  setFilters(f: Filters): void {
    this.model.filters = f;
    this.updateFilterContext();
    this.refresh();
  }

  private updateFilterContext(): void {
    const f = this.model.filters;
    const active = f.failedOnly || f.unannotatedOnly || f.outcomes !== null;
    void vscode.commands.executeCommand('setContext', 'mathagent.filtersActive', active);
    this.view.description = active
      ? [f.failedOnly && 'failed', f.unannotatedOnly && 'unannotated', f.outcomes && f.outcomes.join('|')].filter(Boolean).join(', ')
      : undefined;
  }

  /** Quick pick of all filters at once (multi-select). */
  async pickFilters(): Promise<void> {
    const f = this.model.filters;
    type Item = vscode.QuickPickItem & { key: string };
    const items: Item[] = [
      { label: 'Failed only', description: 'hide correct trajectories', key: 'failed', picked: f.failedOnly },
      { label: 'Unannotated only', key: 'unannotated', picked: f.unannotatedOnly },
      { label: 'Outcome', kind: vscode.QuickPickItemKind.Separator, key: '' },
      ...OutcomeLabel.options.map((o) => ({ label: `${OUTCOME_ICON[o].symbol} ${o}`, key: `o:${o}`, picked: f.outcomes?.includes(o) ?? false })),
    ];
    const picked = await vscode.window.showQuickPick(items, { canPickMany: true, title: 'Filter the Runs view (no outcome picked = all outcomes)' });
    if (!picked) return;
    const keys = new Set(picked.map((p) => p.key));
    const outcomes = OutcomeLabel.options.filter((o) => keys.has(`o:${o}`));
    this.setFilters({ failedOnly: keys.has('failed'), unannotatedOnly: keys.has('unannotated'), outcomes: outcomes.length ? outcomes : null });
  }

  clearFilters(): void { this.setFilters(NO_FILTERS); }

  /** Reveal a trajectory row (loading its iteration first if needed). */
  async reveal(trajectoryId: string): Promise<void> {
    if (!this.model.row(trajectoryId) || !this.view.visible) return;
    try { await this.view.reveal({ kind: 'trajectory', id: trajectoryId }, { select: true, focus: false, expand: false }); } catch { /* filtered out or collapsed parent not loaded */ }
  }

  dispose(): void {
    clearTimeout(this.refreshTimer);
    for (const t of this.refetchTimers.values()) clearTimeout(t);
    for (const d of this.disposables) d.dispose();
    this.changed.dispose();
  }
}
