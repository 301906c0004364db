/**
 * JSONL export of annotations: one JSON object per line, sorted by trajectory id so two exports of the same
 * store are byte-identical. Trajectory context (question, outcome, reward) is joined in when known, so the
 * file is useful without the daemon.
 */
import type { Annotation, TrajectoryHeader } from '@mathagent/shared';

export interface ExportRow {
  trajectoryId: string;
  label: Annotation['label'];
  note: string;
  turn: number | null;
  rewardOverride: number | null;
  author: string;
  updatedAt: string;
  runId?: string;
  iteration?: number;
  promptId?: string;
  question?: string;
  outcome?: TrajectoryHeader['outcome'];
  reward?: number;
  extractedAnswer?: string | null;
}

/**
 * JSON.stringify leaves U+2028/U+2029 raw; some line-oriented readers split on them, so they are escaped to keep
 * exactly one record per line.
 */
const escapeSeparators = (s: string) => s.replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

export function toExportRows(annotations: readonly Annotation[], headers: ReadonlyMap<string, TrajectoryHeader> = new Map()): ExportRow[] {
  return [...annotations]
    .sort((a, b) => (a.trajectoryId < b.trajectoryId ? -1 : a.trajectoryId > b.trajectoryId ? 1 : 0))
    .map((a) => {
      const h = headers.get(a.trajectoryId);
      const row: ExportRow = {
        trajectoryId: a.trajectoryId, label: a.label, note: a.note, turn: a.turn, rewardOverride: a.rewardOverride,
        author: a.author, updatedAt: a.updatedAt,
      };
      if (h) Object.assign(row, { runId: h.runId, iteration: h.iteration, promptId: h.promptId, question: h.question, outcome: h.outcome, reward: h.reward, extractedAnswer: h.extractedAnswer });
      return row;
    });
}

/** The JSONL text (ends with a newline when non-empty). */
export function formatJsonl(rows: readonly object[]): string {
  return rows.map((r) => escapeSeparators(JSON.stringify(r))).join('\n') + (rows.length ? '\n' : '');
}
