/**
 * `--backend auto` in a child process (the backend is process-wide): it ends on a CPU backend here and says why it
 * passed over WebGPU; without a Vulkan loader it does so without loading Dawn (no "Couldn't load Vulkan" noise).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { findVulkanLoader } from '../../daemon/src/model/gpuIcd';

test('auto picks a CPU backend here and names why WebGPU was passed over', () => {
  const script = "require('./daemon/src/model/backends.ts').initBackend('auto', { log: () => {} }).then((c) => console.log(JSON.stringify(c)))";
  const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const choice = JSON.parse(out.trim().split('\n').at(-1)!) as { name: string; reasons: Record<string, string> };
  assert.ok(choice.name === 'wasm' || choice.name === 'webgpu', choice.name);
  if (choice.name !== 'webgpu') assert.ok(choice.reasons.webgpu && choice.reasons.webgpu.length > 10, JSON.stringify(choice.reasons));
  if (process.platform === 'linux' && findVulkanLoader() === null) assert.match(choice.reasons.webgpu!, /no Vulkan loader \(libvulkan\.so\.1\)/);
});
