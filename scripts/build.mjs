#!/usr/bin/env node
// Bundles the daemon CLI (and its sandbox worker) and the VS Code extension with esbuild.
// Native / optional packages stay external and are resolved from node_modules at run time.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
// tfjs (wasm backend included) is bundled so there is one tfjs-core instance; its .wasm files are copied beside the bundle.
const external = ['better-sqlite3', 'webgpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'vscode', 'bufferutil', 'utf-8-validate'];
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', sourcemap: true, logLevel: 'warning', external };

const jobs = [];
const daemonEntries = [
  ['daemon/src/cli/main.ts', 'daemon/dist/cli.cjs'],
  ['daemon/src/env/sandboxWorker.ts', 'daemon/dist/sandboxWorker.cjs'],
];
for (const [src, out] of daemonEntries) {
  // mainFields: prefer ESM builds (jsonc-parser's UMD build has dynamic requires esbuild cannot follow).
  if (existsSync(join(root, src))) jobs.push(build({ ...common, mainFields: ['module', 'main'], entryPoints: [join(root, src)], outfile: join(root, out) }));
}
const wasmDir = join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
mkdirSync(join(root, 'daemon/dist'), { recursive: true });
for (const f of readdirSync(wasmDir).filter((f) => f.endsWith('.wasm'))) copyFileSync(join(wasmDir, f), join(root, 'daemon/dist', f));
if (existsSync(join(root, 'extension/src/extension.ts'))) {
  jobs.push(build({ ...common, entryPoints: [join(root, 'extension/src/extension.ts')], outfile: join(root, 'extension/dist/extension.js') }));
}
if (existsSync(join(root, 'extension/webview/main.ts'))) {
  jobs.push(build({ bundle: true, platform: 'browser', target: 'es2022', format: 'iife', sourcemap: true, logLevel: 'warning',
    entryPoints: [join(root, 'extension/webview/main.ts')], outfile: join(root, 'extension/dist/webview.js') }));
}
await Promise.all(jobs);
console.log(`build: ${jobs.length} bundle(s)`);
