/**
 * The extension's DaemonClient against a real WebSocket server on 127.0.0.1:0 playing a small daemon:
 * bearer auth, hello, schema-checked requests, malformed frames, reconnect with events/replay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { DaemonEvent } from '@mathagent/shared';
import { DaemonClient } from '../../extension/src/daemon/daemonClient';
import { Backoff } from '../../extension/src/daemon/sequencer';
import { log as logEvent } from './extensionFixtures';
import { createProtocolConnection } from 'vscode-languageserver-protocol/node';
import { DaemonMessageReader, DaemonMessageWriter } from '../../extension/src/lsp/transport';
import { register } from '../../daemon/src/lsp/index';

const TOKEN = 'x'.repeat(64);
const INFO = { protocolVersion: 1, version: '0.1.0', backend: 'wasm', backendsAvailable: ['wasm'], presets: ['smoke'], datasets: ['synthetic'], lastSeq: 0 };

/** A fake daemon: events[] is its log; it answers daemon/info, events/replay, run/start; `extra` frames are sent after hello. */
function fakeDaemon(opts: { extra?: string[] } = {}) {
  const http: Server = createServer();
  const wss = new WebSocketServer({ noServer: true });
  const events: DaemonEvent[] = [];
  const sockets = new Set<WebSocket>();
  const requests: string[] = [];
  // Enough of DaemonServer for the language server: notification routing and close hooks.
  const noteHandlers = new Map<string, (client: never, params: unknown) => void>();
  const closeHandlers: Array<(client: never) => void> = [];
  const server = {
    onNotification: (m: string, h: (c: never, p: unknown) => void) => { noteHandlers.set(m, h); return () => noteHandlers.delete(m); },
    onClientClose: (fn: (c: never) => void) => { closeHandlers.push(fn); return () => {}; },
  };
  http.on('upgrade', (req, socket, head) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) { socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n'); return; }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      const conn = { id: sockets.size, remoteAddress: '127.0.0.1', close: () => ws.close(), notify: (method: string, params: unknown) => ws.send(JSON.stringify({ jsonrpc: '2.0', method, params })) };
      ws.on('close', () => { sockets.delete(ws); for (const fn of closeHandlers) fn(conn as never); });
      const lastSeq = events.length ? events[events.length - 1]!.seq : 0;
      ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'connected', params: { protocolVersion: 1, version: '0.1.0', lastSeq } }));
      for (const f of opts.extra ?? []) ws.send(f);
      ws.on('message', (data) => {
        const m = JSON.parse(String(data));
        if (m.id === undefined) { noteHandlers.get(m.method)?.(conn as never, m.params); return; }
        requests.push(m.method);
        const reply = (result: unknown) => ws.send(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }));
        if (m.method === 'daemon/info') reply({ ...INFO, lastSeq });
        else if (m.method === 'events/replay') {
          const after = events.filter((e) => e.seq > m.params.afterSeq).slice(0, m.params.limit);
          reply({ events: after, lastSeq: events.length ? events[events.length - 1]!.seq : 0 });
        } else if (m.method === 'run/start') reply({ wrongField: 1 });
        else if (m.method === 'run/stop') ws.send(JSON.stringify({ jsonrpc: '2.0', id: m.id, error: { code: -32004, message: 'no run r9' } }));
      });
    });
  });
  const emit = (ev: DaemonEvent) => { events.push(ev); for (const s of sockets) s.send(JSON.stringify({ jsonrpc: '2.0', method: 'event', params: ev })); };
  return {
    events, requests, emit, sockets, server,
    listen: () => new Promise<string>((r) => http.listen(0, '127.0.0.1', () => r(`ws://127.0.0.1:${(http.address() as AddressInfo).port}`))),
    close: () => new Promise<void>((r) => { for (const s of sockets) s.terminate(); wss.close(); http.close(() => r()); }),
  };
}

const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), `timed out waiting for ${what}`);
};

test('connects with the bearer token; a wrong token gets an actionable error', async () => {
  const d = fakeDaemon();
  const url = await d.listen();
  try {
    const bad = new DaemonClient({ url, token: async () => 'wrong-token-wrong-token' });
    await assert.rejects(bad.connect(), /refused the token \(HTTP 401\).*mathagent\.tokenFile/);
    bad.dispose();
    const c = new DaemonClient({ url, token: async () => TOKEN });
    const info = await c.connect();
    assert.equal(info.backend, 'wasm');
    assert.equal(c.state, 'connected');
    c.dispose();
  } finally { await d.close(); }
});

test('nothing listening: the error says how to start a daemon', async () => {
  const d = fakeDaemon();
  const url = await d.listen();
  await d.close();
  const c = new DaemonClient({ url, token: async () => TOKEN });
  await assert.rejects(c.connect(), /no daemon answers at .*Start Local Daemon/);
  c.dispose();
});

test('malformed frames are dropped with a log; results are schema-checked; daemon errors keep their code', async () => {
  const d = fakeDaemon({ extra: ['garbage{', JSON.stringify({ jsonrpc: '2.0', method: 'event', params: { type: 'log', seq: 'NaN' } }), JSON.stringify({ jsonrpc: '2.0', id: 424242, result: 1 })] });
  const url = await d.listen();
  const logs: string[] = [];
  const c = new DaemonClient({ url, token: async () => TOKEN, log: (l) => logs.push(l) });
  try {
    await c.connect();
    await until(() => logs.length >= 3, 'three log lines');
    assert.ok(logs.some((l) => /malformed.*not JSON/.test(l)));
    assert.ok(logs.some((l) => /malformed.*bad event/.test(l)));
    assert.ok(logs.some((l) => /unknown id 424242/.test(l)));
    await assert.rejects(c.request('run/start', { preset: 'smoke' }), /run\/start .*unexpected shape/);
    await assert.rejects(c.request('run/stop', { runId: 'r9' }), (e: Error & { code?: number }) => e.code === -32004 && /run\/stop: no run r9/.test(e.message));
    assert.equal(c.state, 'connected', 'still usable');
  } finally { c.dispose(); await d.close(); }
});

test('after a dropped connection it reconnects and replays exactly the missed events, in order', async () => {
  const d = fakeDaemon();
  const url = await d.listen();
  d.emit(logEvent(1)); d.emit(logEvent(2));
  const got: number[] = [];
  let resets = 0;
  const c = new DaemonClient({ url, token: async () => TOKEN, backoff: new Backoff(20, 50, 0), replayPageSize: 2 });
  c.onEvent((e) => got.push(e.seq));
  c.onReset(() => resets++);
  try {
    await c.connect();
    d.emit(logEvent(3));
    await until(() => got.length === 1, 'live event 3');
    assert.deepEqual(got, [3], 'events before the first connection are not replayed (views fetch state)');
    for (const s of d.sockets) s.terminate();
    await until(() => c.state !== 'connected', 'disconnect');
    // while disconnected the daemon moves on: 4, 5, 6 (more than one replay page)
    d.emit(logEvent(4)); d.emit(logEvent(5)); d.emit(logEvent(6));
    await until(() => got.length === 4, 'replayed events');
    assert.deepEqual(got, [3, 4, 5, 6]);
    assert.equal(d.requests.filter((m) => m === 'events/replay').length, 2, 'paged: 4,5 then 6');
    d.emit(logEvent(7));
    await until(() => got.length === 5, 'live after replay');
    assert.deepEqual(got, [3, 4, 5, 6, 7]);
    assert.equal(resets, 0);
    assert.equal(c.sequencer.lastSeq, 7);
  } finally { c.dispose(); await d.close(); }
});

test('requests while disconnected fail at once with what to do', async () => {
  const c = new DaemonClient({ url: 'ws://127.0.0.1:9', token: async () => TOKEN });
  await assert.rejects(c.request('run/list', {}), /not connected to the daemon/);
  c.dispose();
});

test('LSP over the daemon socket: the extension transport talks to the daemon language server', async () => {
  const d = fakeDaemon();
  const url = await d.listen();
  const unregister = register(d.server as never, { name: 'h', datasets: () => ['synthetic'], backends: () => ['wasm'], checkpointExists: () => false });
  const c = new DaemonClient({ url, token: async () => TOKEN });
  try {
    await c.connect();
    const reader = new DaemonMessageReader(c);
    const lsp = createProtocolConnection(reader, new DaemonMessageWriter(c));
    const diags = new Promise<{ diagnostics: Array<{ message: string }> }>((resolve) => lsp.onNotification('textDocument/publishDiagnostics', resolve as never));
    lsp.listen();
    const init = await lsp.sendRequest('initialize', { processId: process.pid, rootUri: null, capabilities: {} }) as { capabilities: { codeLensProvider?: unknown } };
    assert.ok(init.capabilities.codeLensProvider);
    await lsp.sendNotification('initialized', {});
    await lsp.sendNotification('textDocument/didOpen', { textDocument: { uri: 'file:///a.mathagent.json', languageId: 'mathagent-config', version: 1, text: '{"data": {"dataset": "gsm8k"}}' } });
    const got = await diags;
    assert.equal(got.diagnostics.length, 1);
    assert.match(got.diagnostics[0]!.message, /dataset "gsm8k" is not available on the daemon host h/);
    // The socket dies: the reader reports the close so vscode-languageclient stops instead of hanging.
    const closed = new Promise<void>((resolve) => reader.onClose(() => resolve()));
    for (const s of d.sockets) s.terminate();
    await closed;
    lsp.dispose();
  } finally { c.dispose(); unregister(); await d.close(); }
});
