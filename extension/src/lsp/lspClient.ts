/**
 * Language support for `*.mathagent.json` run configs, served by the daemon: vscode-languageclient with a
 * custom transport that carries LSP messages as `lsp/message` notifications on the daemon WebSocket. The
 * client is (re)started on every (re)connection, since the daemon keeps one language-server session per socket.
 */
import * as vscode from 'vscode';
import { CloseAction, ErrorAction, LanguageClient, State } from 'vscode-languageclient/node';
import type { Connection } from '../connection';
import type { DaemonClient } from '../daemon/daemonClient';
import { DaemonMessageReader, DaemonMessageWriter } from './transport';

export class RunConfigLanguage implements vscode.Disposable {
  private lc: LanguageClient | undefined;
  private forClient: DaemonClient | undefined;
  private subs: { dispose(): void }[] = [];
  private clientSubs: { dispose(): void }[] = [];

  constructor(private readonly conn: Connection, private readonly log: vscode.LogOutputChannel) {
    this.subs.push(conn.onClient((c) => this.bind(c)));
    if (conn.client) this.bind(conn.client);
  }

  private bind(client: DaemonClient | undefined): void {
    for (const s of this.clientSubs) s.dispose();
    this.clientSubs = [];
    void this.stop();
    if (!client) return;
    this.clientSubs.push(client.onConnected(() => void this.start(client)));
    if (client.state === 'connected') void this.start(client);
  }

  private async start(client: DaemonClient): Promise<void> {
    await this.stop();
    if (client !== this.conn.client) return;
    this.forClient = client;
    const lc = new LanguageClient('mathagent-config', 'MathAgent Run Config', async () => ({ reader: new DaemonMessageReader(client), writer: new DaemonMessageWriter(client) }), {
      documentSelector: [{ language: 'mathagent-config' }],
      outputChannel: this.log as unknown as vscode.OutputChannel,
      // The transport dies with the socket; the next connection starts a fresh client instead of restarting this one.
      errorHandler: { error: () => ({ action: ErrorAction.Continue }), closed: () => ({ action: CloseAction.DoNotRestart, handled: true }) },
    });
    this.lc = lc;
    try { await lc.start(); this.log.info('run-config language server started (daemon)'); } catch (e) { this.log.warn(`run-config language server did not start: ${(e as Error).message}`); }
  }

  private async stop(): Promise<void> {
    const lc = this.lc;
    this.lc = undefined;
    this.forClient = undefined;
    if (!lc) return;
    try { if (lc.state === State.Running) await lc.stop(1000); else await lc.dispose(1000); } catch { /* the socket is already gone */ }
  }

  dispose(): void {
    for (const s of [...this.subs, ...this.clientSubs]) s.dispose();
    void this.stop();
  }
}
