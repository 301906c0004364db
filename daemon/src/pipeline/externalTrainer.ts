/**
 * The external-trainer hook: at scale the daemon orchestrates and records, and existing engines do the heavy
 * parts. Per iteration:
 *   1. export: the iteration's pairs into `<runDir>/iter-<t>/` as TRL (`pairs.trl.jsonl`) and OpenRLHF
 *      (`pairs.openrlhf.jsonl`) rows, with token ids and action masks;
 *   2. train: run the user's command template (placeholders {pairs}, {pairs_openrlhf}, {iteration},
 *      {prev_checkpoint}, {out_dir}, {run_dir}) through /bin/sh, its output streamed line by line as `log`
 *      events and kept in `trainer.log`; a non-zero exit fails the iteration with the last lines of output;
 *   3. serve: point the remote policy at the new checkpoint — start the `serve` command template ({checkpoint},
 *      {port}, {iteration}) and wait until GET /v1/models answers, or switch to a fixed `endpoint`.
 * After each step the step is recorded (the run's resume state), so a restarted daemon continues with the step
 * that had not finished: an export is not redone, a finished training is not rerun, a served checkpoint is
 * served again (a daemon restart killed the server it had started).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { ExternalTrainerConfig, Trajectory } from '@mathagent/shared';
import type { EndpointPool } from '../policy/endpointPool';
import type { OpenAIPolicy } from '../policy/openaiPolicy';
import { writePairFiles } from './exportFormats';

export interface ExternalStepState {
  iteration: number;
  step: 'exported' | 'trained' | 'served';
  /** The checkpoint folder the trainer wrote ({out_dir}). */
  checkpoint: string;
  pairsFile: string;
}

export interface ExternalTrainerDeps {
  runDir: string;
  pool: EndpointPool;
  policy: OpenAIPolicy;
  /** apiKeyFile for the endpoints this hook starts (e.g. the daemon token file used by `mathagent serve`). */
  apiKeyFile?: string;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
  getState: () => ExternalStepState | null;
  setState: (s: ExternalStepState) => void;
  signal?: AbortSignal;
}

const TRAIN_PLACEHOLDERS = ['pairs', 'pairs_openrlhf', 'iteration', 'prev_checkpoint', 'out_dir', 'run_dir'];
const SERVE_PLACEHOLDERS = ['checkpoint', 'port', 'iteration', 'run_dir'];

/** POSIX single-quote a value for /bin/sh. */
export function shellQuote(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

/** Fill `{name}` placeholders with shell-quoted values; an unknown placeholder is an error naming it. */
export function fillTemplate(template: string, values: Record<string, string>, what: string): string {
  return template.replace(/\{([a-z_]+)\}/g, (m, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`${what}: unknown placeholder {${name}}; use ${Object.keys(values).map((k) => `{${k}}`).join(', ')}`);
    return shellQuote(v);
  });
}

/** Throw if a template uses a placeholder outside `allowed` (checked when the run starts, not hours later). */
export function checkTemplate(template: string, allowed: string[], what: string): void {
  fillTemplate(template, Object.fromEntries(allowed.map((k) => [k, 'x'])), what);
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => res(p)); });
  });
}

export class ExternalTrainer {
  private served: ChildProcess | null = null;
  private servedLog = '';

  constructor(readonly cfg: ExternalTrainerConfig, private readonly d: ExternalTrainerDeps) {
    checkTemplate(cfg.command, TRAIN_PLACEHOLDERS, 'externalTrainer.command');
    if (cfg.serve !== null) checkTemplate(cfg.serve, SERVE_PLACEHOLDERS, 'externalTrainer.serve');
    if (cfg.serve !== null && cfg.endpoint !== null) throw new Error('externalTrainer: give either serve (a command) or endpoint (a fixed URL), not both');
  }

  /** Export, train and serve iteration `t`; returns the new checkpoint folder. Steps already recorded are skipped. */
  async trainIteration(t: number, pairs: Array<{ chosen: Trajectory; rejected: Trajectory }>, prevCheckpoint: string | null): Promise<string> {
    const dir = resolve(this.d.runDir, `iter-${t}`);
    const outDir = join(dir, 'checkpoint');
    let st = this.d.getState();
    if (st && st.iteration !== t) st = null;
    if (!st) {
      const files = writePairFiles(dir, pairs);
      st = { iteration: t, step: 'exported', checkpoint: outDir, pairsFile: files.trl };
      this.d.setState(st);
      this.d.log('info', `iteration ${t}: exported ${files.count} pairs to ${files.trl} and ${files.openrlhf}`);
    } else {
      this.d.log('info', `iteration ${t}: resuming the external trainer after step "${st.step}"`);
    }
    if (st.step === 'exported') {
      const cmd = fillTemplate(this.cfg.command, {
        pairs: st.pairsFile, pairs_openrlhf: join(dir, 'pairs.openrlhf.jsonl'), iteration: String(t),
        prev_checkpoint: prevCheckpoint ?? '', out_dir: outDir, run_dir: resolve(this.d.runDir),
      }, 'externalTrainer.command');
      await this.runCommand(cmd, dir, join(dir, 'trainer.log'), `trainer (iteration ${t})`);
      if (!existsSync(outDir)) throw new Error(`external trainer: the command exited 0 but wrote nothing to ${outDir} ({out_dir}); it must save the new checkpoint there`);
      st = { ...st, step: 'trained' };
      this.d.setState(st);
    }
    await this.serve(st.checkpoint, t);
    if (st.step !== 'served') this.d.setState({ ...st, step: 'served' });
    return st.checkpoint;
  }

  /** Point the remote policy at `checkpoint` (start the serve command, or switch to the fixed endpoint). */
  async serve(checkpoint: string, iteration: number): Promise<void> {
    if (this.cfg.serve === null && this.cfg.endpoint === null) {
      this.d.log('warn', `iteration ${iteration}: externalTrainer has neither serve nor endpoint: sampling continues from the same endpoints (they must load ${checkpoint} themselves)`);
      return;
    }
    let url: string;
    if (this.cfg.serve !== null) {
      await this.stopServed();
      const port = await freePort();
      const cmd = fillTemplate(this.cfg.serve, { checkpoint, port: String(port), iteration: String(iteration), run_dir: resolve(this.d.runDir) }, 'externalTrainer.serve');
      url = await this.startServe(cmd, port, join(resolve(this.d.runDir), `iter-${iteration}`, 'serve.log'));
    } else {
      url = this.cfg.endpoint!;
    }
    this.d.pool.setEndpoints([{ url, apiKeyFile: this.d.apiKeyFile }]);
    this.d.policy.setModel(null); // the new server names its model itself (GET /v1/models)
    this.d.log('info', `iteration ${iteration}: waiting for ${url}/v1/models`);
    const served = this.served;
    if (served) {
      // Stop waiting as soon as the server we started dies (a bad command should not cost readyTimeoutMs).
      const ctl = new AbortController();
      const onAbort = () => ctl.abort();
      this.d.signal?.addEventListener('abort', onAbort);
      const died = new Promise<never>((_res, rej) => served.once('exit', (code, sig) => { ctl.abort(); rej(new Error(`external trainer: the serve command exited (${sig ?? `code ${code}`}) before answering on ${url}; see ${this.servedLog}`)); }));
      died.catch(() => undefined);
      try {
        await Promise.race([this.d.pool.waitReady({ timeoutMs: this.cfg.readyTimeoutMs, signal: ctl.signal }), died]);
      } finally { this.d.signal?.removeEventListener('abort', onAbort); }
    } else {
      await this.d.pool.waitReady({ timeoutMs: this.cfg.readyTimeoutMs, signal: this.d.signal });
    }
    this.d.log('info', `iteration ${iteration}: sampling from ${url} (checkpoint ${checkpoint})`);
  }

  async close(): Promise<void> { await this.stopServed(); }

  private async startServe(cmd: string, port: number, logFile: string): Promise<string> {
    mkdirSync(join(logFile, '..'), { recursive: true });
    const log = createWriteStream(logFile, { flags: 'a' });
    // A log file that cannot be written (folder removed, disk full) is reported, never a daemon crash.
    log.on('error', (e) => this.d.log('warn', `cannot write ${logFile}: ${e.message}`));
    this.servedLog = logFile;
    this.d.log('info', `starting: ${cmd}`);
    const child = spawn('/bin/sh', ['-c', cmd], { cwd: resolve(this.d.runDir), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.served = child;
    let url = `http://127.0.0.1:${port}`;
    const firstLine = new Promise<void>((res) => {
      // `mathagent serve --json` says where it listens on its first line; other servers use {port}.
      const rl = createInterface({ input: child.stdout! });
      let first = true;
      rl.on('line', (l) => {
        log.write(`${l}\n`);
        if (first) {
          first = false;
          try { const j = JSON.parse(l) as { url?: unknown }; if (typeof j.url === 'string') url = j.url; } catch { /* not JSON */ }
          res();
        }
      });
      rl.on('close', () => res());
      setTimeout(res, 2000).unref();
    });
    child.stderr!.on('data', (c: Buffer) => log.write(c));
    child.once('exit', (code, sig) => {
      log.end();
      if (this.served === child) {
        this.served = null;
        this.d.log('warn', `the serve command exited (${sig ?? `code ${code}`}); see ${logFile}`);
      }
    });
    await firstLine;
    if (child.exitCode !== null) throw new Error(`external trainer: the serve command exited at once (code ${child.exitCode}); see ${logFile}`);
    return url;
  }

  private async stopServed(): Promise<void> {
    const c = this.served;
    this.served = null;
    if (!c || c.exitCode !== null || c.pid === undefined) return;
    const exited = new Promise<void>((res) => c.once('exit', () => res()));
    try { process.kill(-c.pid, 'SIGTERM'); } catch { /* gone */ }
    const t = setTimeout(() => { try { process.kill(-c.pid!, 'SIGKILL'); } catch { /* gone */ } }, 10_000);
    await exited;
    clearTimeout(t);
  }

  private runCommand(cmd: string, cwd: string, logFile: string, what: string): Promise<void> {
    mkdirSync(cwd, { recursive: true });
    const log = createWriteStream(logFile, { flags: 'a' });
    log.on('error', (e) => this.d.log('warn', `cannot write ${logFile}: ${e.message}`));
    this.d.log('info', `${what}: ${cmd}`);
    return new Promise<void>((resolvePromise, reject) => {
      const child = spawn('/bin/sh', ['-c', cmd], { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      const tail: string[] = [];
      const onAbort = () => { try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* gone */ } };
      this.d.signal?.addEventListener('abort', onAbort);
      for (const stream of [child.stdout!, child.stderr!]) {
        createInterface({ input: stream }).on('line', (line) => {
          log.write(`${line}\n`);
          tail.push(line);
          if (tail.length > 20) tail.shift();
          this.d.log('info', `${what}: ${line.slice(0, 500)}`);
        });
      }
      child.once('error', (e) => { this.d.signal?.removeEventListener('abort', onAbort); log.end(); reject(new Error(`${what}: could not start /bin/sh: ${e.message}`)); });
      child.once('close', (code, sig) => {
        this.d.signal?.removeEventListener('abort', onAbort);
        log.end();
        if (code === 0) { resolvePromise(); return; }
        if (this.d.signal?.aborted) { reject(new Error(`${what}: stopped`)); return; }
        reject(new Error(`${what} failed (${sig ? `signal ${sig}` : `exit code ${code}`}); last output:\n${tail.slice(-8).join('\n')}\n(full log: ${logFile})`));
      });
    });
  }
}
