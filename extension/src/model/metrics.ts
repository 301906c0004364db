/**
 * Metric points for the metrics panel: the daemon's stored points (`metrics/get`) and live `train/metrics` /
 * `eval/result` events, merged into one de-duplicated list.
 */
import type { DaemonEvent, MetricPoint } from '@mathagent/shared';

/** SFT steps are plotted apart from preference steps: their loss is a different quantity. */
export function metricName(phase: 'sft' | 'pref', name: string): string {
  return phase === 'sft' && !name.startsWith('sft/') ? `sft/${name}` : name;
}

/** Points carried by one event (empty for events that carry none). */
export function eventToPoints(ev: DaemonEvent): MetricPoint[] {
  if (ev.type === 'train/metrics') {
    return Object.entries(ev.metrics)
      .filter(([, v]) => Number.isFinite(v))
      .map(([k, v]) => ({ runId: ev.runId, iteration: ev.iteration, step: ev.step, name: metricName(ev.phase, k), value: v }));
  }
  if (ev.type === 'eval/result') {
    const pts: MetricPoint[] = [{ runId: ev.runId, iteration: ev.iteration, step: 0, name: 'eval/pass1', value: ev.pass1 }];
    if (ev.passK !== null) pts.push({ runId: ev.runId, iteration: ev.iteration, step: 0, name: 'eval/passK', value: ev.passK });
    return pts;
  }
  return [];
}

const key = (p: MetricPoint) => `${p.iteration}\u0000${p.step}\u0000${p.name}`;

/** Merge new points into a list: the same (iteration, step, name) keeps the newer value; result sorted. */
export function mergePoints(existing: readonly MetricPoint[], incoming: readonly MetricPoint[]): MetricPoint[] {
  const m = new Map<string, MetricPoint>();
  for (const p of existing) m.set(key(p), p);
  for (const p of incoming) m.set(key(p), p);
  return [...m.values()].sort((a, b) => a.iteration - b.iteration || a.step - b.step || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
