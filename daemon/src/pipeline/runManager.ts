/**
 * RunManager: the daemon's RunController. Runs execute one at a time (they share one accelerator); a run that
 * was running when the daemon died is resumed from its committed state when the daemon starts again.
 */
import { join } from 'node:path';
import type { DaemonEventInput, RunConfig, RunKind, RunState } from '@mathagent/shared';
import type { Store } from '../store';
import { resolveConfig } from './config';
import { executeRun, isEvalOnly, RunAborted } from './execute';
import type { Engine } from './engine';

export interface RunManagerDeps {
  store: Store;
  emit: (e: DaemonEventInput) => void;
  /** Creates the compute engine once, on the first run (backend init is slow and process-wide). */
  engine: () => Promise<Engine>;
  /** Folder under which each run gets `<runId>/` for its checkpoints. */
  runsDir: string;
}

export class RunManager {
  private readonly controllers = new Map<string, AbortController>();
  private chain: Promise<void> = Promise.resolve();
  private readonly pending = new Set<string>();
  private enginePromise: Promise<Engine> | null = null;
  private readonly engineListeners: Array<(backend: string) => void> = [];

  constructor(private readonly d: RunManagerDeps) {}

  /** Validate the config (errors name the field path), create the run and queue it. */
  async start(p: { preset?: string; config?: Record<string, unknown>; file?: string; kind?: RunKind }): Promise<{ runId: string }> {
    const { runId } = this.create(p);
    this.schedule(runId);
    return { runId };
  }

  /**
   * Validate the config and create the run, queued, without executing it here: another process picks it up with
   * `mathagent run --resume <id>` (the experiment's parallel jobs).
   */
  create(p: { preset?: string; config?: Record<string, unknown>; file?: string; kind?: RunKind }): { runId: string } {
    const config = resolveConfig({ preset: p.preset, file: p.file, overrides: p.config });
    if (p.kind === 'eval') checkEvalConfig(config);
    const run = this.d.store.createRun({ config, kind: p.kind ?? 'train', state: 'queued' });
    this.setState(run.id, 'queued', null);
    return { runId: run.id };
  }

  async stop(runId: string): Promise<boolean> {
    const run = this.d.store.getRunSummary(runId);
    if (!run) throw new Error(`no run with id ${runId}`);
    const c = this.controllers.get(runId);
    if (c) { this.setState(runId, 'stopping', null); c.abort(); return true; }
    if (this.pending.has(runId)) { this.pending.delete(runId); this.setState(runId, 'stopped', null); return true; }
    return false;
  }

  async resume(runId: string): Promise<boolean> {
    const run = this.d.store.getRunSummary(runId);
    if (!run) throw new Error(`no run with id ${runId}`);
    if (this.controllers.has(runId) || this.pending.has(runId) || run.state === 'finished') return false;
    this.setState(runId, 'queued', null);
    this.schedule(runId);
    return true;
  }

  /** Whether this manager executes or has queued the run (it must not be deleted under it). */
  isActive(runId: string): boolean {
    return this.controllers.has(runId) || this.pending.has(runId);
  }

  /** On daemon start: runs left `running`/`queued`/`stopping` by a killed daemon continue. */
  resumeInterrupted(): string[] {
    const runs = this.d.store.listRuns({ limit: 1000, states: ['running', 'queued', 'stopping'] }).reverse();
    for (const r of runs) { this.setState(r.id, 'queued', null); this.schedule(r.id); }
    return runs.map((r) => r.id);
  }

  /** Called with the backend name once the engine is up (daemon/info reports it). */
  onEngine(fn: (backend: string) => void): void { this.engineListeners.push(fn); }

  /** Resolves when every queued run has finished (CLI `run`, tests). */
  idle(): Promise<void> { return this.chain; }

  /** Stop the active run at its next safe point and wait for it. */
  async shutdown(): Promise<void> {
    for (const id of this.pending) this.pending.delete(id);
    for (const c of this.controllers.values()) c.abort();
    await this.chain;
  }

  private schedule(runId: string): void {
    this.pending.add(runId);
    this.chain = this.chain.then(() => this.execute(runId));
  }

  private setState(runId: string, state: RunState, error: string | null): void {
    const run = this.d.store.updateRun(runId, { state, error });
    this.d.emit({ type: 'run/status', runId, state, stage: run.stage, iteration: run.iteration, progress: null, error });
  }

  private async execute(runId: string): Promise<void> {
    if (!this.pending.delete(runId)) return; // stopped while queued
    const run = this.d.store.getRun(runId);
    if (!run) return;
    const controller = new AbortController();
    this.controllers.set(runId, controller);
    try {
      this.setState(runId, 'running', null);
      if (!this.enginePromise) {
        this.enginePromise = this.d.engine();
        this.enginePromise.then((e) => this.engineListeners.forEach((fn) => fn(e.backend)), () => { this.enginePromise = null; });
      }
      const engine = await this.enginePromise;
      await executeRun(runId, run.config, { store: this.d.store, emit: this.d.emit, engine, runDir: join(this.d.runsDir, runId), signal: controller.signal });
      this.setState(runId, 'finished', null);
    } catch (e) {
      if (e instanceof RunAborted || controller.signal.aborted) {
        this.setState(runId, 'stopped', null);
      } else {
        const msg = e instanceof Error ? e.message : String(e);
        this.d.emit({ type: 'log', runId, level: 'error', message: e instanceof Error && e.stack ? e.stack : msg });
        this.setState(runId, 'failed', msg);
      }
    } finally {
      this.controllers.delete(runId);
    }
  }
}

/** An eval run trains nothing and evaluates something given: a checkpoint (`model.init`) or a served model. */
export function checkEvalConfig(config: RunConfig): void {
  if (!isEvalOnly(config)) throw new Error('an eval run trains nothing: set iterations to 0 and sft.enabled to false');
  if (config.policy.kind === 'local' && !config.model.init) throw new Error('an eval run needs a checkpoint to evaluate (model.init) or a remote policy (policy.kind "openai")');
}
