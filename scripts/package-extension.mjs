#!/usr/bin/env node
// Builds the extension bundles (extension host + webview; the same esbuild options as scripts/build.mjs) and
// packages extension/ as a .vsix with @vscode/vsce. Everything is bundled, so `--no-dependencies`.
// Usage: node scripts/package-extension.mjs [--out path.vsix]   Prints the .vsix path as its last line.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';

const root = new URL('..', import.meta.url).pathname;
const ext = join(root, 'extension');
const outArg = process.argv.indexOf('--out');
const pkg = JSON.parse((await import('node:fs')).readFileSync(join(ext, 'package.json'), 'utf8'));
const out = resolve(outArg > 0 ? process.argv[outArg + 1] : join(root, 'extension', 'dist-vsix', `${pkg.name}-${pkg.version}.vsix`));

await Promise.all([
  build({ bundle: true, minify: true, platform: 'node', target: 'node20', format: 'cjs', sourcemap: true, logLevel: 'warning',
    external: ['vscode', 'bufferutil', 'utf-8-validate'], entryPoints: [join(ext, 'src/extension.ts')], outfile: join(ext, 'dist/extension.js') }),
  build({ bundle: true, minify: true, platform: 'browser', target: 'es2022', format: 'iife', sourcemap: true, logLevel: 'warning',
    entryPoints: [join(ext, 'webview/main.ts')], outfile: join(ext, 'dist/webview.js') }),
]);

mkdirSync(dirname(out), { recursive: true });
const vsce = join(dirname(createRequire(import.meta.url).resolve('@vscode/vsce/package.json')), 'vsce');
const r = spawnSync(process.execPath, [vsce, 'package', '--no-dependencies', '--allow-missing-repository', '--out', out], {
  cwd: ext, stdio: ['ignore', 'inherit', 'inherit'],
});
if (r.status !== 0) { console.error(`vsce package failed (exit ${r.status})`); process.exit(r.status ?? 1); }
console.log(out);
