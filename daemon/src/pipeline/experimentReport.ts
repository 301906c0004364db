/**
 * The paper-mini report: a table in the shape of the paper's Table 2 (pass@1 per method after each iteration, with
 * 95% intervals, pass@k, mean turns and tool-error rate), paired comparisons on the same held-out problems
 * (exact McNemar test), and an SVG plot of pass@1 per iteration per method.
 */
import type { Store } from '../store';
import { ARMS, type ExperimentState } from './experiment';
import { runProblems } from './execute';
import { selectRaft } from './pairs';
import { timeSection } from './stageTimes';

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '–' : (100 * x).toFixed(1));

/** Exact two-sided McNemar p-value from the discordant counts b (A right, B wrong) and c (A wrong, B right). */
export function mcnemarExact(b: number, c: number): number {
  const n = b + c;
  if (n === 0) return 1;
  const k = Math.min(b, c);
  // 2 · P(X ≤ k), X ~ Binomial(n, 1/2), computed in log space.
  let logC = 0; // log C(n, 0)
  let tail = 0;
  for (let i = 0; i <= k; i++) {
    if (i > 0) logC += Math.log(n - i + 1) - Math.log(i);
    tail += Math.exp(logC - n * Math.LN2);
  }
  return Math.min(1, 2 * tail);
}

/**
 * One line of the plot. Lines of one `group` (a method's first seed and its mean over seeds) share a colour;
 * `dashed` marks the mean.
 */
interface Series { label: string; points: Array<[number, number]>; dashed?: boolean; group?: string }

export function svgPlot(series: Series[], opts: { title: string; width?: number; height?: number }): string {
  // The legend's column is as wide as its longest label needs (about 6.7 px a character at 12 px sans-serif); the
  // plot keeps its width and the picture grows by whatever the legend needs beyond its minimum.
  const minLegend = 190;
  const R = Math.max(minLegend, 48 + Math.ceil(Math.max(0, ...series.map((s) => s.label.length)) * 6.7));
  const W = (opts.width ?? 640) + (R - minLegend), H = opts.height ?? 360, L = 56, T = 36, B = 44;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const xMax = Math.max(1, ...xs);
  const yMin = Math.max(0, Math.floor((Math.min(...ys, 1) * 100 - 5) / 10) * 10) / 100;
  const yMax = Math.min(1, Math.ceil((Math.max(...ys, 0) * 100 + 5) / 10) * 10 / 100);
  const px = (x: number) => L + (x / xMax) * (W - L - R);
  const py = (y: number) => T + (1 - (y - yMin) / Math.max(1e-9, yMax - yMin)) * (H - T - B);
  // Ten distinct colours (matplotlib's tab10), one per method.
  const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`, `<text x="${W / 2 - R / 2}" y="20" text-anchor="middle" font-size="14">${opts.title}</text>`];
  for (let t = Math.round(yMin * 10); t <= Math.round(yMax * 10); t++) {
    const y = t / 10;
    out.push(`<line x1="${L}" x2="${W - R}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${py(y) + 4}" text-anchor="end">${(y * 100).toFixed(0)}%</text>`);
  }
  for (let x = 0; x <= xMax; x++) out.push(`<text x="${px(x)}" y="${H - B + 16}" text-anchor="middle">${x === 0 ? 'SFT' : `iter ${x}`}</text>`);
  out.push(`<text x="${L + (W - L - R) / 2}" y="${H - 8}" text-anchor="middle">iteration</text>`, `<text x="14" y="${T + (H - T - B) / 2}" transform="rotate(-90 14 ${T + (H - T - B) / 2})" text-anchor="middle">greedy pass@1 (held-out)</text>`);
  const groups = [...new Set(series.map((s) => s.group ?? s.label))];
  series.forEach((s, i) => {
    const c = colors[groups.indexOf(s.group ?? s.label) % colors.length];
    const dash = s.dashed ? ' stroke-dasharray="6 3"' : '';
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2"${dash} points="${s.points.map(([x, y]) => `${px(x)},${py(y)}`).join(' ')}"/>`);
    for (const [x, y] of s.points) out.push(`<circle cx="${px(x)}" cy="${py(y)}" r="3" fill="${c}"/>`);
    out.push(`<line x1="${W - R + 12}" x2="${W - R + 32}" y1="${T + 8 + i * 18}" y2="${T + 8 + i * 18}" stroke="${c}" stroke-width="2"${dash}/>`, `<text x="${W - R + 38}" y="${T + 12 + i * 18}">${s.label}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/**
 * How many trajectories RAFT trained on in an iteration: its selection, recomputed from the stored samples (the
 * iteration row counts the pairs every run builds, and RAFT also keeps prompts whose samples were all correct).
 */
function raftSetSizes(store: Store, runId: string, iterations: ReadonlyArray<{ iteration: number; pairs: number }>): number[] {
  const train = store.getRun(runId)?.config.train;
  if (train?.raftFrom === 'pairs') return iterations.map((i) => i.pairs);
  const keep = train?.raftKeep ?? 1;
  const overrides = store.rewardOverrides(runId);
  // The count does not depend on the seed: every prompt gives min(keep, its usable correct samples).
  return iterations.map((i) => selectRaft(store.listTrajectories(runId, i.iteration, 'train'), { seed: 0, keep, overrides }).length);
}

export interface ReportInput { store: Store; state: ExperimentState; command: string; backend: string; machine: string }

export function experimentReport(r: ReportInput): { markdown: string; svg: string } {
  const { store, state } = r;
  const evalsOf = (runId: string | undefined) => (runId ? store.listEvals(runId) : []);
  const seeds = [...new Set(Object.keys(state.runs).map((k) => Number(k.split('/')[1])))].sort((a, b) => a - b);
  const rows: string[] = [];
  const series: Series[] = [];
  const finalOutcomes = new Map<string, Map<string, boolean>>();
  // As many iteration columns as the runs have (3 for paper-mini; fewer with --set iterations=N).
  const lastIt = Math.max(1, ...Object.values(state.runs).flatMap((id) => evalsOf(id).map((e) => e.iteration)));
  const its = Array.from({ length: lastIt }, (_, i) => i + 1);
  const header = `| method | seed | SFT | ${its.map((t) => `iter ${t}`).join(' | ')} | 95% CI (final) | pass@k (final) | turns | tool err | trained on/iter |`;
  rows.push(header, '|' + ' --- |'.repeat(8 + lastIt));
  const sftEvals = seeds.map((s) => evalsOf(state.runs[`sft/${s}`]).find((e) => e.iteration === 0));
  const sftOutcomes = new Map(seeds.flatMap((s, i) => {
    const e = sftEvals[i] ?? evalsOf(state.runs[`mdpo/${s}`]).find((x) => x.iteration === 0);
    return e ? [[s, new Map(e.problems.map((p) => [p.promptId, p.correct]))] as const] : [];
  }));
  for (const [i, s] of seeds.entries()) {
    const e = sftEvals[i];
    if (e) rows.push(`| SFT | ${s} | ${pct(e.pass1)} | ${its.map(() => '').join(' | ')} | ${pct(e.ci95[0])}–${pct(e.ci95[1])} | ${pct(e.passK)} | ${e.meanTurns.toFixed(2)} | ${pct(e.toolErrorRate)} | |`);
  }
  for (const arm of ARMS) {
    const perSeed: number[][] = [];
    for (const s of seeds) {
      const runId = state.runs[`${arm.key}/${s}`];
      if (!runId) continue;
      const ev = evalsOf(runId).sort((a, b) => a.iteration - b.iteration);
      const iterations = store.listIterations(runId);
      const byIt = (t: number) => ev.find((e) => e.iteration === t);
      const final = ev[ev.length - 1];
      const sft = sftEvals[seeds.indexOf(s)];
      const curve = [sft?.pass1 ?? byIt(0)?.pass1 ?? null, ...its.map((t) => byIt(t)?.pass1 ?? null)];
      perSeed.push(curve.map((x) => x ?? NaN));
      const online = iterations.filter((i) => i.iteration > 0);
      const pairs = arm.algorithm === 'raft' ? raftSetSizes(store, runId, online) : online.map((i) => i.pairs);
      rows.push(`| ${arm.label} | ${s} | ${curve.map(pct).join(' | ')} | ${final ? `${pct(final.ci95[0])}–${pct(final.ci95[1])}` : '–'} | ${pct(final?.passK)}${final ? ` (k=${final.k})` : ''} | ${final?.meanTurns.toFixed(2) ?? '–'} | ${pct(final?.toolErrorRate)} | ${pairs.join('/')} |`);
      if (final && final.iteration > 0) finalOutcomes.set(`${arm.key}/${s}`, new Map(final.problems.map((p) => [p.promptId, p.correct])));
    }
    if (perSeed.length) {
      // Every method's first-seed curve (they share one SFT model, so they are comparable), plus the mean where a
      // method ran on several seeds.
      const pointsOf = (curves: number[][]) => [0, ...its].map((t) => curves.map((c) => c[t]!).filter((x) => !Number.isNaN(x)))
        .flatMap((xs, t) => (xs.length ? [[t, xs.reduce((a, b) => a + b, 0) / xs.length] as [number, number]] : []));
      series.push({ label: arm.label + (perSeed.length > 1 ? ` (seed ${seeds[0]})` : ''), points: pointsOf(perSeed.slice(0, 1)), group: arm.key });
      if (perSeed.length > 1) series.push({ label: `${arm.label} (mean of ${perSeed.length})`, points: pointsOf(perSeed), dashed: true, group: arm.key });
    }
  }
  // Paired comparisons: on each seed (every method of a seed is evaluated on that seed's problems), and pooled over
  // the seeds where both ran — the seeds' problems are independent draws, so their discordant counts add up (a
  // stratified McNemar test).
  const paired: string[] = ['| A | B | seed | A right, B wrong | A wrong, B right | McNemar p |', '| --- | --- | --- | --- | --- | --- |'];
  const labelOf = (key: string) => (key === 'sft' ? 'SFT' : ARMS.find((x) => x.key === key)!.label);
  const outcomesOf = (key: string, seed: number) => (key === 'sft' ? sftOutcomes.get(seed) : finalOutcomes.get(`${key}/${seed}`));
  const cmp = (a: string, b: string) => {
    let sumBc = 0, sumCb = 0, n = 0;
    for (const s of seeds) {
      const A = outcomesOf(a, s), B = outcomesOf(b, s);
      if (!A || !B) continue;
      let bc = 0, cb = 0;
      for (const [id, ok] of A) { const o = B.get(id); if (o === undefined) continue; if (ok && !o) bc++; if (!ok && o) cb++; }
      paired.push(`| ${labelOf(a)} | ${labelOf(b)} | ${s} | ${bc} | ${cb} | ${mcnemarExact(bc, cb).toPrecision(2)} |`);
      sumBc += bc; sumCb += cb; n++;
    }
    if (n > 1) paired.push(`| ${labelOf(a)} | ${labelOf(b)} | all ${n} | ${sumBc} | ${sumCb} | ${mcnemarExact(sumBc, sumCb).toPrecision(2)} |`);
  };
  cmp('mdpo', 'sft'); cmp('mdpo', 'raft'); cmp('mdpo', 'dpo_unmasked'); cmp('mdpo', 'mdpo_sftref'); cmp('mdpo', 'mkto'); cmp('mkto', 'raft'); cmp('mdpo', 'raft_pairs'); cmp('raft_pairs', 'raft');
  // Across seeds: the mean and spread of the final pass@1 where a method ran on more than one seed.
  const acrossSeeds: string[] = ['| method | seeds | mean | sd | min–max |', '| --- | --- | --- | --- | --- |'];
  const spread = (label: string, xs: number[]) => {
    if (xs.length < 2) return;
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1));
    acrossSeeds.push(`| ${label} | ${xs.length} | ${pct(mean)} | ${pct(sd)} | ${pct(Math.min(...xs))}–${pct(Math.max(...xs))} |`);
  };
  spread('SFT', sftEvals.flatMap((e) => (e ? [e.pass1] : [])));
  for (const arm of ARMS) {
    spread(`${arm.label}, final`, seeds.flatMap((s) => {
      const last = finalEval(store, state.runs[`${arm.key}/${s}`]);
      return last && last.iteration > 0 ? [last.pass1] : [];
    }));
  }
  const families = familyTable(store, state, seeds);
  const time = timeSection(Object.entries(state.runs).map(([key, id]) => ({ kind: key.startsWith('sft/') ? 'SFT runs' : 'online runs', events: store.statusEvents(id) })), state.wallSeconds);
  const svg = svgPlot(series, { title: `${state.preset}: held-out greedy pass@1 per iteration` });
  const markdown = [
    `# ${state.preset}: the paper's findings in miniature`,
    '',
    `Command: \`${r.command}\`  `,
    `Seeds: ${seeds.join(', ')} · backend: ${r.backend} · machine: ${r.machine} · wall time: ${(state.wallSeconds / 60).toFixed(1)} min (started ${state.startedAt})`,
    '',
    `![pass@1 per iteration](${state.preset}.svg)`,
    '',
    '## Greedy pass@1 (%) on the held-out split',
    '',
    ...rows,
    '',
    ...(acrossSeeds.length > 2 ? ['## Across seeds (greedy pass@1 %, final iteration)', '', ...acrossSeeds, ''] : []),
    ...(families.length ? ['## Greedy pass@1 (%) per problem family (final iteration)', '', ...families, ''] : []),
    '## Paired comparisons on the same held-out problems (final iteration)',
    '',
    ...paired,
    '',
    ...(time.length ? ['## Where the time goes', '', ...time] : []),
    `Runs: ${Object.entries(state.runs).map(([k, v]) => `${k} → \`${v}\``).join(', ')}`,
    '',
  ].join('\n');
  return { markdown, svg };
}

/**
 * Synthetic task: greedy pass@1 per problem family for the SFT model and each method's final iteration (every seed
 * a method ran on). The families hold the designed mistakes (sft.flawFamilies), so this shows what each method
 * fixed — and, across seeds, how much each SFT model had left to fix.
 */
function familyTable(store: Store, state: ExperimentState, seeds: number[]): string[] {
  const sftRun = seeds.length ? state.runs[`sft/${seeds[0]}`] : undefined;
  const cfg = sftRun ? store.getRun(sftRun)?.config : undefined;
  if (!cfg || cfg.data.dataset !== 'synthetic') return [];
  // Each seed draws its own held-out problems (same distribution): map every seed's problem ids to families.
  const familyOf = new Map<string, string>();
  for (const seed of seeds) {
    const run = state.runs[`sft/${seed}`];
    const c = run ? store.getRun(run)?.config : undefined;
    if (c) for (const p of runProblems(c, c.eval.split, c.data.evalPrompts)) familyOf.set(p.id, String(p.meta?.family ?? ''));
  }
  const names = [...new Set(familyOf.values())].sort();
  const flawed = new Set<string>(cfg.sft.flawFamilies ?? []);
  const row = (label: string, problems: ReadonlyArray<{ promptId: string; correct: boolean }> | undefined) => {
    if (!problems) return null;
    const cells = names.map((f) => {
      const mine = problems.filter((p) => familyOf.get(p.promptId) === f);
      return mine.length ? pct(mine.filter((p) => p.correct).length / mine.length) : '–';
    });
    return cells.every((c) => c === '–') ? null : `| ${label} | ${cells.join(' | ')} |`;
  };
  const rows: Array<string | null> = [];
  for (const seed of seeds) {
    const sft = state.runs[`sft/${seed}`];
    rows.push(row(`SFT (seed ${seed})`, sft ? store.listEvals(sft).find((e) => e.iteration === 0)?.problems : undefined));
    for (const arm of ARMS) rows.push(row(`${arm.label} (seed ${seed})`, finalEval(store, state.runs[`${arm.key}/${seed}`])?.problems));
  }
  const body = rows.filter((r): r is string => r !== null);
  if (!body.length) return [];
  return [`| method | ${names.map((f) => (flawed.has(f) ? `${f} (flawed demos)` : f)).join(' | ')} |`, '|' + ' --- |'.repeat(names.length + 1), ...body];
}

/** A run's evaluation of its latest iteration (undefined for a missing run or one not yet evaluated). */
function finalEval(store: Store, runId: string | undefined) {
  return runId ? store.listEvals(runId).sort((a, b) => a.iteration - b.iteration).at(-1) : undefined;
}
