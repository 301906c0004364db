/**
 * The remote policy against the daemon's own OpenAI-compatible server (real HTTP on port 0, a tiny checkpoint
 * written to a temp dir with saveCheckpoint and loaded back): token ids round trip, stop strings, streaming,
 * batching, the rollout through the pool, failover when one server dies mid-run, and the error paths.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../daemon/src/model/backends';
import { GPT, presetConfig } from '../../daemon/src/model/gpt';
import { loadCheckpoint, saveCheckpoint } from '../../daemon/src/model/checkpoint';
import { LocalPolicy } from '../../daemon/src/model/localPolicy';
import type { ByteTokenizer } from '../../daemon/src/model/tokenizer';
import { getTemplate } from '../../daemon/src/env/templates';
import type { GenerateRequest } from '../../daemon/src/env/policy';
import { rollout } from '../../daemon/src/env/rollout';
import { SandboxPool } from '../../daemon/src/env/sandbox';
import { startOpenAIServer, type OpenAIServer } from '../../daemon/src/openai';
import { OpenAIPolicy, EndpointPool, PoolRequestError } from '../../daemon/src/policy';
import { generateProblems } from '../../daemon/src/data/synthetic';

const tpl = getTemplate('mathagent');
let dir: string;
let model: GPT;
let tok: ByteTokenizer;
let local: LocalPolicy;
let token: string;
let tokenFile: string;
const servers: OpenAIServer[] = [];

async function serve(opts: { windowMs?: number; maxBatch?: number; maxBody?: number } = {}): Promise<OpenAIServer> {
  const s = await startOpenAIServer({ policy: local, model: 'tiny', contextLength: model.config.blockSize, tokenFile, batchWindowMs: opts.windowMs ?? 2, maxBatch: opts.maxBatch, maxBodyBytes: opts.maxBody });
  servers.push(s);
  return s;
}

const req = (promptText: string, o: Partial<GenerateRequest> = {}): GenerateRequest => ({
  promptText, promptTokenIds: tok.encode(promptText), maxTokens: 24, stop: [], temperature: 0, topP: 1, ...o,
});

const remote = (endpoints: string[], o: { concurrency?: number; retries?: number; sendTokenIds?: boolean; model?: string | null; backoffMs?: number; timeoutMs?: number } = {}) => new OpenAIPolicy({
  endpoints: endpoints.map((url) => ({ url, apiKeyFile: tokenFile, concurrency: o.concurrency })), model: o.model === undefined ? 'tiny' : o.model, template: tpl, tokenizer: tok,
  sendTokenIds: o.sendTokenIds, pool: { retries: o.retries ?? 3, backoffMs: o.backoffMs ?? 20, maxBackoffMs: 200, timeoutMs: o.timeoutMs ?? 30_000 },
});

async function post(url: string, body: unknown, headers: Record<string, string> = { authorization: `Bearer ${token}` }): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

before(async () => {
  await initBackend('wasm', { log: () => {} });
  dir = mkdtempSync(join(tmpdir(), 'remote-policy-'));
  tokenFile = join(dir, 'token');
  const m = new GPT(presetConfig('tiny', 256 + tpl.specialTokens.length), 5);
  await saveCheckpoint(join(dir, 'ck'), { model: m, tokenizerSpecials: tpl.specialTokens });
  m.dispose();
  const ck = await loadCheckpoint(join(dir, 'ck'));
  model = ck.model;
  tok = ck.tokenizer;
  local = new LocalPolicy(model, tok);
});

after(async () => {
  for (const s of servers) await s.close();
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('OpenAI-compatible server', () => {
  it('guards every route with the bearer token from a 0600 file, refuses browser origins, lists the model', async () => {
    const s = await serve();
    token = readFileSync(tokenFile, 'utf8').trim();
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    const noAuth = await fetch(`${s.url}/v1/models`);
    assert.equal(noAuth.status, 401);
    assert.equal(((await noAuth.json()) as any).error.code, 'invalid_api_key');
    assert.equal((await fetch(`${s.url}/v1/models`, { headers: { authorization: 'Bearer nope' } })).status, 401);
    assert.equal((await fetch(`${s.url}/v1/models`, { headers: { authorization: `Bearer ${token}`, origin: 'http://evil.example' } })).status, 403);
    const models = (await (await fetch(`${s.url}/v1/models`, { headers: { authorization: `Bearer ${token}` } })).json()) as any;
    assert.deepEqual(models.data.map((m: any) => [m.id, m.max_model_len]), [['tiny', 128]]);
  });

  it('answers bad requests with OpenAI-shaped errors that name the field', async () => {
    const s = servers[0]!;
    const cases: Array<[unknown, number, RegExp]> = [
      ['{not json', 400, /not valid JSON/],
      [{ prompt: 5 }, 400, /prompt/],
      [{ prompt: 'x', temperature: -1 }, 400, /temperature/],
      [{ prompt: 'x', model: 'gpt-4' }, 404, /"gpt-4" does not exist; this server serves "tiny"/],
      [{ prompt: 'x', echo: true }, 400, /echo/],
      [{ prompt: 'x', stop: [''] }, 400, /stop strings must not be empty/],
      [{ prompt: [99999] }, 400, /token id 99999 is outside the vocabulary \[0, 262\)/],
      [{ prompt: 'x'.repeat(3000) }, 413, /larger than the limit/],
    ];
    const small = await serve({ maxBody: 2000 });
    for (const [body, status, re] of cases) {
      const r = await post(small.url, body);
      assert.equal(r.status, status, JSON.stringify(body).slice(0, 60));
      assert.match(r.json.error.message, re);
      assert.equal(typeof r.json.error.type, 'string');
    }
    const notFound = await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '{}' });
    assert.equal(notFound.status, 404);
  });

  it('returns exactly the local policy\'s token ids and logprobs, for string and token-id prompts', async () => {
    const s = servers[0]!;
    const prompt = tpl.renderPrompt('What is 2+3?');
    const [want] = await local.generate([req(prompt, { temperature: 1, seed: 42, maxTokens: 20 })]);
    for (const p of [prompt, tok.encode(prompt)]) {
      const r = await post(s.url, { model: 'tiny', prompt: p, max_tokens: 20, temperature: 1, seed: 42, return_token_ids: true, logprobs: 0, include_stop_str_in_output: true });
      assert.equal(r.status, 200);
      const c = r.json.choices[0];
      assert.deepEqual(c.token_ids, want!.tokenIds);
      assert.deepEqual(c.prompt_token_ids, tok.encode(prompt));
      assert.equal(c.text, want!.text);
      assert.equal(c.logprobs.token_logprobs.length, 20);
      c.logprobs.token_logprobs.forEach((lp: number, i: number) => assert.ok(Math.abs(lp - want!.logprobs[i]!) < 1e-5));
      assert.equal(c.finish_reason, 'length');
      assert.equal(r.json.usage.completion_tokens, 20);
    }
  });

  it('stops at a stop string: stripped by default (stop_reason names it), kept on request, ids include it', async () => {
    const s = servers[0]!;
    const prompt = tpl.renderPrompt('Compute 7*6.');
    const [full] = await local.generate([req(prompt, { temperature: 1, seed: 9, maxTokens: 40 })]);
    // A two-token stop from inside the sampled text whose first occurrence is where it was sampled.
    let stop = '';
    let upto = 0;
    for (let k = 4; k < 38 && !stop; k++) {
      const x = full!.tokenIds[k]!;
      if (!(x >= 33 && x < 127)) continue;
      const cand = String.fromCharCode(x);
      const joined = tok.decode(full!.tokenIds.slice(0, k + 1));
      if (joined.indexOf(cand) === joined.length - 1) { stop = cand; upto = k + 1; }
    }
    assert.ok(stop, `no clean stop candidate in ${JSON.stringify(full!.text)}`);
    const expectedText = tok.decode(full!.tokenIds.slice(0, upto));
    const stripped = await post(s.url, { prompt, max_tokens: 40, temperature: 1, seed: 9, stop: [stop], return_token_ids: true });
    const c = stripped.json.choices[0];
    assert.equal(c.finish_reason, 'stop');
    assert.equal(c.stop_reason, stop);
    assert.equal(c.text, expectedText.slice(0, expectedText.length - stop.length));
    assert.deepEqual(c.token_ids, full!.tokenIds.slice(0, upto));
    // Through the remote policy: the stop string is part of the action, ids decode to the text.
    const policy = remote([s.url]);
    try {
      const [got] = await policy.generate([req(prompt, { temperature: 1, seed: 9, maxTokens: 40, stop: [stop] })]);
      assert.equal(got!.text, expectedText);
      assert.equal(got!.finishReason, 'stop');
      assert.deepEqual(got!.tokenIds, full!.tokenIds.slice(0, upto));
      assert.equal(got!.logprobs.length, upto);
    } finally { policy.dispose(); }
  });

  it('streams server-sent events whose deltas add up to the non-streamed completion', async () => {
    const s = servers[0]!;
    const body = { prompt: tpl.renderPrompt('1+1'), max_tokens: 16, temperature: 1, seed: 3, n: 2, return_token_ids: true };
    const plain = await post(s.url, body);
    const res = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ ...body, stream: true }) });
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const events = (await res.text()).split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
    assert.equal(events.at(-1), '[DONE]');
    const text = ['', ''];
    const ids: number[][] = [[], []];
    const finish: Array<string | null> = [null, null];
    for (const e of events.slice(0, -1)) {
      const j = JSON.parse(e);
      for (const c of j.choices) { text[c.index] += c.text; ids[c.index]!.push(...(c.token_ids ?? [])); if (c.finish_reason) finish[c.index] = c.finish_reason; }
    }
    for (const i of [0, 1]) {
      assert.equal(text[i], plain.json.choices[i].text);
      assert.deepEqual(ids[i], plain.json.choices[i].token_ids);
      assert.equal(finish[i], plain.json.choices[i].finish_reason);
    }
    assert.notDeepEqual(ids[0], ids[1], 'the n choices get distinct seeds');
  });

  it('batches concurrent requests into one generate call with the same results as one by one', async () => {
    const s = await serve({ windowMs: 2000, maxBatch: 6 });
    const prompts = Array.from({ length: 6 }, (_, i) => tpl.renderPrompt(`q${i}: ${i} + ${i * 3}`));
    const one = await local.generate(prompts.map((p, i) => req(p, { temperature: 1, seed: 100 + i, maxTokens: 12 })));
    const all = await Promise.all(prompts.map((p, i) => post(s.url, { prompt: p, max_tokens: 12, temperature: 1, seed: 100 + i, return_token_ids: true })));
    all.forEach((r, i) => assert.deepEqual(r.json.choices[0].token_ids, one[i]!.tokenIds));
    // maxBatch reached before the (long) window ends: one generate call for all six.
    assert.equal(s.stats().largestBatch, 6);
    assert.equal(s.stats().batches, 1);
  });
});

describe('OpenAIPolicy', () => {
  it('gives the same trajectories as the local policy in a rollout (token-in/token-out, no re-tokenising)', async () => {
    const s = servers[0]!;
    const problems = generateProblems({ seed: 3, count: 3, split: 'eval', level: 1 });
    const items = problems.map((problem, i) => ({ id: `t${i}`, runId: 'r', iteration: 0, sampleIndex: 0, problem }));
    const opts = { template: tpl, maxTurns: 2, maxTurnTokens: 24, maxTrajectoryTokens: 120, temperature: 0, topP: 1, batchSize: 3, seed: 1 };
    const tools = new SandboxPool({ workers: 1 });
    for (const sendTokenIds of [false, true]) {
      const policy = remote([s.url], { sendTokenIds });
      try {
        const want = await rollout(local, items, opts, tools);
        const got = await rollout(policy, items, opts, tools);
        for (let i = 0; i < items.length; i++) {
          assert.equal(got[i]!.retokenized, false);
          assert.deepEqual(got[i]!.tokenIds, want[i]!.tokenIds);
          assert.deepEqual(got[i]!.actionMask, want[i]!.actionMask);
          assert.equal(got[i]!.outcome, want[i]!.outcome);
        }
        assert.equal(policy.stats().retokenized, 0);
        assert.ok(policy.stats().tokenIdsUsed >= 3);
      } finally { policy.dispose(); }
    }
    await tools.close();
  });

  it('falls back to text (retokenized) when the server\'s ids are not ours, and resolves the model from /v1/models', async () => {
    const fake = createServer((q, r) => {
      let body = '';
      q.on('data', (c) => (body += c));
      q.on('end', () => {
        r.setHeader('content-type', 'application/json');
        if (q.url === '/v1/models') { r.end(JSON.stringify({ data: [{ id: 'other-model' }] })); return; }
        const j = JSON.parse(body);
        assert.equal(j.model, 'other-model');
        // A server with another tokenizer: ids that decode to something else, stop stripped, stop_reason given.
        r.end(JSON.stringify({ choices: [{ text: 'x = 1\n```mathjs\n1+1\n```', finish_reason: 'stop', stop_reason: '<|output|>', token_ids: [9, 9, 9] }] }));
      });
    });
    await new Promise<void>((res) => fake.listen(0, '127.0.0.1', res));
    const url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
    const policy = remote([url], { model: null });
    try {
      const [r] = await policy.generate([req(tpl.renderPrompt('q'), { stop: [...tpl.stop] })]);
      assert.equal(r!.text, 'x = 1\n```mathjs\n1+1\n```<|output|>');
      assert.equal(r!.finishReason, 'stop');
      assert.deepEqual(r!.tokenIds, [], 'foreign ids are dropped; the rollout re-encodes the text');
      assert.equal(policy.stats().retokenized, 1);
    } finally {
      policy.dispose();
      fake.close();
    }
  });

  it('fails over to the other endpoint when one server dies mid-run, with the same samples', async () => {
    const a = await serve({ windowMs: 1 });
    const b = await serve({ windowMs: 1 });
    const policy = remote([a.url, b.url], { concurrency: 2 });
    const reqs = Array.from({ length: 16 }, (_, i) => req(tpl.renderPrompt(`problem ${i}`), { temperature: 1, seed: 500 + i, maxTokens: 30 }));
    const want = await local.generate(reqs);
    let killed = false;
    const watcher = setInterval(() => {
      const ea = policy.pool.stats().endpoints[0]!;
      if (!killed && ea.ok >= 2 && ea.inFlight > 0) { killed = true; a.kill(); }
    }, 2);
    try {
      const got = await policy.generate(reqs);
      assert.ok(killed, 'server A was killed during the run');
      got.forEach((g, i) => assert.deepEqual(g.tokenIds, want[i]!.tokenIds, `request ${i}: ${JSON.stringify(g)} ${JSON.stringify(policy.stats())}`));
      const [ea, eb] = policy.pool.stats().endpoints;
      assert.ok(ea!.failed >= 1, 'the requests in flight on A failed');
      assert.ok(eb!.ok >= 8, `B took over (B served ${eb!.ok})`);
      assert.ok(policy.pool.stats().failovers >= 1);
      assert.ok(ea!.peakInFlight <= 2 && eb!.peakInFlight <= 2, 'per-endpoint concurrency is respected');
    } finally {
      clearInterval(watcher);
      policy.dispose();
    }
  });

  it('names every endpoint that failed when all are down, and does not retry a request the server refused', async () => {
    const s = servers[0]!;
    const dead = await serve();
    dead.kill();
    const policy = remote([dead.url], { retries: 2, backoffMs: 5 });
    await assert.rejects(policy.generate([req('hi')]), (e: Error) => {
      assert.ok(e instanceof PoolRequestError);
      assert.equal(e.attempts.length, 3);
      assert.match(e.message, new RegExp(`failed after 3 attempt\\(s\\) \\(last endpoint ${dead.url.replace(/[.]/g, '\\.')}\\)`));
      assert.match(e.message, /ECONNREFUSED/);
      return true;
    });
    policy.dispose();
    const wrongModel = remote([s.url], { model: 'nope' });
    await assert.rejects(wrongModel.generate([req('hi')]), /was refused \(last endpoint http:\/\/127\.0\.0\.1:\d+\): .*HTTP 404: the model "nope" does not exist/);
    assert.equal(wrongModel.pool.stats().retries, 0);
    wrongModel.dispose();
  });

  it('times out a stuck endpoint and says so', async () => {
    const stuck = createServer(() => { /* never answers */ });
    await new Promise<void>((res) => stuck.listen(0, '127.0.0.1', res));
    const url = `http://127.0.0.1:${(stuck.address() as AddressInfo).port}`;
    const pool = new EndpointPool([{ url }], { timeoutMs: 150, retries: 1, backoffMs: 1 });
    await assert.rejects(pool.request('POST', '/v1/completions', {}), /timed out after 150 ms.*timed out after 150 ms/);
    pool.close();
    stuck.closeAllConnections();
    stuck.close();
    assert.throws(() => new EndpointPool([{ url: 'ftp://x' }]), /only http/);
    assert.throws(() => new EndpointPool([]), /at least one endpoint/);
    assert.throws(() => new EndpointPool([{ url }, { url: `${url}/v1` }]), /listed twice/);
  });
});
