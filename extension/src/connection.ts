/**
 * Owns the DaemonClient for the window: settings, token (SecretStorage, refreshed from the local token file),
 * the local daemon child process, the status bar item and the `mathagent.connected` context key.
 */
import * as vscode from 'vscode';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { DaemonEvent, MethodName, ParamsOf, ResultOf } from '@mathagent/shared';
import { DaemonClient, type ConnectionState } from './daemon/daemonClient';
import { DEFAULT_DAEMON_URL, defaultTokenFile, expandHome, isLocalUrl, parseDaemonHello, parseDaemonUrl, readTokenFile, splitCommand } from './daemon/endpoint';
import { Emitter } from './util/emitter';

const secretKey = (url: string) => `mathagent.token:${url}`;

export class Connection implements vscode.Disposable {
  client: DaemonClient | undefined;
  private child: ChildProcess | undefined;
  /** URL of a daemon this window started; preferred over the setting while it runs. */
  private startedUrl: string | undefined;
  private readonly status: vscode.StatusBarItem;
  private progressText = '';
  private subs: { dispose(): void }[] = [];
  private readonly clientEmitter = new Emitter<DaemonClient | undefined>();
  /** A new client was created (or removed); views re-subscribe to its events. */
  readonly onClient = this.clientEmitter.event;
  private readonly eventEmitter = new Emitter<DaemonEvent>();
  readonly onEvent = this.eventEmitter.event;
  private readonly resetEmitter = new Emitter<void>();
  /** Views must refetch everything (new client, or the daemon lost our place). */
  readonly onReset = this.resetEmitter.event;

  constructor(private readonly ctx: vscode.ExtensionContext, readonly log: vscode.LogOutputChannel) {
    this.status = vscode.window.createStatusBarItem('mathagent.status', vscode.StatusBarAlignment.Left, 50);
    this.status.name = 'MathAgent';
    this.render('disconnected');
    this.status.show();
  }

  get url(): string {
    return this.startedUrl ?? vscode.workspace.getConfiguration('mathagent').get<string>('daemonUrl', DEFAULT_DAEMON_URL);
  }

  get connected(): boolean { return this.client?.state === 'connected'; }

  /** The client when connected; otherwise throws a message that says what to do. */
  require(): DaemonClient {
    if (!this.client || this.client.state !== 'connected') throw new Error('Not connected to a MathAgent daemon: run "MathAgent: Connect to Daemon" or "MathAgent: Start Local Daemon".');
    return this.client;
  }

  request<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    try { return this.require().request(method, params); } catch (e) { return Promise.reject(e as Error); }
  }

  private tokenFile(url: string): string | undefined {
    const setting = vscode.workspace.getConfiguration('mathagent').get<string>('tokenFile', '').trim();
    if (setting) return expandHome(setting);
    return isLocalUrl(url) ? defaultTokenFile() : undefined;
  }

  /** The token for `url`: from the token file when the daemon is local (and saved in SecretStorage), else the secret. */
  private async token(url: string, explicitFile?: string): Promise<string | undefined> {
    const file = explicitFile ?? this.tokenFile(url);
    if (file) {
      try {
        const t = await readTokenFile(file);
        if (t) { await this.ctx.secrets.store(secretKey(url), t); return t; }
      } catch (e) { this.log.warn((e as Error).message); }
    }
    return this.ctx.secrets.get(secretKey(url));
  }

  /** Ask for a token and keep it in SecretStorage (remote daemons, or a refused local token). */
  async promptToken(url = this.url): Promise<boolean> {
    const t = await vscode.window.showInputBox({ title: `Token for the MathAgent daemon at ${url}`, prompt: 'The daemon prints where its token file is; paste the token from it.', password: true, ignoreFocusOut: true,
      validateInput: (v) => (/^\S{16,}$/.test(v.trim()) ? undefined : 'a token is one word of at least 16 characters') });
    if (!t) return false;
    await this.ctx.secrets.store(secretKey(url), t.trim());
    return true;
  }

  /** (Re)connect to `url` (default: the setting). Rejects with an actionable message. */
  async connect(url = this.url, tokenFile?: string): Promise<ResultOf<'daemon/info'>> {
    parseDaemonUrl(url);
    this.disposeClient();
    const client = new DaemonClient({ url, token: () => this.token(url, tokenFile), log: (l) => this.log.info(l) });
    this.client = client;
    this.subs.push(
      client.onState((s) => this.onState(client, s)),
      client.onEvent((ev) => { this.track(ev); this.eventEmitter.fire(ev, (e) => this.log.error(`event handler failed: ${String(e)}`)); }),
      client.onReset(() => this.resetEmitter.fire(undefined)),
      client.onConnected((info) => this.log.info(`connected to ${url}: daemon ${info.version}, backend ${info.backend}, last seq ${info.lastSeq}`)),
    );
    this.clientEmitter.fire(client);
    try {
      const info = await client.connect();
      this.resetEmitter.fire(undefined);
      return info;
    } catch (e) {
      if (this.client === client) this.disposeClient();
      throw e;
    }
  }

  private onState(client: DaemonClient, s: ConnectionState): void {
    if (client !== this.client) return;
    void vscode.commands.executeCommand('setContext', 'mathagent.connected', s === 'connected');
    if (s !== 'connected') this.progressText = '';
    this.render(s);
  }

  /** Keep the status bar's run progress from `run/status` events. */
  private track(ev: DaemonEvent): void {
    if (ev.type !== 'run/status') return;
    if (ev.state !== 'running' || !ev.stage) this.progressText = ev.state === 'finished' ? '$(check) run finished' : ev.state === 'failed' ? '$(error) run failed' : '';
    else {
      const p = ev.progress && ev.progress.kind !== 'end' && ev.progress.total > 0 ? ` ${ev.progress.done}/${ev.progress.total}` : '';
      this.progressText = `$(sync~spin) it ${ev.iteration} ${ev.stage}${p}`;
    }
    this.render(this.client?.state ?? 'disconnected');
  }

  private render(s: ConnectionState): void {
    const st = this.status;
    if (s === 'connected') {
      st.text = `$(beaker) MathAgent${this.progressText ? ` ${this.progressText}` : ''}`;
      st.tooltip = `Connected to ${this.client?.url} (daemon ${this.client?.info?.version ?? '?'}, ${this.client?.info?.backend ?? '?'})`;
      st.command = 'mathagent.runs.focus';
      st.backgroundColor = undefined;
    } else if (s === 'connecting') {
      st.text = '$(loading~spin) MathAgent: connecting';
      st.tooltip = `Connecting to ${this.client?.url ?? this.url}`;
      st.command = undefined;
    } else {
      st.text = '$(debug-disconnect) MathAgent: disconnected';
      st.tooltip = `${this.client?.lastError ?? 'Not connected'} — click to connect`;
      st.command = 'mathagent.connect';
      st.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
    }
  }

  /**
   * Spawn `mathagent daemon --json` (setting `mathagent.daemonCommand`), read its first stdout line for the
   * URL and token file, and connect. The child is ended with this window.
   */
  async startLocalDaemon(): Promise<ResultOf<'daemon/info'>> {
    const cfg = vscode.workspace.getConfiguration('mathagent');
    const argv = splitCommand(cfg.get<string>('daemonCommand', 'npx --no-install mathagent daemon'));
    if (!argv.length) throw new Error('mathagent.daemonCommand is empty');
    if (!argv.includes('--json')) argv.push('--json');
    const settingUrl = cfg.get<string>('daemonUrl', DEFAULT_DAEMON_URL);
    if (!argv.includes('--port') && isLocalUrl(settingUrl)) {
      const port = parseDaemonUrl(settingUrl).port;
      if (port) argv.push('--port', port);
    }
    const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    this.log.info(`starting local daemon: ${argv.join(' ')}${cwd ? ` (in ${cwd})` : ''}`);
    this.stopChild();
    const child = spawn(argv[0]!, argv.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: process.env, detached: process.platform !== 'win32' });
    this.child = child;
    const stderr: string[] = [];
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => { stderr.push(d); if (stderr.length > 50) stderr.shift(); this.log.info(`[daemon] ${d.trimEnd()}`); });
    const hello = await new Promise<{ url: string; tokenFile: string }>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout! });
      let first = true;
      const timer = setTimeout(() => reject(new Error(`the daemon printed no address within 60 s: ${stderr.join('').slice(-400)}`)), 60_000);
      rl.on('line', (line) => {
        if (!first) { this.log.info(`[daemon] ${line}`); return; }
        first = false;
        clearTimeout(timer);
        try { resolve(parseDaemonHello(line)); } catch (e) { reject(e); }
      });
      child.on('error', (e) => { clearTimeout(timer); reject(new Error(`could not start "${argv[0]}": ${e.message} (setting mathagent.daemonCommand)`)); });
      child.on('exit', (code, sig) => {
        clearTimeout(timer);
        if (this.child === child) { this.child = undefined; this.startedUrl = undefined; }
        reject(new Error(`the daemon exited (${sig ?? code}) before it was ready: ${stderr.join('').slice(-400) || 'no output'}`));
      });
    });
    this.startedUrl = hello.url;
    return this.connect(hello.url, hello.tokenFile);
  }

  private stopChild(): void {
    const c = this.child;
    this.child = undefined;
    this.startedUrl = undefined;
    if (!c || c.exitCode !== null || c.pid === undefined) return;
    try { process.kill(-c.pid, 'SIGTERM'); } catch { try { c.kill('SIGTERM'); } catch { /* already gone */ } }
  }

  private disposeClient(): void {
    for (const s of this.subs) s.dispose();
    this.subs = [];
    const c = this.client;
    this.client = undefined;
    if (c) { c.dispose(); this.clientEmitter.fire(undefined); }
    void vscode.commands.executeCommand('setContext', 'mathagent.connected', false);
    this.render('disconnected');
  }

  dispose(): void {
    this.disposeClient();
    this.stopChild();
    this.status.dispose();
    this.clientEmitter.dispose(); this.eventEmitter.dispose(); this.resetEmitter.dispose();
  }
}
