/**
 * LSP over the daemon's WebSocket: each LSP message travels as the params of an `lsp/message` JSON-RPC
 * notification on the client's existing connection (same socket, same auth), read and written through
 * vscode-jsonrpc's MessageReader/MessageWriter so a standard language-server connection runs on top.
 */
import { AbstractMessageReader, AbstractMessageWriter, type DataCallback, type Disposable, type Message } from 'vscode-jsonrpc/node';
import { Notifications } from '@mathagent/shared';

export interface NotifySink { notify(method: string, params: unknown): void }

/** Fed by the server's `lsp/message` handler for one client. */
export class NotificationReader extends AbstractMessageReader {
  private callback: DataCallback | undefined;
  private backlog: Message[] = [];

  listen(callback: DataCallback): Disposable {
    this.callback = callback;
    const queued = this.backlog;
    this.backlog = [];
    for (const m of queued) callback(m);
    return { dispose: () => { this.callback = undefined; } };
  }

  /** One inbound payload; anything that is not a JSON-RPC message object is reported, not thrown. */
  push(payload: unknown): void {
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload) || (payload as { jsonrpc?: unknown }).jsonrpc !== '2.0') {
      this.fireError(new Error('lsp/message payload is not a JSON-RPC 2.0 message'));
      return;
    }
    const m = payload as Message;
    if (this.callback) this.callback(m);
    else if (this.backlog.length < 1000) this.backlog.push(m);
  }

  close(): void { this.fireClose(); }
}

export class NotificationWriter extends AbstractMessageWriter {
  constructor(private readonly sink: NotifySink) { super(); }
  async write(msg: Message): Promise<void> {
    try { this.sink.notify(Notifications.lsp, msg); } catch (e) { this.fireError(e as Error, msg, 1); throw e; }
  }
  end(): void { /* the socket belongs to the server */ }
}
