/**
 * WebGPU in Node: Dawn from npm `webgpu` under `@tensorflow/tfjs-backend-webgpu`.
 *
 * - installWebgpuGlobals(): what must happen before tfjs-backend-webgpu asks for an adapter: apply the ICD fix
 *   (MATHAGENT_GPU_ICD, see gpuIcd.ts), load Dawn, and expose its WebGPU globals and `navigator.gpu`.
 * - configureTfjsWebgpu(): flags that keep the work on the GPU.
 * - probeWebgpuAdapter(): asks for an adapter in a child process. Why a child: Dawn reports why it found no
 *   adapter (no libvulkan, no driver, the headless NVIDIA "Could not get 'vkCreateInstance'") only as text on the
 *   native stderr, which a JavaScript caller cannot capture in-process; and a probe with a different
 *   VK_DRIVER_FILES needs a fresh process anyway (the loader reads it once).
 * - diagnoseDawnOutput(): turns that text into a reason and the exact fix.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { applyGpuIcdFromEnv, type ApplyGpuIcdResult } from './gpuIcd';
import * as tf from '@tensorflow/tfjs-core';

type DawnModule = { create(flags: string[]): unknown; globals: Record<string, unknown> };

export interface WebgpuPackage {
  /** The package's entry (index.js), loadable with require() on Node ≥ 20.19. */
  indexPath?: string;
  /** The native addon for this platform (dist/<platform>-<arch>/dawn.node). */
  dawnPath?: string;
  /** Why it is unusable, when it is. */
  error?: string;
}

/** Where npm `webgpu` is (resolved like a require from this module, so the GPU bundle finds its own copy). */
export function resolveWebgpuPackage(): WebgpuPackage {
  let indexPath: string;
  try {
    indexPath = require.resolve('webgpu');
  } catch {
    return { error: 'package webgpu is not installed (optional dependency; `npm install webgpu` or use the GPU bundle)' };
  }
  const arch = process.platform === 'darwin' ? 'universal' : process.arch;
  const dawnPath = join(dirname(indexPath), 'dist', `${process.platform}-${arch}`, 'dawn.node');
  return { indexPath, dawnPath };
}

let installed: { icd: ApplyGpuIcdResult } | null = null;

/**
 * Make `navigator.gpu` exist (idempotent). Applies MATHAGENT_GPU_ICD first, since the Vulkan loader reads
 * VK_DRIVER_FILES when Dawn creates its instance. Throws with the reason when Dawn cannot be loaded.
 */
export function installWebgpuGlobals(): { icd: ApplyGpuIcdResult } {
  const g = globalThis as unknown as { navigator?: { gpu?: unknown } };
  if (installed) return installed;
  const icd = applyGpuIcdFromEnv();
  if (!g.navigator?.gpu) {
    let mod: DawnModule;
    try {
      mod = require('webgpu') as DawnModule;
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'MODULE_NOT_FOUND') throw new Error(resolveWebgpuPackage().error ?? 'package webgpu is not installed');
      throw new Error(`loading webgpu (Dawn) failed: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
    }
    Object.assign(globalThis, mod.globals);
    // Node 21+ has a read-only global navigator; define the property instead of assigning it.
    // MATHAGENT_DAWN_FLAGS: Dawn options for experiments, space-separated (e.g. 'disable-dawn-features=...').
    const flags = (process.env.MATHAGENT_DAWN_FLAGS ?? '').split(/\s+/).filter(Boolean);
    Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu: mod.create(flags) }, configurable: true, writable: true });
  }
  installed = { icd };
  return installed;
}

/**
 * Register tfjs's webgpu backend (after installWebgpuGlobals: the package registers itself only if `navigator.gpu`
 * exists when it loads) and set its flags. The require has a literal name so esbuild puts the package inside the
 * bundle; it still runs only when called.
 */
export function loadTfjsWebgpu(): Record<string, number | boolean> {
  try {
    const mod = require('@tensorflow/tfjs-backend-webgpu') as { WebGPUBackend?: { prototype: object } };
    if (process.env.MATHAGENT_WEBGPU_UPLOAD !== 'staging') patchUploads(mod.WebGPUBackend?.prototype);
    if (process.env.MATHAGENT_WEBGPU_GRADS !== 'tfjs') registerDeviceReductionGradients();
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new Error(code === 'MODULE_NOT_FOUND' ? 'package @tensorflow/tfjs-backend-webgpu is not installed' : `loading @tensorflow/tfjs-backend-webgpu failed: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
  }
  return configureTfjsWebgpu();
}

/** dy reshaped to x's rank with the reduced axes kept as 1 (what Sum/Mean gradients broadcast back). */
function expandedDy(dy: tf.Tensor, x: tf.Tensor, axis: number | number[] | undefined): tf.Tensor {
  const shape = x.shape.slice();
  for (const a of tf.util.parseAxisParam(axis ?? x.shape.map((_, i) => i), x.shape)) shape[a] = 1;
  return tf.reshape(dy, shape);
}

/**
 * Gradients of Sum and Mean that broadcast dy on the device. tfjs's own multiply dy by `ones(x.shape)`, and `ones`
 * fills a JavaScript array that is then uploaded: for a layer norm's mean over [16384, 512] that is 32 MB of CPU
 * work and PCIe traffic per reduction. Measured on an H100 (CPU profile of a `base` training step at batch 64):
 * makeOnesTypedArray 1.37 s + its uploads 0.68 s of a 2.6 s step. Same values, so registered for every backend once
 * the webgpu backend is loaded (MATHAGENT_WEBGPU_GRADS=tfjs keeps tfjs's).
 */
export function registerDeviceReductionGradients(): void {
  tf.registerGradient({
    kernelName: 'Sum',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const x = saved[0]!;
      const axis = (attrs as unknown as { axis?: number | number[] }).axis;
      return { x: () => tf.broadcastTo(tf.cast(expandedDy(dy as tf.Tensor, x, axis), 'float32'), x.shape) };
    },
  });
  tf.registerGradient({
    kernelName: 'Mean',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const x = saved[0]!;
      const axis = (attrs as unknown as { axis?: number | number[] }).axis;
      const axes = tf.util.parseAxisParam(axis ?? x.shape.map((_, i) => i), x.shape);
      const reduceSize = axes.reduce((n, a) => n * x.shape[a]!, 1);
      return { x: () => tf.div(tf.broadcastTo(expandedDy(dy as tf.Tensor, x, axis), x.shape), reduceSize) };
    },
  });
}

interface TensorDataLike { dtype: string; shape: number[]; values: ArrayLike<number> | null; resource: unknown }
interface WebgpuBackendLike {
  tensorMap: { get(id: object): TensorDataLike | undefined };
  bufferManager: { acquireBuffer(size: number, usage: number): unknown };
  queue: { writeBuffer(buffer: unknown, offset: number, data: ArrayBuffer, dataOffset: number, size: number): void };
  uploadToGPU(dataId: object): void;
}

/**
 * Upload CPU values with `queue.writeBuffer` into a pooled buffer instead of tfjs's default, which creates (and
 * destroys after the next submit) a fresh MAP_WRITE staging buffer for every upload. Measured on an H100 (Dawn
 * 0.6, driver 580): each tfjs op cost ~1.2-1.9 ms, almost all of it in Dawn's createBuffer and queue.submit
 * (CPU profile), while raw Dawn dispatches cost 8-66 µs; every op with a JS scalar (`tf.mul(x, 0.9)`) or fresh
 * ids/positions uploads. writeBuffer is ordered on the queue before the next submit, and a pooled buffer is never
 * referenced by the not-yet-submitted encoder (tfjs frees buffers into the pool only at submit), so it is safe.
 * MATHAGENT_WEBGPU_UPLOAD=staging turns this off.
 */
export function patchUploads(proto: object | undefined): boolean {
  const p = proto as (WebgpuBackendLike & { __mathagentUploads?: boolean }) | undefined;
  if (!p || typeof p.uploadToGPU !== 'function' || p.__mathagentUploads) return false;
  const original = p.uploadToGPU;
  const usageBits = (globalThis as unknown as { GPUBufferUsage?: { STORAGE: number; COPY_SRC: number; COPY_DST: number } }).GPUBufferUsage;
  if (!usageBits) return false;
  const usage = usageBits.STORAGE | usageBits.COPY_SRC | usageBits.COPY_DST;
  p.uploadToGPU = function (this: WebgpuBackendLike, dataId: object): void {
    const td = this.tensorMap.get(dataId);
    if (!td || td.resource != null || td.values == null || !['float32', 'int32', 'bool'].includes(td.dtype)) {
      original.call(this, dataId);
      return;
    }
    const n = td.shape.reduce((a, b) => a * b, 1);
    if (n === 0) {
      original.call(this, dataId);
      return;
    }
    const v = td.values;
    const arr = td.dtype === 'float32'
      ? (v instanceof Float32Array ? v : Float32Array.from(v))
      : (v instanceof Int32Array ? v : Int32Array.from(v));
    const buffer = this.bufferManager.acquireBuffer(n * 4, usage);
    this.queue.writeBuffer(buffer, 0, arr.buffer as ArrayBuffer, arr.byteOffset, n * 4);
    td.values = null;
    td.resource = buffer;
  };
  p.__mathagentUploads = true;
  return true;
}

/**
 * tfjs-backend-webgpu flags for training and sampling on a discrete GPU. Call after the backend package is
 * loaded (it registers the flags).
 * - WEBGPU_CPU_FORWARD=false: otherwise ops on small tensors that were created on the CPU (ids, positions, masks)
 *   run on the CPU backend, and their results are uploaded again: extra round trips on every step.
 * - WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE: dispatches recorded per queue submit; a GPT step issues hundreds of small
 *   dispatches, so fewer submits help when the GPU is dispatch-bound (MATHAGENT_WEBGPU_SUBMIT_BATCH overrides).
 */
export function configureTfjsWebgpu(env: NodeJS.ProcessEnv = process.env): Record<string, number | boolean> {
  const set: Record<string, number | boolean> = {};
  const trySet = (flag: string, value: number | boolean) => {
    try {
      tf.env().set(flag, value);
      set[flag] = value;
    } catch {
      // flag unknown to this tfjs version: leave it
    }
  };
  trySet('WEBGPU_CPU_FORWARD', false);
  const batch = Number.parseInt(env.MATHAGENT_WEBGPU_SUBMIT_BATCH ?? '', 10);
  if (Number.isInteger(batch) && batch > 0) trySet('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', batch);
  return set;
}

export type DawnProblem = 'no-vulkan-loader' | 'icd-vkCreateInstance' | 'no-vulkan-driver' | 'dawn-load-failed' | 'no-adapter' | 'fallback-adapter' | 'probe-failed';

export interface DawnDiagnosis {
  problem: DawnProblem;
  /** What went wrong, in one line. */
  reason: string;
  /** The exact thing to do about it. */
  fix: string;
}

/**
 * Classify Dawn's and the Vulkan loader's messages (the probe's stderr) into one problem with its fix.
 * `eglLibrary` (libEGL_nvidia.so.0's path, if found) decides whether the EGL manifest is the fix for a missing
 * driver.
 */
export function diagnoseDawnOutput(text: string, ctx: { eglLibrary?: string | null } = {}): DawnDiagnosis {
  const auto = '`mathagent doctor --gpu-icd auto` (writes the EGL manifest to the config dir and tests it), then run with `--gpu-icd auto` or MATHAGENT_GPU_ICD=auto';
  if (/libvulkan\.so\.1: cannot open|Couldn't load Vulkan/i.test(text)) {
    return {
      problem: 'no-vulkan-loader',
      reason: 'the Vulkan loader libvulkan.so.1 is not installed (Dawn reaches the GPU through Vulkan)',
      fix: '`apt-get install libvulkan1` (Debian/Ubuntu; `dnf install vulkan-loader` on Fedora/RHEL), or put a folder holding libvulkan.so.1 on LD_LIBRARY_PATH (the GPU bundle\'s run-on-gpu.sh does)',
    };
  }
  if (/Could not get 'vkCreateInstance'/.test(text)) {
    return {
      problem: 'icd-vkCreateInstance',
      reason: "the NVIDIA Vulkan driver manifest fails on this headless host (\"Could not get 'vkCreateInstance'\": its libGLX_nvidia.so.0 needs a display)",
      fix: `${auto}; by hand: VK_DRIVER_FILES=<a json whose ICD.library_path is the absolute path of libEGL_nvidia.so.0>`,
    };
  }
  if (/Found no drivers|VK_ERROR_INCOMPATIBLE_DRIVER|no ICDs? found/i.test(text)) {
    return ctx.eglLibrary
      ? {
          problem: 'no-vulkan-driver',
          reason: `the Vulkan loader found no driver manifest, but the NVIDIA driver is installed (${ctx.eglLibrary})`,
          fix: `${auto}; by hand: VK_DRIVER_FILES=<a json whose ICD.library_path is ${ctx.eglLibrary}>`,
        }
      : {
          problem: 'no-vulkan-driver',
          reason: 'the Vulkan loader found no GPU driver (no NVIDIA driver libraries on this host, no GPU, or the container does not mount them)',
          fix: 'install the NVIDIA driver (its libEGL_nvidia.so.0 must be visible: `ldconfig -p | grep libEGL_nvidia`; in a container use the NVIDIA runtime with graphics capability), then `mathagent doctor --gpu-icd auto`; without a GPU use --backend wasm',
        };
  }
  return {
    problem: 'no-adapter',
    reason: `Dawn found no WebGPU adapter${text.trim() ? `: ${lastLines(text, 2)}` : ' and printed nothing'}`,
    fix: 'check `nvidia-smi` and `vulkaninfo --summary`; run `VK_LOADER_DEBUG=error,warn mathagent doctor` for the loader\'s own messages; without a GPU use --backend wasm',
  };
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').map((l) => l.trim()).filter(Boolean).slice(-n).join(' | ').slice(0, 300);
}

export interface AdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  /** Limits that decide batch sizes (bytes). */
  maxBufferSize?: number;
  maxStorageBufferBindingSize?: number;
}

export interface WebgpuProbeResult {
  ok: boolean;
  adapter?: AdapterInfo;
  /** Present when !ok or the adapter is a software fallback. */
  diagnosis?: DawnDiagnosis;
  /** What Dawn and the loader printed (trimmed). */
  stderr: string;
  /** The VK_DRIVER_FILES the probe ran with, if any. */
  driverFiles?: string;
  ms: number;
}

/** The child's program: load Dawn from a path, ask for a high-performance adapter, print its info as JSON. */
const PROBE_SCRIPT = `
const [dawnPath] = process.argv.slice(-1);
(async () => {
  const { create } = require(dawnPath);
  const gpu = create([]);
  const a = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!a) { process.stdout.write(JSON.stringify({ adapter: null }) + '\\n'); process.exit(0); }
  const i = a.info || (a.requestAdapterInfo ? await a.requestAdapterInfo() : {});
  process.stdout.write(JSON.stringify({ adapter: {
    vendor: String(i.vendor || ''), architecture: String(i.architecture || ''), device: String(i.device || ''),
    description: String(i.description || ''), isFallbackAdapter: Boolean(a.isFallbackAdapter || i.isFallbackAdapter),
    maxBufferSize: a.limits && a.limits.maxBufferSize, maxStorageBufferBindingSize: a.limits && a.limits.maxStorageBufferBindingSize,
  } }) + '\\n');
  process.exit(0);
})().catch((e) => { process.stdout.write(JSON.stringify({ error: String(e && e.message || e) }) + '\\n'); process.exit(0); });
`;

export interface ProbeOptions {
  /** Environment of the child (default process.env); use to try a VK_DRIVER_FILES. */
  env?: NodeJS.ProcessEnv;
  /** Give up after this long (default 20 s: a first Vulkan instance on a big driver can take seconds). */
  timeoutMs?: number;
  /** The dawn.node to load (default: resolveWebgpuPackage()). */
  dawnPath?: string;
  /** The Node binary (default process.execPath: the bundled one on a GPU host). */
  nodePath?: string;
  eglLibrary?: string | null;
}

/** Ask for a WebGPU adapter in a child process; never throws (failures come back as a diagnosis). */
export function probeWebgpuAdapter(opts: ProbeOptions = {}): Promise<WebgpuProbeResult> {
  const started = Date.now();
  const pkg = opts.dawnPath ? { dawnPath: opts.dawnPath } : resolveWebgpuPackage();
  const env = opts.env ?? process.env;
  const driverFiles = env.VK_DRIVER_FILES || env.VK_ICD_FILENAMES || undefined;
  if (!pkg.dawnPath) {
    return Promise.resolve({
      ok: false, stderr: '', driverFiles, ms: 0,
      diagnosis: { problem: 'dawn-load-failed', reason: pkg.error ?? 'webgpu package not found', fix: 'install the optional dependency: `npm install webgpu` (it ships dawn.node for linux-x64), or run from the GPU bundle' },
    });
  }
  const dawnPath = pkg.dawnPath;
  return new Promise((resolvePromise) => {
    const child = spawn(opts.nodePath ?? process.execPath, ['-e', PROBE_SCRIPT, dawnPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let settled = false;
    const finish = (r: Omit<WebgpuProbeResult, 'ms' | 'driverFiles'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolvePromise({ ...r, stderr: r.stderr.slice(-4000), driverFiles, ms: Date.now() - started });
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish({ ok: false, stderr: err, diagnosis: { problem: 'probe-failed', reason: `the adapter probe did not answer within ${opts.timeoutMs ?? 20000} ms (a hung GPU driver?)`, fix: 'check `nvidia-smi`; run `VK_LOADER_DEBUG=error,warn mathagent doctor` to see where the loader stops' } });
    }, opts.timeoutMs ?? 20000);
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('error', (e) => finish({ ok: false, stderr: err, diagnosis: { problem: 'probe-failed', reason: `cannot start ${opts.nodePath ?? process.execPath}: ${e.message}`, fix: 'run doctor with a working Node ≥ 20' } }));
    child.on('close', (code, signal) => {
      const line = out.trim().split('\n').pop() ?? '';
      let parsed: { adapter?: AdapterInfo | null; error?: string } | null = null;
      try {
        parsed = line ? (JSON.parse(line) as { adapter?: AdapterInfo | null; error?: string }) : null;
      } catch {
        parsed = null;
      }
      if (parsed?.adapter) {
        const a = parsed.adapter;
        const fallback = a.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(`${a.description} ${a.device} ${a.architecture}`);
        finish({
          ok: !fallback, adapter: a, stderr: err,
          diagnosis: fallback ? { problem: 'fallback-adapter', reason: `the only adapter is a CPU emulation (${a.description || a.device})`, fix: 'use --backend wasm (faster than an emulated GPU), or fix the GPU driver (see the other checks)' } : undefined,
        });
        return;
      }
      if (parsed?.error || parsed === null) {
        const what = parsed?.error ?? (signal ? `killed by ${signal}` : `exit code ${code}, no answer`);
        if (/dawn\.node|cannot open shared object|invalid ELF|GLIBC/i.test(`${what}\n${err}`) && !/libvulkan/i.test(`${what}\n${err}`)) {
          finish({ ok: false, stderr: err, diagnosis: { problem: 'dawn-load-failed', reason: `loading ${dawnPath} failed: ${what.slice(0, 300)}`, fix: 'reinstall the webgpu package for this platform (linux-x64 needs glibc ≥ 2.28 and libstdc++)' } });
          return;
        }
        const d = diagnoseDawnOutput(`${err}\n${what}`, { eglLibrary: opts.eglLibrary });
        finish({ ok: false, stderr: err, diagnosis: d });
        return;
      }
      finish({ ok: false, stderr: err, diagnosis: diagnoseDawnOutput(err, { eglLibrary: opts.eglLibrary }) });
    });
  });
}
