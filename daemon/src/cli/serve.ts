/**
 * `mathagent serve <checkpoint>`: serve a local checkpoint over the OpenAI-compatible completions API
 * (daemon/src/openai), behind the daemon's bearer token. With `--json` the first stdout line is
 * `{"url": "http://127.0.0.1:PORT", "tokenFile": "...", "model": "..."}` so scripts and the external-trainer hook
 * can start it on port 0 and read where it listens.
 */
import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { BackendName } from '@mathagent/shared';
import { initBackend } from '../model/backends';
import { loadCheckpoint } from '../model/checkpoint';
import { LocalPolicy } from '../model/localPolicy';
import { defaultTokenFile } from '../server/token';
import { startOpenAIServer } from '../openai';

export function register(program: Command): void {
  program
    .command('serve <checkpoint>')
    .description('serve a checkpoint as an OpenAI-compatible API (/v1/models, /v1/completions) on 127.0.0.1 with the bearer token')
    .option('--host <host>', 'interface to bind (anything but 127.0.0.1 exposes the model to the network)', '127.0.0.1')
    .option('--port <port>', 'port (0 = any free port)', (v) => Number.parseInt(v, 10), 8000)
    .option('--token-file <path>', `token file (default ${defaultTokenFile()})`)
    .option('--model-name <name>', 'model id clients send (default: the checkpoint folder name)')
    .option('--backend <name>', 'auto | webgpu | tensorflow | wasm | cpu', 'auto')
    .option('--max-batch <n>', 'most completions decoded together', (v) => Number.parseInt(v, 10), 64)
    .option('--batch-window-ms <ms>', 'how long a request waits for others to share its batch', (v) => Number.parseFloat(v), 5)
    .option('--max-body-bytes <n>', 'largest request body', (v) => Number.parseInt(v, 10), 1 << 20)
    .option('--json', 'print {"url","tokenFile","model"} as the first stdout line')
    .action(async (checkpoint: string, o: { host: string; port: number; tokenFile?: string; modelName?: string; backend: string; maxBatch: number; batchWindowMs: number; maxBodyBytes: number; json?: boolean }) => {
      if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error(`--port must be 0..65535, got ${o.port}`);
      if (!Number.isInteger(o.maxBatch) || o.maxBatch < 1) throw new Error(`--max-batch must be an integer >= 1, got ${o.maxBatch}`);
      if (!(o.batchWindowMs >= 0)) throw new Error(`--batch-window-ms must be >= 0, got ${o.batchWindowMs}`);
      const log = (line: string) => process.stderr.write(`mathagent serve: ${line}\n`);
      await initBackend(BackendName.parse(o.backend), { log });
      const ck = await loadCheckpoint(checkpoint);
      if (ck.optimizerState) for (const t of Object.values(ck.optimizerState)) t.dispose();
      const model = o.modelName ?? basename(resolve(checkpoint));
      const policy = new LocalPolicy(ck.model, ck.tokenizer, { name: model, maxBatch: o.maxBatch });
      const server = await startOpenAIServer({
        policy, model, contextLength: ck.model.config.blockSize, host: o.host, port: o.port, tokenFile: o.tokenFile ?? defaultTokenFile(),
        maxBatch: o.maxBatch, batchWindowMs: o.batchWindowMs, maxBodyBytes: o.maxBodyBytes, log,
      });
      if (o.json) process.stdout.write(JSON.stringify({ url: server.url, tokenFile: server.tokenFile, model }) + '\n');
      let closing = false;
      const shutdown = async (signal: string) => {
        if (closing) process.exit(130);
        closing = true;
        log(`${signal}: closing`);
        await server.close();
        ck.model.dispose();
        process.exit(0);
      };
      process.on('SIGINT', () => void shutdown('SIGINT'));
      process.on('SIGTERM', () => void shutdown('SIGTERM'));
    });
}
