import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeRequest, parseIncoming, validateResult } from '../../extension/src/daemon/jsonRpc';
import { FromWebview, PanelState, ToWebview } from '../../extension/src/webviewProtocol';
import { log } from './extensionFixtures';

test('a valid event notification is parsed and typed', () => {
  const m = parseIncoming(JSON.stringify({ jsonrpc: '2.0', method: 'event', params: log(7, 'x') }));
  assert.equal(m.kind, 'event');
  if (m.kind === 'event') { assert.equal(m.event.seq, 7); assert.equal(m.event.type, 'log'); }
});

test('hostile and malformed frames become "invalid" with a reason, never a throw', () => {
  const cases: Array<[string, RegExp]> = [
    ['not json{', /not JSON/],
    ['[1,2]', /batches/],
    ['null', /not a JSON-RPC object/],
    ['"str"', /not a JSON-RPC object/],
    [JSON.stringify({ jsonrpc: '2.0', method: 'event', params: { type: 'log', seq: 'x' } }), /bad event/],
    [JSON.stringify({ jsonrpc: '2.0', method: 'event', params: { type: 'nope', seq: 1, runId: 'r', time: 't' } }), /bad event/],
    [JSON.stringify({ jsonrpc: '2.0', method: 'connected', params: { protocolVersion: 'one' } }), /bad connected/],
    [JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'run/start', params: {} }), /sent a request/],
    [JSON.stringify({ jsonrpc: '1.0', id: 1, result: 1 }), /bad response/],
    [JSON.stringify({ jsonrpc: '2.0', id: 1 }), /bad response/],
    [JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: 'x', message: 1 } }), /bad response/],
    [JSON.stringify({ jsonrpc: '2.0', method: 'lsp/message', params: [1] }), /lsp\/message/],
    [JSON.stringify({ jsonrpc: '2.0', method: 'event', params: { ['__proto__']: { polluted: 1 } } }), /bad event/],
  ];
  for (const [raw, re] of cases) {
    const m = parseIncoming(raw);
    assert.equal(m.kind, 'invalid', raw);
    if (m.kind === 'invalid') assert.match(m.reason, re, raw);
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('responses, errors, hello and lsp payloads are told apart', () => {
  assert.deepEqual(parseIncoming('{"jsonrpc":"2.0","id":4,"result":null}'), { kind: 'response', id: 4, result: null });
  const e = parseIncoming('{"jsonrpc":"2.0","id":5,"error":{"code":-32602,"message":"bad"}}');
  assert.equal(e.kind, 'error');
  if (e.kind === 'error') assert.equal(e.error.code, -32602);
  const h = parseIncoming('{"jsonrpc":"2.0","method":"connected","params":{"protocolVersion":1,"version":"0.1.0","lastSeq":12}}');
  assert.deepEqual(h, { kind: 'connected', hello: { protocolVersion: 1, version: '0.1.0', lastSeq: 12 } });
  const l = parseIncoming('{"jsonrpc":"2.0","method":"lsp/message","params":{"jsonrpc":"2.0","method":"initialized"}}');
  assert.equal(l.kind, 'lsp');
});

test('results are checked against the method schema', () => {
  assert.deepEqual(validateResult('run/start', { runId: 'r1' }), { runId: 'r1' });
  assert.throws(() => validateResult('run/start', { id: 'r1' }), /run\/start .*unexpected shape.*runId/);
});

test('outgoing params are checked and defaults applied', () => {
  const f = JSON.parse(encodeRequest(9, 'trajectory/list', { runId: 'r' }));
  assert.deepEqual(f, { jsonrpc: '2.0', id: 9, method: 'trajectory/list', params: { runId: 'r', offset: 0, limit: 500 } });
  assert.throws(() => encodeRequest(1, 'run/stop', {} as never), /bad params for run\/stop: runId/);
});

test('webview messages are validated both ways', () => {
  assert.equal(FromWebview.safeParse({ type: 'stepTrajectory', delta: 1 }).success, true);
  assert.equal(FromWebview.safeParse({ type: 'stepTrajectory', delta: 2 }).success, false);
  assert.equal(FromWebview.safeParse({ type: 'turnChanged', trajectoryId: 't', turn: -1 }).success, false);
  assert.equal(FromWebview.safeParse({ type: 'eval', code: 'x' }).success, false);
  assert.equal(ToWebview.safeParse({ type: 'stepTurn', delta: -1 }).success, true);
  const s = PanelState.parse({ panel: 'trajectory', trajectoryId: 't1' });
  assert.deepEqual(s, { panel: 'trajectory', trajectoryId: 't1', turn: 0, raw: false, tokens: false });
  assert.equal(PanelState.safeParse({ panel: 'metrics' }).success, false);
});
