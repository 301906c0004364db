/**
 * The webview bundle shared by all MathAgent panels; `<body data-panel>` says which one. Messages from the
 * extension are schema-checked; the panel's state is saved with setState so a reload restores it.
 */
import type { EvalResult, MetricPoint } from '@mathagent/shared';
import { FromWebview, PanelKind, ToWebview, type PanelState, type TrajectoryView } from '../src/webviewProtocol';
import { clear, h } from './dom';
import { renderMetrics } from './metricsView';
import { outcomeBadge, renderTrajectoryBody } from './trajectoryView';

interface VsCodeApi { postMessage(msg: unknown): void; getState(): unknown; setState(s: unknown): void }
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const app = document.getElementById('app')!;
const kindParse = PanelKind.safeParse(document.body.dataset.panel);
const kind = kindParse.success ? kindParse.data : 'trajectory';

function send(msg: FromWebview): void {
  const ok = FromWebview.safeParse(msg);
  if (ok.success) vscode.postMessage(ok.data);
}

const saved = (vscode.getState() ?? {}) as Partial<{ raw: boolean; tokens: boolean }>;
const ui = { raw: saved.raw === true, tokens: saved.tokens === true };

function button(label: string, key: string | null, onClick: () => void, attrs: Record<string, string | boolean> = {}): HTMLButtonElement {
  return h('button', { ...attrs, onclick: onClick }, label, key ? h('kbd', {}, key) : null);
}

function toggle(label: string, key: string, on: boolean, flip: () => void, id: string): HTMLButtonElement {
  return button(label, key, flip, { 'aria-pressed': on ? 'true' : 'false', id });
}

function showError(message: string): void {
  document.querySelector('.error-box')?.remove();
  app.prepend(h('div', { class: 'error-box', role: 'alert' }, message));
}

// ----------------------------------------------------------------------------------------------- trajectory
const tp = { view: undefined as TrajectoryView | undefined, turn: 0, position: null as { index: number; total: number } | null };

function saveState(): void {
  let st: PanelState | undefined;
  if (kind === 'trajectory' && tp.view) st = { panel: 'trajectory', trajectoryId: tp.view.id, turn: tp.turn, raw: ui.raw, tokens: ui.tokens };
  else if (kind === 'pair' && pp.last) st = { panel: 'pair', runId: pp.last.chosen.runId, iteration: pp.last.chosen.iteration, pairIndex: (pp.last.position?.index ?? 1) - 1, raw: ui.raw };
  else if (kind === 'compare' && cp.summary) st = { panel: 'compare', a: { runId: cp.summary.a.runId, iteration: cp.summary.a.iteration }, b: { runId: cp.summary.b.runId, iteration: cp.summary.b.iteration }, promptId: cp.selected, raw: ui.raw };
  else if (kind === 'metrics' && mp.runId) st = { panel: 'metrics', runId: mp.runId };
  if (st) vscode.setState({ ...st, raw: ui.raw, tokens: ui.tokens });
}

function renderTrajectoryPanel(): void {
  const v = tp.view;
  clear(app);
  if (!v) { app.append(h('p', { class: 'muted' }, 'Loading…')); return; }
  const n = v.turns.length;
  const bar = h('div', { class: 'toolbar' },
    button('◀ Prev trajectory', 'k', () => send({ type: 'stepTrajectory', delta: -1 }), { id: 'prev-trajectory' }),
    button('Next trajectory ▶', 'j', () => send({ type: 'stepTrajectory', delta: 1 }), { id: 'next-trajectory' }),
    h('span', { class: 'indicator muted' }, tp.position ? `${tp.position.index} / ${tp.position.total}` : ''),
    button('◀ Turn', 'p', () => stepTurn(-1), { id: 'prev-turn', ...(tp.turn <= 0 ? { disabled: true } : {}) }),
    h('span', { class: 'indicator', id: 'turn-indicator', 'aria-live': 'polite' }, n ? `Turn ${tp.turn + 1} / ${n}` : 'no turns'),
    button('Turn ▶', 'n', () => stepTurn(1), { id: 'next-turn', ...(tp.turn >= n - 1 ? { disabled: true } : {}) }),
    h('span', { class: 'spacer' }),
    toggle('Tokens', 't', ui.tokens, () => { ui.tokens = !ui.tokens; saveState(); renderTrajectoryPanel(); }, 'toggle-tokens'),
    toggle('Raw', 'r', ui.raw, () => { ui.raw = !ui.raw; saveState(); renderTrajectoryPanel(); }, 'toggle-raw'),
    button('Annotate', 'a', () => send({ type: 'annotate', trajectoryId: v.id, turn: n ? tp.turn : null }), { id: 'annotate', class: 'primary' }),
  );
  app.append(bar, h('h1', {}, `${v.promptId}${v.sampleIndex !== null ? ` · sample ${v.sampleIndex}` : ''}`, v.live ? h('span', { class: 'muted' }, ' (sampling, live)') : ''));
  app.append(renderTrajectoryBody(v, { focusedTurn: n ? tp.turn : null, divergeTurn: null, raw: ui.raw, tokens: ui.tokens }));
  document.querySelector(`.turn[data-turn="${tp.turn}"]`)?.scrollIntoView({ block: 'nearest' });
}

function stepTurn(delta: number): void {
  const v = tp.view;
  if (!v || !v.turns.length) return;
  const next = Math.min(v.turns.length - 1, Math.max(0, tp.turn + delta));
  if (next === tp.turn) return;
  tp.turn = next;
  send({ type: 'turnChanged', trajectoryId: v.id, turn: next });
  saveState();
  renderTrajectoryPanel();
}

// ----------------------------------------------------------------------------------------------- pair / compare
const pp = { last: undefined as Extract<ToWebview, { type: 'pair' }> | undefined };
const cp = { summary: undefined as Extract<ToWebview, { type: 'compare' }> | undefined, detail: undefined as Extract<ToWebview, { type: 'compareDetail' }> | undefined, selected: null as string | null };

function column(title: string, v: TrajectoryView, divergeTurn: number | null): HTMLElement {
  return h('div', { class: 'col', 'data-side': title },
    h('div', { class: 'col-head' }, h('h2', {}, title, ' ', outcomeBadge(v)),
      button('Open', null, () => send({ type: 'openTrajectory', trajectoryId: v.id })), ' ',
      button('Annotate', null, () => send({ type: 'annotate', trajectoryId: v.id, turn: divergeTurn }))),
    renderTrajectoryBody(v, { focusedTurn: null, divergeTurn, raw: ui.raw, tokens: false, showQuestion: false }));
}

function divergeText(d: number | null): string {
  return d === null ? 'identical turns' : `first divergence at turn ${d + 1}`;
}

function renderPairPanel(): void {
  const m = pp.last;
  clear(app);
  if (!m) { app.append(h('p', { class: 'muted' }, 'Loading…')); return; }
  const pos = m.position;
  app.append(h('div', { class: 'toolbar' },
    button('◀ Prev pair', 'k', () => send({ type: 'stepPair', delta: -1 }), { id: 'prev-pair', ...(pos && pos.index <= 1 ? { disabled: true } : {}) }),
    h('span', { class: 'indicator' }, pos ? `pair ${pos.index} / ${pos.total}` : ''),
    button('Next pair ▶', 'j', () => send({ type: 'stepPair', delta: 1 }), { id: 'next-pair', ...(pos && pos.index >= pos.total ? { disabled: true } : {}) }),
    h('span', { class: 'spacer' }),
    h('span', { class: 'diverge-tag', 'data-testid': 'divergence' }, divergeText(m.divergeTurn)),
    toggle('Raw', 'r', ui.raw, () => { ui.raw = !ui.raw; saveState(); renderPairPanel(); }, 'toggle-raw')));
  app.append(h('h1', {}, m.title));
  app.append(h('div', { class: 'box' }, h('div', { class: 'label' }, 'question'), h('div', { class: 'text' }, m.chosen.question)));
  app.append(h('div', { class: 'cols' }, column('Chosen', m.chosen, m.divergeTurn), column('Rejected', m.rejected, m.divergeTurn)));
  document.querySelector('.turn.diverge')?.scrollIntoView({ block: 'nearest' });
}

function renderComparePanel(): void {
  const m = cp.summary;
  clear(app);
  if (!m) { app.append(h('p', { class: 'muted' }, 'Loading…')); return; }
  app.append(h('div', { class: 'toolbar' }, h('strong', {}, `${m.a.label} → ${m.b.label}`), h('span', { class: 'spacer' }),
    toggle('Raw', 'r', ui.raw, () => { ui.raw = !ui.raw; saveState(); renderComparePanel(); }, 'toggle-raw')));
  app.append(h('div', { class: 'meta' },
    h('span', { class: 'badge correct' }, `fixed ${m.fixed.length}`), h('span', { class: 'badge wrong' }, `broken ${m.broken.length}`),
    h('span', { class: 'muted' }, `same correct ${m.sameCorrect} · same wrong ${m.sameWrong}`)));
  const list = (title: string, rows: typeof m.fixed, id: string) => {
    const box = h('div', { class: 'rows', id });
    if (!rows.length) box.append(h('p', { class: 'muted' }, 'none'));
    for (const r of rows) {
      box.append(h('button', { class: `row${cp.selected === r.promptId ? ' selected' : ''}`, onclick: () => { cp.selected = r.promptId; saveState(); send({ type: 'selectCompare', promptId: r.promptId }); renderComparePanel(); } },
        h('span', { class: 'pid' }, r.promptId), h('span', { class: 'q' }, r.question)));
    }
    return [h('h2', {}, title), box];
  };
  app.append(...list('Fixed (wrong → right)', m.fixed, 'fixed'), ...list('Broken (right → wrong)', m.broken, 'broken'));
  const d = cp.detail;
  if (d && d.promptId === cp.selected) {
    app.append(h('h2', {}, `${d.promptId} · `, h('span', { class: 'diverge-tag' }, divergeText(d.divergeTurn))));
    app.append(h('div', { class: 'box' }, h('div', { class: 'label' }, 'question'), h('div', { class: 'text' }, d.a.question)));
    app.append(h('div', { class: 'cols' }, column(m.a.label, d.a, d.divergeTurn), column(m.b.label, d.b, d.divergeTurn)));
  }
}

// ----------------------------------------------------------------------------------------------- metrics
const mp = { runId: '', title: '', points: [] as MetricPoint[], evals: [] as EvalResult[] };
function renderMetricsPanel(): void {
  clear(app);
  app.append(renderMetrics(mp.title || 'Metrics', mp.points, mp.evals));
}

// ----------------------------------------------------------------------------------------------- wiring
window.addEventListener('message', (ev: MessageEvent) => {
  const parsed = ToWebview.safeParse(ev.data);
  if (!parsed.success) { send({ type: 'log', level: 'error', message: `dropped an invalid message: ${parsed.error.issues[0]?.message ?? ''}` }); return; }
  const m = parsed.data;
  switch (m.type) {
    case 'error': showError(m.message); return;
    case 'trajectory':
      tp.view = m.view; tp.position = m.position; tp.turn = Math.min(m.turn, Math.max(0, m.view.turns.length - 1));
      saveState(); renderTrajectoryPanel(); return;
    case 'liveTurn':
      if (!tp.view || tp.view.id !== m.trajectoryId) return;
      tp.view.turns = [...tp.view.turns.filter((t) => t.index !== m.turn.index), m.turn].sort((a, b) => a.index - b.index);
      tp.turn = tp.view.turns.length - 1; // follow the growth
      renderTrajectoryPanel(); return;
    case 'stepTurn': stepTurn(m.delta); return;
    case 'annotation':
      if (tp.view && tp.view.id === m.trajectoryId) { tp.view.annotation = m.annotation; renderTrajectoryPanel(); }
      return;
    case 'pair': pp.last = m; saveState(); renderPairPanel(); return;
    case 'compare': cp.summary = m; saveState(); renderComparePanel(); return;
    case 'compareDetail': cp.detail = m; cp.selected = m.promptId; saveState(); renderComparePanel(); return;
    case 'metrics': {
      if (m.runId !== mp.runId) mp.evals = [];
      mp.runId = m.runId; mp.title = m.title;
      if (m.replace) mp.points = m.points;
      else {
        const key = (p: MetricPoint) => `${p.iteration}:${p.step}:${p.name}`;
        const map = new Map(mp.points.map((p) => [key(p), p]));
        for (const p of m.points) map.set(key(p), p);
        mp.points = [...map.values()].sort((a, b) => a.iteration - b.iteration || a.step - b.step);
      }
      saveState(); renderMetricsPanel(); return;
    }
    case 'evals':
      // Evaluations of another run (a stale reply after the panel switched runs) are not this panel's.
      if (mp.runId && m.runId !== mp.runId) return;
      mp.evals = m.evals; renderMetricsPanel(); return;
  }
});

window.addEventListener('keydown', (e: KeyboardEvent) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target as HTMLElement | null;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
  const k = e.key;
  let handled = true;
  if (kind === 'trajectory') {
    if (k === 'n' || k === 'ArrowRight') stepTurn(1);
    else if (k === 'p' || k === 'ArrowLeft') stepTurn(-1);
    else if (k === 'j') send({ type: 'stepTrajectory', delta: 1 });
    else if (k === 'k') send({ type: 'stepTrajectory', delta: -1 });
    else if (k === 'a' && tp.view) send({ type: 'annotate', trajectoryId: tp.view.id, turn: tp.view.turns.length ? tp.turn : null });
    else if (k === 't') { ui.tokens = !ui.tokens; saveState(); renderTrajectoryPanel(); }
    else if (k === 'r') { ui.raw = !ui.raw; saveState(); renderTrajectoryPanel(); }
    else handled = false;
  } else if (kind === 'pair') {
    if (k === 'j') send({ type: 'stepPair', delta: 1 });
    else if (k === 'k') send({ type: 'stepPair', delta: -1 });
    else if (k === 'r') { ui.raw = !ui.raw; saveState(); renderPairPanel(); }
    else handled = false;
  } else if (kind === 'compare' && k === 'r') { ui.raw = !ui.raw; saveState(); renderComparePanel(); }
  else handled = false;
  if (handled) e.preventDefault();
});

window.addEventListener('error', (e) => send({ type: 'log', level: 'error', message: String(e.message) }));
send({ type: 'ready' });
