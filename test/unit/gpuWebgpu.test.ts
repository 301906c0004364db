import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-cpu';
import { diagnoseDawnOutput, probeWebgpuAdapter, registerDeviceReductionGradients } from '../../daemon/src/model/webgpu';

// What Dawn 0.6 and the Vulkan loader printed on real hosts (this CPU box without libvulkan / without a driver,
// and the H100 with the stock GLX manifest).
const NO_LOADER = "Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file: No such file or directory\n    at operator() (/home/runner/work/node-webgpu/node-webgpu/third_party/dawn/src/dawn/native/vulkan/BackendVk.cpp:368)";
const NO_DRIVER = 'Warning: vkCreateInstance: Found no drivers!\nWarning: vkCreateInstance failed with VK_ERROR_INCOMPATIBLE_DRIVER\n    at CheckVkSuccessImpl (VulkanError.cpp:106)';
const GLX_ICD = "Warning: loader_scanned_icd_add: Could not get 'vkCreateInstance' via 'vk_icdGetInstanceProcAddr' for ICD libGLX_nvidia.so.0\nWarning: vkCreateInstance: Found no drivers!";

test('diagnoseDawnOutput: a missing Vulkan loader → apt-get install libvulkan1', () => {
  const d = diagnoseDawnOutput(NO_LOADER);
  assert.equal(d.problem, 'no-vulkan-loader');
  assert.match(d.fix, /apt-get install libvulkan1/);
  assert.match(d.reason, /libvulkan\.so\.1 is not installed/);
});

test("diagnoseDawnOutput: the headless GLX ICD failure wins over 'Found no drivers' → --gpu-icd auto / VK_DRIVER_FILES", () => {
  const d = diagnoseDawnOutput(GLX_ICD, { eglLibrary: '/usr/local/nvidia/lib64/libEGL_nvidia.so.0' });
  assert.equal(d.problem, 'icd-vkCreateInstance');
  assert.match(d.reason, /Could not get 'vkCreateInstance'/);
  assert.match(d.fix, /--gpu-icd auto/);
  assert.match(d.fix, /VK_DRIVER_FILES=/);
});

test('diagnoseDawnOutput: no driver manifest, with and without the NVIDIA EGL library on the host', () => {
  const withEgl = diagnoseDawnOutput(NO_DRIVER, { eglLibrary: '/lib/libEGL_nvidia.so.0' });
  assert.equal(withEgl.problem, 'no-vulkan-driver');
  assert.match(withEgl.reason, /NVIDIA driver is installed \(\/lib\/libEGL_nvidia\.so\.0\)/);
  assert.match(withEgl.fix, /--gpu-icd auto.*library_path is \/lib\/libEGL_nvidia\.so\.0/s);
  const without = diagnoseDawnOutput(NO_DRIVER, { eglLibrary: null });
  assert.equal(without.problem, 'no-vulkan-driver');
  assert.match(without.fix, /install the NVIDIA driver/);
  assert.match(without.fix, /--backend wasm/);
});

test('diagnoseDawnOutput: unknown output is quoted (last lines) and silence is said so', () => {
  const d = diagnoseDawnOutput('line one\nsomething odd happened\n\n  final words  \n');
  assert.equal(d.problem, 'no-adapter');
  assert.match(d.reason, /something odd happened \| final words$/);
  assert.match(diagnoseDawnOutput('').reason, /printed nothing/);
});

/** A stand-in for dawn.node: a CommonJS module with the same create() surface, run by the probe's child. */
function fakeDawn(dir: string, name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, `exports.create = () => ({ requestAdapter: async () => { ${body} } });\n`);
  return file;
}

test('probeWebgpuAdapter (child process, fake Dawn): adapter info comes back; a null adapter gets a diagnosis from stderr', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gpuprobe-test-'));
  try {
    const ok = fakeDawn(dir, 'ok.js', "return { info: { vendor: 'nvidia', architecture: 'hopper', device: 'H100', description: 'NVIDIA H100' }, limits: { maxBufferSize: 4294967296, maxStorageBufferBindingSize: 2147483648 } };");
    const r1 = await probeWebgpuAdapter({ dawnPath: ok, env: { ...process.env, VK_DRIVER_FILES: '/x.json' } });
    assert.equal(r1.ok, true);
    assert.deepEqual(r1.adapter, { vendor: 'nvidia', architecture: 'hopper', device: 'H100', description: 'NVIDIA H100', isFallbackAdapter: false, maxBufferSize: 4294967296, maxStorageBufferBindingSize: 2147483648 });
    assert.equal(r1.driverFiles, '/x.json');
    assert.equal(r1.diagnosis, undefined);

    const none = fakeDawn(dir, 'none.js', `process.stderr.write(${JSON.stringify(GLX_ICD)}); return null;`);
    const r2 = await probeWebgpuAdapter({ dawnPath: none, eglLibrary: '/lib/libEGL_nvidia.so.0' });
    assert.equal(r2.ok, false);
    assert.equal(r2.diagnosis?.problem, 'icd-vkCreateInstance');
    assert.match(r2.stderr, /Could not get 'vkCreateInstance'/);

    const soft = fakeDawn(dir, 'soft.js', "return { info: { vendor: 'google', device: 'SwiftShader Device (Subzero)', description: 'SwiftShader' } };");
    const r3 = await probeWebgpuAdapter({ dawnPath: soft });
    assert.equal(r3.ok, false);
    assert.equal(r3.diagnosis?.problem, 'fallback-adapter');
    assert.match(r3.diagnosis!.fix, /--backend wasm/);

    const throws = fakeDawn(dir, 'throws.js', "throw new Error('device lost');");
    const r4 = await probeWebgpuAdapter({ dawnPath: throws });
    assert.equal(r4.ok, false);
    assert.equal(r4.diagnosis?.problem, 'no-adapter');
    assert.match(r4.diagnosis!.reason, /device lost/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('probeWebgpuAdapter: a missing dawn.node and a hung driver are reported, never thrown', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gpuprobe-test-'));
  try {
    const r1 = await probeWebgpuAdapter({ dawnPath: join(dir, 'linux-x64', 'dawn.node') });
    assert.equal(r1.ok, false);
    assert.equal(r1.diagnosis?.problem, 'dawn-load-failed');
    const hang = fakeDawn(dir, 'hang.js', 'return new Promise(() => { setInterval(() => {}, 1000); });');
    const r2 = await probeWebgpuAdapter({ dawnPath: hang, timeoutMs: 1500 });
    assert.equal(r2.ok, false);
    assert.equal(r2.diagnosis?.problem, 'probe-failed');
    assert.match(r2.diagnosis!.reason, /did not answer within 1500 ms/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('device-side Sum/Mean gradients equal the hand-computed ones (cpu backend), every axis form', async () => {
  await tf.setBackend('cpu');
  registerDeviceReductionGradients();
  const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
  const w = tf.tensor2d([[1, -1, 2], [0.5, 3, -2]]);
  const grad = (f: (t: tf.Tensor) => tf.Tensor) => tf.grad((t: tf.Tensor) => f(t))(x).arraySync();
  // d/dx sum(x ⊙ w) = w; mean over all 6 elements: w / 6.
  assert.deepEqual(grad((t) => tf.sum(tf.mul(t, w))), [[1, -1, 2], [0.5, 3, -2]]);
  const m = grad((t) => tf.mean(tf.mul(t, w))) as number[][];
  m.flat().forEach((v, i) => assert.ok(Math.abs(v - [1, -1, 2, 0.5, 3, -2][i]! / 6) < 1e-7));
  // sum over axis 1 then weighted by [2, 3] per row: row r gets c_r everywhere.
  const c = tf.tensor1d([2, 3]);
  assert.deepEqual(grad((t) => tf.sum(tf.mul(tf.sum(t, 1), c))), [[2, 2, 2], [3, 3, 3]]);
  // mean over axis 0 with keepDims, weighted by [1, 2, 4]: each column j gets c_j / 2.
  const c2 = tf.tensor2d([[1, 2, 4]]);
  assert.deepEqual(grad((t) => tf.sum(tf.mul(tf.mean(t, 0, true), c2))), [[0.5, 1, 2], [0.5, 1, 2]]);
  // mean over negative axis -1 of x²: d = 2x / 3.
  const sq = grad((t) => tf.sum(tf.mean(tf.square(t), -1))) as number[][];
  sq.flat().forEach((v, i) => assert.ok(Math.abs(v - (2 * (i + 1)) / 3) < 1e-6));
});
