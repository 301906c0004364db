/**
 * The compute engine as the pipeline sees it: create/load/save models, wrap one as a Policy, train it.
 * The pipeline never touches tensors; the tfjs implementation is in tfEngine.ts.
 */
import type { Algorithm, RunConfig, Trajectory } from '@mathagent/shared';
import type { Policy, Tokenizer } from '../env/policy';

/** An opaque loaded model. */
export interface ModelHandle { dispose(): void }

export interface TrainSequence { tokenIds: number[]; actionMask: (0 | 1)[] }

/** Called after each optimiser step; a returned promise is awaited before the next step (e.g. a mid-training eval). */
export type StepCallback = (step: number, metrics: Record<string, number>) => void | Promise<void>;

export interface SftTrainOptions {
  steps: number;
  lr: number;
  batchSize: number;
  warmupSteps: number;
  /** Decay after warm-up (default cosine over `steps`). */
  schedule?: 'cosine' | 'linear' | 'constant';
  seed: number;
  signal?: AbortSignal;
  onStep?: StepCallback;
}

export type PreferenceTrainOptions = RunConfig['train'] & {
  algorithm: Exclude<Algorithm, 'raft'>;
  seed: number;
  signal?: AbortSignal;
  onStep?: StepCallback;
};

export interface Engine {
  /** The tfjs backend in use (webgpu, tensorflow, wasm, cpu). */
  readonly backend: string;
  readonly tokenizer: Tokenizer;
  /** A fresh model; `minContext` raises the preset's context length so whole trajectories fit. */
  newModel(preset: 'tiny' | 'small' | 'base', seed: number, minContext?: number): ModelHandle;
  /** The model's context length (tokens). */
  contextLength(model: ModelHandle): number;
  load(path: string): Promise<ModelHandle>;
  save(model: ModelHandle, path: string, meta: Record<string, unknown>): Promise<void>;
  policy(model: ModelHandle, name: string): Policy;
  /** Returns the number of optimiser steps taken. */
  trainSft(model: ModelHandle, seqs: TrainSequence[], opts: SftTrainOptions): Promise<number>;
  trainPreference(model: ModelHandle, reference: ModelHandle, pairs: Array<{ chosen: Trajectory; rejected: Trajectory }>, opts: PreferenceTrainOptions): Promise<number>;
}
