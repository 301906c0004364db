/**
 * The daemon's language server for `*.mathagent.json` run configs: one vscode-languageserver connection per
 * WebSocket client, carried by `lsp/message` notifications (see transport.ts). Features: diagnostics (schema
 * errors at their JSON path, datasets/checkpoints/backends the host lacks), hover (field description, default,
 * paper value), completion of keys and values, a "Start run" code lens.
 *
 * The lead calls `register(server, probe)` once the server is started.
 */
import { existsSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import {
  CompletionItemKind, createProtocolConnection, createConnection, DiagnosticSeverity, InsertTextFormat, MarkupKind,
  TextDocuments, TextDocumentSyncKind, type CodeLens, type CompletionItem, type Connection, type Diagnostic, type Hover, type WatchDog,
} from 'vscode-languageserver/lib/common/api';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { BackendName, DatasetName, Notifications } from '@mathagent/shared';
import type { ClientConnection, DaemonServer } from '../server';
import { complete, diagnose, hover, type HostProbe } from './analysis';
import { positionAt } from './jsonRanges';
import { NotificationReader, NotificationWriter } from './transport';

export type { HostProbe } from './analysis';

/** A probe that looks at this machine: the daemon runs the configs it validates. */
export function localHostProbe(opts: { datasets?: () => string[] | Promise<string[]>; backends?: () => string[] | Promise<string[]>; cwd?: string } = {}): HostProbe {
  return {
    name: hostname(),
    datasets: opts.datasets ?? (() => [...DatasetName.options]),
    backends: opts.backends ?? (() => BackendName.options.filter((b) => b === 'wasm' || b === 'cpu')),
    checkpointExists: (p) => {
      const full = isAbsolute(p) ? p : resolve(opts.cwd ?? process.cwd(), p);
      try { return existsSync(full) && statSync(full).isDirectory(); } catch { return false; }
    },
  };
}

const SEVERITY = { error: DiagnosticSeverity.Error, warning: DiagnosticSeverity.Warning, info: DiagnosticSeverity.Information } as const;

interface Session { reader: NotificationReader; connection: Connection }

/** Start one language-server session on a client's notifications. Exported for tests. */
export function createSession(sink: { notify(method: string, params: unknown): void }, probe: HostProbe, log: (m: string) => void = () => {}): Session {
  const reader = new NotificationReader();
  const writer = new NotificationWriter(sink);
  // The common createConnection with our own watchdog: the Node entry would process.exit() on `exit` and
  // kill the daemon when the editor's process id (from another machine) is not alive here.
  let shutdown = false;
  const watchDog: WatchDog = {
    get shutdownReceived() { return shutdown; },
    set shutdownReceived(v: boolean) { shutdown = v; },
    initialize: () => {},
    exit: () => { connection.dispose(); },
  };
  const connection = createConnection((logger) => createProtocolConnection(reader, writer, logger), watchDog);
  const documents = new TextDocuments(TextDocument);
  const timers = new Map<string, NodeJS.Timeout>();

  const validate = async (doc: TextDocument) => {
    const text = doc.getText();
    try {
      const diags = await diagnose(text, probe);
      const out: Diagnostic[] = diags.map((d) => ({
        range: { start: positionAt(text, d.range.start), end: positionAt(text, d.range.end) },
        severity: SEVERITY[d.severity], message: d.message, source: 'mathagent', code: d.code,
      }));
      if (documents.get(doc.uri)?.version === doc.version) await connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics: out });
    } catch (e) { log(`lsp: diagnostics failed for ${doc.uri}: ${(e as Error).message}`); }
  };
  documents.onDidChangeContent((ev) => {
    // Typing fires a change per keystroke; validate once it settles.
    clearTimeout(timers.get(ev.document.uri));
    timers.set(ev.document.uri, setTimeout(() => { timers.delete(ev.document.uri); void validate(ev.document); }, 150));
  });
  documents.onDidClose((ev) => {
    clearTimeout(timers.get(ev.document.uri));
    void connection.sendDiagnostics({ uri: ev.document.uri, diagnostics: [] }).catch(() => {});
  });

  connection.onInitialize(() => ({
    capabilities: {
      textDocumentSync: TextDocumentSyncKind.Incremental,
      hoverProvider: true,
      completionProvider: { triggerCharacters: ['"', ':'] },
      codeLensProvider: { resolveProvider: false },
    },
    serverInfo: { name: 'mathagent-run-config', version: '1' },
  }));
  connection.onHover((p): Hover | null => {
    const doc = documents.get(p.textDocument.uri);
    if (!doc) return null;
    const text = doc.getText();
    const r = hover(text, doc.offsetAt(p.position));
    return r && { contents: { kind: MarkupKind.Markdown, value: r.markdown }, range: { start: positionAt(text, r.range.start), end: positionAt(text, r.range.end) } };
  });
  connection.onCompletion(async (p): Promise<CompletionItem[]> => {
    const doc = documents.get(p.textDocument.uri);
    if (!doc) return [];
    const text = doc.getText();
    let datasets: string[] | undefined;
    try { datasets = await probe.datasets(); } catch { datasets = undefined; }
    return complete(text, doc.offsetAt(p.position), datasets).map((c, i) => ({
      label: c.label, kind: c.kind === 'property' ? CompletionItemKind.Property : CompletionItemKind.Value, detail: c.detail ?? undefined,
      documentation: c.documentation ? { kind: MarkupKind.Markdown, value: c.documentation } : undefined, sortText: String(i).padStart(3, '0'),
      insertTextFormat: c.snippet ? InsertTextFormat.Snippet : InsertTextFormat.PlainText,
      ...(c.replace ? { textEdit: { range: { start: positionAt(text, c.replace.start), end: positionAt(text, c.replace.end) }, newText: c.insertText } } : { insertText: c.insertText }),
    }));
  });
  connection.onCodeLens((p): CodeLens[] => [{
    range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
    command: { title: '▶ Start run', command: 'mathagent.startRunFromFile', arguments: [p.textDocument.uri] },
  }]);
  documents.listen(connection);
  connection.listen();
  return { reader, connection };
}

/**
 * Serve run-config language features to every client of `server`. Returns a function that unregisters and
 * ends all sessions.
 */
export function register(server: Pick<DaemonServer, 'onNotification' | 'onClientClose'>, probe: HostProbe = localHostProbe(), log: (m: string) => void = () => {}): () => void {
  const sessions = new Map<ClientConnection, Session>();
  const end = (client: ClientConnection) => {
    const s = sessions.get(client);
    if (!s) return;
    sessions.delete(client);
    s.reader.close();
    try { s.connection.dispose(); } catch { /* already ended */ }
  };
  const offMessage = server.onNotification(Notifications.lsp, (client, params) => {
    let s = sessions.get(client);
    if (!s) { s = createSession(client, probe, log); sessions.set(client, s); }
    s.reader.push(params);
  });
  const offClose = server.onClientClose(end);
  return () => { offMessage(); offClose(); for (const c of [...sessions.keys()]) end(c); };
}
