import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, chmodSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DaemonEvent } from '@mathagent/shared';
import { openStore } from '../../daemon/src/store';
import { EventBus } from '../../daemon/src/server/eventBus';
import { TokenBucket } from '../../daemon/src/server/rateLimit';
import { bearerToken, ensureToken, tokensEqual } from '../../daemon/src/server/token';
import { toRpcError, invalidParams, RpcError } from '../../daemon/src/server/rpc';
import { NotFoundError } from '../../daemon/src/store';
import { Methods } from '@mathagent/shared';

const tick = () => new Promise<void>((r) => setImmediate(r));

test('bus assigns increasing seq, fans out, persists once per tick, continues after a reopen', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mathagent-bus-'));
  try {
    const path = join(dir, 'b.db');
    let store = openStore(path);
    let bus = new EventBus(store);
    const seen: number[] = [];
    const off = bus.subscribe((e) => seen.push(e.seq));
    const e1 = bus.emit({ type: 'log', runId: 'r', level: 'info', message: 'one' });
    bus.emit({ type: 'log', runId: 'r', level: 'info', message: 'two' });
    assert.equal(e1.seq, 1);
    assert.match(e1.time, /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual(seen, [1, 2]);
    assert.equal(store.lastSeq(), 0, 'not yet written: writes are batched per tick');
    await tick();
    assert.equal(store.lastSeq(), 2);
    // replay flushes first, so an event emitted this very tick is already replayable.
    bus.emit({ type: 'log', runId: 'other', level: 'warn', message: 'three' });
    assert.deepEqual(bus.replay(1).map((e) => e.seq), [2, 3]);
    assert.deepEqual(bus.replay(0, 'other').map((e) => e.seq), [3]);
    off();
    bus.emit({ type: 'log', runId: 'r', level: 'info', message: 'four' });
    assert.deepEqual(seen, [1, 2, 3]);
    bus.close();
    store.close();

    store = openStore(path);
    bus = new EventBus(store);
    assert.equal(bus.lastSeq, 4);
    assert.equal(bus.emit({ type: 'log', runId: 'r', level: 'info', message: 'five' }).seq, 5);
    bus.close();
    assert.deepEqual(store.eventsAfter(0).map((e) => (e as Extract<DaemonEvent, { type: 'log' }>).message), ['one', 'two', 'three', 'four', 'five']);
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two processes writing events to one database (parallel experiment runs): none is lost, seq stays unique and in each writer\'s order', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mathagent-bus2-'));
  try {
    const path = join(dir, 'b.db');
    // Two connections stand for two processes: each bus starts from the same last seq.
    const sa = openStore(path); const sb = openStore(path);
    const errors: string[] = [];
    const a = new EventBus(sa, { onError: (m) => errors.push(m) }); const b = new EventBus(sb, { onError: (m) => errors.push(m) });
    for (let i = 0; i < 3; i++) {
      a.emit({ type: 'log', runId: 'a', level: 'info', message: `a${i}` });
      b.emit({ type: 'log', runId: 'b', level: 'info', message: `b${i}` });
      await tick();
    }
    a.close(); b.close();
    assert.deepEqual(errors, []);
    const stored = sa.eventsAfter(0) as Array<Extract<DaemonEvent, { type: 'log' }>>;
    assert.equal(stored.length, 6);
    assert.deepEqual(stored.map((e) => e.seq), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(stored.filter((e) => e.runId === 'a').map((e) => e.message), ['a0', 'a1', 'a2']);
    assert.deepEqual(stored.filter((e) => e.runId === 'b').map((e) => e.message), ['b0', 'b1', 'b2']);
    sa.close(); sb.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bus: a throwing subscriber or a failing store never reaches the emitter; maxPending flushes synchronously', () => {
  const store = openStore(':memory:');
  const errors: string[] = [];
  const bus = new EventBus(store, { maxPending: 3, onError: (m) => errors.push(m) });
  let got = 0;
  bus.subscribe(() => { throw new Error('bad subscriber'); });
  bus.subscribe(() => { got++; });
  bus.emit({ type: 'log', runId: 'r', level: 'info', message: 'a' });
  bus.emit({ type: 'log', runId: 'r', level: 'info', message: 'b' });
  assert.equal(store.lastSeq(), 0);
  bus.emit({ type: 'log', runId: 'r', level: 'info', message: 'c' });
  assert.equal(store.lastSeq(), 3, 'third pending event triggers a synchronous flush');
  assert.equal(got, 3);
  assert.equal(errors.filter((m) => /subscriber failed/.test(m)).length, 3);
  // Another writer took seq 4: 'd' is stored after it, and the bus continues above it.
  store.appendEvent({ seq: 4, runId: 'r', time: 't', type: 'log', level: 'info', message: 'squatter' });
  bus.emit({ type: 'log', runId: 'r', level: 'info', message: 'd' }); bus.flush();
  assert.equal(store.lastSeq(), 5);
  assert.equal(bus.emit({ type: 'log', runId: 'r', level: 'info', message: 'e' }).seq, 6);
  bus.flush();
  store.appendEvents = () => { throw new Error('disk I/O error'); };
  assert.doesNotThrow(() => { bus.emit({ type: 'log', runId: 'r', level: 'info', message: 'f' }); bus.flush(); });
  assert.ok(errors.some((m) => /could not store 1 event/.test(m)));
  bus.close();
  store.close();
});

test('bus without a store keeps a bounded in-memory window for replay', () => {
  const bus = new EventBus(null, { memoryEvents: 3 });
  for (let i = 0; i < 5; i++) bus.emit({ type: 'log', runId: i % 2 ? 'odd' : 'even', level: 'info', message: String(i) });
  assert.deepEqual(bus.replay(0).map((e) => e.seq), [3, 4, 5]);
  assert.deepEqual(bus.replay(0, 'even').map((e) => e.seq), [3, 5]);
  assert.deepEqual(bus.replay(3, undefined, 1).map((e) => e.seq), [4]);
});

test('token bucket: capacity burst, then refill at the given rate', () => {
  let t = 0;
  const b = new TokenBucket(3, 2, () => t);
  assert.deepEqual([b.take(), b.take(), b.take(), b.take()], [true, true, true, false]);
  t = 499; // 0.998 tokens
  assert.equal(b.take(), false);
  t = 501; // cumulative refill since the last refusal: 0.004 s * 2 = 0.004 more → 1.002
  assert.equal(b.take(), true);
  assert.equal(b.take(), false);
  t = 100_000; // never more than capacity
  assert.deepEqual([b.take(), b.take(), b.take(), b.take()], [true, true, true, false]);
});

test('token file: created 0600 in a 0700 dir, reused when valid, replaced when invalid, mode tightened', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mathagent-token-'));
  try {
    const file = join(dir, 'cfg', 'daemon.token');
    const t1 = ensureToken(file);
    assert.match(t1, /^[0-9a-f]{64}$/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'cfg')).mode & 0o777, 0o700);
    assert.equal(ensureToken(file), t1);
    chmodSync(file, 0o644);
    assert.equal(ensureToken(file), t1);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    writeFileSync(file, 'short');
    const t2 = ensureToken(file);
    assert.notEqual(t2, t1);
    assert.equal(readFileSync(file, 'utf8').trim(), t2);
    assert.equal(tokensEqual(t2, t2), true);
    assert.equal(tokensEqual(t2.slice(0, 63), t2), false);
    assert.equal(tokensEqual('', t2), false);
    assert.equal(bearerToken(`Bearer ${t2}`), t2);
    assert.equal(bearerToken(`bearer  ${t2} `), t2);
    assert.equal(bearerToken(`Basic ${t2}`), null);
    assert.equal(bearerToken(undefined), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('errors map to JSON-RPC codes with paths a person can act on', () => {
  const r = Methods['trajectory/list'].params.safeParse({ runId: 5, limit: 0 });
  assert.equal(r.success, false);
  const e = invalidParams('trajectory/list', r.error!);
  assert.equal(e.code, -32602);
  assert.match(e.message, /^invalid params for trajectory\/list: runId: .*; limit: /);
  assert.deepEqual((e.data as { issues: { path: string }[] }).issues.map((i) => i.path), ['runId', 'limit']);
  assert.deepEqual(toRpcError(new NotFoundError('run', 'x')), { code: -32004, message: 'run not found: x' });
  assert.deepEqual(toRpcError(new RpcError(-32029, 'slow down')), { code: -32029, message: 'slow down' });
  assert.deepEqual(toRpcError(new Error('disk full')), { code: -32603, message: 'disk full' });
  assert.deepEqual(toRpcError('weird'), { code: -32603, message: 'weird' });
});
