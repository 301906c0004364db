/**
 * A real daemon server on 127.0.0.1:0 with a temporary SQLite store, real WebSocket clients, and a fake run
 * controller that emits events through the bus the way the pipeline does.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { WebSocket } from 'ws';
import { CloseCodes, ErrorCodes, Limits, RunConfig, flattenTokens, type DaemonEvent, type Trajectory } from '@mathagent/shared';
import { openStore, type Store } from '../../daemon/src/store';
import { EventBus } from '../../daemon/src/server/eventBus';
import { startServer, type DaemonServer, type RunController } from '../../daemon/src/server/server';
import { deleteRuns } from '../../daemon/src/pipeline/deleteRuns';
import { connectClient, readTokenFile, RpcClientError, type DaemonClient } from '../../daemon/src/server/client';

const dir = mkdtempSync(join(tmpdir(), 'mathagent-server-'));
let store: Store;
let bus: EventBus;
let server: DaemonServer;
let token: string;
const logs: string[] = [];

function trajectory(runId: string, id: string, promptId: string, sampleIndex: number, correct: boolean, iteration = 0): Trajectory {
  const turns = [{ index: 0, action: { text: 'x = 1+1', tokenIds: [5, 6], logprobs: [-0.5, -0.25] }, finishReason: 'stop' as const,
    toolCall: { lang: 'mathjs', code: '1+1' }, observation: { output: '2', text: 'out 2', tokenIds: [7], error: false, durationMs: 1 } }];
  const flat = flattenTokens([1, 2], turns);
  return { id, runId, iteration, promptId, sampleIndex, policy: 'iter0', question: `q ${promptId}`, reference: '2', template: 't', promptText: 'p',
    promptTokenIds: [1, 2], turns, extractedAnswer: correct ? '2' : '3', reward: correct ? 1 : 0, outcome: correct ? 'correct' : 'wrong',
    truncation: null, tokenIds: flat.tokenIds, actionMask: flat.actionMask, retokenized: false, createdAt: '2025-01-01T00:00:00Z' };
}

/** Stands in for the pipeline: a run with two trajectories, a pair, metrics and a few events. */
const controller: RunController = {
  async start(p) {
    if (p.preset === 'explode') throw new Error('preset explode blew up: pick another preset');
    const config = RunConfig.parse(p.config ?? {});
    const run = store.createRun({ config, state: 'running' });
    bus.emit({ type: 'run/status', runId: run.id, state: 'running', stage: 'sample', iteration: 0, progress: { kind: 'begin', done: 0, total: 2 }, error: null });
    const ts = [trajectory(run.id, `${run.id}-a`, 'p0', 0, true), trajectory(run.id, `${run.id}-b`, 'p0', 1, false)];
    store.insertTrajectories(ts, 'train');
    for (const t of ts) bus.emit({ type: 'trajectory/finished', runId: run.id, header: store.getTrajectoryHeader(t.id)! });
    store.insertPairs([{ id: `${run.id}-pair`, runId: run.id, iteration: 0, promptId: 'p0', chosenId: ts[0]!.id, rejectedId: ts[1]!.id }]);
    store.insertMetrics([{ runId: run.id, iteration: 0, step: 1, name: 'loss', value: 0.69 }]);
    bus.emit({ type: 'train/metrics', runId: run.id, iteration: 0, step: 1, phase: 'pref', metrics: { loss: 0.69 } });
    return { runId: run.id };
  },
  async stop(runId) {
    store.updateRun(runId, { state: 'stopped' });
    return true;
  },
  async resume() {
    return false;
  },
  decodeTokens: (_runId, ids) => ids.map((i) => `<${i}>`),
  delete: (runId, force) => { deleteRuns(store, join(dir, 'runs'), [runId], { force }); return true; },
};

before(async () => {
  store = openStore(join(dir, 'db', 'test.db'));
  bus = new EventBus(store);
  server = await startServer({ store, bus, controller, tokenFile: join(dir, 'cfg', 'daemon.token'), info: () => ({ backend: 'cpu', presets: ['smoke'] }),
    log: (level, m) => logs.push(`${level} ${m}`) });
  token = readTokenFile(server.tokenFile);
});

after(async () => {
  await server.close();
  bus.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A raw WebSocket (for hostile input): resolves with the socket and a queue of parsed messages. */
function raw(url: string, headers: Record<string, string>): Promise<{ ws: WebSocket; next: () => Promise<any>; closed: Promise<{ code: number; reason: string }> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const queue: any[] = [];
    const waiters: ((m: any) => void)[] = [];
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      const w = waiters.shift();
      if (w) w(m); else queue.push(m);
    });
    ws.on('open', () => resolve({ ws, closed, next: () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r))) }));
    ws.on('unexpected-response', (_req, res) => reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode })));
    ws.on('error', reject);
  });
}

const auth = () => ({ Authorization: `Bearer ${token}` });

test('the upgrade needs the token (401) and no browser Origin (403); plain HTTP gets 426', async () => {
  await assert.rejects(raw(server.url, {}), (e: any) => e.status === 401);
  await assert.rejects(raw(server.url, { Authorization: `Bearer ${'0'.repeat(64)}` }), (e: any) => e.status === 401);
  await assert.rejects(raw(`${server.url}/?token=${token}`, {}), (e: any) => e.status === 401, 'the query string is not a way in');
  await assert.rejects(raw(server.url, { ...auth(), Origin: 'https://evil.example' }), (e: any) => e.status === 403);
  await assert.rejects(connectClient(server.url, 'nope'), /refused the connection \(401\).*Authorization: Bearer/);
  const status = await new Promise<number>((resolve, reject) => {
    httpRequest(`http://127.0.0.1:${server.port}/`, (res) => { res.resume(); resolve(res.statusCode!); }).on('error', reject).end();
  });
  assert.equal(status, 426);
  assert.ok(server.url.startsWith('ws://127.0.0.1:'));
  await assert.rejects(startServer({ store, bus, controller, port: server.port, tokenFile: server.tokenFile, info: () => ({}), log: () => undefined }),
    new RegExp(`port ${server.port} on 127.0.0.1 is already in use`));

  const ok = await raw(server.url, auth());
  const hello = await ok.next();
  assert.equal(hello.method, 'connected');
  assert.equal(hello.params.protocolVersion, 1);
  assert.equal(hello.params.lastSeq, bus.lastSeq);
  ok.ws.close();
});

test('bad messages get JSON-RPC errors and the connection keeps answering', async () => {
  const c = await raw(server.url, auth());
  await c.next(); // connected

  c.ws.send('{"jsonrpc": "2.0", "id": 1, "method": ');
  const parse = await c.next();
  assert.equal(parse.error.code, ErrorCodes.ParseError);
  assert.equal(parse.id, null);

  c.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'daemon/info' }));
  const info = await c.next();
  assert.equal(info.id, 2);
  assert.equal(info.result.backend, 'cpu');
  assert.deepEqual(info.result.presets, ['smoke']);
  assert.equal(info.result.protocolVersion, 1);

  c.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'run/explode', params: {} }));
  const nf = await c.next();
  assert.equal(nf.error.code, ErrorCodes.MethodNotFound);
  assert.match(nf.error.message, /unknown method 'run\/explode'.*run\/start/);

  c.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'trajectory/list', params: { runId: 7, limit: 0 } }));
  const ip = await c.next();
  assert.equal(ip.id, 4);
  assert.equal(ip.error.code, ErrorCodes.InvalidParams);
  assert.match(ip.error.message, /runId: .*limit: /);
  assert.deepEqual(ip.error.data.issues.map((i: any) => i.path), ['runId', 'limit']);

  c.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'run/get' }));
  assert.match((await c.next()).error.message, /invalid params for run\/get: \(root\)/);

  c.ws.send(JSON.stringify({ id: 6, method: 'daemon/info' }));
  const ir = await c.next();
  assert.deepEqual([ir.id, ir.error.code], [6, ErrorCodes.InvalidRequest]);
  assert.match(ir.error.message, /jsonrpc/);

  c.ws.send(Buffer.from('{}'), { binary: true });
  assert.equal((await c.next()).error.code, ErrorCodes.InvalidRequest);

  c.ws.send('[]');
  assert.equal((await c.next()).error.code, ErrorCodes.InvalidRequest);

  c.ws.send('42');
  assert.equal((await c.next()).error.code, ErrorCodes.InvalidRequest);

  c.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'run/get', params: { runId: 'no-such-run' } }));
  const notFound = await c.next();
  assert.deepEqual([notFound.id, notFound.error.code], [7, ErrorCodes.NotFound]);
  assert.match(notFound.error.message, /run not found: no-such-run/);

  c.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'run/start', params: { preset: 'explode' } }));
  const ie = await c.next();
  assert.deepEqual([ie.id, ie.error.code, ie.error.message], [8, ErrorCodes.InternalError, 'preset explode blew up: pick another preset']);

  // A batch: answers for requests only, in one array; a notification gets none.
  c.ws.send(JSON.stringify([
    { jsonrpc: '2.0', id: 'a', method: 'run/list', params: { limit: 1 } },
    { jsonrpc: '2.0', method: 'nobody/listens', params: {} },
    { jsonrpc: '2.0', id: 'b', method: 'nope' },
  ]));
  const batch = await c.next();
  assert.ok(Array.isArray(batch));
  assert.deepEqual(batch.map((r: any) => r.id).sort(), ['a', 'b']);
  assert.ok(batch.find((r: any) => r.id === 'a').result.runs);
  assert.equal(batch.find((r: any) => r.id === 'b').error.code, ErrorCodes.MethodNotFound);

  // Still usable.
  c.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'events/replay', params: { afterSeq: 0, limit: 1 } }));
  const rp = await c.next();
  assert.equal(rp.id, 9);
  assert.ok(Array.isArray(rp.result.events));
  c.ws.close();
});

test('an oversized message closes that connection with 1009; the server keeps serving others', async () => {
  const big = await raw(server.url, auth());
  await big.next();
  const other = await connectClient(server.url, token);
  big.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'daemon/info', params: { pad: 'x'.repeat(Limits.maxMessageBytes) } }));
  const { code } = await big.closed;
  assert.equal(code, CloseCodes.MessageTooBig);
  const info = await other.request('daemon/info', {});
  assert.equal(info.version, other.connected.version);
  // Just under the limit is fine (the schema refuses the unknown key, but the socket stays open).
  await assert.rejects(other.request('daemon/info', { pad: 'x'.repeat(Limits.maxMessageBytes - 200) } as never), (e: any) => e.code === ErrorCodes.InvalidParams);
  await other.close();
});

test('the rate limit answers RateLimited past the bucket, per client', async () => {
  const limited = await startServer({ store, bus, controller, tokenFile: server.tokenFile, info: () => ({}), log: () => undefined,
    rateLimit: { capacity: 10, perSecond: 1e-6 } });
  try {
    const c = await connectClient(limited.url, token);
    const results = await Promise.allSettled(Array.from({ length: 15 }, () => c.request('run/list', {})));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 10);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(rejected.length, 5);
    for (const r of rejected) {
      assert.ok(r.reason instanceof RpcClientError);
      assert.equal(r.reason.code, ErrorCodes.RateLimited);
    }
    // Garbage counts too: past the limit it gets no answer at all, the next request gets RateLimited.
    const r = await raw(limited.url, auth());
    await r.next();
    for (let i = 0; i < 10; i++) r.ws.send(JSON.stringify({ jsonrpc: '2.0', id: i, method: 'run/list' }));
    for (let i = 0; i < 10; i++) assert.equal((await r.next()).id, i);
    r.ws.send('{not json');
    r.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'run/list' }));
    const limitedAnswer = await r.next();
    assert.deepEqual([limitedAnswer.id, limitedAnswer.error.code], [99, ErrorCodes.RateLimited]);
    assert.match(limitedAnswer.error.message, /rate limit/);
    r.ws.close();
    // Each client has its own bucket.
    const fresh = await connectClient(limited.url, token);
    assert.ok((await fresh.request('run/list', {})).runs);
    await c.close();
    await fresh.close();
  } finally {
    await limited.close();
  }
  // The default bucket holds Limits.maxRequestsPerSecond messages: a burst that size all passes.
  const c = await connectClient(server.url, token);
  const burst = await Promise.all(Array.from({ length: Limits.maxRequestsPerSecond - 5 }, () => c.request('run/list', { limit: 1 })));
  assert.equal(burst.length, Limits.maxRequestsPerSecond - 5);
  await c.close();
});

test('two clients see the same events in seq order; every method answers through the store', async () => {
  const a = await connectClient(server.url, token);
  const b = await connectClient(server.url, token);
  const ea: DaemonEvent[] = [];
  const eb: DaemonEvent[] = [];
  a.onEvent((e) => ea.push(e));
  b.onEvent((e) => eb.push(e));
  const { runId } = await a.request('run/start', { config: { name: 'evt', iterations: 2 } });
  await b.request('daemon/info', {}); // a round trip on b: the events were sent before this answer
  assert.deepEqual(ea.map((e) => e.type), ['run/status', 'trajectory/finished', 'trajectory/finished', 'train/metrics']);
  assert.deepEqual(eb.map((e) => e.seq), ea.map((e) => e.seq));
  for (let i = 1; i < ea.length; i++) assert.equal(ea[i]!.seq, ea[i - 1]!.seq + 1);
  assert.ok(ea.every((e) => e.runId === runId));

  const got = await b.request('run/get', { runId });
  assert.equal(got.run.name, 'evt');
  assert.equal(got.config.iterations, 2);
  assert.equal((await b.request('run/list', {})).runs[0]!.id, runId);
  const list = await b.request('trajectory/list', { runId, failedOnly: true });
  assert.deepEqual([list.total, list.trajectories[0]!.id], [1, `${runId}-b`]);
  const t = await b.request('trajectory/get', { trajectoryId: `${runId}-a` });
  assert.deepEqual(t.trajectory.tokenIds, [1, 2, 5, 6, 7]);
  assert.deepEqual(t.tokenTexts, ['<1>', '<2>', '<5>', '<6>', '<7>']);
  assert.equal(t.annotation, null);
  assert.equal((await b.request('trajectory/get', { trajectoryId: `${runId}-a`, withTokens: false })).tokenTexts, null);
  await assert.rejects(b.request('trajectory/get', { trajectoryId: 'ghost' }), (e: any) => e.code === ErrorCodes.NotFound);
  await assert.rejects(b.request('trajectory/list', { runId: 'ghost' }), (e: any) => e.code === ErrorCodes.NotFound);
  assert.equal((await b.request('pair/list', { runId })).pairs.length, 1);
  assert.deepEqual((await b.request('metrics/get', { runId, names: ['loss'] })).points.map((p) => p.value), [0.69]);
  const cmp = await b.request('compare/iterations', { a: { runId, iteration: 0 }, b: { runId, iteration: 0 } });
  assert.deepEqual(cmp, { fixed: [], broken: [], sameCorrect: 0, sameWrong: 0 });

  const before = ea.length;
  const set = await b.request('annotation/set', { trajectoryId: `${runId}-b`, label: 'reasoning_error', note: 'sign flipped', turn: 0 });
  assert.equal(set.annotation.note, 'sign flipped');
  await a.request('daemon/info', {});
  const changed = ea.slice(before);
  assert.equal(changed.length, 1);
  assert.equal(changed[0]!.type, 'annotation/changed');
  assert.equal(changed[0]!.runId, runId);
  assert.deepEqual(eb.map((e) => e.seq), ea.map((e) => e.seq));
  assert.equal((await a.request('annotation/list', { runId })).annotations[0]!.label, 'reasoning_error');
  await assert.rejects(a.request('annotation/set', { trajectoryId: 'ghost', label: 'other' }), (e: any) => e.code === ErrorCodes.NotFound);
  await assert.rejects(a.request('annotation/set', { trajectoryId: 'x', label: 'bogus' as never }), (e: any) => e.code === ErrorCodes.InvalidParams && /label/.test(e.message));

  assert.deepEqual(await a.request('run/stop', { runId }), { stopped: true });
  assert.deepEqual(await a.request('run/resume', { runId }), { resumed: false });
  await assert.rejects(a.request('run/stop', { runId: 'ghost' }), (e: any) => e.code === ErrorCodes.NotFound);

  // run/delete: an active run is declined (RequestFailed, nothing deleted); a stopped one goes with its folder.
  const other = (await a.request('run/start', { config: { name: 'to delete' } })).runId;
  mkdirSync(join(dir, 'runs', other, 'iter-0'), { recursive: true });
  await assert.rejects(a.request('run/delete', { runId: other }), (e: any) => e.code === ErrorCodes.RequestFailed && /is running: stop it first/.test(e.message));
  assert.ok((await a.request('run/get', { runId: other })).run);
  await a.request('run/stop', { runId: other });
  await b.request('daemon/info', {});
  assert.ok(!eb.some((e) => e.type === 'run/deleted'), 'a declined delete emits no run/deleted');
  assert.deepEqual(await a.request('run/delete', { runId: other }), { deleted: true });
  assert.ok(!existsSync(join(dir, 'runs', other)));
  // The other client hears of it (its views drop the run and close the run's panels).
  await b.request('daemon/info', {});
  assert.deepEqual(eb.filter((e) => e.type === 'run/deleted').map((e) => e.runId), [other]);
  await assert.rejects(a.request('run/get', { runId: other }), (e: any) => e.code === ErrorCodes.NotFound);
  await assert.rejects(a.request('run/delete', { runId: other }), (e: any) => e.code === ErrorCodes.NotFound);
  await assert.rejects(a.request('run/delete', { runId: 7 as never }), (e: any) => e.code === ErrorCodes.InvalidParams);
  await a.close();
  await b.close();
});

test('a client that reconnects and replays after its last seq gets exactly the missed events', async () => {
  const a = await connectClient(server.url, token);
  const live: DaemonEvent[] = [];
  a.onEvent((e) => live.push(e));
  bus.emit({ type: 'log', runId: 'r', level: 'info', message: 'seen 1' });
  bus.emit({ type: 'log', runId: 'r', level: 'info', message: 'seen 2' });
  await a.request('daemon/info', {});
  const lastSeen = live[live.length - 1]!.seq;
  await a.close();
  const missed = [1, 2, 3].map((i) => bus.emit({ type: 'log', runId: i === 2 ? 'other' : 'r', level: 'info', message: `missed ${i}` }));

  const back = await connectClient(server.url, token);
  assert.equal(back.connected.lastSeq, missed[2]!.seq);
  const replay = await back.request('events/replay', { afterSeq: lastSeen });
  assert.deepEqual(replay.events, missed);
  assert.equal(replay.lastSeq, missed[2]!.seq);
  const onlyR = await back.request('events/replay', { afterSeq: lastSeen, runId: 'r' });
  assert.deepEqual(onlyR.events.map((e) => e.seq), [missed[0]!.seq, missed[2]!.seq]);
  // After the replay, live events continue from there.
  const next: DaemonEvent[] = [];
  back.onEvent((e) => next.push(e));
  bus.emit({ type: 'log', runId: 'r', level: 'info', message: 'live again' });
  await back.request('daemon/info', {});
  assert.deepEqual(next.map((e) => e.seq), [missed[2]!.seq + 1]);
  await back.close();
});

test('notification handlers (the language server) get client messages and can answer; close is reported', async () => {
  const seen: unknown[] = [];
  const closedIds: number[] = [];
  const off = server.onNotification('lsp/message', (client, params) => {
    seen.push(params);
    client.notify('lsp/message', { echo: params });
  });
  server.onNotification('lsp/message', () => { throw new Error('a broken handler must not break the others'); });
  const offClose = server.onClientClose((c) => closedIds.push(c.id));
  const c = await connectClient(server.url, token);
  const replies: unknown[] = [];
  const got = new Promise<void>((r) => c.onNotification('lsp/message', (p) => { replies.push(p); r(); }));
  c.notify('lsp/message', { jsonrpc: '2.0', method: 'initialize' });
  await got;
  assert.deepEqual(seen, [{ jsonrpc: '2.0', method: 'initialize' }]);
  assert.deepEqual(replies, [{ echo: { jsonrpc: '2.0', method: 'initialize' } }]);
  assert.ok(logs.some((l) => /broken handler/.test(l)));
  const ids = server.clients().map((x) => x.id);
  await c.close();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(closedIds.length, 1);
  assert.ok(ids.includes(closedIds[0]!));
  off();
  offClose();
});

test('a client that never reads is dropped at the queue bound; the emitter and other clients go on', async () => {
  const bound = 256 * 1024;
  const srv = await startServer({ store, bus, controller, tokenFile: server.tokenFile, info: () => ({}), log: () => undefined, maxQueuedBytes: bound, slowCloseGraceMs: 20_000 });
  let fast: DaemonClient | null = null;
  try {
    const slow = await raw(srv.url, auth());
    await slow.next();
    slow.ws.pause(); // stops reading: the kernel buffers fill, then the server's queue grows
    fast = await connectClient(srv.url, token);
    let fastCount = 0;
    fast.onEvent(() => fastCount++);
    const message = 'y'.repeat(4000);
    let emitted = 0;
    const slowStats = () => srv.stats()[0]!; // the slow client connected first
    // Emit until the server gives up on the slow client (at most ~64 MB), yielding like a training loop does.
    while (!slowStats().slow && emitted < 16_000) {
      for (let i = 0; i < 100; i++, emitted++) bus.emit({ type: 'log', runId: 'flood', level: 'debug', message });
      await new Promise((r) => setImmediate(r));
    }
    const s = slowStats();
    assert.equal(s.slow, true, `slow client not detected after ${emitted} events`);
    assert.ok(s.maxBufferedAmount <= bound + message.length + 200, `queue grew to ${s.maxBufferedAmount} bytes (bound ${bound})`);
    // Keep emitting: nothing more is queued for the slow client.
    const queued = s.bufferedAmount;
    for (let i = 0; i < 200; i++) bus.emit({ type: 'log', runId: 'flood', level: 'debug', message });
    assert.ok(srv.stats()[0]!.bufferedAmount <= queued + 200, 'no frames added after the client was marked slow');
    const total = emitted + 200;
    await fast.request('daemon/info', {});
    assert.equal(fastCount, total, 'the reading client got every event');
    // When the slow client reads again it finds the close frame telling it to replay.
    slow.ws.resume();
    const closed = await slow.closed;
    assert.equal(closed.code, CloseCodes.SlowConsumer);
    assert.match(closed.reason, /events\/replay/);
  } finally {
    await fast?.close();
    await srv.close();
  }
});
