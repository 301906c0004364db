import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyProgramGpuIcd, checkNode, collectDoctorReport, formatDoctorReport, hostDeps, type DoctorDeps } from '../../daemon/src/cli/doctor';
import type { WebgpuProbeResult } from '../../daemon/src/model/webgpu';

const EGL = '/usr/local/nvidia/lib64/libEGL_nvidia.so.0';
const H100 = { vendor: 'nvidia', architecture: '', device: 'nvidia-h100-80gb-hbm3', description: 'NVIDIA: 580.159.04 580.159.4.0', isFallbackAdapter: false };
const GLX_FAIL: WebgpuProbeResult = {
  ok: false, stderr: "Warning: Could not get 'vkCreateInstance'", ms: 5,
  diagnosis: { problem: 'icd-vkCreateInstance', reason: "the NVIDIA Vulkan driver manifest fails on this headless host (\"Could not get 'vkCreateInstance'\")", fix: '--gpu-icd auto' },
};
const OFF = { mode: 'off', applied: false, detail: 'gpu-icd off' };

/** A healthy CPU-only host; tests override what they need. */
function fakeDeps(over: Partial<DoctorDeps> = {}): DoctorDeps & { probes: NodeJS.ProcessEnv[]; scratch: string[] } {
  const probes: NodeJS.ProcessEnv[] = [];
  const scratch: string[] = [];
  return {
    probes, scratch,
    nodeVersion: 'v20.20.2', execPath: '/opt/node', platform: 'linux-x64', env: {},
    webgpuPackage: () => ({ dawnPath: __filename }), // any existing file stands in for dawn.node
    findVulkanLoader: () => '/lib/x86_64-linux-gnu/libvulkan.so.1',
    findNvidiaEgl: () => null,
    stockManifests: () => [],
    nvidiaSmi: () => null,
    probe: async (env) => {
      probes.push(env);
      return { ok: false, stderr: 'Warning: vkCreateInstance: Found no drivers!', ms: 3, diagnosis: { problem: 'no-vulkan-driver', reason: 'no driver', fix: 'install the NVIDIA driver' } };
    },
    scratchDir: () => {
      const d = mkdtempSync(join(tmpdir(), 'doctor-test-'));
      scratch.push(d);
      return d;
    },
    tensorflow: () => ({ errors: ['@tensorflow/tfjs-node-gpu is not installed', '@tensorflow/tfjs-node is not installed'] }),
    wasm: async () => ({ simd: true, threads: false, ms: 12 }),
    cpu: async () => {},
    sqlite: () => '3.53.2',
    dataFiles: () => ({ dir: '/repo/data', files: [{ path: 'gsm8k/train.jsonl', bytes: 4_000_000 }, { path: 'math500/test.jsonl', bytes: 1_000_000 }] }),
    storeDir: () => '/home/u/.local/share/mathagent',
    freeBytes: () => 50 * 1024 ** 3,
    ...over,
  };
}

test('checkNode: < 20 fails, 20.0-20.18 warns (webgpu needs require(esm)), 20.19+ and 22 pass', () => {
  assert.equal(checkNode('v18.19.0').status, 'fail');
  assert.equal(checkNode('v20.10.0').status, 'warn');
  assert.match(checkNode('v20.10.0').fix!, /20\.19/);
  assert.equal(checkNode('v20.19.0').status, 'ok');
  assert.equal(checkNode('v22.3.1').status, 'ok');
  assert.equal(checkNode('garbage').status, 'fail');
});

test('a CPU-only host: webgpu unusable with the install-the-driver fix, auto picks wasm, report ok; JSON shape', async () => {
  const deps = fakeDeps();
  const r = await collectDoctorReport(deps, OFF);
  assert.equal(r.ok, true);
  assert.equal(r.autoBackend, 'wasm');
  assert.deepEqual(r.backends.map((b) => [b.name, b.usable]), [['webgpu', false], ['tensorflow', false], ['wasm', true], ['cpu', true]]);
  const webgpu = r.backends[0]!;
  assert.equal(webgpu.fix, 'install the NVIDIA driver');
  assert.equal(deps.probes.length, 1, 'no EGL library: no second probe with a manifest');
  assert.match(r.backends[1]!.fix!, /npm install @tensorflow\/tfjs-node-gpu/);
  assert.match(r.backends[2]!.detail, /SIMD on, threads off/);
  assert.deepEqual(r.checks.map((c) => [c.name, c.status]), [['better-sqlite3', 'ok'], ['datasets', 'ok'], ['disk', 'ok']]);
  // The JSON form is what `doctor --json` prints: plain data that survives a round trip.
  const j = JSON.parse(JSON.stringify(r)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(j).sort(), ['autoBackend', 'backends', 'checks', 'gpuIcd', 'node', 'ok', 'version']);
  for (const b of r.backends) {
    assert.ok(b.checks.length >= 1);
    if (!b.usable) assert.ok(b.fix, `${b.name} is unusable and must say how to fix it`);
    for (const c of b.checks) if (c.status !== 'ok') assert.ok(c.fix, `${b.name}/${c.name} needs a fix`);
  }
});

test('headless NVIDIA: the GLX failure is detected, the EGL manifest is tried in a scratch dir and the verified fix is --gpu-icd auto', async () => {
  let manifestSeen: unknown = null;
  const deps = fakeDeps({
    findNvidiaEgl: () => EGL,
    nvidiaSmi: () => 'nvidia-smi: NVIDIA H100 80GB HBM3, 580.159.04, 81559 MiB',
    stockManifests: () => [{ path: '/usr/share/vulkan/icd.d/nvidia_icd.json', libraryPath: 'libGLX_nvidia.so.0', apiVersion: '1.4.312' }],
  });
  deps.probe = async (env) => {
    deps.probes.push(env);
    if (!env.VK_DRIVER_FILES) return GLX_FAIL;
    manifestSeen = JSON.parse(readFileSync(env.VK_DRIVER_FILES, 'utf8'));
    return { ok: true, adapter: H100, stderr: '', ms: 40, driverFiles: env.VK_DRIVER_FILES };
  };
  const r = await collectDoctorReport(deps, OFF);
  const webgpu = r.backends[0]!;
  assert.equal(webgpu.usable, false, 'not usable until the user applies the fix');
  assert.match(webgpu.fix!, /--gpu-icd auto/);
  assert.match(webgpu.detail, /verified fix: the NVIDIA EGL manifest/);
  const adapter = webgpu.checks.find((c) => c.name === 'adapter')!;
  assert.match(adapter.detail, /the adapter works: nvidia-h100-80gb-hbm3 \(nvidia, NVIDIA: 580\.159\.04/);
  assert.deepEqual(manifestSeen, { file_format_version: '1.0.0', ICD: { library_path: EGL, api_version: '1.4.312' } });
  assert.equal(deps.probes.length, 2);
  assert.equal(deps.probes[0]!.VK_DRIVER_FILES, undefined);
  assert.ok(deps.scratch.length === 1 && !existsSync(deps.scratch[0]!), 'the scratch manifest folder is removed');
  assert.equal(r.autoBackend, 'wasm');
  const text = formatDoctorReport(r);
  assert.match(text, /✗ webgpu/);
  assert.match(text, /fix: run with `--gpu-icd auto`/);
  assert.match(text, /--backend auto will use: wasm/);
});

test('with --gpu-icd auto applied the adapter is found directly and webgpu is what auto picks', async () => {
  const deps = fakeDeps({ findNvidiaEgl: () => EGL, env: { VK_DRIVER_FILES: '/cfg/mathagent/vulkan/nvidia_egl_icd.json' } });
  deps.probe = async (env) => {
    deps.probes.push(env);
    return { ok: true, adapter: H100, stderr: '', ms: 40, driverFiles: env.VK_DRIVER_FILES };
  };
  const r = await collectDoctorReport(deps, { mode: 'auto', applied: true, manifest: '/cfg/mathagent/vulkan/nvidia_egl_icd.json', detail: 'gpu-icd auto: wrote ...' });
  assert.equal(r.backends[0]!.usable, true);
  assert.equal(r.autoBackend, 'webgpu');
  assert.equal(r.gpuIcd.mode, 'auto');
  assert.equal(deps.probes.length, 1);
  assert.match(r.backends[0]!.checks.find((c) => c.name === 'adapter')!.detail, /with VK_DRIVER_FILES=\/cfg\/mathagent\/vulkan\/nvidia_egl_icd\.json/);
});

test('if the EGL manifest does not help either, the original diagnosis stays and says so', async () => {
  const deps = fakeDeps({ findNvidiaEgl: () => EGL });
  deps.probe = async (env) => {
    deps.probes.push(env);
    return GLX_FAIL;
  };
  const r = await collectDoctorReport(deps, OFF);
  assert.equal(r.backends[0]!.usable, false);
  assert.match(r.backends[0]!.detail, /the EGL manifest did not help either/);
  assert.equal(r.backends[0]!.fix, '--gpu-icd auto');
});

test('missing webgpu package, broken better-sqlite3, no backend at all, missing datasets and a full disk', async () => {
  const deps = fakeDeps({
    webgpuPackage: () => ({ error: 'package webgpu is not installed' }),
    wasm: async () => { throw new Error('wasm binary not found'); },
    cpu: async () => { throw new Error("Backend name 'cpu' not found in registry"); },
    sqlite: () => { throw new Error('The module was compiled against a different Node.js version using NODE_MODULE_VERSION 127'); },
    dataFiles: () => ({ dir: '/d', files: [{ path: 'gsm8k/train.jsonl', bytes: null }, { path: 'math/test.jsonl', bytes: 10 }] }),
    freeBytes: () => 50 * 1024 ** 2,
  });
  const r = await collectDoctorReport(deps, OFF);
  assert.equal(r.ok, false);
  assert.equal(r.autoBackend, null);
  assert.match(r.backends[0]!.fix!, /npm install webgpu/);
  assert.equal(deps.probes.length, 0, 'no probe without Dawn');
  assert.match(r.backends[3]!.fix!, /side-effect import/);
  const byName = Object.fromEntries(r.checks.map((c) => [c.name, c]));
  assert.equal(byName['better-sqlite3']!.status, 'fail');
  assert.match(byName['better-sqlite3']!.fix!, /npm rebuild better-sqlite3/);
  assert.equal(byName.datasets!.status, 'warn');
  assert.match(byName.datasets!.detail, /1 of 2 dataset files missing under \/d: gsm8k\/train\.jsonl/);
  assert.equal(byName.disk!.status, 'fail');
  assert.match(byName.disk!.detail, /^0\.0 GiB free/);
  assert.match(formatDoctorReport(r), /no backend works: see the fixes above\ndoctor: problems found \(exit code 1\)/);
});

test('applyProgramGpuIcd: the flag wins over the environment and is recorded for backend init; bad values throw', () => {
  const env: NodeJS.ProcessEnv = { MATHAGENT_GPU_ICD: 'auto' };
  const r = applyProgramGpuIcd('off', env);
  assert.equal(r.mode, 'off');
  assert.equal(env.MATHAGENT_GPU_ICD, 'off');
  assert.equal(env.VK_DRIVER_FILES, undefined);
  assert.throws(() => applyProgramGpuIcd('maybe', {}), /expected 'auto', 'off'/);
});

test('hostDeps on this machine: free space is measured above a store folder that does not exist yet', () => {
  const free = hostDeps().freeBytes(join(tmpdir(), 'no-such-dir-doctor', 'deeper'));
  assert.ok(Number.isFinite(free) && free > 0);
});
