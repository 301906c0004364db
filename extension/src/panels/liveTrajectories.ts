/**
 * Trajectories being sampled, rebuilt from `trajectory/started` and `trajectory/turn` events so a panel can
 * show one before the daemon has stored it. Bounded: the oldest are dropped past `max`.
 */
import type { DaemonEvent, Turn } from '@mathagent/shared';
import type { TrajectoryView } from '../webviewProtocol';

interface Live { started: Extract<DaemonEvent, { type: 'trajectory/started' }>; turns: Turn[] }

export class LiveTrajectories {
  private map = new Map<string, Live>();
  constructor(private readonly max = 2000) {}

  apply(ev: DaemonEvent): void {
    if (ev.type === 'trajectory/started') {
      this.map.set(ev.trajectoryId, { started: ev, turns: [] });
      if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
    } else if (ev.type === 'trajectory/turn') {
      const l = this.map.get(ev.trajectoryId);
      if (l) l.turns = [...l.turns.filter((t) => t.index !== ev.turn.index), ev.turn].sort((a, b) => a.index - b.index);
    } else if (ev.type === 'trajectory/finished') {
      this.map.delete(ev.header.id);
    }
  }

  has(id: string): boolean { return this.map.has(id); }

  view(id: string): TrajectoryView | undefined {
    const l = this.map.get(id);
    if (!l) return undefined;
    const s = l.started;
    return {
      id, runId: s.runId, iteration: s.iteration, promptId: s.promptId, sampleIndex: null, split: s.split, policy: null, question: s.question,
      reference: null, template: null, promptText: null, promptTokenIds: [], turns: [...l.turns], extractedAnswer: null, reward: null, outcome: null,
      truncation: null, tokenIds: [], actionMask: [], tokenTexts: null, turnRewards: null, retokenized: false, annotation: null, live: true,
    };
  }
}
