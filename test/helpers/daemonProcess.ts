/**
 * Start a real `mathagent daemon` child process (from the TypeScript sources, so tests never run a stale bundle)
 * on port 0 with a temporary database and token file, and connect a client to it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connectClient, readTokenFile, type DaemonClient } from '../../daemon/src/server';

const root = join(__dirname, '..', '..');

export interface DaemonProcess {
  child: ChildProcess;
  url: string;
  tokenFile: string;
  dir: string;
  stderr: () => string;
  connect(): Promise<DaemonClient>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL (kill -9) and wait for exit. */
  kill9(): Promise<void>;
}

export function tempDir(prefix = 'mathagent-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startDaemon(opts: { dir?: string; extraArgs?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<DaemonProcess> {
  const dir = opts.dir ?? tempDir();
  const db = join(dir, 'mathagent.db');
  const tokenFile = join(dir, 'daemon.token');
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'daemon/src/cli/main.ts'), 'daemon', '--port', '0', '--db', db, '--token-file', tokenFile, '--json', '--backend', 'wasm', ...(opts.extraArgs ?? [])], {
    cwd: root, env: { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data'), ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const first = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (l) => resolve(l));
    child.once('exit', (code) => reject(new Error(`daemon exited (${code}) before printing its URL:\n${err}`)));
  });
  const hello = JSON.parse(first) as { url: string; tokenFile: string };
  return {
    child, url: hello.url, tokenFile: hello.tokenFile, dir, stderr: () => err,
    connect: () => connectClient(hello.url, readTokenFile(hello.tokenFile)),
    async stop() { if (child.exitCode === null) child.kill('SIGTERM'); await exited; },
    async kill9() { if (child.exitCode === null) child.kill('SIGKILL'); await exited; },
  };
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Resolve when `pred` holds for an event, or reject after `ms`. */
export function waitFor<T>(subscribe: (fn: (x: T) => void) => () => void, pred: (x: T) => boolean, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`timed out after ${ms} ms waiting for ${what}`)); }, ms);
    const off = subscribe((x) => { if (pred(x)) { clearTimeout(timer); off(); resolve(x); } });
  });
}
