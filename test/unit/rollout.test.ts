import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Trajectory, Turn } from '@mathagent/shared';
import { requestSeed, rollout, type RolloutItem, type RolloutOptions, type ToolProvider } from '../../daemon/src/env/rollout';
import { renderDemo } from '../../daemon/src/env/demos';
import { SandboxPool, type ToolSession } from '../../daemon/src/env/sandbox';
import { getTemplate, TEMPLATE_NAMES, type ChatTemplate } from '../../daemon/src/env/templates';
import type { GenerateRequest, GenerateResult, Policy, Tokenizer } from '../../daemon/src/env/policy';
import type { Problem } from '../../daemon/src/data/types';

/** Bytes 0..255 plus the template's special strings as one id each (256, 257, ...). */
class ByteTokenizer implements Tokenizer {
  readonly name = 'test-bytes';
  readonly vocabSize: number;
  readonly eosId: number;
  private readonly specials: string[];
  constructor(template: ChatTemplate) {
    this.specials = [...template.specialTokens];
    if (!this.specials.includes(template.eos)) this.specials.push(template.eos);
    this.vocabSize = 256 + this.specials.length;
    this.eosId = 256 + this.specials.indexOf(template.eos);
  }
  encode(text: string): number[] {
    const out: number[] = [];
    let plain = '';
    const flush = () => { for (const b of Buffer.from(plain, 'utf8')) out.push(b); plain = ''; };
    for (let i = 0; i < text.length;) {
      const k = this.specials.findIndex((s) => text.startsWith(s, i));
      if (k >= 0) { flush(); out.push(256 + k); i += this.specials[k]!.length; } else { plain += text[i]; i++; }
    }
    flush();
    return out;
  }
  decode(ids: number[]): string {
    let s = '';
    let bytes: number[] = [];
    const flush = () => { s += Buffer.from(bytes).toString('utf8'); bytes = []; };
    for (const id of ids) {
      if (id >= 256) { flush(); s += this.specials[id - 256]; } else bytes.push(id);
    }
    flush();
    return s;
  }
  tokenText(id: number): string { return this.decode([id]); }
}

/**
 * A model that plays a script: the n-th turn for a question is script[n]. It behaves like a real sampler: cuts at
 * the first stop string (kept in the output), at maxTokens ('length'), and returns the exact ids of its text.
 * It also checks token-in: the ids it gets decode to the text it gets.
 */
class ScriptedPolicy implements Policy {
  readonly name = 'scripted';
  readonly requests: GenerateRequest[][] = [];
  private readonly turnsSeen = new Map<string, number>();
  constructor(readonly tokenizer: ByteTokenizer, private readonly template: ChatTemplate, private readonly scripts: Record<string, string[]>,
    private readonly opts: { fail?: boolean; noIds?: boolean; onGenerate?: (reqs: GenerateRequest[]) => void } = {}) {}
  async generate(reqs: GenerateRequest[]): Promise<GenerateResult[]> {
    this.requests.push(reqs);
    this.opts.onGenerate?.(reqs);
    if (this.opts.fail) throw new Error('CUDA out of memory');
    await new Promise((r) => setImmediate(r));
    return reqs.map((req) => {
      assert.equal(this.tokenizer.decode(req.promptTokenIds), req.promptText, 'token-in: ids and text of the history agree');
      const q = Object.keys(this.scripts).find((k) => req.promptText.startsWith(this.template.renderPrompt(k)));
      assert.ok(q !== undefined, 'unknown prompt');
      const n = this.turnsSeen.get(q) ?? 0;
      this.turnsSeen.set(q, n + 1);
      let text = this.scripts[q]![n] ?? `I give up.${this.template.eos}`;
      let finishReason: GenerateResult['finishReason'] = 'eos';
      let cut = Infinity;
      for (const s of req.stop) { const at = text.indexOf(s); if (at >= 0) cut = Math.min(cut, at + s.length); }
      if (cut < Infinity) { text = text.slice(0, cut); finishReason = 'stop'; }
      let ids = this.tokenizer.encode(text);
      if (ids.length > req.maxTokens) { ids = ids.slice(0, req.maxTokens); text = this.tokenizer.decode(ids); finishReason = 'length'; }
      return { text, tokenIds: this.opts.noIds ? [] : ids, logprobs: this.opts.noIds ? [] : ids.map(() => -0.5), finishReason };
    });
  }
}

const pool = new SandboxPool({ timeoutMs: 1500, workers: 2 });
after(() => pool.close());

const problem = (question: string, answer: string, id = `test/${question.length}`): Problem => ({ id, question, answer, source: 'synthetic' });
const item = (p: Problem, k = 0): RolloutItem => ({ id: `traj-${p.id}-${k}`, runId: 'run1', iteration: 2, sampleIndex: k, problem: p });
const opts = (template: ChatTemplate, o: Partial<RolloutOptions> = {}): RolloutOptions => ({
  template, maxTurns: 6, maxTurnTokens: 512, maxTrajectoryTokens: 2048, temperature: 1, topP: 1, batchSize: 4, seed: 7, ...o,
});

/** Split a trajectory's flat ids by mask and decode each side. */
function sides(t: Trajectory, tok: Tokenizer): { model: string; env: string } {
  const model = t.tokenIds.filter((_, i) => t.actionMask[i] === 1);
  const env = t.tokenIds.filter((_, i) => t.actionMask[i] === 0);
  return { model: tok.decode(model), env: tok.decode(env) };
}

const Q1 = 'A farm has 123456 rows of 789 plants and buys 1000 more plants. How many plants?';
// 123456 * 789 = 97,406,784 (hand: 123456*800 - 123456*11 = 98,764,800 - 1,358,016); + 1000 = 97,407,784

test('3-turn trajectory through the real sandbox and grader; the action mask covers exactly the model tokens', async () => {
  const tpl = getTemplate('mathagent');
  const tok = new ByteTokenizer(tpl);
  const script = [
    'Rows times plants per row.\n```mathjs\nrows = 123456\nplants = rows * 789\n```<|output|>',
    'Now add the new plants, using the variable from before.\n```mathjs\ntotal = plants + 1000\n```<|output|>',
    'The farm has \\boxed{97407784} plants.<|end|>',
  ];
  const policy = new ScriptedPolicy(tok, tpl, { [Q1]: script });
  const events: string[] = [];
  const [t] = await rollout(policy, [item(problem(Q1, '97407784'))], opts(tpl), pool, {
    onStart: (it) => events.push(`start ${it.id}`),
    onTurn: (id, turn: Turn) => events.push(`turn ${id} ${turn.index} ${turn.observation?.output ?? '-'}`),
    onFinish: (tr) => events.push(`finish ${tr.id} ${tr.outcome}`),
  });
  assert.ok(t);
  assert.equal(t.outcome, 'correct');
  assert.equal(t.reward, 1);
  assert.equal(t.extractedAnswer, '97407784');
  assert.equal(t.truncation, null);
  assert.equal(t.turns.length, 3);
  assert.deepEqual(t.turns.map((x) => x.observation?.output ?? null), ['97406784', '97407784', null]);
  assert.deepEqual(t.turns.map((x) => x.toolCall), [
    { lang: 'mathjs', code: 'rows = 123456\nplants = rows * 789' }, { lang: 'mathjs', code: 'total = plants + 1000' }, null]);
  assert.deepEqual(t.turns.map((x) => x.finishReason), ['stop', 'stop', 'stop']);
  assert.equal(t.turns[0]!.observation!.text, '\n97406784\n<|/output|>\n');
  assert.equal(t.turns[0]!.observation!.error, false);
  // the mask: model side = the three actions exactly, environment side = prompt + the two observations
  const { model, env } = sides(t, tok);
  assert.equal(model, script.join(''));
  assert.equal(env, `<|user|>${Q1}<|end|><|assistant|>` + '\n97406784\n<|/output|>\n' + '\n97407784\n<|/output|>\n');
  // token-out: the action ids are the policy's ids, placed in order in the flat sequence
  const flat = [...t.promptTokenIds, ...t.turns.flatMap((x) => [...x.action.tokenIds, ...(x.observation?.tokenIds ?? [])])];
  assert.deepEqual(t.tokenIds, flat);
  assert.equal(t.actionMask.filter((m) => m === 1).length, t.turns.reduce((n, x) => n + x.action.tokenIds.length, 0));
  assert.equal(t.turns[0]!.action.logprobs.length, t.turns[0]!.action.tokenIds.length);
  // the <|output|> marker is ONE model token (special id), and the mask starts at the first action token
  assert.equal(t.turns[0]!.action.tokenIds.at(-1), 256 + tpl.specialTokens.indexOf('<|output|>'));
  assert.equal(t.actionMask[t.promptTokenIds.length - 1], 0);
  assert.equal(t.actionMask[t.promptTokenIds.length], 1);
  // identity fields
  assert.equal(t.id, `traj-test/${Q1.length}-0`);
  assert.equal(t.promptId, `test/${Q1.length}`);
  assert.equal(t.runId, 'run1');
  assert.equal(t.iteration, 2);
  assert.equal(t.policy, 'scripted');
  assert.equal(t.template, 'mathagent');
  assert.equal(t.question, Q1);
  assert.equal(t.reference, '97407784');
  assert.equal(t.retokenized, false);
  assert.ok(!Number.isNaN(Date.parse(t.createdAt)));
  // hooks, in order
  assert.deepEqual(events, [
    `start ${t.id}`, `turn ${t.id} 0 97406784`, `turn ${t.id} 1 97407784`, `turn ${t.id} 2 -`, `finish ${t.id} correct`]);
  // the history sent with each request grows by exactly action + observation; budget per request
  const reqs = policy.requests.flat();
  assert.equal(reqs.length, 3);
  assert.equal(reqs[1]!.promptText, t.promptText + script[0] + '\n97406784\n<|/output|>\n');
  assert.deepEqual(reqs.map((r) => r.stop), [tpl.stop, tpl.stop, tpl.stop]);
  assert.equal(reqs[0]!.maxTokens, 512);
  assert.equal(new Set(reqs.map((r) => r.seed)).size, 3); // a fresh seed per turn
});

test('every template: mask splits model and environment text exactly; gemma and tora run their tool turns', async () => {
  for (const name of TEMPLATE_NAMES) {
    const tpl = getTemplate(name);
    const tok = new ByteTokenizer(tpl);
    const q = `What is 2^20 + 5? (${name})`;
    const a1 = tpl.renderToolCall('Compute the power.', 'p = 2^20');
    const a2 = tpl.renderToolCall('Add five.', 'p + 5');
    const a3 = tpl.renderFinal('So the answer is \\boxed{1048581}.');
    const [t] = await rollout(new ScriptedPolicy(tok, tpl, { [q]: [a1, a2, a3] }), [item(problem(q, '1048581'))], opts(tpl), pool);
    assert.ok(t);
    assert.equal(t.outcome, 'correct', name);
    assert.deepEqual(t.turns.map((x) => x.observation?.output ?? null), ['1048576', '1048581', null], name);
    const { model, env } = sides(t, tok);
    assert.equal(model, a1 + a2 + a3, name);
    assert.equal(env, tpl.renderPrompt(q) + tpl.renderObservation('1048576', false) + tpl.renderObservation('1048581', false), name);
  }
});

test('limits: H turns, tokens per turn and per trajectory each give truncated with the reason', async () => {
  const tpl = getTemplate('mathagent');
  const tok = new ByteTokenizer(tpl);
  const loop = (k: number) => `Step ${k}.\n\`\`\`mathjs\nx${k} = ${k}\n\`\`\`<|output|>`;
  const qTurns = 'Keep computing forever?';
  const [byTurns] = await rollout(new ScriptedPolicy(tok, tpl, { [qTurns]: [1, 2, 3, 4, 5].map(loop) }), [item(problem(qTurns, '1'))], opts(tpl, { maxTurns: 3 }), pool);
  assert.equal(byTurns!.outcome, 'truncated');
  assert.equal(byTurns!.truncation, 'max_turns');
  assert.equal(byTurns!.turns.length, 3);
  assert.equal(byTurns!.turns[2]!.observation!.output, '3'); // the last turn's code still ran
  assert.equal(byTurns!.reward, 0);

  const qTurnTok = 'Ramble on?';
  const long = 'blah '.repeat(50) + '\\boxed{1}<|end|>';
  const policy = new ScriptedPolicy(tok, tpl, { [qTurnTok]: [long] });
  const [byTurnTokens] = await rollout(policy, [item(problem(qTurnTok, '1'))], opts(tpl, { maxTurnTokens: 40 }), pool);
  assert.equal(byTurnTokens!.outcome, 'truncated');
  assert.equal(byTurnTokens!.truncation, 'turn_tokens');
  assert.equal(byTurnTokens!.turns[0]!.action.tokenIds.length, 40);
  assert.equal(byTurnTokens!.turns[0]!.finishReason, 'length');
  assert.equal(byTurnTokens!.extractedAnswer, null);

  // trajectory budget: prompt (3 specials + question bytes) + turn 1 + observation leave < 512 for turn 2
  const qTraj = 'Budget?';
  const promptLen = tok.encode(tpl.renderPrompt(qTraj)).length;
  const budget = promptLen + 60;
  const p2 = new ScriptedPolicy(tok, tpl, { [qTraj]: [loop(1), long] });
  const [byTraj] = await rollout(p2, [item(problem(qTraj, '1'))], opts(tpl, { maxTrajectoryTokens: budget }), pool);
  const firstTurn = byTraj!.turns[0]!;
  const used = promptLen + firstTurn.action.tokenIds.length + firstTurn.observation!.tokenIds.length;
  assert.equal(p2.requests.flat()[0]!.maxTokens, 60);
  assert.equal(p2.requests.flat()[1]!.maxTokens, budget - used); // capped by what is left
  assert.equal(byTraj!.outcome, 'truncated');
  assert.equal(byTraj!.truncation, 'trajectory_tokens');
  assert.equal(byTraj!.tokenIds.length, budget);

  // a prompt longer than the whole budget: no turn at all
  const [noRoom] = await rollout(new ScriptedPolicy(tok, tpl, { [qTraj]: [long] }), [item(problem(qTraj, '1'))], opts(tpl, { maxTrajectoryTokens: 5 }), pool);
  assert.equal(noRoom!.truncation, 'trajectory_tokens');
  assert.equal(noRoom!.turns.length, 0);
});

test('outcomes: wrong, tool_error, no_answer; python blocks and code-less tool requests become error observations', async () => {
  const tpl = getTemplate('mathagent');
  const tok = new ByteTokenizer(tpl);
  const qWrong = 'What is 6 times 7?';
  const qToolErr = 'What is 6 times 8?';
  const qNoAns = 'What is 6 times 9?';
  const qPy = 'What is 6 times 10?';
  const qEmpty = 'What is 6 times 11?';
  const scripts = {
    [qWrong]: ['```mathjs\n6 * 7\n```<|output|>', 'Hmm, \\boxed{41}.<|end|>'],
    [qToolErr]: ['```mathjs\nsix * 8\n```<|output|>', 'Then \\boxed{47}.<|end|>'],
    [qNoAns]: ['It is fifty-four.<|end|>'],
    [qPy]: ['```python\nprint(6*10)\n```<|output|>', 'OK, with mathjs:\n```mathjs\n6*10\n```<|output|>', '\\boxed{60}<|end|>'],
    [qEmpty]: ['Let me run it.<|output|>', '\\boxed{66}<|end|>'],
  };
  const items = [problem(qWrong, '42', 'a'), problem(qToolErr, '48', 'b'), problem(qNoAns, '54', 'c'), problem(qPy, '60', 'd'), problem(qEmpty, '66', 'e')].map((p) => item(p));
  const [w, te, na, py, empty] = await rollout(new ScriptedPolicy(tok, tpl, scripts), items, opts(tpl), pool);
  assert.equal(w!.outcome, 'wrong');
  assert.equal(w!.extractedAnswer, '41');
  assert.equal(te!.outcome, 'tool_error');
  assert.equal(te!.turns[0]!.observation!.output, 'Error: Undefined symbol six');
  assert.equal(te!.turns[0]!.observation!.error, true);
  assert.equal(na!.outcome, 'no_answer');
  assert.equal(na!.turns.length, 1);
  assert.equal(na!.extractedAnswer, null);
  assert.equal(py!.outcome, 'correct'); // correct despite the earlier tool error: the answer decides
  assert.deepEqual(py!.turns[0]!.toolCall, { lang: 'python', code: 'print(6*10)' });
  assert.equal(py!.turns[0]!.observation!.output, 'Error: python is not enabled; use ```mathjs');
  assert.equal(py!.turns[1]!.observation!.output, '60');
  assert.equal(empty!.turns[0]!.toolCall, null);
  assert.match(empty!.turns[0]!.observation!.output, /^Error: no code block found; write ```mathjs/);
  assert.equal(empty!.outcome, 'correct');
});

test('batching: at most batchSize per generate call, results in item order, generation never waits for a slow tool', async () => {
  const tpl = getTemplate('mathagent');
  const tok = new ByteTokenizer(tpl);
  const qs = ['Q one?', 'Q two?', 'Q three?', 'Q four?', 'Q five?'];
  const scripts: Record<string, string[]> = {};
  for (const [i, q] of qs.entries()) scripts[q] = [`\`\`\`mathjs\n${i} + 100\n\`\`\`<|output|>`, `\\boxed{${i + 100}}<|end|>`];
  const policy = new ScriptedPolicy(tok, tpl, scripts);
  const items = qs.map((q, i) => item(problem(q, String(i + 100), `p${i}`)));
  const ts = await rollout(policy, items, opts(tpl, { batchSize: 2 }), pool);
  assert.deepEqual(ts.map((t) => t.promptId), ['p0', 'p1', 'p2', 'p3', 'p4']);
  assert.ok(ts.every((t) => t.outcome === 'correct'));
  assert.ok(policy.requests.every((b) => b.length >= 1 && b.length <= 2), JSON.stringify(policy.requests.map((b) => b.length)));
  assert.equal(policy.requests.flat().length, 10);

  // A's tool call blocks until B has finished; if generation waited for tools this would never resolve
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const slowTools: ToolProvider = {
    session(): ToolSession {
      return {
        async run(code: string) {
          if (code === 'slow') await gate;
          return { output: code === 'slow' ? '1' : '2', error: false, durationMs: 0 };
        },
        dispose() {},
      };
    },
  };
  const order: string[] = [];
  const qa = 'Slow tool?';
  const qb = 'Fast model?';
  const p = new ScriptedPolicy(tok, tpl, {
    [qa]: ['```mathjs\nslow\n```<|output|>', '\\boxed{1}<|end|>'],
    [qb]: ['```mathjs\nfast\n```<|output|>', 'more\n```mathjs\nfast\n```<|output|>', '\\boxed{2}<|end|>'],
  });
  const fallback = setTimeout(() => release(), 10_000); // never leave the test hanging
  const ab = await rollout(p, [item(problem(qa, '1', 'A')), item(problem(qb, '2', 'B'))], opts(tpl), slowTools, {
    onFinish: (t) => { order.push(t.promptId); if (t.promptId === 'B') release(); },
  });
  clearTimeout(fallback);
  assert.deepEqual(order, ['B', 'A']);
  assert.deepEqual(ab.map((t) => t.outcome), ['correct', 'correct']);
});

test('a policy that throws rejects with a clear error; a tool that throws is an error observation', async () => {
  const tpl = getTemplate('mathagent');
  const tok = new ByteTokenizer(tpl);
  const q = 'Fail?';
  await assert.rejects(rollout(new ScriptedPolicy(tok, tpl, { [q]: [] }, { fail: true }), [item(problem(q, '1'))], opts(tpl), pool),
    /rollout: policy "scripted" failed to generate 1 turn\(s\): CUDA out of memory/);
  const broken: ToolProvider = { session: () => ({ run: () => Promise.reject(new Error('worker gone')), dispose() {} }) };
  const [t] = await rollout(new ScriptedPolicy(tok, tpl, { [q]: ['```mathjs\n1\n```<|output|>', '\\boxed{2}<|end|>'] }), [item(problem(q, '1'))], opts(tpl), broken);
  assert.equal(t!.turns[0]!.observation!.output, 'Error: the tool failed: worker gone');
  assert.equal(t!.outcome, 'tool_error');
  await assert.rejects(rollout(new ScriptedPolicy(tok, tpl, {}), [], opts(tpl, { maxTurns: 0 }), pool), /maxTurns must be an integer >= 1, got 0/);
  assert.deepEqual(await rollout(new ScriptedPolicy(tok, tpl, {}), [], opts(tpl), pool), []);
});

test('abort stops the rollout; a text-only policy is re-tokenised and flagged', async () => {
  const tpl = getTemplate('mathagent');
  const tok = new ByteTokenizer(tpl);
  const q = 'Abort me?';
  const ac = new AbortController();
  const p = new ScriptedPolicy(tok, tpl, { [q]: ['```mathjs\n1\n```<|output|>', '\\boxed{1}<|end|>'] }, { onGenerate: () => ac.abort() });
  await assert.rejects(rollout(p, [item(problem(q, '1'))], opts(tpl, { signal: ac.signal }), pool), /abort/i);
  assert.equal(p.requests.length, 1);

  const [t] = await rollout(new ScriptedPolicy(tok, tpl, { [q]: ['```mathjs\n3*3\n```<|output|>', '\\boxed{9}<|end|>'] }, { noIds: true }),
    [item(problem(q, '9'))], opts(tpl), pool);
  assert.equal(t!.retokenized, true);
  assert.equal(t!.outcome, 'correct');
  assert.equal(sides(t!, tok).model, '```mathjs\n3*3\n```<|output|>\\boxed{9}<|end|>');
  assert.deepEqual(t!.turns[0]!.action.logprobs, []);
});

test('renderDemo: real sandbox outputs, eos at the end, mask on the action pieces', async () => {
  const tpl = getTemplate('mathagent');
  const tok = new ByteTokenizer(tpl);
  const s = pool.session();
  const demo = {
    problem: problem('Each of 4321 boxes holds 1234 pens; 100 are lost. How many are left?', '5332014'),
    steps: [
      { text: 'Pens in all boxes:', code: 'a = 4321 * 1234' },
      { text: 'Minus the lost ones:', code: 'a - 100' },
      { text: 'There are \\boxed{5332014} pens left.', code: null },
    ],
    flawed: false,
  };
  const r = await renderDemo(demo, tpl, tok, s);
  assert.deepEqual(r.outputs, ['5332114', '5332014']); // 4321*1234 = 5,332,114 by hand
  const expected = `<|user|>${demo.problem.question}<|end|><|assistant|>`
    + 'Pens in all boxes:\n```mathjs\na = 4321 * 1234\n```<|output|>\n5332114\n<|/output|>\n'
    + 'Minus the lost ones:\n```mathjs\na - 100\n```<|output|>\n5332014\n<|/output|>\n'
    + 'There are \\boxed{5332014} pens left.<|end|>';
  assert.equal(r.text, expected);
  assert.deepEqual(r.tokenIds, tok.encode(expected)); // per-piece encoding equals whole-text encoding here
  const model = tok.decode(r.tokenIds.filter((_, i) => r.actionMask[i] === 1));
  assert.equal(model, 'Pens in all boxes:\n```mathjs\na = 4321 * 1234\n```<|output|>Minus the lost ones:\n```mathjs\na - 100\n```<|output|>There are \\boxed{5332014} pens left.<|end|>');
  assert.equal(r.tokenIds.at(-1), tok.eosId);
  s.dispose();
  await assert.rejects(renderDemo({ ...demo, steps: [] }, tpl, tok, pool.session()), /has no steps/);
  await assert.rejects(renderDemo({ ...demo, steps: [{ text: 'x', code: '1' }] }, tpl, tok, pool.session()), /last step .* must give the answer/);
});

test('request seeds depend on the problem, sample index, iteration and turn, not on the run or trajectory id', () => {
  const p = problem('What is 6*7?', '42');
  const a = { ...item(p, 3), id: 'run-A:traj', runId: 'run-A' };
  const b = { ...item(p, 3), id: 'run-B:other', runId: 'run-B' };
  assert.equal(requestSeed(7, a, 1), requestSeed(7, b, 1), 'two runs of one config draw the same samples');
  assert.notEqual(requestSeed(7, a, 1), requestSeed(7, item(p, 4), 1), 'another sample of the prompt');
  assert.notEqual(requestSeed(7, a, 1), requestSeed(7, a, 2), 'another turn');
  assert.notEqual(requestSeed(7, a, 1), requestSeed(7, { ...a, iteration: 3 }, 1), 'another iteration');
  assert.notEqual(requestSeed(7, a, 1), requestSeed(8, a, 1), 'another rollout seed');
  assert.notEqual(requestSeed(7, a, 1), requestSeed(7, item(problem('What is 6*8?', '48', 'test/other'), 3), 1), 'another problem');
});
