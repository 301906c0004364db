/**
 * What `run` and `daemon` share: open the store, the event bus and the run manager with the tfjs engine.
 */
import { dirname, join, resolve } from 'node:path';
import { openStore, defaultDbPath, type Store } from '../store';
import { EventBus } from '../server/eventBus';
import { RunManager } from '../pipeline/runManager';
import { createTfEngine } from '../pipeline/tfEngine';
import type { BackendName } from '@mathagent/shared';

export interface DaemonContext {
  store: Store;
  bus: EventBus;
  manager: RunManager;
  dbPath: string;
  close(): Promise<void>;
}

export function openContext(opts: { db?: string; backend?: BackendName; log?: (line: string) => void }): DaemonContext {
  const dbPath = resolve(opts.db ?? defaultDbPath());
  const store = openStore(dbPath);
  const bus = new EventBus(store);
  const runsDir = join(dirname(dbPath), 'runs');
  const manager = new RunManager({
    store,
    emit: (e) => { bus.emit(e); },
    engine: () => createTfEngine({ backend: opts.backend ?? 'auto', log: opts.log }),
    runsDir,
  });
  return {
    store, bus, manager, dbPath,
    async close() { await manager.shutdown(); bus.close(); store.close(); },
  };
}
