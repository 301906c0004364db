/**
 * Reconnect/replay bookkeeping for daemon events. Events carry a daemon-wide, increasing `seq`. After a
 * reconnect the client asks `events/replay` for everything after the last delivered seq; live events that
 * arrive while the replay is in flight are buffered, then everything is delivered once, in order.
 */
import type { DaemonEvent } from '@mathagent/shared';

export class EventSequencer {
  /** Highest seq delivered to listeners (0 = none yet). */
  lastSeq = 0;
  private replaying = false;
  private buffer: DaemonEvent[] = [];

  /** First connection to a daemon: start after what it already has (views fetch the current state). */
  start(daemonLastSeq: number): void {
    this.lastSeq = daemonLastSeq;
    this.replaying = false;
    this.buffer = [];
  }

  /**
   * Called on `connected` after a reconnect. Returns 'replay' when events after `lastSeq` must be fetched, or
   * 'reset' when the daemon's counter is behind ours (a different or wiped daemon): views must refetch.
   */
  reconnect(daemonLastSeq: number): 'replay' | 'reset' | 'upToDate' {
    if (daemonLastSeq < this.lastSeq) { this.start(daemonLastSeq); return 'reset'; }
    if (daemonLastSeq === this.lastSeq) { this.replaying = false; return 'upToDate'; }
    this.replaying = true;
    this.buffer = [];
    return 'replay';
  }

  /** A live event arrived: returns the events to deliver now (none while a replay is pending, none if old). */
  live(ev: DaemonEvent): DaemonEvent[] {
    if (this.replaying) { this.buffer.push(ev); return []; }
    return this.accept([ev]);
  }

  /**
   * One page of replayed events arrived. `more` = the page was full, so another page must be fetched after
   * `lastSeq`; the buffered live events are released only after the last page.
   */
  replayed(events: DaemonEvent[], more: boolean): DaemonEvent[] {
    const out = this.accept(events);
    if (more) return out;
    this.replaying = false;
    const buffered = this.buffer;
    this.buffer = [];
    return out.concat(this.accept(buffered));
  }

  /** Replay failed: deliver what was buffered rather than hold it forever (a later reconnect retries). */
  abortReplay(): DaemonEvent[] {
    return this.replayed([], false);
  }

  get isReplaying(): boolean { return this.replaying; }

  private accept(events: DaemonEvent[]): DaemonEvent[] {
    const sorted = [...events].sort((a, b) => a.seq - b.seq);
    const out: DaemonEvent[] = [];
    for (const ev of sorted) {
      if (ev.seq <= this.lastSeq) continue; // duplicate of something delivered (live + replay overlap)
      out.push(ev);
      this.lastSeq = ev.seq;
    }
    return out;
  }
}

/** Exponential back-off with a cap and ±jitter; `random` injectable so tests are exact. */
export class Backoff {
  private attempt = 0;
  constructor(private readonly baseMs = 500, private readonly maxMs = 30_000, private readonly jitter = 0.2, private readonly random: () => number = Math.random) {}
  next(): number {
    const raw = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt);
    this.attempt++;
    const j = 1 + this.jitter * (2 * this.random() - 1);
    return Math.round(Math.min(this.maxMs, raw * j));
  }
  reset(): void { this.attempt = 0; }
  get attempts(): number { return this.attempt; }
}
