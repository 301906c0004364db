import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, EventSequencer } from '../../extension/src/daemon/sequencer';
import { log } from './extensionFixtures';

const seqs = (evs: { seq: number }[]) => evs.map((e) => e.seq);

test('live events are delivered once, in order, old ones dropped', () => {
  const s = new EventSequencer();
  s.start(10);
  assert.deepEqual(seqs(s.live(log(9))), []);
  assert.deepEqual(seqs(s.live(log(11))), [11]);
  assert.deepEqual(seqs(s.live(log(11))), []);
  assert.deepEqual(seqs(s.live(log(13))), [13]);
  assert.equal(s.lastSeq, 13);
});

test('after a reconnect, live events wait for the replay and overlaps are removed', () => {
  const s = new EventSequencer();
  s.start(5);
  s.live(log(6));
  assert.equal(s.reconnect(9), 'replay');
  // live events arrive while events/replay is in flight; 9 is also in the replay
  assert.deepEqual(seqs(s.live(log(9))), []);
  assert.deepEqual(seqs(s.live(log(10))), []);
  // first (full) page, unsorted on purpose
  assert.deepEqual(seqs(s.replayed([log(8), log(7)], true)), [7, 8]);
  assert.equal(s.isReplaying, true);
  assert.deepEqual(seqs(s.replayed([log(9)], false)), [9, 10]);
  assert.equal(s.isReplaying, false);
  assert.equal(s.lastSeq, 10);
  assert.deepEqual(seqs(s.live(log(11))), [11]);
});

test('a daemon whose counter is behind ours is a reset; equal means nothing to replay', () => {
  const s = new EventSequencer();
  s.start(50);
  assert.equal(s.reconnect(50), 'upToDate');
  assert.equal(s.reconnect(3), 'reset');
  assert.equal(s.lastSeq, 3);
  assert.deepEqual(seqs(s.live(log(4))), [4]);
});

test('an aborted replay releases the buffered live events', () => {
  const s = new EventSequencer();
  s.start(1);
  s.reconnect(5);
  s.live(log(6));
  assert.deepEqual(seqs(s.abortReplay()), [6]);
  assert.equal(s.isReplaying, false);
});

test('back-off doubles up to the cap, with bounded jitter, and resets', () => {
  const b = new Backoff(500, 4000, 0.2, () => 0.5); // jitter factor exactly 1
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [500, 1000, 2000, 4000, 4000]);
  b.reset();
  assert.equal(b.next(), 500);
  const lo = new Backoff(1000, 30_000, 0.2, () => 0);
  const hi = new Backoff(1000, 30_000, 0.2, () => 1);
  assert.equal(lo.next(), 800);
  assert.equal(hi.next(), 1200);
  const capped = new Backoff(1000, 1000, 0.5, () => 1);
  assert.equal(capped.next(), 1000); // jitter never exceeds the cap
});
