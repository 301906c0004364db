/**
 * Checkpoints: a folder with config.json (model config, tokenizer specials, meta), model.safetensors (the
 * weights, by GPT.variableNames()) and, when given, optimizer.safetensors (optimizer state by the trainer's
 * own keys). Safetensors is written here directly: 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}}, then the little-endian float32 data. Files are written to a temporary
 * name and renamed, so a crash never leaves a half-written checkpoint under the real name.
 *
 * A corrupt or mismatched checkpoint gives an error that names the file and says what is wrong.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { GPT, validateConfig, type GPTConfig } from './gpt';
import { ByteTokenizer } from './tokenizer';

export const CHECKPOINT_FORMAT = 'mathagent-checkpoint';
export const CHECKPOINT_VERSION = 1;

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export interface SaveCheckpointArgs {
  model: GPT;
  tokenizerSpecials: string[];
  optimizerState?: tf.NamedTensorMap | Record<string, tf.Tensor>;
  meta?: object;
}

export interface LoadedCheckpoint {
  model: GPT;
  tokenizer: ByteTokenizer;
  optimizerState?: Record<string, tf.Tensor>;
  meta: Record<string, unknown>;
}

interface ConfigFile {
  format: string;
  version: number;
  model: GPTConfig;
  tokenizer: { type: 'byte'; specials: string[] };
  meta: Record<string, unknown>;
}

function checkLittleEndian(): void {
  if (endianness() !== 'LE') throw new Error('checkpoints: this host is big-endian; safetensors data is little-endian and is not converted');
}

function writeAtomic(path: string, data: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** Encode named float32 tensors as one safetensors file's bytes. */
export function encodeSafetensors(tensors: Record<string, HostTensor>, metadata: Record<string, string> = {}): Uint8Array {
  checkLittleEndian();
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const n of names) {
    const t = tensors[n]!;
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) throw new Error(`safetensors: tensor '${n}' has shape [${t.shape}] but ${t.data.length} values`);
    header[n] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * size] };
    offset += 4 * size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // data starts 8-byte aligned
  const head = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let pos = 8 + head.length;
  for (const n of names) {
    const d = tensors[n]!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
    pos += d.byteLength;
  }
  return out;
}

/** Decode safetensors bytes; `file` names the file in errors. Only F32 tensors are accepted. */
export function decodeSafetensors(bytes: Uint8Array, file: string): { tensors: Record<string, HostTensor>; metadata: Record<string, string> } {
  checkLittleEndian();
  const fail = (what: string) => new Error(`checkpoint file ${file}: ${what}`);
  if (bytes.length < 8) throw fail(`only ${bytes.length} bytes, not even the 8-byte header length (truncated?)`);
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLen > bytes.length - 8) throw fail(`header length ${headerLen} runs past the end of the file (${bytes.length} bytes): truncated or not a safetensors file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLen).toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw fail('header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const tensors: Record<string, HostTensor> = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e?.dtype !== 'F32') throw fail(`tensor '${name}' has dtype ${JSON.stringify(e?.dtype)}; only F32 is supported`);
    if (!Array.isArray(e.shape) || !e.shape.every((s) => Number.isInteger(s) && s >= 0)) throw fail(`tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isInteger(x) && x >= 0) || off[1] < off[0]) {
      throw fail(`tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const shape = e.shape as number[];
    const [begin, end] = off as [number, number];
    const size = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== 4 * size) throw fail(`tensor '${name}': shape [${shape}] needs ${4 * size} bytes but data_offsets span ${end - begin}`);
    if (end > dataLen) throw fail(`tensor '${name}' data [${begin}, ${end}) runs past the end of the data (${dataLen} bytes): file truncated?`);
    const data = new Float32Array(size);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors[name] = { shape, data };
  }
  return { tensors, metadata };
}

async function toHost(t: tf.Tensor): Promise<HostTensor> {
  if (t.dtype !== 'float32') throw new Error(`saveCheckpoint: tensor of dtype ${t.dtype}; only float32 is stored`);
  return { shape: [...t.shape], data: (await t.data()) as Float32Array }; // data(): dataSync fails on webgpu
}

/** Write a checkpoint folder (created if needed); existing files of the same names are replaced. */
export async function saveCheckpoint(dir: string, args: SaveCheckpointArgs): Promise<void> {
  const { model, tokenizerSpecials } = args;
  const tok = new ByteTokenizer(tokenizerSpecials);
  if (tok.vocabSize !== model.config.vocabSize) {
    throw new Error(`saveCheckpoint: ${tokenizerSpecials.length} specials give a vocabulary of ${tok.vocabSize}, but the model's vocabSize is ${model.config.vocabSize}`);
  }
  mkdirSync(dir, { recursive: true });
  const weights: Record<string, HostTensor> = {};
  for (const n of model.variableNames()) weights[n] = await toHost(model.param(n));
  writeAtomic(join(dir, 'model.safetensors'), encodeSafetensors(weights, { format: 'pt' }));
  const optPath = join(dir, 'optimizer.safetensors');
  if (args.optimizerState) {
    const opt: Record<string, HostTensor> = {};
    for (const [k, t] of Object.entries(args.optimizerState)) opt[k] = await toHost(t);
    writeAtomic(optPath, encodeSafetensors(opt));
  }
  const config: ConfigFile = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    model: model.config,
    tokenizer: { type: 'byte', specials: [...tokenizerSpecials] },
    meta: { ...(args.meta ?? {}), hasOptimizerState: !!args.optimizerState },
  };
  // config.json last: a folder with a config.json has complete weights.
  writeAtomic(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
}

function readFile(path: string, what: string): Uint8Array {
  if (!existsSync(path)) throw new Error(`checkpoint file ${path} is missing (${what})`);
  return readFileSync(path);
}

/** Load a checkpoint folder written by saveCheckpoint. */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const cfgPath = join(dir, 'config.json');
  let cfg: ConfigFile;
  try {
    cfg = JSON.parse(Buffer.from(readFile(cfgPath, 'the model config')).toString('utf8')) as ConfigFile;
  } catch (e) {
    if ((e as Error).message.includes('is missing')) throw e;
    throw new Error(`checkpoint file ${cfgPath}: not valid JSON (${(e as Error).message})`);
  }
  if (cfg?.format !== CHECKPOINT_FORMAT) throw new Error(`checkpoint file ${cfgPath}: format is ${JSON.stringify(cfg?.format)}, expected "${CHECKPOINT_FORMAT}"`);
  if (cfg.version !== CHECKPOINT_VERSION) throw new Error(`checkpoint file ${cfgPath}: version ${cfg.version} is not supported (this build reads ${CHECKPOINT_VERSION})`);
  if (cfg.model && typeof cfg.model === 'object') {
    // Fields added after the first checkpoints, defaulted to what those checkpoints were: plain multi-head
    // attention (before grouped-query attention), a learned position table (before rope), no token shift.
    const m = cfg.model;
    if (m.nKvHead === undefined) m.nKvHead = m.nHead;
    if (m.positions === undefined) m.positions = 'learned';
    if (m.prevToken === undefined) m.prevToken = false;
  }
  try {
    validateConfig(cfg.model);
  } catch (e) {
    throw new Error(`checkpoint file ${cfgPath}: ${(e as Error).message}`);
  }
  if (cfg.tokenizer?.type !== 'byte' || !Array.isArray(cfg.tokenizer.specials)) throw new Error(`checkpoint file ${cfgPath}: tokenizer must be {"type": "byte", "specials": [...]}`);
  const tokenizer = new ByteTokenizer(cfg.tokenizer.specials);
  if (tokenizer.vocabSize !== cfg.model.vocabSize) {
    throw new Error(`checkpoint file ${cfgPath}: the tokenizer's ${tokenizer.vocabSize} ids do not match model.vocabSize ${cfg.model.vocabSize}`);
  }
  const wPath = join(dir, 'model.safetensors');
  const { tensors } = decodeSafetensors(readFile(wPath, 'the weights'), wPath);
  const model = new GPT(cfg.model);
  try {
    const expected = new Set(model.variableNames());
    for (const n of Object.keys(tensors)) if (!expected.has(n)) throw new Error(`checkpoint file ${wPath}: unexpected tensor '${n}' (not a parameter of this model config)`);
    for (const n of model.variableNames()) {
      const t = tensors[n];
      const v = model.param(n);
      if (!t) throw new Error(`checkpoint file ${wPath}: parameter '${n}' is missing`);
      if (t.shape.join(',') !== v.shape.join(',')) throw new Error(`checkpoint file ${wPath}: parameter '${n}' has shape [${t.shape}], the config needs [${v.shape}]`);
      tf.tidy(() => v.assign(tf.tensor(t.data, t.shape, 'float32')));
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  let optimizerState: Record<string, tf.Tensor> | undefined;
  const oPath = join(dir, 'optimizer.safetensors');
  if (existsSync(oPath)) {
    try {
      const opt = decodeSafetensors(readFileSync(oPath), oPath).tensors;
      optimizerState = {};
      for (const [k, t] of Object.entries(opt)) optimizerState[k] = tf.tensor(t.data, t.shape, 'float32');
    } catch (e) {
      model.dispose();
      throw e;
    }
  } else if (cfg.meta?.hasOptimizerState) {
    model.dispose();
    throw new Error(`checkpoint file ${oPath} is missing (config.json says the checkpoint has optimizer state)`);
  }
  return { model, tokenizer, optimizerState, meta: cfg.meta ?? {} };
}
