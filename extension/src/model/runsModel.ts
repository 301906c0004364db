/**
 * The Runs view's data: runs → iterations → trajectories, kept up to date from list requests and live daemon
 * events, with the view's filters. Pure (no vscode import) so the tree logic is unit-tested.
 */
import type { AnnotationLabel, DaemonEvent, IterationSummary, OutcomeLabel, RunSummary, TrajectoryHeader } from '@mathagent/shared';

export interface Filters {
  failedOnly: boolean;
  unannotatedOnly: boolean;
  /** Only these outcomes (null = all). */
  outcomes: OutcomeLabel[] | null;
}
export const NO_FILTERS: Filters = { failedOnly: false, unannotatedOnly: false, outcomes: null };

/** A trajectory row: the stored header, or a trajectory still being sampled (`outcome` null). */
export interface TrajectoryRow {
  id: string;
  runId: string;
  iteration: number;
  promptId: string;
  sampleIndex: number | null;
  split: 'train' | 'eval';
  question: string;
  outcome: OutcomeLabel | null;
  reward: number | null;
  extractedAnswer: string | null;
  turns: number;
  annotation: AnnotationLabel | null;
  /** Arrival order, the last tie-breaker so the order is stable. */
  order: number;
}

export type TreeNode =
  | { kind: 'run'; runId: string }
  | { kind: 'iteration'; runId: string; iteration: number }
  | { kind: 'evalGroup'; runId: string; iteration: number }
  | { kind: 'trajectory'; id: string }
  | { kind: 'message'; text: string; parentKey: string };

export function nodeKey(n: TreeNode): string {
  switch (n.kind) {
    case 'run': return `run:${n.runId}`;
    case 'iteration': return `iter:${n.runId}:${n.iteration}`;
    case 'evalGroup': return `eval:${n.runId}:${n.iteration}`;
    case 'trajectory': return `traj:${n.id}`;
    case 'message': return `msg:${n.parentKey}`;
  }
}

/** What an applied event changed, so the view refreshes little and refetches only when it must. */
export interface Change {
  refresh: boolean;
  /** A run the model does not know yet: the run list must be fetched. */
  unknownRun?: string;
  /** An iteration's counters moved in a way only the daemon can tell (stage change): fetch run/get. */
  refetchRun?: string;
}

const naturalCompare = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

export function matchesFilters(r: TrajectoryRow, f: Filters): boolean {
  if (f.unannotatedOnly && r.annotation !== null) return false;
  if (r.outcome === null) return !f.failedOnly && f.outcomes === null; // still sampling: no outcome to filter on
  if (f.failedOnly && r.outcome === 'correct') return false;
  if (f.outcomes !== null && !f.outcomes.includes(r.outcome)) return false;
  return true;
}

export class RunsModel {
  private runs = new Map<string, RunSummary>();
  private iterations = new Map<string, Map<number, IterationSummary>>();
  private rows = new Map<string, TrajectoryRow>();
  /** Run id → set of iterations whose trajectories were listed (so live rows are merged, not guessed). */
  private loadedIterations = new Set<string>();
  private counter = 0;
  filters: Filters = NO_FILTERS;

  // ---------------------------------------------------------------------------------------------- loading
  setRuns(runs: RunSummary[]): void {
    const keep = new Set(runs.map((r) => r.id));
    for (const id of [...this.runs.keys()]) if (!keep.has(id)) this.forgetRun(id);
    for (const r of runs) this.runs.set(r.id, r);
  }

  upsertRun(run: RunSummary): void { this.runs.set(run.id, run); }

  setIterations(runId: string, iterations: IterationSummary[]): void {
    const m = new Map<number, IterationSummary>();
    for (const it of iterations) m.set(it.iteration, it);
    // Iterations seen only through events so far stay until the daemon lists them.
    for (const [i, it] of this.iterations.get(runId) ?? []) if (!m.has(i)) m.set(i, it);
    this.iterations.set(runId, m);
  }

  setTrajectories(runId: string, iteration: number, headers: TrajectoryHeader[]): void {
    const listed = new Set(headers.map((h) => h.id));
    for (const [id, r] of this.rows) {
      // A row still sampling is kept: the list may predate it.
      if (r.runId === runId && r.iteration === iteration && !listed.has(id) && r.outcome !== null) this.rows.delete(id);
    }
    for (const h of headers) this.putHeader(h);
    this.loadedIterations.add(`${runId}#${iteration}`);
  }

  isIterationLoaded(runId: string, iteration: number): boolean { return this.loadedIterations.has(`${runId}#${iteration}`); }
  hasIterations(runId: string): boolean { return this.iterations.has(runId); }

  clear(): void {
    this.runs.clear(); this.iterations.clear(); this.rows.clear(); this.loadedIterations.clear();
  }

  private forgetRun(runId: string): void {
    this.runs.delete(runId);
    this.iterations.delete(runId);
    for (const [id, r] of this.rows) if (r.runId === runId) this.rows.delete(id);
    for (const k of [...this.loadedIterations]) if (k.startsWith(`${runId}#`)) this.loadedIterations.delete(k);
  }

  private putHeader(h: TrajectoryHeader): void {
    const old = this.rows.get(h.id);
    this.rows.set(h.id, {
      id: h.id, runId: h.runId, iteration: h.iteration, promptId: h.promptId, sampleIndex: h.sampleIndex, split: h.split,
      question: h.question, outcome: h.outcome, reward: h.reward, extractedAnswer: h.extractedAnswer, turns: h.turns,
      annotation: h.annotation, order: old?.order ?? this.counter++,
    });
  }

  private ensureIteration(runId: string, iteration: number, stage: IterationSummary['stage'] = 'sample'): void {
    let m = this.iterations.get(runId);
    if (!m) { m = new Map(); this.iterations.set(runId, m); }
    if (!m.has(iteration)) m.set(iteration, { runId, iteration, stage, trajectories: 0, correct: 0, pairs: 0, skipped: {}, pass1: null, passK: null });
  }

  // ---------------------------------------------------------------------------------------------- events
  apply(ev: DaemonEvent): Change {
    const run = this.runs.get(ev.runId);
    switch (ev.type) {
      case 'run/status': {
        if (!run) return { refresh: false, unknownRun: ev.runId };
        const stageChanged = run.stage !== ev.stage || run.iteration !== ev.iteration || run.state !== ev.state;
        this.runs.set(ev.runId, { ...run, state: ev.state, stage: ev.stage, iteration: ev.iteration, error: ev.error, updatedAt: ev.time });
        if (ev.stage && ev.stage !== 'done' && ev.stage !== 'sft') this.ensureIteration(ev.runId, ev.iteration, ev.stage);
        const it = this.iterations.get(ev.runId)?.get(ev.iteration);
        if (it && ev.stage && ev.stage !== 'done' && ev.stage !== 'sft') it.stage = ev.stage;
        return { refresh: stageChanged || ev.progress === null, refetchRun: stageChanged ? ev.runId : undefined };
      }
      case 'trajectory/started': {
        if (!run) return { refresh: false, unknownRun: ev.runId };
        this.ensureIteration(ev.runId, ev.iteration);
        if (!this.rows.has(ev.trajectoryId)) {
          this.rows.set(ev.trajectoryId, {
            id: ev.trajectoryId, runId: ev.runId, iteration: ev.iteration, promptId: ev.promptId, sampleIndex: null, split: ev.split,
            question: ev.question, outcome: null, reward: null, extractedAnswer: null, turns: 0, annotation: null, order: this.counter++,
          });
        }
        return { refresh: true };
      }
      case 'trajectory/turn': {
        const r = this.rows.get(ev.trajectoryId);
        if (!r || r.outcome !== null) return { refresh: false };
        r.turns = Math.max(r.turns, ev.turn.index + 1);
        return { refresh: true };
      }
      case 'trajectory/finished': {
        if (!run) return { refresh: false, unknownRun: ev.runId };
        this.ensureIteration(ev.runId, ev.header.iteration);
        const wasKnown = this.rows.get(ev.header.id)?.outcome != null;
        this.putHeader(ev.header);
        const it = this.iterations.get(ev.runId)!.get(ev.header.iteration)!;
        if (!wasKnown && ev.header.split === 'train') {
          it.trajectories++;
          if (ev.header.outcome === 'correct') it.correct++;
        }
        return { refresh: true };
      }
      case 'eval/result': {
        if (!run) return { refresh: false, unknownRun: ev.runId };
        this.ensureIteration(ev.runId, ev.iteration, 'eval');
        const it = this.iterations.get(ev.runId)!.get(ev.iteration)!;
        it.pass1 = ev.pass1; it.passK = ev.passK;
        if (run.bestPass1 === null || ev.pass1 > run.bestPass1) this.runs.set(ev.runId, { ...run, bestPass1: ev.pass1, bestIteration: ev.iteration });
        return { refresh: true };
      }
      case 'run/deleted':
        if (!run) return { refresh: false };
        this.forgetRun(ev.runId);
        return { refresh: true };
      case 'annotation/changed':
        return { refresh: this.setAnnotation(ev.annotation.trajectoryId, ev.annotation.label) };
      case 'train/metrics':
      case 'log':
        return { refresh: false };
    }
  }

  setAnnotation(trajectoryId: string, label: AnnotationLabel | null): boolean {
    const r = this.rows.get(trajectoryId);
    if (!r || r.annotation === label) return false;
    r.annotation = label;
    return true;
  }

  // ---------------------------------------------------------------------------------------------- queries
  run(runId: string): RunSummary | undefined { return this.runs.get(runId); }
  row(id: string): TrajectoryRow | undefined { return this.rows.get(id); }
  iteration(runId: string, iteration: number): IterationSummary | undefined { return this.iterations.get(runId)?.get(iteration); }

  /** Runs newest first. */
  roots(): TreeNode[] {
    return [...this.runs.values()]
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : naturalCompare(b.id, a.id)))
      .map((r) => ({ kind: 'run' as const, runId: r.id }));
  }

  children(n: TreeNode): TreeNode[] {
    switch (n.kind) {
      case 'run': {
        const its = [...(this.iterations.get(n.runId)?.keys() ?? [])].sort((a, b) => a - b);
        return its.map((iteration) => ({ kind: 'iteration' as const, runId: n.runId, iteration }));
      }
      case 'iteration': {
        const train = this.visible(n.runId, n.iteration, 'train').map((r) => ({ kind: 'trajectory' as const, id: r.id }));
        const hasEval = [...this.rows.values()].some((r) => r.runId === n.runId && r.iteration === n.iteration && r.split === 'eval');
        const out: TreeNode[] = [];
        if (hasEval) out.push({ kind: 'evalGroup', runId: n.runId, iteration: n.iteration });
        out.push(...train);
        if (!train.length && this.isIterationLoaded(n.runId, n.iteration) && this.total(n.runId, n.iteration, 'train') > 0) {
          out.push({ kind: 'message', text: 'no trajectory matches the filters', parentKey: nodeKey(n) });
        }
        return out;
      }
      case 'evalGroup':
        return this.visible(n.runId, n.iteration, 'eval').map((r) => ({ kind: 'trajectory' as const, id: r.id }));
      default:
        return [];
    }
  }

  parent(n: TreeNode): TreeNode | undefined {
    if (n.kind === 'iteration') return { kind: 'run', runId: n.runId };
    if (n.kind === 'evalGroup') return { kind: 'iteration', runId: n.runId, iteration: n.iteration };
    if (n.kind === 'trajectory') {
      const r = this.rows.get(n.id);
      if (!r) return undefined;
      return r.split === 'eval' ? { kind: 'evalGroup', runId: r.runId, iteration: r.iteration } : { kind: 'iteration', runId: r.runId, iteration: r.iteration };
    }
    return undefined;
  }

  total(runId: string, iteration: number, split: 'train' | 'eval'): number {
    let n = 0;
    for (const r of this.rows.values()) if (r.runId === runId && r.iteration === iteration && r.split === split) n++;
    return n;
  }

  /** Rows of one iteration and split that pass the filters, by prompt then sample (samples of a prompt together). */
  visible(runId: string, iteration: number, split: 'train' | 'eval'): TrajectoryRow[] {
    return [...this.rows.values()]
      .filter((r) => r.runId === runId && r.iteration === iteration && r.split === split && matchesFilters(r, this.filters))
      .sort((a, b) => naturalCompare(a.promptId, b.promptId)
        || (a.sampleIndex ?? Number.MAX_SAFE_INTEGER) - (b.sampleIndex ?? Number.MAX_SAFE_INTEGER)
        || a.order - b.order);
  }

  /**
   * The trajectory `delta` steps away from `id` among the visible rows of its iteration and split, continuing
   * into the next/previous iteration of the same run at the ends. Undefined at the very first/last one.
   */
  neighbor(id: string, delta: 1 | -1): string | undefined {
    const r = this.rows.get(id);
    if (!r) return undefined;
    const list = this.visible(r.runId, r.iteration, r.split);
    let i = list.findIndex((x) => x.id === id);
    if (i < 0) {
      // The current one is filtered out: step to the nearest visible row in order.
      const all = [...list, r].sort((a, b) => naturalCompare(a.promptId, b.promptId) || (a.sampleIndex ?? 1e15) - (b.sampleIndex ?? 1e15) || a.order - b.order);
      i = all.indexOf(r);
      const j = delta > 0 ? i : i - 1;
      return list[j]?.id ?? this.across(r, delta);
    }
    return list[i + delta]?.id ?? this.across(r, delta);
  }

  private across(r: TrajectoryRow, delta: 1 | -1): string | undefined {
    const its = [...(this.iterations.get(r.runId)?.keys() ?? [])].sort((a, b) => a - b);
    let k = its.indexOf(r.iteration) + delta;
    for (; k >= 0 && k < its.length; k += delta) {
      const list = this.visible(r.runId, its[k]!, r.split);
      if (list.length) return (delta > 0 ? list[0] : list[list.length - 1])!.id;
    }
    return undefined;
  }

  /** Position of a trajectory among its visible siblings (1-based) for the panel's "3 / 40". */
  position(id: string): { index: number; total: number } | undefined {
    const r = this.rows.get(id);
    if (!r) return undefined;
    const list = this.visible(r.runId, r.iteration, r.split);
    const i = list.findIndex((x) => x.id === id);
    return i < 0 ? undefined : { index: i + 1, total: list.length };
  }
}

/** Outcome → ThemeIcon id and a one-character symbol for descriptions. */
export const OUTCOME_ICON: Record<OutcomeLabel, { icon: string; color: string; symbol: string }> = {
  correct: { icon: 'pass', color: 'testing.iconPassed', symbol: '✓' },
  wrong: { icon: 'error', color: 'testing.iconFailed', symbol: '✗' },
  tool_error: { icon: 'warning', color: 'list.warningForeground', symbol: '⚠' },
  truncated: { icon: 'ellipsis', color: 'descriptionForeground', symbol: '✂' },
  no_answer: { icon: 'circle-slash', color: 'descriptionForeground', symbol: '∅' },
};

/** A prompt id short enough for the tree (`synthetic/eval/L1/s42-7` → `L1/s42-7`); the full id is in the tooltip. */
export function shortPromptId(promptId: string): string {
  const parts = promptId.split('/');
  return parts.length > 2 ? parts.slice(-2).join('/') : promptId;
}

/** The tree row's description: symbol, reward, turns, annotation. */
export function describeRow(r: TrajectoryRow): string {
  const parts: string[] = [];
  if (r.outcome === null) parts.push(`sampling… ${r.turns} turn${r.turns === 1 ? '' : 's'}`);
  else {
    parts.push(`${OUTCOME_ICON[r.outcome].symbol} ${r.outcome}`, `r=${r.reward}`, `${r.turns} turn${r.turns === 1 ? '' : 's'}`);
  }
  if (r.annotation) parts.push(`[${r.annotation}]`);
  return parts.join(' · ');
}
