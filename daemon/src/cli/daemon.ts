/**
 * `mathagent daemon`: the WebSocket JSON-RPC server the VS Code extension talks to. Binds 127.0.0.1 by default,
 * requires the bearer token from the token file (mode 0600), resumes runs a killed daemon left unfinished.
 * With `--json` the first stdout line is `{"url": "ws://127.0.0.1:PORT", "tokenFile": "..."}`.
 */
import type { Command } from 'commander';
import { BackendName, PROTOCOL_VERSION } from '@mathagent/shared';
import { deleteRuns } from '../pipeline/deleteRuns';
import { startServer, benchEvents } from '../server';
import { BENCHMARKS, registerBenchmark } from './bench';
import { defaultTokenFile } from '../server/token';
import { openContext } from './context';
import { presetNames } from '../pipeline/config';
import { ByteTokenizer } from '../model/tokenizer';
import { getTemplate } from '../env/templates';
import { VERSION } from '../version';
import { register as registerLsp, localHostProbe } from '../lsp';
import { existsSync } from 'node:fs';
import { datasetPath } from '../data/datasets';

export function register(program: Command): void {
  if (!BENCHMARKS.some((b) => b.name === 'ws')) {
    registerBenchmark({
      name: 'ws',
      description: 'WebSocket event throughput and daemon-to-client latency over a real socket (10k events)',
      run: async (opts) => {
        const r = await benchEvents({ n: 10_000 });
        opts.log(`ws: ${JSON.stringify(r)}`);
        return r as unknown as Record<string, unknown>;
      },
    });
  }
  program
    .command('daemon')
    .description('serve the JSON-RPC API over WebSocket for the VS Code extension (127.0.0.1, bearer token)')
    .option('--host <host>', 'interface to bind (anything but 127.0.0.1 exposes the daemon to the network)', '127.0.0.1')
    .option('--port <port>', 'port (0 = any free port)', (v) => Number.parseInt(v, 10), 8765)
    .option('--db <path>', 'SQLite database (default: under the user data dir, or $MATHAGENT_DB)')
    .option('--token-file <path>', `token file (default ${defaultTokenFile()})`)
    .option('--backend <name>', 'auto | webgpu | tensorflow | wasm | cpu', 'auto')
    .option('--no-resume', 'do not resume runs a previous daemon left unfinished')
    .option('--json', 'print {"url","tokenFile"} as the first stdout line')
    .action(async (o: { host: string; port: number; db?: string; tokenFile?: string; backend: string; resume: boolean; json?: boolean }) => {
      if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error(`--port must be 0..65535, got ${o.port}`);
      const backend = BackendName.parse(o.backend);
      const log = (line: string) => process.stderr.write(`mathagent daemon: ${line}\n`);
      const ctx = openContext({ db: o.db, backend, log });
      const tokenizer = new ByteTokenizer(getTemplate('mathagent').specialTokens);
      let backendName = `${backend} (chosen on the first run)`;
      const server = await startServer({
        host: o.host, port: o.port, tokenFile: o.tokenFile, store: ctx.store, bus: ctx.bus,
        controller: {
          start: (p) => ctx.manager.start(p),
          stop: (id) => ctx.manager.stop(id),
          resume: (id) => ctx.manager.resume(id),
          delete: (id, force) => {
            for (const line of deleteRuns(ctx.store, ctx.runsDir, [id], { force, activeHere: (r) => ctx.manager.isActive(r), forceHint: 'delete it with force' })) log(line);
            return true;
          },
          decodeTokens: (_runId, ids) => ids.map((id) => tokenizer.tokenText(id)),
        },
        info: () => ({ protocolVersion: PROTOCOL_VERSION, version: VERSION, backend: backendName, presets: presetNames(), datasets: ['synthetic', 'gsm8k', 'math', 'math500'] }),
        log: (level, message) => { if (level !== 'debug') log(`[${level}] ${message}`); },
      });
      ctx.manager.onEngine((b) => { backendName = b; });
      // Language features for *.mathagent.json, served over the same socket so diagnostics know this host.
      const usedBackends = new Set<string>(['wasm', 'cpu']);
      ctx.manager.onEngine((b) => usedBackends.add(b));
      registerLsp(server, localHostProbe({
        datasets: () => ['synthetic', ...(['gsm8k', 'math', 'math500'] as const).filter((d) => { try { return existsSync(datasetPath(d, 'test')); } catch { return false; } })],
        backends: () => ['auto', ...usedBackends],
      }), (m) => log(`[lsp] ${m}`));
      const hello = { url: server.url, tokenFile: server.tokenFile };
      if (o.json) process.stdout.write(JSON.stringify(hello) + '\n');
      log(`listening on ${server.url} (token in ${server.tokenFile}, database ${ctx.dbPath})`);
      if (o.resume) {
        const resumed = ctx.manager.resumeInterrupted();
        if (resumed.length) log(`resuming interrupted run(s): ${resumed.join(', ')}`);
      }
      let closing = false;
      const shutdown = async (signal: string) => {
        if (closing) process.exit(130);
        closing = true;
        log(`${signal}: stopping runs at the next safe point and closing`);
        await server.close();
        await ctx.close();
        process.exit(0);
      };
      process.on('SIGINT', () => void shutdown('SIGINT'));
      process.on('SIGTERM', () => void shutdown('SIGTERM'));
    });
}
