import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  prepareSequence, collate, batchToTensors, bucketedBatches, microBatches, chunk, mulberry32,
} from '../../daemon/src/train/batch';

const traj = { tokenIds: [10, 11, 12, 1, 2, 20, 21, 3], actionMask: [0, 0, 0, 1, 1, 0, 0, 1] };

test('collate: right padding, mask shifted to align with tokenLogprobs, token counts', () => {
  const a = prepareSequence(traj, { blockSize: 16, masked: true });
  const b = prepareSequence({ tokenIds: [10, 11, 4, 5], actionMask: [0, 0, 1, 1] }, { blockSize: 16, masked: true });
  const hb = collate([a, b], { padId: 0 });
  assert.equal(hb.batch, 2);
  assert.equal(hb.length, 8);
  assert.deepEqual(Array.from(hb.ids), [10, 11, 12, 1, 2, 20, 21, 3, /* row 1 */ 10, 11, 4, 5, 0, 0, 0, 0]);
  // mask[t] = tokenMask[t+1]: row 0 tokenMask [0,0,0,1,1,0,0,1] → [0,0,1,1,0,0,1]
  assert.deepEqual(Array.from(hb.mask), [0, 0, 1, 1, 0, 0, 1, /* row 1: [0,1,1] then padding */ 0, 1, 1, 0, 0, 0, 0]);
  assert.deepEqual(hb.rowTokens, [3, 2]);
  assert.equal(hb.tokenCount, 5);
  // unmasked (DPO ablation): every token after the prompt counts, observations included
  const u = collate([prepareSequence(traj, { blockSize: 16, masked: false })]);
  assert.deepEqual(Array.from(u.mask), [0, 0, 1, 1, 1, 1, 1]);
  const { ids, mask } = batchToTensors(hb);
  assert.deepEqual(ids.shape, [2, 8]);
  assert.equal(ids.dtype, 'int32');
  assert.deepEqual(mask.shape, [2, 7]);
  tf.dispose([ids, mask]);
  assert.throws(() => collate([a], { padTo: 4 }), /padTo 4 is shorter/);
  assert.throws(() => collate([]), /empty batch/);
});

test('truncation: left-truncates the prompt, refuses to cut the completion, or refuses all in error mode', () => {
  // 8 tokens, prompt 3, blockSize 6 → drop 2 prompt tokens, keep [12, 1, 2, 20, 21, 3]
  const p = prepareSequence(traj, { blockSize: 6, masked: true });
  assert.deepEqual(p.ids, [12, 1, 2, 20, 21, 3]);
  assert.deepEqual(p.tokenMask, [0, 1, 1, 0, 0, 1]);
  assert.equal(p.promptLen, 1);
  assert.equal(p.truncated, 2);
  // blockSize 5 would need dropping 3 = the whole prompt → the first action token would have no context
  assert.throws(() => prepareSequence(traj, { blockSize: 5, masked: true }), /completion has 5 tokens, more than blockSize − 1 = 4/);
  assert.throws(() => prepareSequence(traj, { blockSize: 6, masked: true, truncation: 'error' }), /8 tokens exceed the model's blockSize 6/);
  assert.equal(prepareSequence(traj, { blockSize: 8, masked: true }).truncated, 0);
});

test('hostile sequences get clear errors', () => {
  const o = { blockSize: 16, masked: true };
  assert.throws(() => prepareSequence({ tokenIds: [1, 2, 3], actionMask: [0, 1] }, o, 'pair 4 chosen'),
    /pair 4 chosen: tokenIds has 3 tokens but actionMask has 2/);
  assert.throws(() => prepareSequence({ tokenIds: [1], actionMask: [1] }, o), /at least 2 tokens/);
  assert.throws(() => prepareSequence({ tokenIds: [1, -1], actionMask: [0, 1] }, o), /token id at 1 is -1/);
  assert.throws(() => prepareSequence({ tokenIds: [1, 2.5], actionMask: [0, 1] }, o), /token id at 1 is 2.5/);
  assert.throws(() => prepareSequence({ tokenIds: [1, 300], actionMask: [0, 1] }, { ...o, vocabSize: 256 }), /< 256/);
  assert.throws(() => prepareSequence({ tokenIds: [1, 2], actionMask: [0, 7] }, o), /must be 0 or 1/);
  assert.throws(() => prepareSequence(traj, { blockSize: 1, masked: true }), /blockSize must be/);
});

test('bucketing: every index exactly once, batches of similar length, deterministic per seed', () => {
  const lengths = Array.from({ length: 40 }, (_, i) => ((i * 37) % 40) + 2);
  const batches = bucketedBatches(lengths, 4, { rng: mulberry32(1), bucketFactor: 10 });
  assert.deepEqual(batches.flat().sort((a, b) => a - b), lengths.map((_, i) => i));
  assert.equal(batches.length, 10);
  // one window of 40 sorted → each batch holds 4 consecutive lengths: padding waste per batch ≤ 3 tokens
  for (const b of batches) {
    const ls = b.map((i) => lengths[i]!);
    assert.ok(Math.max(...ls) - Math.min(...ls) <= 3, `batch lengths ${ls} should be close`);
  }
  assert.deepEqual(bucketedBatches(lengths, 4, { rng: mulberry32(1), bucketFactor: 10 }), batches);
  assert.notDeepEqual(bucketedBatches(lengths, 4, { rng: mulberry32(2), bucketFactor: 10 }), batches);
  // dropLast: 10 items in batches of 4 → 2 full batches
  assert.equal(bucketedBatches(lengths.slice(0, 10), 4, { dropLast: true }).length, 2);
  assert.equal(bucketedBatches(lengths.slice(0, 10), 4).length, 3);
  // no shuffle: sorted by length
  assert.deepEqual(bucketedBatches([5, 3, 9, 1], 2, { shuffle: false }), [[3, 1], [0, 2]]);
  assert.throws(() => bucketedBatches(lengths, 0), /batchSize must be/);
});

test('micro-batches are sorted by length and cover the batch', () => {
  // lengths of indices 4,1,7,2,0 are 5,3,2,1,9 → sorted 2(1) 7(2) 1(3) 4(5) 0(9)
  assert.deepEqual(microBatches([4, 1, 7, 2, 0], [9, 3, 1, 8, 5, 0, 0, 2], 2), [[2, 7], [1, 4], [0]]);
  assert.deepEqual(chunk([1, 2, 3], 5), [[1, 2, 3]]);
  assert.throws(() => chunk([1], 0), /chunk size/);
});
