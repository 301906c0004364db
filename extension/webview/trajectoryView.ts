/** Rendering of one trajectory: outcome, question, turns (reasoning, highlighted tool call, output), tokens, raw text. */
import type { Turn } from '@mathagent/shared';
import type { TrajectoryView } from '../src/webviewProtocol';
import { ANNOTATION_LABELS } from '../src/webviewProtocol';
import { h } from './dom';
import { highlight, reasoningWithoutCode } from './highlight';

export interface RenderOptions {
  /** Turn to highlight as the stepping cursor (trajectory panel), or null. */
  focusedTurn: number | null;
  /** First diverging turn (pair/compare panels), or null. */
  divergeTurn: number | null;
  raw: boolean;
  tokens: boolean;
  /** Side-by-side columns show the question once above both. */
  showQuestion?: boolean;
}

const OUTCOME_TEXT: Record<string, string> = { correct: '✓ correct', wrong: '✗ wrong', tool_error: '⚠ tool error', truncated: '✂ truncated', no_answer: '∅ no answer' };

export function outcomeBadge(v: TrajectoryView): HTMLElement {
  if (v.outcome === null) return h('span', { class: 'badge live' }, '… sampling');
  return h('span', { class: `badge ${v.outcome}`, 'data-testid': 'outcome' }, OUTCOME_TEXT[v.outcome] ?? v.outcome);
}

function codeBlock(code: string, lang: string): HTMLElement {
  const pre = h('pre', { class: 'code', 'data-lang': lang });
  for (const t of highlight(code, lang)) pre.append(t.kind === 'ws' || t.kind === 'id' ? document.createTextNode(t.text) : h('span', { class: `tok-${t.kind}` }, t.text));
  return pre;
}

function fmtReward(r: number): string { return `${r >= 0 ? '+' : ''}${r.toFixed(3)}`; }

export function renderTurn(v: TrajectoryView, t: Turn, o: RenderOptions): HTMLElement {
  const i = t.index;
  const cls = ['turn'];
  if (o.focusedTurn === i) cls.push('focused');
  if (o.divergeTurn === i) cls.push('diverge');
  const counts = `${t.action.tokenIds.length} action tok (counted)${t.observation ? ` · ${t.observation.tokenIds.length} observation tok (masked)` : ''}`;
  const tr = v.turnRewards?.[i];
  const head = h('div', { class: 'turn-head' },
    h('span', { class: 'title' }, `Turn ${i + 1}`),
    o.divergeTurn === i ? h('span', { class: 'diverge-tag' }, '◆ first divergence') : null,
    h('span', { class: 'counts' }, counts),
    t.finishReason !== 'stop' ? h('span', { class: 'muted' }, `finish: ${t.finishReason}`) : null,
    tr !== undefined ? h('span', { class: `reward ${tr > 0 ? 'pos' : tr < 0 ? 'neg' : ''}`, title: 'implicit reward β·log(π/π_ref) of this turn\'s action tokens' }, `β·log π/π_ref ${fmtReward(tr)}`) : null,
  );
  const card = h('section', { class: cls.join(' '), 'data-turn': i, 'aria-label': `Turn ${i + 1}` }, head);
  const reasoning = reasoningWithoutCode(t.action.text, t.toolCall?.code ?? null);
  if (reasoning) card.append(h('div', { class: 'text reasoning' }, reasoning));
  if (t.toolCall) {
    card.append(h('div', { class: 'output-head' }, t.toolCall.lang ? `tool call (${t.toolCall.lang})` : 'tool call (no language tag)'),
      t.toolCall.code.trim() ? codeBlock(t.toolCall.code, t.toolCall.lang) : h('pre', { class: 'code muted' }, '(empty code block)'));
  }
  if (t.observation) {
    const ob = t.observation;
    card.append(
      h('div', { class: 'output-head' }, ob.error ? h('span', { class: 'err' }, '⚠ tool error') : 'output', ` · ${Math.round(ob.durationMs)} ms`),
      h('pre', { class: `output${ob.error ? ' err' : ''}`, 'data-error': ob.error ? 'true' : 'false' }, ob.output || '(no output)'),
    );
  }
  return card;
}

/** Token ranges of each turn in the flat sequence (prompt first, then action + observation per turn). */
export function turnRanges(v: TrajectoryView): Array<{ action: [number, number]; observation: [number, number] }> {
  let p = v.promptTokenIds.length;
  return v.turns.map((t) => {
    const a: [number, number] = [p, p + t.action.tokenIds.length];
    p = a[1];
    const ob: [number, number] = [p, p + (t.observation?.tokenIds.length ?? 0)];
    p = ob[1];
    return { action: a, observation: ob };
  });
}

const visible = (s: string) => s.replace(/\n/g, '↵\n').replace(/\t/g, '→');

export function renderTokens(v: TrajectoryView, focusedTurn: number | null): HTMLElement {
  const box = h('div', { class: 'box', 'data-testid': 'token-view' }, h('div', { class: 'label' }, 'Tokens the M-DPO loss counts'));
  box.append(h('div', { class: 'legend' },
    h('span', { class: 't act' }, 'action (mask 1, counted)'),
    h('span', { class: 't mask' }, 'prompt / observation (mask 0, masked out)'),
    v.retokenized ? h('span', { class: 'muted' }, '⚠ ids re-tokenised from text (remote policy)') : null));
  if (!v.tokenIds.length) { box.append(h('p', { class: 'muted' }, v.live ? 'Tokens appear once the trajectory is stored.' : 'No token ids stored for this trajectory.')); return box; }
  const ranges = turnRanges(v);
  const counted = v.actionMask.reduce<number>((a, b) => a + b, 0);
  box.append(h('p', { class: 'muted' }, `${v.tokenIds.length} tokens, ${counted} counted by the loss (${((100 * counted) / v.tokenIds.length).toFixed(1)}%)`));
  const strip = h('div', { class: 'tokens' });
  const turnOf = (i: number) => ranges.findIndex((r) => i >= r.action[0] && i < r.observation[1]);
  let lastTurn = -2;
  for (let i = 0; i < v.tokenIds.length; i++) {
    const ti = turnOf(i);
    if (ti !== lastTurn) { if (i > 0) strip.append(h('span', { class: 'sep' })); lastTurn = ti; }
    const act = v.actionMask[i] === 1;
    let lp = '';
    if (act && ti >= 0) {
      const j = i - ranges[ti]!.action[0];
      const l = v.turns[ti]!.action.logprobs[j];
      if (l !== undefined) lp = ` logπ=${l.toFixed(3)}`;
    }
    const text = v.tokenTexts?.[i] ?? `⟨${v.tokenIds[i]}⟩`;
    strip.append(h('span', { class: `t ${act ? 'act' : 'mask'}${ti === focusedTurn && ti >= 0 ? ' cur' : ''}`, title: `#${i} id ${v.tokenIds[i]} ${act ? 'counted' : 'masked'}${ti >= 0 ? ` · turn ${ti + 1}` : ' · prompt'}${lp}` }, visible(text)));
  }
  box.append(strip);
  return box;
}

export function renderRaw(v: TrajectoryView): HTMLElement {
  const box = h('div', { class: 'box raw', 'data-testid': 'raw-view' }, h('div', { class: 'label' }, `Exactly what the model saw${v.template ? ` (template ${v.template})` : ''}`));
  if (v.promptText !== null) box.append(h('div', { class: 'output-head' }, `prompt · ${v.promptTokenIds.length} tokens`), h('pre', { class: 'raw-prompt' }, v.promptText));
  for (const t of v.turns) {
    box.append(h('div', { class: 'output-head' }, `turn ${t.index + 1} action · ${t.action.tokenIds.length} tokens`), h('pre', { class: 'code' }, t.action.text));
    if (t.observation) box.append(h('div', { class: 'output-head' }, `turn ${t.index + 1} observation · ${t.observation.tokenIds.length} tokens`), h('pre', { class: `output${t.observation.error ? ' err' : ''}` }, t.observation.text));
  }
  if (v.tokenIds.length) {
    const d = h('details', {}, h('summary', {}, `token ids (${v.tokenIds.length})`), h('pre', {}, v.tokenIds.join(' ')));
    box.append(d);
  }
  return box;
}

export function renderSummary(v: TrajectoryView): HTMLElement {
  const meta = h('div', { class: 'meta' }, outcomeBadge(v));
  if (v.reward !== null) meta.append(h('span', { 'data-testid': 'reward' }, `reward ${v.reward}`));
  meta.append(h('span', {}, 'answer ', h('code', { 'data-testid': 'answer' }, v.extractedAnswer ?? '—')));
  if (v.reference !== null) meta.append(h('span', {}, 'reference ', h('code', {}, v.reference)));
  if (v.truncation) meta.append(h('span', { class: 'muted' }, `cut by ${v.truncation}`));
  meta.append(h('span', { class: 'muted' }, `it ${v.iteration} · ${v.split}${v.policy ? ` · policy ${v.policy}` : ''}`));
  return meta;
}

export function renderAnnotation(v: TrajectoryView): HTMLElement | null {
  const a = v.annotation;
  if (!a) return null;
  return h('div', { class: 'box annotation', 'data-testid': 'annotation' },
    h('div', { class: 'label' }, `annotation${a.turn !== null ? ` · turn ${a.turn + 1}` : ''}${a.author ? ` · ${a.author}` : ''}`),
    h('div', {}, h('strong', {}, `${ANNOTATION_LABELS[a.label] ?? a.label}`), a.rewardOverride !== null ? ` · reward override ${a.rewardOverride}` : ''),
    a.note ? h('div', { class: 'text' }, a.note) : null);
}

/** The body of a trajectory (question, turns, token/raw views), shared by the trajectory, pair and compare panels. */
export function renderTrajectoryBody(v: TrajectoryView, o: RenderOptions): HTMLElement {
  const root = h('div', { class: 'trajectory', 'data-id': v.id });
  root.append(renderSummary(v));
  const ann = renderAnnotation(v);
  if (ann) root.append(ann);
  if (o.showQuestion !== false) root.append(h('div', { class: 'box' }, h('div', { class: 'label' }, 'question'), h('div', { class: 'text', 'data-testid': 'question' }, v.question)));
  if (o.tokens) root.append(renderTokens(v, o.focusedTurn));
  if (o.raw) root.append(renderRaw(v));
  else {
    const turns = h('div', { class: 'turns' });
    for (const t of v.turns) turns.append(renderTurn(v, t, o));
    if (!v.turns.length) turns.append(h('p', { class: 'muted' }, v.live ? 'Waiting for the first turn…' : 'No turns.'));
    root.append(turns);
  }
  return root;
}
