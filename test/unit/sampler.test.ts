import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../daemon/src/model/backends';
import { GPT, presetConfig } from '../../daemon/src/model/gpt';
import { ByteTokenizer } from '../../daemon/src/model/tokenizer';
import { LocalPolicy, sampleToken } from '../../daemon/src/model/localPolicy';
import type { GenerateRequest } from '../../daemon/src/env/policy';
import { mulberry32 } from '../../daemon/src/data/rng';

const tok = new ByteTokenizer(['<|pad|>', '<|user|>', '<|assistant|>', '<|end|>', '<|output|>', '<|/output|>']);
const req = (prompt: string, extra: Partial<GenerateRequest> = {}): GenerateRequest => ({
  promptTokenIds: tok.encode(prompt), promptText: prompt, maxTokens: 12, stop: [], temperature: 0, topP: 1, ...extra,
});

before(async () => {
  await initBackend('wasm', { log: () => {} });
});

describe('LocalPolicy sampling', () => {
  for (const [nKvHead, positions] of [[1, 'rope'], [2, 'learned']] as const) it(`host decoder: prefill by steps and the prefix cache across turns give the no-cache path's tokens and logprobs (nKvHead ${nKvHead}, ${positions})`, async () => {
    const model = new GPT({ ...presetConfig('tiny', tok.vocabSize), nKvHead, positions, prevToken: true }, 5);
    // 9 rows: enough for the batched step prefill; prompts of different lengths.
    const prompts = Array.from({ length: 9 }, (_, i) => `<|user|>${'x'.repeat(i * 3)}what is ${i}+${i}?<|end|><|assistant|>`);
    const policy = new LocalPolicy(model, tok, { decoder: 'host' });
    const check = async (reqs: GenerateRequest[], what: string) => {
      const ref = await new LocalPolicy(model, tok).generate(reqs.map((r) => ({ ...r, cacheKey: undefined })), { noCache: true });
      const got = await policy.generate(reqs);
      got.forEach((g, b) => {
        assert.deepEqual(g.tokenIds, ref[b]!.tokenIds, `${what} row ${b}`);
        g.logprobs.forEach((lp, t) => assert.ok(Math.abs(lp - ref[b]!.logprobs[t]!) < 2e-4, `${what} row ${b} t ${t}: ${lp} vs ${ref[b]!.logprobs[t]}`));
      });
      return got;
    };
    const turn1 = prompts.map((p, i) => req(p, { maxTokens: 8, cacheKey: `k${i}` }));
    const out1 = await check(turn1, 'turn 1');
    // Turn 2 extends each history by the action and an observation; row 0's history is changed (a stale key), so
    // its cache must not be used; row 8 has no key at all.
    const turn2 = turn1.map((r, i) => {
      const history = [...r.promptTokenIds, ...out1[i]!.tokenIds, ...tok.encode(`<|output|>${i * 7}<|/output|>`)];
      if (i === 0) history[3] = tok.encode('z')[0]!;
      return { ...r, promptTokenIds: history, maxTokens: 6, cacheKey: i === 8 ? undefined : r.cacheKey };
    });
    await check(turn2, 'turn 2');
    const kept = (policy as unknown as { prefixes: Map<string, unknown> }).prefixes;
    assert.equal(kept.size, 9, 'one cache per keyed conversation (k8 still holds its turn-1 cache)');
    for (let i = 0; i < 9; i++) policy.forget(`k${i}`);
    assert.equal(kept.size, 0);
    model.dispose();
  });

  for (const [nKvHead, positions, prevToken] of [[1, 'rope', true], [2, 'rope', false], [2, 'learned', true], [1, 'learned', false]] as const) it(`KV-cache decoders give the same greedy tokens and logprobs as the no-cache path, per row and batched (nKvHead ${nKvHead}, ${positions} positions, prevToken ${prevToken})`, async () => {
    const model = new GPT({ ...presetConfig('tiny', tok.vocabSize), nKvHead, positions, prevToken }, 11);
    const prompts = ['<|user|>2+2?<|end|><|assistant|>', 'a', '<|user|>a much longer prompt than the others<|end|>'];
    const reqs = prompts.map((p) => req(p, { maxTokens: 20 }));
    const ref = await new LocalPolicy(model, tok).generate(reqs, { noCache: true });
    // host-trunk: the batched trunk prefill (the default host decoder prefills by steps).
    for (const kind of ['host', 'host-trunk', 'tensor'] as const) {
      const decoder = kind === 'tensor' ? 'tensor' : 'host';
      const stepPrefillRows = kind === 'host-trunk' ? Infinity : undefined;
      const got = await new LocalPolicy(model, tok, { decoder, stepPrefillRows }).generate(reqs);
      got.forEach((g, b) => {
        assert.deepEqual(g.tokenIds, ref[b]!.tokenIds, `${kind} row ${b}`);
        g.logprobs.forEach((lp, t) => assert.ok(Math.abs(lp - ref[b]!.logprobs[t]!) < 2e-4, `${kind} row ${b} t ${t}: ${lp} vs ${ref[b]!.logprobs[t]}`));
        assert.equal(g.finishReason, ref[b]!.finishReason);
      });
      // Alone, a row gives what it gave inside the batch.
      const alone = await new LocalPolicy(model, tok, { decoder, stepPrefillRows }).generate([reqs[1]!]);
      assert.deepEqual(alone[0]!.tokenIds, ref[1]!.tokenIds);
    }
    // The reported logprobs are the model's own log p(token | history): check against tokenLogprobs.
    const full = [...reqs[0]!.promptTokenIds, ...ref[0]!.tokenIds];
    const lp = model.tokenLogprobs(tf.tensor2d(full, [1, full.length], 'int32')).dataSync();
    const P = reqs[0]!.promptTokenIds.length;
    ref[0]!.logprobs.forEach((x, t) => assert.ok(Math.abs(x - lp[P - 1 + t]!) < 2e-4));
    model.dispose();
  });

  it('stops right after a stop string (kept in the output), at eos, and at maxTokens', async () => {
    // Find a random model (seed) and a two-character ASCII stop that first completes at token k of some
    // free-running greedy output. Learned positions: a random rope model tends to repeat one character.
    let found: { prompt: string; k: number; stop: string; ids: number[] } | null = null;
    let model!: GPT;
    let policy!: LocalPolicy;
    for (let seed = 12; seed < 40 && !found; seed++) {
      model?.dispose();
      model = new GPT({ ...presetConfig('tiny', tok.vocabSize), positions: 'learned', prevToken: false }, seed);
      policy = new LocalPolicy(model, tok);
      for (const prompt of ['xyz', 'hello there', '2+2=', 'abc', 'The answer is']) {
        const [free] = await policy.generate([req(prompt, { maxTokens: 40 })]);
        const ids = free!.tokenIds;
        for (let k = 2; k < ids.length && !found; k++) {
          const ascii = (id: number) => id >= 32 && id < 127;
          if (!ascii(ids[k - 1]!) || !ascii(ids[k]!)) continue;
          const stop = String.fromCharCode(ids[k - 1]!, ids[k]!);
          if (!tok.decode(ids.slice(0, k)).includes(stop)) found = { prompt, k, stop, ids };
        }
        if (found) break;
      }
    }
    assert.ok(found, 'test setup: no greedy output with two ASCII tokens in a row');
    const [s] = await policy.generate([req(found.prompt, { maxTokens: 40, stop: ['never-appears', found.stop] })]);
    assert.equal(s!.finishReason, 'stop');
    assert.deepEqual(s!.tokenIds, found.ids.slice(0, found.k + 1));
    assert.ok(s!.text.endsWith(found.stop));
    // Force the model to emit one id: zero the final norm's gain and point its bias at that id's embedding.
    const force = (id: number) => tf.tidy(() => {
      const C = model.config.nEmbd;
      const wte = model.param('wte');
      const rows = tf.oneHot(tf.tensor1d([id], 'int32'), tok.vocabSize).cast('float32').reshape([tok.vocabSize, 1]);
      wte.assign(tf.add(tf.mul(wte, tf.sub(1, rows)), tf.mul(rows, 0.5)));
      model.param('lnf.g').assign(tf.zeros([C]));
      model.param('lnf.b').assign(tf.ones([C]));
    });
    force(tok.eosId!);
    const [e] = await policy.generate([req('abc', { maxTokens: 5 })]);
    assert.deepEqual(e, { text: '<|end|>', tokenIds: [259], logprobs: e!.logprobs, finishReason: 'eos' });
    assert.ok(e!.logprobs[0]! > -0.01);
    const outId = tok.specialId('<|output|>')!;
    const m2 = new GPT(presetConfig('tiny', tok.vocabSize), 13);
    const p2 = new LocalPolicy(m2, tok);
    tf.tidy(() => {
      const wte = m2.param('wte');
      const rows = tf.oneHot(tf.tensor1d([outId], 'int32'), tok.vocabSize).cast('float32').reshape([tok.vocabSize, 1]);
      wte.assign(tf.add(tf.mul(wte, tf.sub(1, rows)), tf.mul(rows, 0.5)));
      m2.param('lnf.g').assign(tf.zeros([m2.config.nEmbd]));
      m2.param('lnf.b').assign(tf.ones([m2.config.nEmbd]));
    });
    const [o] = await p2.generate([req('abc', { maxTokens: 5, stop: ['<|output|>'] })]);
    assert.equal(o!.finishReason, 'stop');
    assert.deepEqual(o!.tokenIds, [outId]);
    const [l] = await p2.generate([req('abc', { maxTokens: 3 })]);
    assert.equal(l!.finishReason, 'length');
    assert.deepEqual(l!.tokenIds, [outId, outId, outId]);
    model.dispose();
    m2.dispose();
  });

  it('a sampled row is bit-identical alone and inside batches of any size (seeded runs repeat whatever the batching)', async () => {
    const model = new GPT({ ...presetConfig('tiny', tok.vocabSize), prevToken: true }, 21);
    const reqs = Array.from({ length: 10 }, (_, i) => req(`<|user|>${'y'.repeat(i)}what is ${i}*${i + 3}?<|end|><|assistant|>`, { temperature: 1, maxTokens: 24, seed: 100 + i }));
    const policy = new LocalPolicy(model, tok, { prefixCache: 0 });
    const all = await policy.generate(reqs);
    for (const n of [1, 3, 7]) {
      const some = await policy.generate(reqs.slice(0, n));
      some.forEach((g, b) => {
        assert.deepEqual(g.tokenIds, all[b]!.tokenIds, `batch of ${n}, row ${b}`);
        assert.deepEqual(g.logprobs, all[b]!.logprobs, `batch of ${n}, row ${b}: logprobs must match exactly`);
      });
    }
    model.dispose();
  });

  it('per-request seeds make sampling reproducible; top-p near 0 is greedy', async () => {
    const model = new GPT(presetConfig('tiny', tok.vocabSize), 14);
    const policy = new LocalPolicy(model, tok);
    const r = (seed: number, extra: Partial<GenerateRequest> = {}) => req('hello', { temperature: 1, maxTokens: 16, seed, ...extra });
    const [a, b, c] = await policy.generate([r(1), r(1), r(2)]);
    assert.deepEqual(a!.tokenIds, b!.tokenIds);
    assert.notDeepEqual(a!.tokenIds, c!.tokenIds);
    const [again] = await policy.generate([r(1)]);
    assert.deepEqual(again!.tokenIds, a!.tokenIds);
    const [greedy] = await policy.generate([req('hello', { maxTokens: 16 })]);
    const [nucleus] = await policy.generate([r(5, { topP: 1e-6, temperature: 2 })]);
    assert.deepEqual(nucleus!.tokenIds, greedy!.tokenIds);
    model.dispose();
  });

  it('sampleToken follows temperature and top-p on hand-made logits', () => {
    const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
    const scratch = new Float64Array(3);
    const rng = mulberry32(3);
    const counts = [0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[sampleToken(logits, 0, 3, 1, 1, rng, scratch).id]!++;
    assert.ok(Math.abs(counts[0]! / 4000 - 0.5) < 0.04 && Math.abs(counts[2]! / 4000 - 0.2) < 0.04, String(counts));
    // top-p 0.6 keeps {0, 1} (0.5 < 0.6 ≤ 0.8): token 2 never appears.
    const kept = new Set(Array.from({ length: 500 }, () => sampleToken(logits, 0, 3, 1, 0.6, rng, scratch).id));
    assert.deepEqual([...kept].sort(), [0, 1]);
    const s = sampleToken(logits, 0, 3, 0, 1, rng, scratch);
    assert.equal(s.id, 0);
    assert.ok(Math.abs(s.logprob - Math.log(0.5)) < 1e-6);
    // The logprob is untempered even when sampling at another temperature.
    const hot = sampleToken(logits, 0, 3, 5, 1, rng, scratch);
    assert.ok(Math.abs(hot.logprob - Math.log([0.5, 0.3, 0.2][hot.id]!)) < 1e-6);
  });

  it('rejects bad requests and keeps tf.memory().numTensors flat', async () => {
    const model = new GPT(presetConfig('tiny', tok.vocabSize), 15);
    const policy = new LocalPolicy(model, tok);
    await assert.rejects(policy.generate([req('a', { topP: 0 })]), /request 0: topP/);
    await assert.rejects(policy.generate([req('a'), { ...req('a'), promptTokenIds: [999] }]), /request 1: prompt token id 999/);
    await assert.rejects(policy.generate([{ ...req('a'), promptTokenIds: [] }]), /non-empty/);
    await assert.rejects(policy.generate([req('a', { maxTokens: -1 })]), /maxTokens/);
    assert.throws(() => new LocalPolicy(model, new ByteTokenizer()), /vocabSize/);
    const [z] = await policy.generate([req('a', { maxTokens: 0 })]);
    assert.deepEqual(z, { text: '', tokenIds: [], logprobs: [], finishReason: 'length' });
    const long = await policy.generate([{ ...req('a'), promptTokenIds: new Array(200).fill(65) }]);
    assert.equal(long[0]!.finishReason, 'length');
    // Near the end of the context a row stops with 'length' while the others go on.
    const edge = await policy.generate([{ ...req('a', { maxTokens: 10 }), promptTokenIds: new Array(125).fill(65) }, req('b', { maxTokens: 10 })]);
    assert.equal(edge[0]!.tokenIds.length, 3);
    assert.equal(edge[1]!.tokenIds.length, 10);
    for (const decoder of ['host', 'tensor'] as const) {
      const p = new LocalPolicy(model, tok, { decoder });
      await p.generate([req('warm up'), req('x')]);
      const n0 = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) await p.generate([req('one', { temperature: 1, seed: i }), req('two two')]);
      assert.equal(tf.memory().numTensors, n0, decoder);
    }
    model.dispose();
  });
});

describe('device-side sampling', () => {
  it('the tensor decoder (sampling on the device) picks what the host decoder (sampling on the CPU) picks', async () => {
    const model = new GPT(presetConfig('tiny', tok.vocabSize), 16);
    const reqs = [
      req('one', { temperature: 1, topP: 1, seed: 1, maxTokens: 24 }),
      req('two two', { temperature: 0.7, topP: 0.9, seed: 2, maxTokens: 24 }),
      req('three', { temperature: 0, seed: 3, maxTokens: 24 }),
      req('four', { temperature: 1.5, topP: 0.5, seed: 4, maxTokens: 24 }),
    ];
    const host = await new LocalPolicy(model, tok, { decoder: 'host' }).generate(reqs);
    const dev = await new LocalPolicy(model, tok, { decoder: 'tensor' }).generate(reqs);
    dev.forEach((d, b) => {
      assert.deepEqual(d.tokenIds, host[b]!.tokenIds, `row ${b}`);
      d.logprobs.forEach((lp, t) => assert.ok(Math.abs(lp - host[b]!.logprobs[t]!) < 2e-4));
    });
    // top-p 0.5 on a near-uniform untrained model keeps few tokens: the row's picks are among the likeliest.
    assert.ok(host[3]!.logprobs.every((lp) => lp > Math.log(1 / tok.vocabSize) - 0.5));
    model.dispose();
  });
});
