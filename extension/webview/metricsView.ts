/**
 * Metrics panel: hand-drawn SVG line charts (no chart library, nothing from a CDN), and held-out pass@1 by subject
 * and level under them when the run's evaluations have a breakdown (MATH, MATH-500).
 */
import type { BreakdownRow, EvalResult, MetricPoint } from '@mathagent/shared';
import { h, s } from './dom';
import { formatTick, linePath, niceTicks, scale, stepAxis } from './chart';

interface ChartSpec { title: string; names: string[]; byIteration?: boolean; percent?: boolean }

const SPECS: ChartSpec[] = [
  { title: 'Preference loss', names: ['loss'] },
  { title: 'Implicit rewards', names: ['rewards/chosen', 'rewards/rejected', 'rewards/margins'] },
  { title: 'Log-probs (action tokens)', names: ['logps/chosen', 'logps/rejected'] },
  { title: 'Held-out pass@1 per iteration', names: ['eval/pass1', 'eval/passK'], byIteration: true, percent: true },
  { title: 'SFT loss', names: ['sft/loss'] },
];

const W = 460, H = 220, M = { l: 44, r: 10, t: 8, b: 26 };

function chart(spec: ChartSpec, points: MetricPoint[]): HTMLElement | null {
  const series = spec.names.map((n) => points.filter((p) => p.name === n)).filter((x) => x.length);
  if (!series.length) return null;
  const all = series.flat();
  let xOf: (p: MetricPoint) => number;
  let boundaries: Array<{ x: number; iteration: number }> = [];
  let xTicks: Array<{ x: number; label: string }>;
  if (spec.byIteration) {
    xOf = (p) => p.iteration;
    const its = [...new Set(all.map((p) => p.iteration))].sort((a, b) => a - b);
    xTicks = its.map((i) => ({ x: i, label: `it ${i}` }));
  } else {
    const ax = stepAxis(all);
    xOf = (p) => ax.x.get(`${p.iteration}:${p.step}`) ?? NaN;
    boundaries = ax.boundaries;
    xTicks = niceTicks(0, Math.max(1, ax.x.size - 1), 6).filter((t) => t >= 0 && t <= ax.x.size - 1 && Number.isInteger(t)).map((t) => ({ x: t, label: String(t) }));
  }
  const xs = all.map(xOf).filter(Number.isFinite);
  const ys = all.map((p) => p.value).filter(Number.isFinite);
  let yMin = Math.min(...ys), yMax = Math.max(...ys);
  if (spec.percent) { yMin = Math.min(0, yMin); yMax = Math.max(1, yMax); }
  const yt = niceTicks(yMin, yMax, 5);
  const sx = scale(Math.min(...xs), Math.max(...xs), M.l, W - M.r);
  const sy = scale(yt[0]!, yt[yt.length - 1]!, H - M.b, M.t);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': spec.title });
  const axis = s('g', { class: 'axis' });
  for (const t of yt) {
    axis.append(s('line', { class: 'grid', x1: M.l, x2: W - M.r, y1: sy(t), y2: sy(t) }));
    axis.append(s('text', { x: M.l - 4, y: sy(t) + 3, 'text-anchor': 'end' }, spec.percent ? `${Math.round(t * 100)}%` : formatTick(t)));
  }
  for (const t of xTicks) axis.append(s('text', { x: sx(t.x), y: H - M.b + 14, 'text-anchor': 'middle' }, t.label));
  axis.append(s('line', { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }));
  axis.append(s('text', { x: W - M.r, y: H - 2, 'text-anchor': 'end' }, spec.byIteration ? 'iteration' : 'optimiser step (all iterations)'));
  svg.append(axis);
  for (const b of boundaries) if (b.x > 0) {
    svg.append(s('line', { class: 'boundary', x1: sx(b.x), x2: sx(b.x), y1: M.t, y2: H - M.b }));
    svg.append(s('text', { x: sx(b.x) + 3, y: M.t + 9 }, `it ${b.iteration}`));
  }
  const key = h('div', { class: 'key' });
  series.forEach((pts, i) => {
    const cls = `s${spec.names.indexOf(pts[0]!.name) % 6}`;
    svg.append(s('path', { class: `line ${cls}`, d: linePath(pts.map((p) => [xOf(p), p.value] as const), sx, sy) }));
    if (pts.length <= 30) for (const p of pts) svg.append(s('circle', { class: `dot ${cls}`, cx: sx(xOf(p)), cy: sy(p.value), r: 2.5 }));
    const last = pts[pts.length - 1]!;
    key.append(h('span', { class: cls }, `${pts[0]!.name} = ${spec.percent ? `${(last.value * 100).toFixed(1)}%` : formatTick(last.value)}`));
  });
  return h('div', { class: 'chart', 'data-chart': spec.names[0]! }, h('h2', {}, spec.title), key, svg);
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/**
 * One table per field (subject, level): a row per key with its n and greedy pass@1, one pass@1 column per evaluated
 * iteration (a run's model is evaluated on the same problems each iteration, so the columns compare). n is the
 * latest evaluation's. Null when no evaluation has a breakdown.
 */
export function renderBreakdown(evals: readonly EvalResult[]): HTMLElement | null {
  const withB = evals.filter((e) => e.breakdown !== null).sort((a, b) => a.iteration - b.iteration);
  if (!withB.length) return null;
  const box = h('div', { class: 'breakdown' }, h('h2', {}, 'Held-out pass@1 by subject and level'));
  for (const [field, title] of [['subject', 'Subject'], ['level', 'Level']] as const) {
    const byIter = withB.map((e) => new Map(e.breakdown![field].map((r) => [r.key, r] as const)));
    const keys = [...new Set(byIter.flatMap((m) => [...m.keys()]))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    if (!keys.length) continue;
    const head = h('tr', {}, h('th', {}, title), h('th', { class: 'num' }, 'n'),
      ...withB.map((e) => h('th', { class: 'num' }, withB.length === 1 ? 'pass@1' : `pass@1 it ${e.iteration}`)));
    const rows = keys.map((k) => {
      const latest = byIter[byIter.length - 1]!.get(k);
      const cell = (r: BreakdownRow | undefined) => r ? h('td', { class: 'num', title: `${r.correct} of ${r.n} correct` }, pct(r.pass1)) : h('td', { class: 'num muted' }, '–');
      return h('tr', { 'data-key': k }, h('td', {}, k), h('td', { class: 'num' }, latest ? latest.n : '–'), ...byIter.map((m) => cell(m.get(k))));
    });
    box.append(h('table', { class: 'breakdown-table', 'data-breakdown': field }, h('thead', {}, head), h('tbody', {}, ...rows)));
  }
  return box;
}

export function renderMetrics(title: string, points: MetricPoint[], evals: readonly EvalResult[] = []): HTMLElement {
  const root = h('div', { class: 'metrics' }, h('h1', {}, title));
  const charts = SPECS.map((sp) => chart(sp, points)).filter((c): c is HTMLElement => c !== null);
  const known = new Set(SPECS.flatMap((sp) => sp.names));
  // Anything else the trainer logs (grad_norm, lr, rewards/accuracies, ...) gets a chart of its own.
  const others = [...new Set(points.map((p) => p.name))].filter((n) => !known.has(n)).sort().slice(0, 8);
  for (const n of others) { const c = chart({ title: n, names: [n], byIteration: n.startsWith('eval/') }, points); if (c) charts.push(c); }
  if (!charts.length) root.append(h('p', { class: 'muted empty' }, 'No metrics yet: they appear while the run trains (SFT, then each iteration\'s preference training and evaluation).'));
  else root.append(h('div', { class: 'charts' }, ...charts));
  const breakdown = renderBreakdown(evals);
  if (breakdown) root.append(breakdown);
  root.append(h('p', { class: 'muted' }, `${points.length} points`));
  return root;
}
