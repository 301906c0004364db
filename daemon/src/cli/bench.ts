/**
 * `mathagent bench <name|all> [--json]`: benchmarks that print figures (never timed tests). Each benchmark is
 * one entry of BENCHMARKS; other modules add theirs with registerBenchmark (grade, ws, ...).
 *
 * Figures that are compared are measured in the same run and interleaved (a reference matMul between
 * training steps), so the ratio holds even on a machine that other processes are loading.
 */
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName, BACKEND_NAMES } from '../model/backends';
import { GPT, presetConfig, type GPTConfig, type PresetName } from '../model/gpt';
import { ByteTokenizer } from '../model/tokenizer';
import { LocalPolicy } from '../model/localPolicy';
import { median } from '../pipeline/stats';

export interface BenchOptions {
  backend: BackendName;
  preset: PresetName;
  steps: number;
  /** Sequences per batch (default: 16 for train, 32 for sample). */
  batch?: number;
  /** Progress lines go here (stderr), results are returned. */
  log: (line: string) => void;
}

export interface Benchmark {
  name: string;
  description: string;
  run(opts: BenchOptions): Promise<Record<string, unknown>>;
}

const SPECIALS = ['<|pad|>', '<|user|>', '<|assistant|>', '<|end|>', '<|output|>', '<|/output|>'];

const round = (x: number, digits = 2) => Number(x.toFixed(digits));

/** Wait for all queued device work (webgpu is asynchronous; wasm/cpu return at once). */
async function sync(t: tf.Tensor): Promise<void> {
  await t.data();
}

/**
 * The reference matMul size: 1024³ on CPU backends; 4096³ on GPUs, where 1024³ (~0.2 ms on an H100) would time
 * the dispatch and read-back instead of the arithmetic.
 */
export function referenceMatMulSize(backend = tf.getBackend()): number {
  return backend === 'wasm' || backend === 'cpu' ? 1024 : 4096;
}

/** True where the process's CPU time measures the work (wasm, cpu: single-threaded kernels on this process). */
const cpuTimed = () => tf.getBackend() === 'wasm' || tf.getBackend() === 'cpu';

/**
 * Wall and process-CPU milliseconds of f. On a machine whose cores other processes share, wall time also counts
 * their turns; this process's CPU time does not, so CPU backends report figures by both.
 */
async function timed<T>(f: () => Promise<T>): Promise<{ value: T; wallMs: number; cpuMs: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await f();
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { value, wallMs, cpuMs: (c.user + c.system) / 1000 };
}

/**
 * Timed square matMuls on the active backend, in GFLOP/s by wall and CPU time. On GPUs several are queued and
 * only one element of the last is read back (the queue runs in order), so neither the 64 MB read-back nor one
 * submit's latency is timed.
 */
async function matMulGflops(a: tf.Tensor2D, b: tf.Tensor2D): Promise<{ wall: number; cpu: number }> {
  const reps = cpuTimed() ? 1 : 8;
  const { wallMs, cpuMs } = await timed(async () => {
    const cs: tf.Tensor[] = [];
    for (let i = 0; i < reps; i++) cs.push(tf.matMul(a, b));
    const one = tf.slice(cs.at(-1)! as tf.Tensor2D, [0, 0], [1, 1]);
    await sync(one);
    tf.dispose([...cs, one]);
  });
  const flops = reps * 2 * a.shape[0] * a.shape[1] * b.shape[1];
  return { wall: flops / wallMs / 1e6, cpu: flops / cpuMs / 1e6 };
}

/** Matmul FLOPs per token of a forward+backward pass: 6·(matmul parameters) + attention (PaLM's 12·L·T·C). */
export function trainFlopsPerToken(c: GPTConfig, T: number): number {
  const C = c.nEmbd;
  const Ckv = c.nKvHead * (C / c.nHead);
  const matmulParams = c.nLayer * (C * (C + 2 * Ckv) + C * C + 2 * c.mlpRatio * C * C) + c.vocabSize * C;
  return 6 * matmulParams + 12 * c.nLayer * T * C;
}

const trainBench: Benchmark = {
  name: 'train',
  description: 'one full training step (forward + backward + Adam) of the preset at batch 16 (--batch) x 256, vs the backend\'s own large matMul (1024³ on CPU, 4096³ on GPU)',
  async run({ preset, steps, log, batch }) {
    const tok = new ByteTokenizer(SPECIALS);
    const config = presetConfig(preset, tok.vocabSize);
    const B = batch ?? 16, T = Math.min(256, config.blockSize);
    const model = new GPT(config, 1);
    const vars = model.variables();
    // A plain Adam (the real AdamW with schedules lives in train/): enough to time a full step.
    const m: tf.Tensor[] = vars.map((v) => tf.zerosLike(v));
    const v2: tf.Tensor[] = vars.map((v) => tf.zerosLike(v));
    const lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    let t = 0;
    const rand = (n: number) => Array.from({ length: n }, () => Math.floor(Math.random() * 256));
    const ids = tf.tensor2d(rand(B * T), [B, T], 'int32');
    const targets = tf.tensor2d(rand(B * T), [B, T], 'int32');
    const step = async () => {
      t++;
      const { value, grads } = tf.variableGrads(() => model.forward(ids, targets).loss!, vars);
      tf.tidy(() => {
        const c1 = 1 - b1 ** t, c2 = 1 - b2 ** t;
        vars.forEach((vr, i) => {
          const g = grads[vr.name]!;
          const mi = tf.add(tf.mul(m[i]!, b1), tf.mul(g, 1 - b1));
          const vi = tf.add(tf.mul(v2[i]!, b2), tf.mul(tf.square(g), 1 - b2));
          vr.assign(tf.sub(vr, tf.mul(tf.div(mi, tf.add(tf.sqrt(tf.div(vi, c2)), eps)), lr / c1)));
          m[i]!.dispose();
          v2[i]!.dispose();
          m[i] = tf.keep(mi);
          v2[i] = tf.keep(vi);
        });
      });
      const loss = (await value.data())[0]!;
      tf.dispose([value, ...Object.values(grads)]);
      return loss;
    };
    const n = referenceMatMulSize();
    const a = tf.randomNormal([n, n]) as tf.Tensor2D;
    const b = tf.randomNormal([n, n]) as tf.Tensor2D;
    await matMulGflops(a, b);
    const t0 = performance.now();
    await step(); // warm-up: XNNPACK operator creation, kernel compilation on GPUs
    log(`bench train: warm-up step ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    const stepMs: number[] = [];
    const stepCpuMs: number[] = [];
    const mm: number[] = [];
    const mmCpu: number[] = [];
    let loss = NaN;
    const ref = async () => {
      const r = await matMulGflops(a, b);
      mm.push(r.wall);
      mmCpu.push(r.cpu);
    };
    for (let i = 0; i < steps; i++) {
      await ref();
      const r = await timed(step);
      loss = r.value;
      stepMs.push(r.wallMs);
      stepCpuMs.push(r.cpuMs);
      log(`bench train: step ${i + 1}/${steps} ${(r.wallMs / 1000).toFixed(2)} s (CPU ${(r.cpuMs / 1000).toFixed(2)} s), loss ${loss.toFixed(3)}, matMul ${mm.at(-1)!.toFixed(1)} GFLOP/s`);
    }
    await ref();
    const ms = median(stepMs);
    const tokensPerSec = (B * T) / (ms / 1000);
    const flops = trainFlopsPerToken(config, T) * B * T;
    const gflops = flops / ms / 1e6;
    const matmul = median(mm);
    const cpuMs = median(stepCpuMs);
    const cpu = cpuTimed()
      ? { stepMs: round(cpuMs, 1), tokensPerSec: round((B * T) / (cpuMs / 1000), 0), gflops: round(flops / cpuMs / 1e6), matmulGflops: round(median(mmCpu)), ratio: round(flops / cpuMs / 1e6 / median(mmCpu), 3) }
      : undefined;
    tf.dispose([a, b, ids, targets, ...m, ...v2]);
    model.dispose();
    return {
      preset, params: model.paramCount(), batch: B, seqLen: T, steps,
      stepMs: round(ms, 1), tokensPerSec: round(tokensPerSec, 0), gflops: round(gflops), matmulGflops: round(matmul),
      matmulSize: n, ratio: round(gflops / matmul, 3), lastLoss: round(loss, 4), ...(cpu ? { cpu } : {}),
    };
  },
};

const sampleBench: Benchmark = {
  name: 'sample',
  description: 'sampling tokens/s of the preset at batch 32 (--batch) x 256 new tokens with the KV cache, and the speed-up over no cache',
  async run({ preset, steps, log, batch }) {
    const B = batch ?? 32, newTokens = 256, promptLen = 32;
    // No '<|end|>' among the specials: no eos, so every row decodes all its tokens (an untrained model
    // would otherwise stop rows at random and the batch would shrink).
    const tok = new ByteTokenizer(SPECIALS.map((s) => (s === '<|end|>' ? '<|stop|>' : s)));
    const model = new GPT(presetConfig(preset, tok.vocabSize), 1);
    const policy = new LocalPolicy(model, tok, { name: `bench-${preset}` });
    const prompt = (i: number) => tok.encode(`<|user|>question ${i}: what is ${i} * 7? Think step by step.<|stop|><|assistant|>`).slice(-promptLen);
    const requests = (n: number, maxTokens: number) => Array.from({ length: n }, (_, i) => ({
      promptTokenIds: prompt(i), promptText: '', maxTokens, stop: [], temperature: 1, topP: 1, seed: i,
    }));
    await policy.generate(requests(B, 4)); // warm-up
    const cacheTps: number[] = [];
    const cacheCpuTps: number[] = [];
    for (let i = 0; i < Math.max(1, Math.min(steps, 3)); i++) {
      const r = await timed(() => policy.generate(requests(B, newTokens)));
      const n = r.value.reduce((s, x) => s + x.tokenIds.length, 0);
      cacheTps.push(n / (r.wallMs / 1000));
      cacheCpuTps.push(n / (r.cpuMs / 1000));
      log(`bench sample: KV cache ${cacheTps.at(-1)!.toFixed(0)} tokens/s (${cacheCpuTps.at(-1)!.toFixed(0)} per CPU second; ${n} tokens)`);
    }
    // Without the cache every new token re-runs the whole sequence; fewer tokens keep this short.
    const noCacheTokens = 16;
    const r = await timed(() => policy.generate(requests(B, noCacheTokens), { noCache: true }));
    const n = r.value.reduce((s, x) => s + x.tokenIds.length, 0);
    const noCacheTps = n / (r.wallMs / 1000);
    const noCacheCpuTps = n / (r.cpuMs / 1000);
    log(`bench sample: no cache ${noCacheTps.toFixed(0)} tokens/s (${noCacheCpuTps.toFixed(0)} per CPU second; ${n} tokens)`);
    policy.dispose();
    model.dispose();
    const withCache = median(cacheTps);
    const cpu = cpuTimed()
      ? { tokensPerSec: round(median(cacheCpuTps), 0), noCacheTokensPerSec: round(noCacheCpuTps, 0), speedup: round(median(cacheCpuTps) / noCacheCpuTps, 1) }
      : undefined;
    return {
      preset, batch: B, promptTokens: promptLen, newTokens, tokensPerSec: round(withCache, 0),
      noCacheTokensPerSec: round(noCacheTps, 0), noCacheNewTokens: noCacheTokens, speedup: round(withCache / noCacheTps, 1),
      ...(cpu ? { cpu } : {}),
    };
  },
};

/**
 * Multi-turn rollouts as the pipeline runs them: B conversations of 3 turns (a ~110-token question, 40 new tokens
 * per turn, a 12-token tool output between turns). "cached" is the default path (each conversation's keys and values
 * kept between turns, prompts fed token by token); "full" re-reads the whole history with one batched prefill every
 * turn, as before the prefix cache. Both in the same run, alternating.
 */
const rolloutBench: Benchmark = {
  name: 'rollout',
  description: 'multi-turn generation (64 conversations x 3 turns, --batch): per-conversation prefix cache vs full re-prefill each turn',
  async run({ preset, steps, log, batch }) {
    const B = batch ?? 64, turns = 3, perTurn = 40;
    const tok = new ByteTokenizer(SPECIALS.map((s) => (s === '<|end|>' ? '<|stop|>' : s)));
    const model = new GPT(presetConfig(preset, tok.vocabSize), 1);
    const question = (i: number) => tok.encode(`<|user|>A shop sells ${100 + i} pens at ${7 + (i % 5)} each and ${200 + 3 * i} pencils at 2 each. After a discount of ${10 + (i % 4) * 5}% on the pens, how much does it all cost?<|stop|><|assistant|>`);
    const conversation = async (policy: LocalPolicy, keyed: boolean, round: number) => {
      const hist = Array.from({ length: B }, (_, i) => question(i));
      let generated = 0;
      for (let t = 0; t < turns; t++) {
        const out = await policy.generate(hist.map((h, i) => ({
          promptTokenIds: h, promptText: '', maxTokens: perTurn, stop: [], temperature: 1, topP: 1, seed: i * 10 + t,
          ...(keyed ? { cacheKey: `r${round}c${i}` } : {}),
        })));
        out.forEach((o, i) => { hist[i] = [...hist[i]!, ...o.tokenIds, ...tok.encode(`<|output|>${1000 + i * 7}<|/output|>`)]; generated += o.tokenIds.length; });
      }
      for (let i = 0; i < B; i++) policy.forget(`r${round}c${i}`);
      return generated;
    };
    const cached = new LocalPolicy(model, tok, { name: 'cached' });
    const full = new LocalPolicy(model, tok, { name: 'full', prefixCache: 0, stepPrefillRows: Infinity });
    const tps: Record<'cached' | 'full', number[]> = { cached: [], full: [] };
    await conversation(cached, true, -1); // warm-up
    for (let i = 0; i < Math.max(1, Math.min(steps, 3)); i++) {
      for (const [name, policy, keyed] of [['cached', cached, true], ['full', full, false]] as const) {
        const r = await timed(() => conversation(policy, keyed, i));
        tps[name].push(r.value / (r.wallMs / 1000));
        log(`bench rollout: ${name} ${tps[name].at(-1)!.toFixed(0)} new tokens/s (${(r.wallMs / 1000).toFixed(2)} s for ${B} conversations)`);
      }
    }
    cached.dispose();
    full.dispose();
    model.dispose();
    const c = median(tps.cached), f = median(tps.full);
    return { preset, conversations: B, turns, newTokensPerTurn: perTurn, tokensPerSec: round(c, 0), fullPrefillTokensPerSec: round(f, 0), speedup: round(c / f, 2) };
  },
};

export const BENCHMARKS: Benchmark[] = [trainBench, sampleBench, rolloutBench];

/** Add a benchmark (e.g. `grade`, `ws`) to `mathagent bench`. */
export function registerBenchmark(b: Benchmark): void {
  if (BENCHMARKS.some((x) => x.name === b.name)) throw new Error(`benchmark '${b.name}' is registered twice`);
  BENCHMARKS.push(b);
}

export function register(program: Command): void {
  program
    .command('bench')
    .description(`print benchmark figures: ${BENCHMARKS.map((b) => b.name).join(', ')} or all`)
    .argument('[name]', 'benchmark to run, or "all"', 'all')
    .option('--json', 'print one JSON object with every result on stdout')
    .option('--backend <name>', `tfjs backend: ${BACKEND_NAMES.join('|')}`, 'wasm')
    .option('--preset <name>', 'model preset: tiny|small|base', 'small')
    .option('--steps <n>', 'timed repetitions per benchmark', '5')
    .option('--batch <n>', 'sequences per batch (default: train 16, sample 32)')
    .action(async (name: string, o: { json?: boolean; backend: string; preset: string; steps: string; batch?: string }) => {
      const chosen = name === 'all' ? BENCHMARKS : BENCHMARKS.filter((b) => b.name === name);
      if (!chosen.length) throw new Error(`unknown benchmark '${name}': use one of ${BENCHMARKS.map((b) => b.name).join(', ')}, all`);
      const steps = Number(o.steps);
      if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps must be a positive integer, got '${o.steps}'`);
      const batch = o.batch === undefined ? undefined : Number(o.batch);
      if (batch !== undefined && (!Number.isInteger(batch) || batch < 1)) throw new Error(`--batch must be a positive integer, got '${o.batch}'`);
      const log = (line: string) => process.stderr.write(`${line}\n`);
      const backend = await initBackend(o.backend as BackendName, { log });
      const results: Record<string, unknown> = { backend: backend.name };
      for (const b of chosen) {
        log(`bench ${b.name}: ${b.description}`);
        const r = await b.run({ backend: o.backend as BackendName, preset: o.preset as PresetName, steps, batch, log });
        results[b.name] = r;
        if (!o.json) {
          process.stdout.write(`${b.name}:\n`);
          for (const [k, v] of Object.entries(r)) process.stdout.write(`  ${k.padEnd(22)} ${typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)}\n`);
        }
      }
      if (o.json) process.stdout.write(`${JSON.stringify(results)}\n`);
    });
}
