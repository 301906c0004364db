/**
 * A run with a remote policy and the external-trainer hook, end to end: trajectories sampled through the daemon's
 * own OpenAI server (real HTTP), pairs exported in both formats, a trainer command run with its output streamed
 * as log events, the new checkpoint served by a real `mathagent serve` child process started from the serve
 * template, evaluation through that new server, every step in the resume state; and a resumed step that is not
 * redone.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunConfig, type DaemonEventInput } from '@mathagent/shared';
import { initBackend } from '../../daemon/src/model/backends';
import { GPT, presetConfig } from '../../daemon/src/model/gpt';
import { loadCheckpoint, saveCheckpoint } from '../../daemon/src/model/checkpoint';
import { LocalPolicy } from '../../daemon/src/model/localPolicy';
import { getTemplate } from '../../daemon/src/env/templates';
import { startOpenAIServer, type OpenAIServer } from '../../daemon/src/openai';
import { openStore } from '../../daemon/src/store';
import { createTfEngine } from '../../daemon/src/pipeline/tfEngine';
import { executeRun, type ResumeState } from '../../daemon/src/pipeline/execute';
import { ExternalTrainer, fillTemplate, type ExternalStepState } from '../../daemon/src/pipeline/externalTrainer';
import { OpenAIPolicy } from '../../daemon/src/policy';
import { ByteTokenizer } from '../../daemon/src/model/tokenizer';

const root = join(__dirname, '..', '..');
const tpl = getTemplate('mathagent');
let dir: string;
let ck: string;
let tokenFile: string;
let server: OpenAIServer;
let disposeModel: () => void;

before(async () => {
  await initBackend('wasm', { log: () => {} });
  dir = mkdtempSync(join(tmpdir(), 'ext-trainer-'));
  ck = join(dir, 'start');
  tokenFile = join(dir, 'token');
  const m = new GPT(presetConfig('tiny', 256 + tpl.specialTokens.length), 11);
  await saveCheckpoint(ck, { model: m, tokenizerSpecials: tpl.specialTokens });
  m.dispose();
  const loaded = await loadCheckpoint(ck);
  disposeModel = () => loaded.model.dispose();
  server = await startOpenAIServer({ policy: new LocalPolicy(loaded.model, loaded.tokenizer), model: 'start', contextLength: 128, tokenFile });
});

after(async () => {
  await server?.close();
  disposeModel?.();
  rmSync(dir, { recursive: true, force: true });
});

// The serve command runs in the run dir, where `--import tsx` would not resolve: use the loader's absolute path.
const tsxLoader = join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const serveCmd = () => `${JSON.stringify(process.execPath)} --import ${JSON.stringify(tsxLoader)} ${JSON.stringify(join(root, 'daemon/src/cli/main.ts'))} serve {checkpoint} --port {port} --token-file ${JSON.stringify(tokenFile)} --backend wasm --json`;

describe('external trainer hook', () => {
  it('samples remotely, exports pairs, runs the trainer, serves the new checkpoint and evaluates through it', async () => {
    const store = openStore(join(dir, 'runs.db'));
    const events: DaemonEventInput[] = [];
    const config = RunConfig.parse({
      iterations: 1, seed: 3,
      model: { init: ck },
      data: { dataset: 'synthetic', trainPrompts: 2, evalPrompts: 2 },
      sampling: { samplesPerPrompt: 2, temperature: 1, batchSize: 4 },
      limits: { maxTurns: 2, maxTurnTokens: 12, maxTrajectoryTokens: 100 },
      eval: { passK: 1 },
      policy: { kind: 'openai', endpoints: [{ url: server.url, apiKeyFile: tokenFile }], model: null, concurrency: 2 },
      externalTrainer: { command: 'echo training on $(wc -l < {pairs}) pairs, iteration {iteration} && cp -r {prev_checkpoint} {out_dir}', serve: serveCmd(), readyTimeoutMs: 60_000 },
    });
    const run = store.createRun({ config, state: 'running' });
    const runDir = join(dir, 'runs', run.id);
    const engine = await createTfEngine({ backend: 'wasm', log: () => {} });
    try {
      await executeRun(run.id, config, { store, emit: (e) => events.push(e), engine, runDir, signal: new AbortController().signal });
      const st = store.getRunState<ResumeState>(run.id)!;
      assert.equal(st.iteration, 2);
      assert.deepEqual(st.external, { iteration: 1, step: 'served', checkpoint: join(runDir, 'iter-1', 'checkpoint'), pairsFile: join(runDir, 'iter-1', 'pairs.trl.jsonl') });
      assert.ok(existsSync(join(runDir, 'iter-1', 'pairs.openrlhf.jsonl')));
      assert.ok(existsSync(join(runDir, 'iter-1', 'checkpoint', 'config.json')));
      const logs = events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message);
      assert.ok(logs.some((m) => /trainer \(iteration 1\): training on \d+ pairs, iteration 1$/.test(m)), logs.join('\n'));
      assert.match(readFileSync(join(runDir, 'iter-1', 'trainer.log'), 'utf8'), /training on \d+ pairs, iteration 1/);
      assert.ok(logs.some((m) => /iteration 1: sampling from http:\/\/127\.0\.0\.1:\d+ \(checkpoint/.test(m)));
      // Sampled trajectories came from the first server, the evaluation of iteration 1 from the served checkpoint.
      const train = store.listTrajectories(run.id, 1, 'train');
      assert.equal(train.length, 4);
      assert.ok(train.every((t) => t.policy === 'openai:auto' && !t.retokenized));
      assert.equal(store.listTrajectories(run.id, 1, 'eval').length, 2);
      assert.ok(server.stats().httpRequests >= 4);
      assert.deepEqual(store.listCheckpoints(run.id).map((c) => c.iteration), [1]);
    } finally {
      store.close();
    }
  });

  it('resumes after the recorded step: a trained iteration is not trained again; placeholders are checked up front', async () => {
    const runDir = join(dir, 'resume');
    let state: ExternalStepState | null = { iteration: 4, step: 'trained', checkpoint: ck, pairsFile: join(runDir, 'x.jsonl') };
    const logs: string[] = [];
    const policy = new OpenAIPolicy({ endpoints: [{ url: server.url, apiKeyFile: tokenFile }], model: null, template: tpl, tokenizer: new ByteTokenizer(tpl.specialTokens) });
    const ext = new ExternalTrainer({ command: 'exit 3', serve: null, endpoint: server.url, readyTimeoutMs: 10_000 }, {
      runDir, pool: policy.pool, policy, apiKeyFile: tokenFile, log: (_l, m) => logs.push(m), getState: () => state, setState: (s) => { state = s; },
    });
    try {
      assert.equal(await ext.trainIteration(4, [], ck), ck);
      assert.equal(state!.step, 'served');
      assert.ok(logs.some((m) => m.includes('resuming the external trainer after step "trained"')));
      // A fresh iteration runs the command, whose failure names the exit code and the output.
      await assert.rejects(ext.trainIteration(5, [], ck), /trainer \(iteration 5\) failed \(exit code 3\)/);
      assert.equal(state!.step, 'exported');
    } finally { policy.dispose(); await ext.close(); }
    assert.throws(() => new ExternalTrainer({ command: 'train {pairz}', serve: null, endpoint: null, readyTimeoutMs: 1 }, {} as never), /unknown placeholder \{pairz\}; use \{pairs\}/);
    assert.equal(fillTemplate("x {out_dir}", { out_dir: "a b'c" }, 't'), `x 'a b'\\''c'`);
  });
});
