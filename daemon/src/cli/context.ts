/**
 * What `run` and `daemon` share: open the store, the event bus and the run manager with the tfjs engine.
 */
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openStore, defaultDbPath, runsDirFor, type Store } from '../store';
import { EventBus } from '../server/eventBus';
import { RunManager } from '../pipeline/runManager';
import { createTfEngine } from '../pipeline/tfEngine';
import type { BackendName } from '@mathagent/shared';

export interface DaemonContext {
  store: Store;
  bus: EventBus;
  manager: RunManager;
  dbPath: string;
  /** Where runs keep their checkpoints (`<db folder>/runs`). */
  runsDir: string;
  close(): Promise<void>;
}

/** `db: ':memory:'` keeps nothing (`mathagent eval --no-store`); runs then get their folders under the temp dir. */
export function openContext(opts: { db?: string; backend?: BackendName; log?: (line: string) => void }): DaemonContext {
  const inMemory = opts.db === ':memory:';
  const dbPath = inMemory ? ':memory:' : resolve(opts.db ?? defaultDbPath());
  const store = openStore(dbPath);
  const bus = new EventBus(store);
  const runsDir = inMemory ? join(tmpdir(), 'mathagent-runs') : runsDirFor(dbPath);
  const manager = new RunManager({
    store,
    emit: (e) => { bus.emit(e); },
    engine: () => createTfEngine({ backend: opts.backend ?? 'auto', log: opts.log }),
    runsDir,
  });
  return {
    store, bus, manager, dbPath, runsDir,
    async close() { await manager.shutdown(); bus.close(); store.close(); },
  };
}

/**
 * Ctrl-C during a run started by the CLI: the first stops the run at its next safe point (what is committed
 * stays), a second quits at once. Returns the function that removes the handler.
 */
export function stopRunOnSigint(ctx: DaemonContext, runId: () => string, hint = ''): () => void {
  let interrupted = 0;
  const onSigint = () => {
    if (++interrupted > 1) process.exit(130);
    process.stderr.write(`\nstopping at the next safe point (Ctrl-C again to quit now${hint})\n`);
    void ctx.manager.stop(runId());
  };
  process.on('SIGINT', onSigint);
  return () => { process.off('SIGINT', onSigint); };
}
