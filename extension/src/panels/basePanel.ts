/**
 * Common plumbing of the webview panels: HTML with CSP + nonce, resource roots, validated messages both ways,
 * a message queue until the webview says `ready` (it says so again after every reload, and the panel then
 * re-sends what it shows).
 */
import * as vscode from 'vscode';
import type { Connection } from '../connection';
import type { RunsTree } from '../views/runsTree';
import { FromWebview, ToWebview, VIEW_TYPES, type PanelKind } from '../webviewProtocol';
import { makeNonce, panelHtml } from './html';

export interface PanelContext {
  extensionUri: vscode.Uri;
  conn: Connection;
  tree: RunsTree;
  log: vscode.LogOutputChannel;
}

export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
  return {
    enableScripts: true,
    enableFindWidget: true,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist'), vscode.Uri.joinPath(extensionUri, 'media')],
  };
}

export function createPanel(kind: PanelKind, title: string, extensionUri: vscode.Uri, column = vscode.ViewColumn.Active): vscode.WebviewPanel {
  return vscode.window.createWebviewPanel(VIEW_TYPES[kind], title, { viewColumn: column, preserveFocus: false }, webviewOptions(extensionUri));
}

export abstract class BasePanel implements vscode.Disposable {
  private ready = false;
  private queue: ToWebview[] = [];
  private subs: vscode.Disposable[] = [];
  /** Shown again after a webview reload, until content replaces it. */
  private lastError: string | undefined;
  protected disposed = false;

  constructor(readonly panel: vscode.WebviewPanel, readonly kind: PanelKind, protected readonly ctx: PanelContext) {
    const wv = panel.webview;
    wv.options = webviewOptions(ctx.extensionUri);
    wv.html = panelHtml({
      kind, cspSource: wv.cspSource, nonce: makeNonce(), title: panel.title,
      scriptUri: wv.asWebviewUri(vscode.Uri.joinPath(ctx.extensionUri, 'dist', 'webview.js')).toString(),
      styleUri: wv.asWebviewUri(vscode.Uri.joinPath(ctx.extensionUri, 'media', 'panel.css')).toString(),
    });
    panel.iconPath = vscode.Uri.joinPath(ctx.extensionUri, 'media', 'icon.svg');
    this.subs.push(
      wv.onDidReceiveMessage((raw: unknown) => {
        const m = FromWebview.safeParse(raw);
        if (!m.success) { ctx.log.warn(`${kind} panel: dropped an invalid message from the webview`); return; }
        if (m.data.type === 'ready') {
          this.ready = true;
          this.flush();
          void Promise.resolve(this.resend()).then(() => { if (this.lastError) this.post({ type: 'error', message: this.lastError }); });
          return;
        }
        if (m.data.type === 'log') { (m.data.level === 'error' ? ctx.log.error : ctx.log.info).call(ctx.log, `[${kind} webview] ${m.data.message}`); return; }
        Promise.resolve(this.onMessage(m.data)).catch((e) => this.fail(e));
      }),
      panel.onDidDispose(() => this.dispose()),
      // A run deleted (from this window or another) takes its panels with it: they would only show errors.
      ctx.conn.onEvent((ev) => {
        if (ev.type !== 'run/deleted' || this.disposed || !this.showsRun(ev.runId)) return;
        ctx.log.info(`${kind} panel closed: run ${ev.runId} was deleted`);
        this.dispose();
      }),
    );
  }

  /** Whether the panel shows something of this run (closed when the run is deleted). */
  protected abstract showsRun(runId: string): boolean;

  /** Send to the webview (checked against the schema: a bug here shows in the log, not as a broken panel). */
  protected post(msg: ToWebview): void {
    const ok = ToWebview.safeParse(msg);
    if (!ok.success) { this.ctx.log.error(`${this.kind} panel: refused to send an invalid ${msg.type} message: ${ok.error.issues[0]?.path.join('.')} ${ok.error.issues[0]?.message}`); return; }
    if (msg.type !== 'error') this.lastError = undefined;
    if (!this.ready) { this.queue.push(msg); return; }
    void this.panel.webview.postMessage(msg);
  }

  private flush(): void {
    const q = this.queue;
    this.queue = [];
    for (const m of q) void this.panel.webview.postMessage(m);
  }

  protected fail(e: unknown): void {
    const message = e instanceof Error ? e.message : String(e);
    this.ctx.log.error(`${this.kind} panel: ${message}`);
    this.post({ type: 'error', message });
    this.lastError = message;
  }

  /** The webview (re)loaded: send what the panel shows. */
  protected abstract resend(): void | Promise<void>;
  protected abstract onMessage(msg: FromWebview): void | Promise<void>;

  protected track(d: vscode.Disposable | { dispose(): void }): void { this.subs.push(d as vscode.Disposable); }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of this.subs) s.dispose();
    this.subs = [];
    this.panel.dispose();
  }
}
