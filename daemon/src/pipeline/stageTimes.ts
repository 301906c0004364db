/**
 * Where a run's time went, from its stored `run/status` events: every status change and progress report carries
 * the stage and a timestamp, so the time between one status event and the next belongs to the first one's stage.
 * The experiment report sums this over its runs (issue 6 asks where the time goes; the logs only say it in prose).
 */
import type { RunStatusEvent, Stage } from '@mathagent/shared';
import { median } from './stats';

export type { RunStatusEvent };
/** A stage, or 'setup' for running time outside any stage (building the model, loading data, checkpoints). */
export type TimedStage = Stage | 'setup';

/**
 * Seconds per stage while the run was running. An interval that ends in a `queued` event is left out: that is a
 * restart after the process died (a resumed run queues first), and the gap before it was not spent in the stage.
 */
export function stageSeconds(events: readonly RunStatusEvent[]): Partial<Record<TimedStage, number>> {
  const out: Partial<Record<TimedStage, number>> = {};
  for (let i = 0; i + 1 < events.length; i++) {
    const a = events[i]!, b = events[i + 1]!;
    if (a.state !== 'running' || b.state === 'queued') continue;
    const dt = (Date.parse(b.time) - Date.parse(a.time)) / 1000;
    if (!(dt > 0)) continue;
    const stage: TimedStage = a.stage ?? 'setup';
    out[stage] = (out[stage] ?? 0) + dt;
  }
  return out;
}

const ORDER: ReadonlyArray<[TimedStage, string]> = [
  ['sft', 'SFT'], ['sample', 'sampling'], ['grade', 'grading'], ['pairs', 'pairs'], ['train', 'preference / RAFT training'],
  ['eval', 'evaluation'], ['setup', 'setup (model, data, checkpoints)'], ['done', 'finishing'],
];

/**
 * The report's "Where the time goes" section: run-minutes per stage over all runs, each run's total by kind, and
 * the run time against the wall time. `runs` gives each run's kind (a label: 'SFT runs', 'online runs') and its
 * events. Empty when no run has stored status events (they were pruned, or the store is from before events were kept).
 */
export function timeSection(runs: ReadonlyArray<{ kind: string; events: readonly RunStatusEvent[] }>, wallSeconds: number): string[] {
  // Runs without stored events (pruned, or older than the event log) are left out rather than counted as 0 minutes.
  const perRun = runs.map((r) => {
    const stages = stageSeconds(r.events);
    return { kind: r.kind, stages, seconds: Object.values(stages).reduce((a, b) => a + (b ?? 0), 0) };
  }).filter((r) => r.seconds > 0);
  const sum = perRun.reduce((a, r) => a + r.seconds, 0);
  if (!(sum > 0)) return [];
  const min = (s: number) => (s / 60).toFixed(1);
  const lines = [
    `${perRun.length} runs took ${min(sum)} run-minutes in ${min(wallSeconds)} minutes of wall time (${(sum / Math.max(1, wallSeconds)).toFixed(2)} runs at once on average), from the runs' stored status events.`,
    '',
    '| stage | run-minutes | share |',
    '| --- | --- | --- |',
  ];
  for (const [stage, label] of ORDER) {
    const s = perRun.reduce((a, r) => a + (r.stages[stage] ?? 0), 0);
    // A row for every stage that rounds to at least 0.1 run-minutes.
    if (s >= 3) lines.push(`| ${label} | ${min(s)} | ${((100 * s) / sum).toFixed(0)}% |`);
  }
  lines.push('');
  const kinds = [...new Set(perRun.map((r) => r.kind))];
  for (const k of kinds) {
    const xs = perRun.filter((r) => r.kind === k).map((r) => r.seconds).sort((a, b) => a - b);
    lines.push(`- ${k}: ${xs.length} runs, ${min(xs[0]!)}–${min(xs[xs.length - 1]!)} minutes each (median ${min(median(xs))}).`);
  }
  lines.push('');
  return lines;
}
