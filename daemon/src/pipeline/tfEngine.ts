/**
 * The tfjs Engine: GPT models from daemon/src/model, the Trainer from daemon/src/train, checkpoints on disk.
 * One tokenizer for every model of the process: the byte tokenizer with the `mathagent` template's specials.
 */
import type { BackendName } from '@mathagent/shared';
import { initBackend } from '../model/backends';
import { GPT, presetConfig } from '../model/gpt';
import { ByteTokenizer } from '../model/tokenizer';
import { LocalPolicy } from '../model/localPolicy';
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint';
import { getTemplate } from '../env/templates';
import { Trainer } from '../train/trainer';
import { setPadMultiple } from '../train/batch';
import type { Engine, ModelHandle, PreferenceTrainOptions, SftTrainOptions, TrainSequence } from './engine';
import type { Trajectory } from '@mathagent/shared';

class TfModel implements ModelHandle {
  constructor(readonly gpt: GPT) {}
  dispose(): void { this.gpt.dispose(); }
}

const unwrap = (m: ModelHandle): GPT => {
  if (!(m instanceof TfModel)) throw new Error('tfEngine: not a model of this engine');
  return m.gpt;
};

export async function createTfEngine(opts: { backend: BackendName; log?: (line: string) => void }): Promise<Engine> {
  const choice = await initBackend(opts.backend, { log: opts.log });
  // Few distinct batch shapes on a GPU: tfjs keeps a buffer pool per shape.
  if (choice.name === 'webgpu') setPadMultiple(32);
  const specials = getTemplate('mathagent').specialTokens;
  const tokenizer = new ByteTokenizer(specials);
  return {
    backend: choice.name,
    tokenizer,
    newModel(preset, seed, minContext = 0) {
      const config = presetConfig(preset, tokenizer.vocabSize);
      return new TfModel(new GPT({ ...config, blockSize: Math.max(config.blockSize, minContext) }, seed));
    },
    contextLength(model) {
      return unwrap(model).config.blockSize;
    },
    async load(path) {
      const ck = await loadCheckpoint(path);
      ck.optimizerState && Object.values(ck.optimizerState).forEach((t) => t.dispose());
      return new TfModel(ck.model);
    },
    async save(model, path, meta) {
      await saveCheckpoint(path, { model: unwrap(model), tokenizerSpecials: specials, meta });
    },
    policy(model, name) {
      return new LocalPolicy(unwrap(model), tokenizer, { name });
    },
    async trainSft(model, seqs: TrainSequence[], o: SftTrainOptions) {
      const trainer = new Trainer(unwrap(model), {
        algorithm: 'sft', lr: o.lr, warmupSteps: o.warmupSteps, totalSteps: o.steps, schedule: o.schedule ?? 'cosine', batchSize: o.batchSize, seed: o.seed, truncation: 'left',
      });
      try {
        const r = await trainer.trainSft(seqs, { steps: o.steps, signal: o.signal, onStep: (e) => o.onStep?.(e.step, e.metrics) });
        return r.steps;
      } finally { trainer.dispose(); }
    },
    async trainPreference(model, reference, pairs: Array<{ chosen: Trajectory; rejected: Trajectory }>, o: PreferenceTrainOptions) {
      const trainer = new Trainer(unwrap(model), {
        algorithm: o.algorithm, lr: o.lr, warmupSteps: o.warmupSteps, schedule: o.schedule, gradClip: o.gradClip, weightDecay: o.weightDecay,
        batchSize: o.batchSize, microBatchSize: Math.min(o.microBatchSize, o.batchSize), beta: o.beta, labelSmoothing: o.labelSmoothing,
        nllWeight: o.nllWeight, seed: o.seed, truncation: 'left',
      });
      try {
        const r = await trainer.trainPreference(
          pairs.map((p) => ({ chosen: p.chosen, rejected: p.rejected })), unwrap(reference),
          { epochs: o.epochs, signal: o.signal, onStep: (e) => o.onStep?.(e.step, e.metrics) },
        );
        return r.steps;
      } finally { trainer.dispose(); }
    },
  };
}
