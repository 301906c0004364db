/**
 * `mathagent doctor [--json] [--gpu-icd auto|off|<file.json>]`: what this host can run and, for everything it
 * cannot, the exact fix. Checks each compute backend in the `auto` order (webgpu: package, Vulkan loader, NVIDIA
 * driver, adapter; tensorflow: tfjs-node(-gpu); wasm: SIMD/threads; cpu), the Node version, better-sqlite3,
 * the datasets and the free disk space where the store lives.
 *
 * This module also registers the program-wide `--gpu-icd` option (and honours MATHAGENT_GPU_ICD) for every
 * command, because the Vulkan loader reads VK_DRIVER_FILES only when Dawn first creates its instance: the fix has
 * to be in the environment before any command initialises a backend.
 */
import type { Command } from 'commander';
import { existsSync, mkdtempSync, rmSync, statfsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { VERSION } from '../version';
import { defaultDbPath } from '../store/paths';
import { DATASET_SPLITS, dataDir as datasetsDir } from '../data/datasets';
import {
  applyGpuIcd, findNvidiaEglLibrary, findVulkanLoader, parseGpuIcdMode, stockNvidiaManifests, writeEglIcdManifest,
  type ApplyGpuIcdResult,
} from '../model/gpuIcd';
import { probeWebgpuAdapter, resolveWebgpuPackage, type AdapterInfo, type DawnDiagnosis, type WebgpuProbeResult } from '../model/webgpu';

export type Status = 'ok' | 'warn' | 'fail';
export type BackendId = 'webgpu' | 'tensorflow' | 'wasm' | 'cpu';
/** The order `--backend auto` tries (backends.ts). */
export const AUTO_ORDER: readonly BackendId[] = ['webgpu', 'tensorflow', 'wasm', 'cpu'];

export interface Check {
  name: string;
  status: Status;
  detail: string;
  /** What to do, present whenever status is not ok. */
  fix?: string;
}

export interface BackendReport {
  name: BackendId;
  usable: boolean;
  detail: string;
  fix?: string;
  /** Sub-checks (webgpu: package, loader, driver, adapter). */
  checks: Check[];
  info?: Record<string, unknown>;
}

export interface DoctorReport {
  version: string;
  /** False when something the daemon needs is broken (then the exit code is 1). */
  ok: boolean;
  /** What `--backend auto` will pick on this host (null: nothing works). */
  autoBackend: BackendId | null;
  node: Check & { version: string; execPath: string; platform: string };
  gpuIcd: { mode: string; applied: boolean; manifest?: string; detail: string };
  backends: BackendReport[];
  /** better-sqlite3, datasets, disk space. */
  checks: Check[];
}

/** Everything doctor reads from the host, injectable so tests run without a GPU, a store or the datasets. */
export interface DoctorDeps {
  nodeVersion: string;
  execPath: string;
  platform: string;
  env: NodeJS.ProcessEnv;
  webgpuPackage(): { dawnPath?: string; error?: string };
  findVulkanLoader(): string | null;
  findNvidiaEgl(): string | null;
  stockManifests(): Array<{ path: string; libraryPath: string; apiVersion: string | null }>;
  nvidiaSmi(): string | null;
  probe(env: NodeJS.ProcessEnv): Promise<WebgpuProbeResult>;
  /** A scratch folder for trying the EGL manifest without touching the config dir. */
  scratchDir(): string;
  tensorflow(): { loaded?: string; errors: string[] };
  wasm(): Promise<{ simd: boolean; threads: boolean; ms: number }>;
  /** Activates the pure-JS backend and runs an op (a bundler that drops the package's registration breaks it). */
  cpu(): Promise<void>;
  sqlite(): string;
  dataFiles(): { dir: string; files: Array<{ path: string; bytes: number | null }> };
  storeDir(): string;
  freeBytes(path: string): number;
}

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);
const GiB = 1024 ** 3;

/** Node ≥ 20.19: better-sqlite3 12 needs 20+, and loading the ESM-only `webgpu` package with require() needs 20.19. */
export function checkNode(version: string): Check {
  const m = /^v?(\d+)\.(\d+)/.exec(version);
  const [maj, min] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (maj < 20) return { name: 'node', status: 'fail', detail: `Node ${version} is too old`, fix: 'use Node 20.19+ (or the GPU bundle, which carries its own Node)' };
  if (maj === 20 && min < 19) return { name: 'node', status: 'warn', detail: `Node ${version}: WebGPU needs require() of ES modules (Node ≥ 20.19)`, fix: 'use Node 20.19+ for the webgpu backend' };
  return { name: 'node', status: 'ok', detail: `Node ${version}` };
}

function adapterText(a: AdapterInfo): string {
  // Dawn on NVIDIA: device 'nvidia-h100-80gb-hbm3', description 'NVIDIA: 580.159.04 ...' (the driver version).
  const name = a.device || a.description || 'unknown device';
  const extra = [a.vendor, a.architecture, a.device && a.description && a.description !== a.device ? a.description : ''].filter(Boolean);
  return `${name}${extra.length ? ` (${extra.join(', ')})` : ''}`;
}

async function webgpuReport(deps: DoctorDeps, icd: ApplyGpuIcdResult): Promise<BackendReport> {
  const checks: Check[] = [];
  const info: Record<string, unknown> = {};
  const pkg = deps.webgpuPackage();
  if (!pkg.dawnPath || !existsSafe(pkg.dawnPath)) {
    const why = pkg.error ?? `dawn.node missing at ${pkg.dawnPath} (no prebuilt Dawn for ${deps.platform})`;
    checks.push({ name: 'package', status: 'fail', detail: why, fix: 'npm install webgpu (optional dependency; ships dawn.node for linux-x64, darwin, win32), or run from the GPU bundle' });
    return { name: 'webgpu', usable: false, detail: why, fix: checks[0]!.fix, checks };
  }
  checks.push({ name: 'package', status: 'ok', detail: `Dawn at ${pkg.dawnPath}` });

  const loader = deps.findVulkanLoader();
  const egl = deps.findNvidiaEgl();
  const smi = deps.nvidiaSmi();
  info.vulkanLoader = loader;
  info.nvidiaEglLibrary = egl;
  info.stockManifests = deps.stockManifests();
  if (smi) info.nvidiaSmi = smi;
  checks.push(loader
    ? { name: 'vulkan-loader', status: 'ok', detail: `libvulkan.so.1 at ${loader}` }
    : { name: 'vulkan-loader', status: 'warn', detail: 'libvulkan.so.1 not found by ldconfig or LD_LIBRARY_PATH (the adapter probe decides)', fix: 'apt-get install libvulkan1' });
  checks.push(egl
    ? { name: 'nvidia-driver', status: 'ok', detail: `NVIDIA driver: ${egl}${smi ? `; ${smi}` : ''}` }
    : { name: 'nvidia-driver', status: 'warn', detail: `no NVIDIA driver libraries found (libEGL_nvidia.so.0)${smi ? `, although nvidia-smi reports ${smi}` : ''}`, fix: 'on an NVIDIA host, install the driver (or run the container with the NVIDIA runtime and graphics capability); other GPUs need their Vulkan driver (Mesa radv/anv)' });

  const first = await deps.probe(deps.env);
  info.driverFiles = first.driverFiles ?? null;
  info.probeStderr = first.stderr.trim().split('\n').slice(-6).join('\n');
  if (first.ok && first.adapter) {
    info.adapter = first.adapter;
    checks.push({ name: 'adapter', status: 'ok', detail: `${adapterText(first.adapter)}${first.driverFiles ? ` with VK_DRIVER_FILES=${first.driverFiles}` : ''}` });
    return { name: 'webgpu', usable: true, detail: `${adapterText(first.adapter)} through Vulkan`, checks, info };
  }

  let diag: DawnDiagnosis = first.diagnosis ?? { problem: 'no-adapter', reason: 'no adapter', fix: 'see the other checks' };
  // Where the NVIDIA EGL manifest could be the fix and was not in use yet, try it in a scratch folder: the fix we
  // print is then one we saw work on this host.
  const icdProblem = diag.problem === 'icd-vkCreateInstance' || diag.problem === 'no-vulkan-driver';
  if (icdProblem && egl && !icd.applied) {
    const dir = deps.scratchDir();
    try {
      const manifest = writeEglIcdManifest(dir, egl, deps.stockManifests().find((m) => m.apiVersion)?.apiVersion ?? undefined);
      const second = await deps.probe({ ...deps.env, VK_DRIVER_FILES: manifest, VK_ICD_FILENAMES: manifest });
      info.eglProbe = { ok: second.ok, adapter: second.adapter ?? null, problem: second.diagnosis?.problem ?? null };
      if (second.ok && second.adapter) {
        const fix = 'run with `--gpu-icd auto` (any command; or set MATHAGENT_GPU_ICD=auto): it writes this manifest to the config dir and sets VK_DRIVER_FILES';
        checks.push({ name: 'adapter', status: 'fail', detail: `${diag.reason}; with an EGL manifest (${egl}) the adapter works: ${adapterText(second.adapter)}`, fix });
        return { name: 'webgpu', usable: false, detail: `${diag.reason}; verified fix: the NVIDIA EGL manifest`, fix, checks, info };
      }
      diag = { ...diag, reason: `${diag.reason}; the EGL manifest did not help either (${second.diagnosis?.reason ?? 'no adapter'})` };
    } catch (e) {
      diag = { ...diag, reason: `${diag.reason}; trying the EGL manifest failed: ${errText(e)}` };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (first.adapter && diag.problem === 'fallback-adapter') info.adapter = first.adapter;
  checks.push({ name: 'adapter', status: 'fail', detail: diag.reason, fix: diag.fix });
  return { name: 'webgpu', usable: false, detail: diag.reason, fix: diag.fix, checks, info: { ...info, problem: diag.problem } };
}

function existsSafe(p: string): boolean {
  try {
    return existsSync(p);
  } catch {
    return false;
  }
}

function tensorflowReport(deps: DoctorDeps): BackendReport {
  const r = deps.tensorflow();
  if (r.loaded) return { name: 'tensorflow', usable: true, detail: `${r.loaded} loads`, checks: [{ name: 'package', status: 'ok', detail: `${r.loaded} loads` }] };
  const detail = r.errors.join('; ');
  const fix = 'optional: `npm install @tensorflow/tfjs-node-gpu` (CUDA) or `@tensorflow/tfjs-node` on a host with internet (their install downloads libtensorflow); on a GPU without it, webgpu does the job';
  return { name: 'tensorflow', usable: false, detail, fix, checks: [{ name: 'package', status: 'warn', detail, fix }] };
}

async function wasmReport(deps: DoctorDeps): Promise<BackendReport> {
  try {
    const w = await deps.wasm();
    const detail = `XNNPACK, SIMD ${w.simd ? 'on' : 'OFF'}, threads ${w.threads ? 'on' : 'off (tfjs disables wasm threads under Node)'}; ready in ${w.ms} ms`;
    const checks: Check[] = [{ name: 'init', status: 'ok', detail: `initialised and ran a matMul in ${w.ms} ms` }];
    checks.push(w.simd
      ? { name: 'simd', status: 'ok', detail: 'WebAssembly SIMD supported' }
      : { name: 'simd', status: 'warn', detail: 'no WebAssembly SIMD: the wasm backend runs ~3x slower', fix: 'use Node ≥ 16.4 on an x86-64/arm64 CPU' });
    return { name: 'wasm', usable: true, detail, checks, info: w };
  } catch (e) {
    const fix = 'reinstall @tensorflow/tfjs-backend-wasm (its dist/*.wasm files must sit beside the bundle or in node_modules)';
    return { name: 'wasm', usable: false, detail: errText(e), fix, checks: [{ name: 'init', status: 'fail', detail: errText(e), fix }] };
  }
}

async function cpuReport(deps: DoctorDeps): Promise<BackendReport> {
  try {
    await deps.cpu();
    return { name: 'cpu', usable: true, detail: 'pure JavaScript fallback (slow: ~12x slower than wasm)', checks: [{ name: 'init', status: 'ok', detail: 'initialised and ran an op' }] };
  } catch (e) {
    const fix = 'reinstall @tensorflow/tfjs-backend-cpu; in an esbuild bundle, its side-effect import must be kept (ignoreAnnotations or a dynamic import)';
    return { name: 'cpu', usable: false, detail: errText(e), fix, checks: [{ name: 'init', status: 'fail', detail: errText(e), fix }] };
  }
}

function storeChecks(deps: DoctorDeps): Check[] {
  const out: Check[] = [];
  try {
    out.push({ name: 'better-sqlite3', status: 'ok', detail: `better-sqlite3 loads (SQLite ${deps.sqlite()})` });
  } catch (e) {
    const msg = errText(e);
    const abi = /NODE_MODULE_VERSION|was compiled against a different Node/i.test(msg);
    out.push({ name: 'better-sqlite3', status: 'fail', detail: `better-sqlite3 does not load: ${msg}`,
      fix: abi ? 'npm rebuild better-sqlite3 (it was built for another Node version)' : 'npm install (better-sqlite3 12 ships prebuilt binaries for Node 20/22 on linux-x64)' });
  }
  try {
    const d = deps.dataFiles();
    const missing = d.files.filter((f) => f.bytes === null);
    const total = d.files.reduce((s, f) => s + (f.bytes ?? 0), 0);
    out.push(missing.length
      ? { name: 'datasets', status: 'warn', detail: `${missing.length} of ${d.files.length} dataset files missing under ${d.dir}: ${missing.map((f) => f.path).join(', ')} (the synthetic task still works)`, fix: 'copy data/ (gsm8k, math, math500) from the repository, or set MATHAGENT_DATA_DIR to a folder that has them' }
      : { name: 'datasets', status: 'ok', detail: `${d.files.length} dataset files under ${d.dir} (${(total / 1e6).toFixed(1)} MB)` });
  } catch (e) {
    out.push({ name: 'datasets', status: 'warn', detail: `${errText(e)} (the synthetic task still works)`, fix: 'set MATHAGENT_DATA_DIR to the data/ folder that holds gsm8k/, math/ and math500/' });
  }
  const dir = deps.storeDir();
  try {
    const free = deps.freeBytes(dir);
    const text = `${(free / GiB).toFixed(1)} GiB free for the store at ${dir}`;
    out.push(free < 0.1 * GiB
      ? { name: 'disk', status: 'fail', detail: text, fix: 'free disk space or point MATHAGENT_DB / XDG_DATA_HOME at a bigger disk (checkpoints of `base` are ~300 MB each)' }
      : free < 2 * GiB
        ? { name: 'disk', status: 'warn', detail: text, fix: 'free disk space or point MATHAGENT_DB / XDG_DATA_HOME at a bigger disk (checkpoints of `base` are ~300 MB each)' }
        : { name: 'disk', status: 'ok', detail: text });
  } catch (e) {
    out.push({ name: 'disk', status: 'warn', detail: `cannot read free space at ${dir}: ${errText(e)}`, fix: 'check that the store folder is on a mounted, writable disk' });
  }
  return out;
}

/** Build the whole report. `icd` is what the `--gpu-icd` mode did to the environment before. */
export async function collectDoctorReport(deps: DoctorDeps, icd: ApplyGpuIcdResult & { mode: string }): Promise<DoctorReport> {
  const node = { ...checkNode(deps.nodeVersion), version: deps.nodeVersion, execPath: deps.execPath, platform: deps.platform };
  const backends: BackendReport[] = [await webgpuReport(deps, icd), tensorflowReport(deps), await wasmReport(deps), await cpuReport(deps)];
  const checks = storeChecks(deps);
  const autoBackend = AUTO_ORDER.find((n) => backends.find((b) => b.name === n)?.usable) ?? null;
  const ok = node.status !== 'fail' && autoBackend !== null && !checks.some((c) => c.status === 'fail');
  return { version: VERSION, ok, autoBackend, node, gpuIcd: { mode: icd.mode, applied: icd.applied, manifest: icd.manifest, detail: icd.detail }, backends, checks };
}

const mark = (s: Status | boolean) => (s === true || s === 'ok' ? '✓' : s === 'warn' ? '!' : '✗');

/** The human-readable form: one line per backend and check, a `fix:` line under each problem. */
export function formatDoctorReport(r: DoctorReport): string {
  const lines: string[] = [];
  lines.push(`mathagent doctor ${r.version} — ${r.node.detail} (${r.node.execPath}, ${r.node.platform})`);
  if (r.node.fix) lines.push(`    fix: ${r.node.fix}`);
  lines.push(`gpu-icd: ${r.gpuIcd.detail}`);
  lines.push('', 'backends (the order --backend auto tries):');
  for (const b of r.backends) {
    lines.push(`  ${mark(b.usable)} ${b.name.padEnd(10)} ${b.detail}`);
    for (const c of b.checks) {
      if (b.usable && c.status === 'ok') continue;
      if (c.detail === b.detail && c.fix === b.fix) continue;
      lines.push(`      ${mark(c.status)} ${c.name}: ${c.detail}`);
      if (c.fix && c.fix !== b.fix) lines.push(`          fix: ${c.fix}`);
    }
    if (b.fix) lines.push(`      fix: ${b.fix}`);
  }
  lines.push('', 'store and data:');
  for (const c of r.checks) {
    lines.push(`  ${mark(c.status)} ${c.name.padEnd(14)} ${c.detail}`);
    if (c.fix) lines.push(`      fix: ${c.fix}`);
  }
  lines.push('', r.autoBackend ? `--backend auto will use: ${r.autoBackend}` : 'no backend works: see the fixes above', r.ok ? 'doctor: ok' : 'doctor: problems found (exit code 1)');
  return `${lines.join('\n')}\n`;
}

function nvidiaSmi(): string | null {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], { encoding: 'utf8', timeout: 10000, stdio: ['ignore', 'pipe', 'ignore'] });
    const line = out.trim().split('\n')[0];
    return line ? `nvidia-smi: ${line.trim()}` : null;
  } catch {
    return null;
  }
}

/** The real host. */
export function hostDeps(): DoctorDeps {
  return {
    nodeVersion: process.version,
    execPath: process.execPath,
    platform: `${process.platform}-${process.arch}`,
    env: process.env,
    webgpuPackage: resolveWebgpuPackage,
    findVulkanLoader: () => findVulkanLoader(),
    findNvidiaEgl: () => findNvidiaEglLibrary(),
    stockManifests: () => stockNvidiaManifests(),
    nvidiaSmi,
    probe: (env) => probeWebgpuAdapter({ env, eglLibrary: findNvidiaEglLibrary() }),
    scratchDir: () => mkdtempSync(join(tmpdir(), 'mathagent-icd-')),
    tensorflow: () => {
      const errors: string[] = [];
      for (const id of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
        try {
          require(id);
          return { loaded: id, errors };
        } catch (e) {
          errors.push((e as { code?: string }).code === 'MODULE_NOT_FOUND' ? `${id} is not installed` : `${id} fails to load: ${errText(e)}`);
        }
      }
      return { errors };
    },
    wasm: async () => {
      const t0 = Date.now();
      const tf = await import('@tensorflow/tfjs-core');
      await import('@tensorflow/tfjs-backend-wasm');
      if (!(await tf.setBackend('wasm'))) throw new Error("tf.setBackend('wasm') returned false");
      await tf.ready();
      const y = tf.tidy(() => tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])));
      const v = (await y.data())[0];
      y.dispose();
      if (v !== 64) throw new Error(`wasm matMul gave ${v}, expected 64`);
      const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
      const threads = Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
      return { simd, threads, ms: Date.now() - t0 };
    },
    cpu: async () => {
      const tf = await import('@tensorflow/tfjs-core');
      await import('@tensorflow/tfjs-backend-cpu');
      const before = tf.getBackend();
      // The cpu backend's first use prints a "install tfjs-node" banner; doctor gives its own advice.
      tf.env().set('PROD', true);
      if (!(await tf.setBackend('cpu'))) throw new Error("tf.setBackend('cpu') returned false");
      const v = tf.tidy(() => tf.sum(tf.ones([4])).arraySync());
      if (before && before !== 'cpu') await tf.setBackend(before);
      if (v !== 4) throw new Error(`cpu sum gave ${String(v)}, expected 4`);
    },
    sqlite: () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const Database = require('better-sqlite3') as new (f: string) => { prepare(s: string): { get(): unknown }; close(): void };
      const db = new Database(':memory:');
      try {
        return String((db.prepare('select sqlite_version() as v').get() as { v: string }).v);
      } finally {
        db.close();
      }
    },
    dataFiles: () => {
      const dir = datasetsDir();
      const files = Object.entries(DATASET_SPLITS).flatMap(([name, splits]) => splits.map((s) => {
        const path = join(name, `${s}.jsonl`);
        try {
          return { path, bytes: statSync(join(dir, path)).size };
        } catch {
          return { path, bytes: null };
        }
      }));
      return { dir, files };
    },
    storeDir: () => dirname(defaultDbPath()),
    freeBytes: (path) => {
      // The store folder may not exist yet: measure the nearest folder above it that does.
      let p = path;
      while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
      const s = statfsSync(p);
      return s.bavail * s.bsize;
    },
  };
}

let icdResult: (ApplyGpuIcdResult & { mode: string }) | null = null;

/** Apply `--gpu-icd` / MATHAGENT_GPU_ICD to process.env once, before any command's action runs. */
export function applyProgramGpuIcd(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): ApplyGpuIcdResult & { mode: string } {
  const raw = flag ?? env.MATHAGENT_GPU_ICD ?? 'off';
  const mode = parseGpuIcdMode(raw);
  // Record the choice for child processes and for backend init (which reads MATHAGENT_GPU_ICD too).
  if (flag !== undefined) env.MATHAGENT_GPU_ICD = flag;
  icdResult = { mode: mode.kind === 'file' ? mode.path : mode.kind, ...applyGpuIcd(mode, { env }) };
  return icdResult;
}

export function register(program: Command): void {
  program.option('--gpu-icd <mode>', 'WebGPU on NVIDIA: auto (use an EGL Vulkan driver manifest, for headless hosts) | off | <manifest.json>; also MATHAGENT_GPU_ICD');
  program.hook('preAction', () => {
    const flag = (program.opts() as { gpuIcd?: string }).gpuIcd;
    if (flag !== undefined || process.env.MATHAGENT_GPU_ICD) applyProgramGpuIcd(flag);
  });
  program
    .command('doctor')
    .description('check what this host can run (GPU/WebGPU, tfjs-node, wasm, store, datasets, disk) and print the fix for each problem')
    .option('--json', 'print the report as JSON')
    .action(async (o: { json?: boolean }) => {
      const icd = icdResult ?? applyProgramGpuIcd(undefined);
      const report = await collectDoctorReport(hostDeps(), icd);
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorReport(report));
      if (!report.ok) process.exitCode = 1;
    });
}
