/** Chart geometry for the metrics panel (pure, unit-tested): nice ticks, linear scales, SVG paths. */

/** About `count` round tick values covering [min, max] (1, 2, 2.5 or 5 × 10^k steps). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min > max) [min, max] = [max, min];
  if (min === max) { const d = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1; min -= d; max += d; }
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) ?? 10 * mag;
  const start = Math.floor(min / step + 1e-9) * step;
  const ticks: number[] = [];
  for (let v = start; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max - step * 1e-9) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

/** Linear map of [d0, d1] onto [r0, r1]; a zero-width domain maps to the middle of the range. */
export function scale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  if (d1 === d0) return () => (r0 + r1) / 2;
  const k = (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

/** SVG path through the points, breaking the line at non-finite values. */
export function linePath(points: ReadonlyArray<readonly [number, number]>, sx: (v: number) => number, sy: (v: number) => number): string {
  let d = '';
  let pen = false;
  for (const [x, y] of points) {
    if (!Number.isFinite(x) || !Number.isFinite(y)) { pen = false; continue; }
    d += `${pen ? 'L' : 'M'}${round(sx(x))},${round(sy(y))}`;
    pen = true;
  }
  return d;
}

const round = (v: number) => Math.round(v * 10) / 10;

/** Short tick labels: 0.0001 → 1e-4, 12000 → 12k, 0.25 → 0.25. */
export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0).replace('e+', 'e');
  if (a >= 1000) return `${Number((v / 1000).toPrecision(3))}k`;
  return String(Number(v.toPrecision(3)));
}

/**
 * x positions for step metrics across iterations: each distinct (iteration, step) in order gets the next
 * integer, so iterations follow one another; returns the map and the x where each iteration starts.
 */
export function stepAxis(keys: ReadonlyArray<{ iteration: number; step: number }>): { x: Map<string, number>; boundaries: Array<{ x: number; iteration: number }> } {
  const uniq = [...new Map(keys.map((k) => [`${k.iteration}:${k.step}`, k])).values()].sort((a, b) => a.iteration - b.iteration || a.step - b.step);
  const x = new Map<string, number>();
  const boundaries: Array<{ x: number; iteration: number }> = [];
  uniq.forEach((k, i) => {
    x.set(`${k.iteration}:${k.step}`, i);
    if (i === 0 || uniq[i - 1]!.iteration !== k.iteration) boundaries.push({ x: i, iteration: k.iteration });
  });
  return { x, boundaries };
}
