/**
 * The daemon's event bus: the training loop emits, the store keeps, the sockets fan out.
 *
 * `emit` never blocks on I/O: it assigns `seq` and `time`, hands the event to each subscriber synchronously
 * (the server's subscriber only queues a frame on each socket) and appends it to a pending batch that is
 * written to the store in one transaction per event-loop turn — `trajectory/turn` events come by the thousand,
 * and one transaction per event would cost a WAL commit each. `replay` flushes first, so a client never asks
 * for an event that is still only in memory. Seq continues from the store's last event after a restart.
 */
import type { DaemonEvent, DaemonEventInput } from '@mathagent/shared';
import type { Store } from '../store';

export type EventListener = (e: DaemonEvent) => void;

export interface EventBusOptions {
  /** Flush synchronously once this many events wait (bounds memory when the loop never yields). Default 512. */
  maxPending?: number;
  /** Without a store: how many recent events to keep in memory for replay. Default 10 000. */
  memoryEvents?: number;
  /** Where persistence or subscriber failures go (never thrown into the emitter). */
  onError?: (message: string, err: unknown) => void;
}

export class EventBus {
  private seq: number;
  private readonly listeners = new Set<EventListener>();
  private pending: DaemonEvent[] = [];
  private flushScheduled = false;
  private readonly memory: DaemonEvent[] = [];
  private readonly maxPending: number;
  private readonly memoryEvents: number;
  private readonly onError: (message: string, err: unknown) => void;
  private closed = false;

  constructor(private readonly store: Store | null, opts: EventBusOptions = {}) {
    this.seq = store ? store.lastSeq() : 0;
    this.maxPending = Math.max(1, opts.maxPending ?? 512);
    this.memoryEvents = Math.max(1, opts.memoryEvents ?? 10_000);
    this.onError = opts.onError ?? ((m, e) => process.stderr.write(`mathagent: ${m}: ${e instanceof Error ? e.message : String(e)}\n`));
  }

  /** The seq of the last emitted event (0 before any). */
  get lastSeq(): number {
    return this.seq;
  }

  emit(input: DaemonEventInput): DaemonEvent {
    const e = { ...input, seq: ++this.seq, time: new Date().toISOString() } as DaemonEvent;
    if (this.store && !this.closed) {
      this.pending.push(e);
      if (this.pending.length >= this.maxPending) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    } else if (!this.store) {
      this.memory.push(e);
      if (this.memory.length > this.memoryEvents) this.memory.splice(0, this.memory.length - this.memoryEvents);
    }
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch (err) {
        this.onError(`event subscriber failed on ${e.type} #${e.seq}`, err);
      }
    }
    return e;
  }

  subscribe(fn: EventListener): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }

  /** Writes pending events to the store now (one transaction). */
  flush(): void {
    this.flushScheduled = false;
    if (!this.store || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    try {
      // Continue above what other writers of the same database have stored (appendEvents renumbered ours past them).
      if (this.store.isOpen) this.seq = Math.max(this.seq, this.store.appendEvents(batch));
    } catch (err) {
      // Live clients already have these; only replay after a restart would miss them. Never crash the loop.
      this.onError(`could not store ${batch.length} event(s) #${batch[0]!.seq}..#${batch[batch.length - 1]!.seq}`, err);
    }
  }

  /** Events after `afterSeq`, oldest first (from the store, or the in-memory window without one). */
  replay(afterSeq: number, runId?: string, limit = 10_000): DaemonEvent[] {
    if (this.store) {
      this.flush();
      return this.store.eventsAfter(afterSeq, runId, limit);
    }
    const out: DaemonEvent[] = [];
    for (const e of this.memory) {
      if (e.seq > afterSeq && (runId === undefined || e.runId === runId)) {
        out.push(e);
        if (out.length >= limit) break;
      }
    }
    return out;
  }

  /** Flushes and stops persisting (call before closing the store). */
  close(): void {
    this.flush();
    this.closed = true;
    this.listeners.clear();
  }
}
