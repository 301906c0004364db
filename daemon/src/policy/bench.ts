/**
 * Throughput of the remote policy against a pool of `mathagent serve` processes (one process per endpoint, so
 * endpoints can use different cores): requests/s and generated tokens/s with 1, 2 and 4 endpoints.
 *
 *   node --import tsx daemon/src/policy/bench.ts [--preset tiny|small] [--requests 96] [--max-tokens 32] [--total 16 | --per-endpoint 8] [--endpoints 1,2,4]
 *
 * Prints one JSON line per configuration and a table (the figures in docs/scale.md come from here). A benchmark,
 * not a test: the ratios are what matter, measured in one run on one machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { initBackend } from '../model/backends';
import { GPT, presetConfig } from '../model/gpt';
import { saveCheckpoint } from '../model/checkpoint';
import { ByteTokenizer } from '../model/tokenizer';
import { getTemplate } from '../env/templates';
import type { GenerateRequest } from '../env/policy';
import { OpenAIPolicy } from './openaiPolicy';

const root = join(__dirname, '..', '..', '..');

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

async function startServe(ck: string, tokenFile: string, maxBatch: number): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'daemon/src/cli/main.ts'), 'serve', ck, '--port', '0', '--token-file', tokenFile, '--backend', 'wasm', '--json', '--max-batch', String(maxBatch)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((res, rej) => {
    createInterface({ input: child.stdout! }).once('line', res);
    child.once('exit', (c) => rej(new Error(`serve exited (${c})`)));
  });
  return { url: (JSON.parse(line) as { url: string }).url, child };
}

async function main(): Promise<void> {
  const preset = arg('preset', 'tiny') as 'tiny' | 'small';
  const requests = Number(arg('requests', '96'));
  const maxTokens = Number(arg('max-tokens', '32'));
  // Total requests in flight across the pool (split evenly), so configurations differ only in how many
  // processes share the work; --per-endpoint instead gives every endpoint that many.
  const total = Number(arg('total', '16'));
  const perEndpoint = process.argv.includes('--per-endpoint') ? Number(arg('per-endpoint', '8')) : null;
  const counts = arg('endpoints', '1,2,4').split(',').map(Number);
  await initBackend('wasm', { log: () => undefined });
  const tpl = getTemplate('mathagent');
  const dir = mkdtempSync(join(tmpdir(), 'pool-bench-'));
  const ck = join(dir, 'ck');
  const tokenFile = join(dir, 'token');
  const m = new GPT(presetConfig(preset, 256 + tpl.specialTokens.length), 1);
  await saveCheckpoint(ck, { model: m, tokenizerSpecials: tpl.specialTokens });
  m.dispose();
  const tok = new ByteTokenizer(tpl.specialTokens);
  const reqs: GenerateRequest[] = Array.from({ length: requests }, (_, i) => {
    const promptText = tpl.renderPrompt(`Problem ${i}: a shop sells ${i + 3} pens at ${i % 7 + 2} dollars each. How much?`);
    // No stop strings: every request generates exactly maxTokens tokens (a random model rarely stops by itself).
    return { promptText, promptTokenIds: tok.encode(promptText), maxTokens, stop: [], temperature: 1, topP: 1, seed: i };
  });
  const rows: Array<Record<string, number>> = [];
  const children: ChildProcess[] = [];
  try {
    for (const n of counts) {
      const concurrency = perEndpoint ?? Math.max(1, Math.ceil(total / n));
      const servers = await Promise.all(Array.from({ length: n }, () => startServe(ck, tokenFile, concurrency)));
      children.push(...servers.map((s) => s.child));
      const policy = new OpenAIPolicy({ endpoints: servers.map((s) => ({ url: s.url, apiKeyFile: tokenFile, concurrency })), model: null, template: tpl, tokenizer: tok });
      await policy.generate(reqs.slice(0, n * concurrency)); // warm-up: backend init, first batches of each size
      const t0 = performance.now();
      const out = await policy.generate(reqs);
      const secs = (performance.now() - t0) / 1000;
      const tokens = out.reduce((a, r) => a + r.tokenIds.length, 0);
      const row = { endpoints: n, perEndpoint: concurrency, requests, seconds: +secs.toFixed(2), requestsPerSec: +(requests / secs).toFixed(2), tokensPerSec: +(tokens / secs).toFixed(1), peakInFlight: Math.max(...policy.pool.stats().endpoints.map((e) => e.peakInFlight)) };
      rows.push(row);
      process.stdout.write(`${JSON.stringify({ preset, maxTokens, cores: availableParallelism(), ...row })}\n`);
      policy.dispose();
      for (const s of servers) s.child.kill('SIGTERM');
      await Promise.all(servers.map((s) => new Promise((r) => (s.child.exitCode !== null ? r(null) : s.child.once('exit', r)))));
    }
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  const base = rows[0]!;
  process.stdout.write(`\n| endpoints | in flight each | req/s | tokens/s | vs 1 |\n|---|---|---|---|---|\n${rows.map((r) => `| ${r.endpoints} | ${r.perEndpoint} | ${r.requestsPerSec} | ${r.tokensPerSec} | ${(r.tokensPerSec! / base.tokensPerSec!).toFixed(2)}x |`).join('\n')}\n`);
}

main().catch((e: unknown) => { process.stderr.write(`bench: ${e instanceof Error ? e.stack : String(e)}\n`); process.exitCode = 1; });
