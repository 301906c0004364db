/**
 * Event fan-out benchmark over a real socket: a daemon server on 127.0.0.1:0 with a temporary SQLite store,
 * one client, `n` log events emitted in bursts of `burst` per event-loop turn (as a training loop that yields
 * between steps would). Reports throughput (events/s from the first emit to the last receipt) and the latency
 * from `emit` to the client's receipt (p50/p99). Emitter and client share one process, so latency includes
 * waiting for the event loop: it is an upper bound on what a client in another process sees.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../store';
import { EventBus } from './eventBus';
import { startServer } from './server';
import { connectClient, readTokenFile } from './client';

export interface BenchEventsOptions {
  n?: number;
  /** Events emitted per event-loop turn. Default 100. */
  burst?: number;
  /** Message size of each log event, in characters. Default 200. */
  payloadChars?: number;
}

export interface BenchEventsResult {
  n: number;
  burst: number;
  payloadChars: number;
  seconds: number;
  eventsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Events in the store afterwards (all of them must be persisted). */
  stored: number;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

export async function benchEvents(opts: BenchEventsOptions = {}): Promise<BenchEventsResult> {
  const n = opts.n ?? 10_000;
  const burst = Math.max(1, opts.burst ?? 100);
  const payloadChars = opts.payloadChars ?? 200;
  const dir = mkdtempSync(join(tmpdir(), 'mathagent-bench-'));
  const store = openStore(join(dir, 'bench.db'));
  const bus = new EventBus(store);
  const noController = { start: () => Promise.reject(new Error('bench')), stop: async () => false, resume: async () => false };
  const server = await startServer({ store, bus, controller: noController, info: () => ({}), tokenFile: join(dir, 'token'), log: () => undefined });
  const client = await connectClient(server.url, readTokenFile(server.tokenFile));
  try {
    const emittedAt = new Float64Array(n + 1);
    const latency: number[] = [];
    const base = bus.lastSeq;
    const message = 'x'.repeat(payloadChars);
    let t0 = 0;
    const done = new Promise<number>((resolve) => {
      client.onEvent((e) => {
        const i = e.seq - base;
        latency.push(performance.now() - emittedAt[i]!);
        if (latency.length === n) resolve(performance.now());
      });
    });
    t0 = performance.now();
    for (let sent = 0; sent < n;) {
      const end = Math.min(n, sent + burst);
      for (; sent < end; sent++) {
        emittedAt[sent + 1] = performance.now();
        bus.emit({ type: 'log', runId: 'bench', level: 'info', message });
      }
      await new Promise<void>((r) => setImmediate(r));
    }
    const t1 = await done;
    bus.flush();
    latency.sort((a, b) => a - b);
    const seconds = (t1 - t0) / 1000;
    return {
      n, burst, payloadChars, seconds, eventsPerSec: n / seconds,
      p50Ms: quantile(latency, 0.5), p99Ms: quantile(latency, 0.99), maxMs: latency[latency.length - 1]!,
      stored: store.eventsAfter(base, undefined, n + 1).length,
    };
  } finally {
    await client.close();
    await server.close();
    bus.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
