/**
 * Where two trajectories of the same prompt part ways: the first turn whose model action, tool call or tool
 * output differs. Used by the Pair panel to highlight the turn that decided chosen vs rejected.
 */
import type { Turn } from '@mathagent/shared';

/** Whitespace at the ends of an action does not make two turns different in any way a reader cares about. */
const norm = (s: string) => s.replace(/\s+/g, ' ').trim();

export function turnsEqual(a: Turn, b: Turn): boolean {
  if (norm(a.action.text) !== norm(b.action.text)) return false;
  if ((a.toolCall?.code ?? null) !== (b.toolCall?.code ?? null)) return false;
  if ((a.observation?.output ?? null) !== (b.observation?.output ?? null)) return false;
  return true;
}

/**
 * Index of the first diverging turn, or null when both have the same turns. When one is a prefix of the
 * other, the divergence is the first turn the shorter one lacks.
 */
export function firstDivergingTurn(a: readonly Turn[], b: readonly Turn[]): number | null {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (!turnsEqual(a[i]!, b[i]!)) return i;
  return a.length === b.length ? null : n;
}
