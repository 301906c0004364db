/**
 * How fast does SFT teach a from-scratch model to copy digits? Trains a model on one kind of data and prints,
 * every 50 steps, the teacher-forced argmax accuracy on the digits (and on all tokens) of the model's turns in
 * 48 held-out sequences. The figures in docs/model.md come from this script.
 *
 *   node --import tsx scripts/copyProbe.ts --data task|fixed|drills [--positions rope|learned] [--prev 1|0]
 *        [--preset small] [--steps 300] [--lr 2e-3] [--batch 16] [--demos 3000] [--drills 0] [--level 1]
 *
 * data: task = synthetic demonstrations (plus `--drills` copy drills per demo); fixed = one sentence frame with
 * fixed-width numbers ("Tom has NNNN pens and buys NNN bags of NN" → "a = NNN * NN\nNNNN + a"); drills = copy
 * drills only ("Repeat: the 4821 also 7730." → "4821 7730").
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../daemon/src/model/backends';
import { GPT, presetConfig, type PresetName } from '../daemon/src/model/gpt';
import { ByteTokenizer } from '../daemon/src/model/tokenizer';
import { generateDemos, type Level } from '../daemon/src/data/synthetic';
import { generateCopyDrills } from '../daemon/src/data/copyDrills';
import { mulberry32 } from '../daemon/src/data/rng';
import type { Demo } from '../daemon/src/data/types';
import { renderDemo } from '../daemon/src/env/demos';
import { getTemplate } from '../daemon/src/env/templates';
import { SandboxPool } from '../daemon/src/env/sandbox';
import { Trainer } from '../daemon/src/train/trainer';

const { values: o } = parseArgs({
  options: {
    data: { type: 'string', default: 'task' }, positions: { type: 'string', default: 'rope' }, prev: { type: 'string', default: '1' },
    preset: { type: 'string', default: 'small' }, steps: { type: 'string', default: '300' }, lr: { type: 'string', default: '2e-3' },
    batch: { type: 'string', default: '16' }, demos: { type: 'string', default: '3000' }, drills: { type: 'string', default: '0' },
    level: { type: 'string', default: '1' },
  },
});

type Seq = { tokenIds: number[]; actionMask: (0 | 1)[] };

async function main(): Promise<void> {
  await initBackend('wasm', { log: () => {} });
  const tpl = getTemplate('mathagent');
  const tok = new ByteTokenizer(tpl.specialTokens);
  const pool = new SandboxPool();
  const render = async (demos: Demo[]): Promise<Seq[]> => {
    const out: Seq[] = [];
    for (const d of demos) {
      const s = pool.session();
      try { out.push(await renderDemo(d, tpl, tok, s)); } finally { s.dispose(); }
    }
    return out;
  };
  const fixed = (seed: number, n: number): Seq[] => {
    const rng = mulberry32(seed);
    const int = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
    return Array.from({ length: n }, () => {
      const a = int(100, 999), b = int(10, 99), c = int(1000, 9999);
      const p = tok.encode(tpl.renderPrompt(`Tom has ${c} pens and buys ${a} bags of ${b}. How many?`));
      const r = tok.encode(`a = ${a} * ${b}\n${c} + a<|end|>`);
      return { tokenIds: [...p, ...r], actionMask: [...p.map(() => 0 as const), ...r.map(() => 1 as const)] };
    });
  };
  const data = (seed: number, n: number): Promise<Seq[]> => {
    if (o.data === 'fixed') return Promise.resolve(fixed(seed, n));
    if (o.data === 'drills') return render(generateCopyDrills(seed, n));
    if (o.data !== 'task') throw new Error(`--data must be task, fixed or drills; got ${o.data}`);
    return render([...generateDemos({ seed, count: n, flawedShare: 0, level: Number(o.level) as Level }), ...generateCopyDrills(seed, Math.round(n * Number(o.drills)))]);
  };
  const train = await data(1, Number(o.demos));
  const test = o.data === 'task' ? await render(generateDemos({ seed: 99, count: 48, flawedShare: 0, level: Number(o.level) as Level })) : await data(99, 48);
  await pool.close();

  const cfg = { ...presetConfig(o.preset as PresetName, tok.vocabSize), blockSize: 512, positions: o.positions as 'rope', prevToken: o.prev === '1' };
  const model = new GPT(cfg, 1);
  const steps = Number(o.steps);
  console.log(`${o.data}: ${train.length} sequences, ${model.paramCount()} params, ${JSON.stringify({ positions: cfg.positions, prevToken: cfg.prevToken, lr: o.lr, batch: o.batch })}`);
  const trainer = new Trainer(model, { algorithm: 'sft', lr: Number(o.lr), warmupSteps: 20, totalSteps: steps, schedule: 'cosine', batchSize: Number(o.batch), seed: 1, truncation: 'left' });
  const accuracy = (): string => {
    let n = 0, c = 0, nAll = 0, cAll = 0;
    for (let i = 0; i < test.length; i += 16) {
      const rows = test.slice(i, i + 16);
      const T = Math.max(...rows.map((r) => r.tokenIds.length));
      const ids = tf.tensor2d(rows.flatMap((r) => [...r.tokenIds, ...Array<number>(T - r.tokenIds.length).fill(0)]), [rows.length, T], 'int32');
      const am = tf.tidy(() => tf.argMax(model.forward(ids).logits, -1));
      const pred = am.dataSync();
      rows.forEach((r, b) => {
        for (let t = 0; t + 1 < r.tokenIds.length; t++) {
          if (!r.actionMask[t + 1]) continue;
          const ok = pred[b * T + t] === r.tokenIds[t + 1];
          nAll++; if (ok) cAll++;
          if (r.tokenIds[t + 1]! >= 48 && r.tokenIds[t + 1]! <= 57) { n++; if (ok) c++; }
        }
      });
      tf.dispose([ids, am]);
    }
    return `digits ${(100 * c / n).toFixed(1)}%, action tokens ${(100 * cAll / nAll).toFixed(1)}%`;
  };
  const t0 = Date.now();
  await trainer.trainSft(train, {
    steps,
    onStep: (e) => { if (e.step % 50 === 0 || e.step === steps) console.log(`step ${e.step} ${((Date.now() - t0) / 1000).toFixed(0)} s, loss ${e.metrics.loss?.toFixed(3)}, ${accuracy()}`); },
  });
  trainer.dispose();
  model.dispose();
}

main().catch((e: unknown) => { console.error(`copyProbe: ${(e as Error).message}`); process.exit(1); });
