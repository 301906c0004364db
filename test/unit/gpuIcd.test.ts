import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  applyGpuIcd, applyGpuIcdFromEnv, eglIcdManifest, EGL_ICD_FILE_NAME, findLibrary, icdManifestDir, parseGpuIcdMode,
  parseIcdManifest, parseLdconfig, stockNvidiaManifests, writeEglIcdManifest,
} from '../../daemon/src/model/gpuIcd';

const LDCONFIG = `1234 libs found in cache \`/etc/ld.so.cache'
\tlibGLX_nvidia.so.0 (libc6,x86-64) => /usr/local/nvidia/lib64/libGLX_nvidia.so.0
\tlibEGL_nvidia.so.0 (libc6) => /usr/lib32/libEGL_nvidia.so.0
\tlibEGL_nvidia.so.0 (libc6,x86-64) => /usr/local/nvidia/lib64/libEGL_nvidia.so.0
\tlibEGL_nvidia.so.0 (libc6,x86-64) => /lib/libEGL_nvidia.so.0
\tlibEGL_nvidia.so (libc6,x86-64) => /usr/local/nvidia/lib64/libEGL_nvidia.so
\tlibvulkan.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libvulkan.so.1
`;

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'gpuicd-test-'));
}

test('parseGpuIcdMode: off by default, auto, a manifest path, and a clear error for anything else', () => {
  assert.deepEqual(parseGpuIcdMode(undefined), { kind: 'off' });
  assert.deepEqual(parseGpuIcdMode(''), { kind: 'off' });
  assert.deepEqual(parseGpuIcdMode(' off '), { kind: 'off' });
  assert.deepEqual(parseGpuIcdMode('auto'), { kind: 'auto' });
  assert.deepEqual(parseGpuIcdMode('my/icd.json'), { kind: 'file', path: resolve('my/icd.json') });
  assert.throws(() => parseGpuIcdMode('egl'), /expected 'auto', 'off' or a path to a Vulkan ICD manifest \(\.json\), got 'egl'/);
  assert.throws(() => parseGpuIcdMode('AUTO'), /got 'AUTO'/);
});

test('parseLdconfig: exact library name only, 64-bit entries before 32-bit ones, in cache order', () => {
  assert.deepEqual(parseLdconfig(LDCONFIG, 'libEGL_nvidia.so.0'), [
    '/usr/local/nvidia/lib64/libEGL_nvidia.so.0', '/lib/libEGL_nvidia.so.0', '/usr/lib32/libEGL_nvidia.so.0',
  ]);
  assert.deepEqual(parseLdconfig(LDCONFIG, 'libEGL_nvidia.so'), ['/usr/local/nvidia/lib64/libEGL_nvidia.so']);
  assert.deepEqual(parseLdconfig(LDCONFIG, 'libnothing.so.1'), []);
  assert.deepEqual(parseLdconfig('', 'libvulkan.so.1'), []);
  assert.deepEqual(parseLdconfig('garbage => line\n(x) => y', 'libvulkan.so.1'), []);
});

test('findLibrary: LD_LIBRARY_PATH-style folders first, then the ldconfig cache (existing files only), then default folders', () => {
  const files = new Set(['/opt/vk/libvulkan.so.1', '/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib64/libEGL_nvidia.so.0', '/lib/libEGL_nvidia.so.0']);
  const exists = (p: string) => files.has(p);
  assert.equal(findLibrary('libvulkan.so.1', { dirs: ['', '/nope', '/opt/vk'], ldconfigOutput: LDCONFIG, exists }), '/opt/vk/libvulkan.so.1');
  assert.equal(findLibrary('libvulkan.so.1', { dirs: [], ldconfigOutput: LDCONFIG, exists }), '/lib/x86_64-linux-gnu/libvulkan.so.1');
  // The cache's first EGL entry does not exist on disk: the next one that does is taken.
  assert.equal(findLibrary('libEGL_nvidia.so.0', { dirs: [], ldconfigOutput: LDCONFIG, exists }), '/lib/libEGL_nvidia.so.0');
  assert.equal(findLibrary('libEGL_nvidia.so.0', { dirs: [], ldconfigOutput: '', exists }), '/usr/lib64/libEGL_nvidia.so.0');
  assert.equal(findLibrary('libEGL_nvidia.so.0', { dirs: [], ldconfigOutput: '', exists: () => false }), null);
});

test('eglIcdManifest: the loader format with an absolute library path; bad input is refused', () => {
  const text = eglIcdManifest('/usr/local/nvidia/lib64/libEGL_nvidia.so.0', '1.4.312');
  assert.deepEqual(JSON.parse(text), { file_format_version: '1.0.0', ICD: { library_path: '/usr/local/nvidia/lib64/libEGL_nvidia.so.0', api_version: '1.4.312' } });
  assert.equal(JSON.parse(eglIcdManifest('/x/libEGL_nvidia.so.0')).ICD.api_version, '1.3.0');
  assert.throws(() => eglIcdManifest('libEGL_nvidia.so.0'), /must be absolute/);
  assert.throws(() => eglIcdManifest('/x/lib.so', '1.3'), /api_version must look like 1\.3\.0/);
});

test('parseIcdManifest reads library_path/api_version and rejects what is not a manifest', () => {
  assert.deepEqual(parseIcdManifest('{"file_format_version":"1.0.1","ICD":{"library_path":"libGLX_nvidia.so.0","api_version":"1.4.312"}}'), { libraryPath: 'libGLX_nvidia.so.0', apiVersion: '1.4.312' });
  assert.deepEqual(parseIcdManifest('{"ICD":{"library_path":"a.so"}}'), { libraryPath: 'a.so', apiVersion: null });
  assert.equal(parseIcdManifest('{"ICD":{"library_path":""}}'), null);
  assert.equal(parseIcdManifest('{"layer":{}}'), null);
  assert.equal(parseIcdManifest('not json'), null);
  assert.equal(parseIcdManifest('null'), null);
});

test('stockNvidiaManifests finds nvidia_icd.json in the search folders and skips broken ones', () => {
  const fake: Record<string, string> = {
    '/usr/share/vulkan/icd.d/nvidia_icd.json': '{"ICD":{"library_path":"libGLX_nvidia.so.0","api_version":"1.4.312"}}',
    '/etc/vulkan/icd.d/nvidia_icd.json': '{broken',
  };
  const got = stockNvidiaManifests({ dirs: ['/etc/vulkan/icd.d', '/usr/share/vulkan/icd.d'], read: (p) => fake[p] ?? null });
  assert.deepEqual(got, [{ path: '/usr/share/vulkan/icd.d/nvidia_icd.json', libraryPath: 'libGLX_nvidia.so.0', apiVersion: '1.4.312' }]);
});

test('writeEglIcdManifest writes the file, leaves an identical one alone, and replaces a different one', () => {
  const dir = join(tmp(), 'config', 'vulkan');
  try {
    const file = writeEglIcdManifest(dir, '/a/libEGL_nvidia.so.0', '1.3.0');
    assert.equal(file, join(dir, EGL_ICD_FILE_NAME));
    assert.equal(readFileSync(file, 'utf8'), eglIcdManifest('/a/libEGL_nvidia.so.0', '1.3.0'));
    const ino = statSync(file).ino;
    writeEglIcdManifest(dir, '/a/libEGL_nvidia.so.0', '1.3.0');
    assert.equal(statSync(file).ino, ino, 'an identical manifest is not rewritten');
    writeEglIcdManifest(dir, '/b/libEGL_nvidia.so.0', '1.3.0');
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).ICD.library_path, '/b/libEGL_nvidia.so.0');
  } finally {
    rmSync(resolve(dir, '../..'), { recursive: true, force: true });
  }
});

test('applyGpuIcd auto: writes the manifest into the given dir and points both loader variables at it', () => {
  const dir = tmp();
  try {
    const env: NodeJS.ProcessEnv = {};
    const r = applyGpuIcd({ kind: 'auto' }, { env, dir, eglLibrary: '/usr/local/nvidia/lib64/libEGL_nvidia.so.0', apiVersion: '1.4.312' });
    assert.equal(r.applied, true);
    assert.equal(r.manifest, join(dir, EGL_ICD_FILE_NAME));
    assert.equal(env.VK_DRIVER_FILES, r.manifest);
    assert.equal(env.VK_ICD_FILENAMES, r.manifest);
    assert.deepEqual(parseIcdManifest(readFileSync(r.manifest!, 'utf8')), { libraryPath: '/usr/local/nvidia/lib64/libEGL_nvidia.so.0', apiVersion: '1.4.312' });
    assert.match(r.detail, /wrote .*nvidia_egl_icd\.json \(library \/usr\/local\/nvidia\/lib64\/libEGL_nvidia\.so\.0, api 1\.4\.312\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('applyGpuIcd auto without an NVIDIA driver, off, and a user-set VK_DRIVER_FILES change nothing', () => {
  const dir = tmp();
  try {
    const env: NodeJS.ProcessEnv = {};
    const none = applyGpuIcd({ kind: 'auto' }, { env, dir, eglLibrary: null });
    assert.equal(none.applied, false);
    assert.match(none.detail, /libEGL_nvidia\.so\.0 not found/);
    assert.deepEqual(env, {});
    assert.equal(applyGpuIcd({ kind: 'off' }, { env, dir, eglLibrary: '/x/libEGL_nvidia.so.0' }).applied, false);
    assert.deepEqual(env, {});
    const user: NodeJS.ProcessEnv = { VK_DRIVER_FILES: '/mine.json' };
    const kept = applyGpuIcd({ kind: 'auto' }, { env: user, dir, eglLibrary: '/x/libEGL_nvidia.so.0' });
    assert.equal(kept.applied, false);
    assert.equal(user.VK_DRIVER_FILES, '/mine.json');
    assert.match(kept.detail, /kept VK_DRIVER_FILES\/VK_ICD_FILENAMES=\/mine\.json/);
    const forced = applyGpuIcd({ kind: 'auto' }, { env: user, dir, eglLibrary: '/x/libEGL_nvidia.so.0', force: true });
    assert.equal(forced.applied, true);
    assert.equal(user.VK_DRIVER_FILES, join(dir, EGL_ICD_FILE_NAME));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('applyGpuIcd with a manifest file: selected when valid, a clear error when missing or not a manifest', () => {
  const dir = tmp();
  try {
    const good = join(dir, 'good.json');
    writeFileSync(good, eglIcdManifest('/x/libEGL_nvidia.so.0'));
    const env: NodeJS.ProcessEnv = {};
    assert.equal(applyGpuIcd({ kind: 'file', path: good }, { env }).applied, true);
    assert.equal(env.VK_DRIVER_FILES, good);
    assert.throws(() => applyGpuIcd({ kind: 'file', path: join(dir, 'missing.json') }, { env: {} }), /cannot read the manifest .*pass 'auto' or an existing ICD \.json/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"hello": 1}');
    assert.throws(() => applyGpuIcd({ kind: 'file', path: bad }, { env: {} }), /not a Vulkan ICD manifest/);
    assert.throws(() => applyGpuIcd({ kind: 'file', path: dir }, { env: {} }), /cannot read the manifest/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('applyGpuIcdFromEnv reads MATHAGENT_GPU_ICD; the manifest dir follows XDG_CONFIG_HOME', () => {
  assert.equal(applyGpuIcdFromEnv({}).applied, false);
  assert.throws(() => applyGpuIcdFromEnv({ MATHAGENT_GPU_ICD: 'yes' }), /MATHAGENT_GPU_ICD: expected 'auto'/);
  assert.equal(icdManifestDir({ XDG_CONFIG_HOME: '/cfg' }), join('/cfg', 'mathagent', 'vulkan'));
});
