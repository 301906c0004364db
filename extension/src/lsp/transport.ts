/**
 * The extension side of LSP over the daemon socket: LSP messages travel as `lsp/message` notifications on
 * the DaemonClient's WebSocket. No vscode import, so it is tested against the daemon's language server.
 * (The classes come from vscode-languageserver-protocol, the copy of vscode-jsonrpc vscode-languageclient uses.)
 */
import { AbstractMessageReader, AbstractMessageWriter, type DataCallback, type Disposable, type Message, type MessageReader, type MessageWriter } from 'vscode-languageserver-protocol/node';
import { Notifications } from '@mathagent/shared';
import type { DaemonClient } from '../daemon/daemonClient';

type LspCarrier = Pick<DaemonClient, 'onState' | 'onLspMessage' | 'notify'>;

export class DaemonMessageReader extends AbstractMessageReader implements MessageReader {
  private subs: { dispose(): void }[] = [];
  constructor(private readonly client: LspCarrier) {
    super();
    // The language client must learn that its transport died with the socket.
    this.subs.push(client.onState((s) => { if (s === 'disconnected') this.fireClose(); }));
  }
  listen(callback: DataCallback): Disposable {
    const sub = this.client.onLspMessage((m) => {
      if (m.jsonrpc !== '2.0') { this.fireError(new Error('lsp/message payload is not a JSON-RPC 2.0 message')); return; }
      callback(m as unknown as Message);
    });
    this.subs.push(sub);
    return { dispose: () => sub.dispose() };
  }
  override dispose(): void { super.dispose(); for (const s of this.subs) s.dispose(); this.subs = []; }
}

export class DaemonMessageWriter extends AbstractMessageWriter implements MessageWriter {
  private errors = 0;
  constructor(private readonly client: LspCarrier) { super(); }
  write(msg: Message): Promise<void> {
    if (this.client.notify(Notifications.lsp, msg)) return Promise.resolve();
    const e = new Error('not connected to the daemon');
    this.fireError(e, msg, ++this.errors);
    return Promise.reject(e);
  }
  end(): void { /* the socket belongs to the DaemonClient */ }
}
