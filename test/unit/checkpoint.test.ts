import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../daemon/src/model/backends';
import { GPT, presetConfig } from '../../daemon/src/model/gpt';
import { decodeSafetensors, encodeSafetensors, loadCheckpoint, saveCheckpoint } from '../../daemon/src/model/checkpoint';

const SPECIALS = ['<|pad|>', '<|user|>', '<|assistant|>', '<|end|>', '<|output|>', '<|/output|>'];
const fresh = () => mkdtempSync(join(tmpdir(), 'ckpt-'));

before(async () => {
  await initBackend('wasm', { log: () => {} });
});

describe('safetensors', () => {
  it('writes the documented layout by hand-checkable bytes', () => {
    const bytes = encodeSafetensors({ b: { shape: [2], data: Float32Array.from([1, -2]) }, a: { shape: [1, 1], data: Float32Array.from([0.5]) } });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal((8 + n) % 8, 0);
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString());
    assert.deepEqual(header.a, { dtype: 'F32', shape: [1, 1], data_offsets: [0, 4] });
    assert.deepEqual(header.b, { dtype: 'F32', shape: [2], data_offsets: [4, 12] });
    const dv = new DataView(bytes.buffer, 8 + n);
    assert.deepEqual([dv.getFloat32(0, true), dv.getFloat32(4, true), dv.getFloat32(8, true)], [0.5, 1, -2]);
    const back = decodeSafetensors(bytes, 'x').tensors;
    assert.deepEqual(Array.from(back.b!.data), [1, -2]);
  });

  it('names the file and the problem for corrupt data', () => {
    const good = encodeSafetensors({ w: { shape: [4], data: new Float32Array(4) } });
    assert.throws(() => decodeSafetensors(good.subarray(0, good.length - 3), 'f.safetensors'), /f\.safetensors: tensor 'w' data \[0, 16\) runs past the end.*truncated/);
    assert.throws(() => decodeSafetensors(good.subarray(0, 5), 'f.safetensors'), /only 5 bytes/);
    const withHeader = (h: object) => {
      const json = Buffer.from(JSON.stringify(h));
      const b = new Uint8Array(8 + json.length + 16);
      new DataView(b.buffer).setBigUint64(0, BigInt(json.length), true);
      b.set(json, 8);
      return b;
    };
    assert.throws(() => decodeSafetensors(withHeader({ w: { dtype: 'F16', shape: [4], data_offsets: [0, 8] } }), 'g'), /g: tensor 'w' has dtype "F16"; only F32/);
    assert.throws(() => decodeSafetensors(withHeader({ w: { dtype: 'F32', shape: [5], data_offsets: [0, 16] } }), 'g'), /needs 20 bytes but data_offsets span 16/);
    const junk = new Uint8Array(16);
    new DataView(junk.buffer).setBigUint64(0, 4n, true);
    assert.throws(() => decodeSafetensors(junk, 'h'), /h: header is not valid JSON/);
    new DataView(junk.buffer).setBigUint64(0, 1000n, true);
    assert.throws(() => decodeSafetensors(junk, 'h'), /header length 1000 runs past the end/);
  });
});

describe('checkpoints', () => {
  it('round-trips weights (identical logits), tokenizer, optimizer state and meta', async () => {
    const dir = fresh();
    const model = new GPT(presetConfig('tiny', 262), 21);
    const opt = { 'm/wte': tf.fill([262, 32], 0.25), step: tf.scalar(7) };
    await saveCheckpoint(dir, { model, tokenizerSpecials: SPECIALS, optimizerState: opt, meta: { iteration: 3 } });
    const loaded = await loadCheckpoint(dir);
    const ids = tf.tensor2d([[257, 50, 51, 52, 259, 258]], [1, 6], 'int32');
    const a = model.forward(ids).logits.dataSync();
    const b = loaded.model.forward(ids).logits.dataSync();
    assert.deepEqual(Array.from(b), Array.from(a));
    assert.deepEqual(loaded.model.config, model.config);
    assert.equal(loaded.tokenizer.decode(loaded.tokenizer.encode('<|user|>hi<|end|>')), '<|user|>hi<|end|>');
    assert.equal(loaded.tokenizer.eosId, 259);
    assert.equal(loaded.optimizerState!.step!.dataSync()[0], 7);
    assert.deepEqual(loaded.optimizerState!['m/wte']!.shape, [262, 32]);
    assert.equal(loaded.meta.iteration, 3);
    model.dispose();
    loaded.model.dispose();
    rmSync(dir, { recursive: true });
  });

  it('gives clear errors for missing, truncated and mismatched files', async () => {
    const dir = fresh();
    const model = new GPT(presetConfig('tiny', 262), 22);
    await saveCheckpoint(dir, { model, tokenizerSpecials: SPECIALS });
    const cfgPath = join(dir, 'config.json');
    const cfgText = readFileSync(cfgPath, 'utf8');
    const n0 = tf.memory().numTensors;

    const wPath = join(dir, 'model.safetensors');
    const wBytes = readFileSync(wPath);
    truncateSync(wPath, statSync(wPath).size - 100);
    await assert.rejects(loadCheckpoint(dir), /model\.safetensors: tensor '.*' data .* runs past the end .*truncated/);
    writeFileSync(wPath, wBytes);

    const cfg = JSON.parse(cfgText);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, model: { ...cfg.model, nEmbd: 64 } }));
    await assert.rejects(loadCheckpoint(dir), /model\.safetensors: parameter 'wte' has shape \[262,32\], the config needs \[262,64\]/);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, model: { ...cfg.model, nLayer: 2 } }));
    await assert.rejects(loadCheckpoint(dir), /unexpected tensor 'h\.2\./);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, tokenizer: { type: 'byte', specials: ['<|end|>'] } }));
    await assert.rejects(loadCheckpoint(dir), /config\.json: the tokenizer's 257 ids do not match model\.vocabSize 262/);
    writeFileSync(cfgPath, '{"format": "mathagent-checkpoint", ');
    await assert.rejects(loadCheckpoint(dir), /config\.json: not valid JSON/);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, meta: { hasOptimizerState: true } }));
    await assert.rejects(loadCheckpoint(dir), /optimizer\.safetensors is missing/);
    rmSync(cfgPath);
    await assert.rejects(loadCheckpoint(dir), /config\.json is missing/);
    await assert.rejects(loadCheckpoint(join(dir, 'nope')), /config\.json is missing/);
    assert.equal(tf.memory().numTensors, n0, 'failed loads leave no tensors behind');
    await assert.rejects(saveCheckpoint(dir, { model, tokenizerSpecials: ['<|end|>'] }), /vocabulary of 257.*vocabSize is 262/);
    model.dispose();
    rmSync(dir, { recursive: true });
  });
});
