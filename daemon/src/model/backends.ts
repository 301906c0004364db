/**
 * TensorFlow.js backend selection. We use bare tfjs-core plus registered kernels (not the `@tensorflow/tfjs`
 * umbrella), so the gradient and chained-op registrations are imported here once for the whole daemon.
 *
 * `auto` tries, in order: webgpu (npm `webgpu` = Dawn, needs a GPU adapter), tensorflow (tfjs-node-gpu /
 * tfjs-node, optional packages that only install with internet), wasm (XNNPACK, the CPU default), cpu (pure JS).
 * Every backend that was passed over gets a reason, so `mathagent doctor` and the logs can say why.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';
// A bare import of the cpu backend is dropped by esbuild (its package.json marks the node entry side-effect
// free); a value that initBackend really uses keeps the module, and so its registration, in the bundle.
import { version_cpu } from '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { installWebgpuGlobals, loadTfjsWebgpu } from './webgpu';
import { findVulkanLoader } from './gpuIcd';

export type BackendName = 'auto' | 'webgpu' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'webgpu', 'tensorflow', 'wasm', 'cpu'];

export interface BackendChoice {
  /** The tfjs backend now active ('webgpu', 'tensorflow', 'wasm' or 'cpu'). */
  name: string;
  /** tfjs version (of the cpu backend package, which all tfjs packages here share). */
  tfjsVersion: string;
  /** Why each other backend was not chosen (or failed), keyed by backend name. */
  reasons: Record<string, string>;
}

export interface InitBackendOptions {
  /** Called with one line per decision; defaults to stderr so stdout stays clean for --json output. */
  log?: (line: string) => void;
}

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);

/** Optional packages are loaded with a plain require at run time (they are esbuild externals and may be absent). */
function tryRequire(id: string): { mod?: unknown; error?: string } {
  try {
    return { mod: require(id) as unknown };
  } catch (e) {
    const code = (e as { code?: string }).code;
    return { error: code === 'MODULE_NOT_FOUND' ? `package ${id} is not installed` : `loading ${id} failed: ${errText(e)}` };
  }
}

async function activate(name: string): Promise<void> {
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`tf.setBackend('${name}') returned false`);
  await tf.ready();
  if (name === 'wasm') shareIdentityOnWasm();
}

let identityShared = false;

/**
 * The wasm backend's Identity kernel (tf.clone, and the clone that tf.customGrad keeps of every tensor a
 * custom gradient saves for its backward pass) copies the data. Tensors are immutable and the wasm backend
 * reference-counts data, as its own Reshape does, so share the data instead: a training step of the `small`
 * preset otherwise copies every saved activation (~50 MB) once more.
 */
function shareIdentityOnWasm(): void {
  if (identityShared) return;
  const original = tf.getKernel('Identity', 'wasm');
  if (!original) return;
  identityShared = true;
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({
    kernelName: 'Identity',
    backendName: 'wasm',
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      if (x.dtype === 'string') return original.kernelFunc(args);
      (args.backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  });
}

async function tryWebgpu(): Promise<void> {
  // Dawn's globals, after the MATHAGENT_GPU_ICD driver-manifest fix (webgpu.ts / gpuIcd.ts).
  installWebgpuGlobals();
  const gpu = (globalThis as unknown as { navigator: { gpu: { requestAdapter(): Promise<unknown> } } }).navigator.gpu;
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    throw new Error('no WebGPU adapter (no GPU, no Vulkan loader libvulkan.so.1, or the NVIDIA ICD needs VK_DRIVER_FILES; run `mathagent doctor`)');
  }
  loadTfjsWebgpu(); // bundled by esbuild (a literal require), flags set for GPU work
  await activate('webgpu');
}

async function tryTensorflow(): Promise<void> {
  let lastError = '';
  for (const id of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    const r = tryRequire(id);
    if (r.mod) {
      await activate('tensorflow');
      return;
    }
    lastError = lastError ? `${lastError}; ${r.error}` : r.error!;
  }
  throw new Error(lastError);
}

/**
 * `auto` on Linux without the Vulkan loader: pass over WebGPU without loading Dawn, which would otherwise print
 * "Warning: Couldn't load Vulkan" on every start of a CPU-only machine. An explicit `--backend webgpu` still
 * tries Dawn (and `mathagent doctor` reports the loader either way).
 */
async function tryWebgpuAuto(): Promise<void> {
  if (process.platform === 'linux' && findVulkanLoader() === null) {
    throw new Error('no Vulkan loader (libvulkan.so.1), so no WebGPU adapter (on a GPU host: apt-get install libvulkan1, see mathagent doctor)');
  }
  await tryWebgpu();
}

const attempts: Record<Exclude<BackendName, 'auto'>, () => Promise<void>> = {
  webgpu: tryWebgpu,
  tensorflow: tryTensorflow,
  wasm: () => activate('wasm'),
  cpu: () => activate('cpu'),
};

/**
 * Activate a backend. A named backend that fails throws an error that says why; `auto` falls through the
 * order above and only throws if even `cpu` fails.
 */
export async function initBackend(name: BackendName, opts: InitBackendOptions = {}): Promise<BackendChoice> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (!BACKEND_NAMES.includes(name)) {
    throw new Error(`unknown backend '${String(name)}': use one of ${BACKEND_NAMES.join(', ')}`);
  }
  const order: Array<Exclude<BackendName, 'auto'>> = name === 'auto' ? ['webgpu', 'tensorflow', 'wasm', 'cpu'] : [name];
  const reasons: Record<string, string> = {};
  for (const candidate of order) {
    try {
      await (name === 'auto' && candidate === 'webgpu' ? tryWebgpuAuto() : attempts[candidate]());
      for (const other of Object.keys(attempts)) {
        if (other !== candidate && !(other in reasons)) reasons[other] = name === 'auto' ? 'not needed: an earlier backend in the auto order worked' : `not requested (--backend ${name})`;
      }
      const passed = Object.entries(reasons).filter(([, r]) => !r.startsWith('not ')).map(([k, r]) => `${k}: ${r}`);
      log(`backend: using ${candidate}${passed.length ? ` (passed over ${passed.join('; ')})` : ''}`);
      return { name: candidate, tfjsVersion: version_cpu, reasons };
    } catch (e) {
      reasons[candidate] = errText(e);
    }
  }
  const detail = Object.entries(reasons).map(([k, r]) => `${k}: ${r}`).join('; ');
  throw new Error(`no usable tfjs backend for --backend ${name} (${detail})`);
}

/** True on backends whose tensor memory the CPU can read synchronously (used by the host-side fast paths). */
export function isHostBackend(name = tf.getBackend()): boolean {
  return name === 'wasm' || name === 'cpu';
}
