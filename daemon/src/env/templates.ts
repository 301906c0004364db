/**
 * Chat templates: how a question, the model's turns and the tool's observations are laid out as text.
 *
 * Convention shared by every template (and by the Policy interface): a stop string that ends a model turn is
 * part of the model's action (it was sampled). So the text that follows an action, the observation, starts
 * right after the stop string, and the observation is the only text not written by the model.
 *
 * A model turn asks for execution when it contains a code block and no `\boxed{}` answer (the paper's rule:
 * `"boxed" not in output and "```python" in output`), whichever stop string ended it.
 */

export interface ChatTemplate {
  readonly name: string;
  readonly description: string;
  /** Strings that tokenizers built for this template map to one id each. */
  readonly specialTokens: string[];
  /** The prompt up to where the model starts writing its first turn. */
  renderPrompt(question: string): string;
  /** The text appended after a model turn that requested execution (not the model's: masked out). */
  renderObservation(output: string, error: boolean): string;
  /** A model turn that calls the tool, as a demonstration writes it (ends with the stop that asks for execution). */
  renderToolCall(text: string, code: string, lang?: string): string;
  /** The final model turn (reasoning and `\boxed{answer}`), ending with eos. */
  renderFinal(text: string): string;
  /** Generation stops right after any of these (stop strings are part of the action). */
  readonly stop: string[];
  /** The stop string that means "run my code" when it is not the end of the turn anyway; null when none. */
  readonly toolStop: string | null;
  /** End of the model's final turn. */
  readonly eos: string;
  /** Code-block tags this template writes; the first one is used to render demonstrations. */
  readonly codeBlockLangs: string[];
  /** Beginning-of-sequence text a tokenizer/server prepends itself (not part of renderPrompt's text). */
  readonly bos: string | null;
}

/** Join reasoning text and a fenced block with one newline, without doubling an existing one. */
function fence(text: string, code: string, lang: string): string {
  const sep = text === '' || text.endsWith('\n') ? '' : '\n';
  return `${text}${sep}\`\`\`${lang}\n${code.replace(/\n+$/, '')}\n\`\`\``;
}

/**
 * `mathagent`: our own byte-level models. `<|output|>` is the model's request to run its code, the observation
 * is wrapped in `<|output|>...<|/output|>`, and `<|end|>` ends the final turn. Each special string is one id.
 *
 *   <|user|>{question}<|end|><|assistant|>{reasoning}\n```mathjs\n{code}\n```<|output|>
 *   \n{output}\n<|/output|>\n{reasoning} ... \boxed{answer}<|end|>
 */
const mathagent: ChatTemplate = {
  name: 'mathagent',
  description: 'Default template of MathAgent models: mathjs blocks, <|output|> tool marker, <|end|> eos.',
  specialTokens: ['<|pad|>', '<|user|>', '<|assistant|>', '<|end|>', '<|output|>', '<|/output|>'],
  renderPrompt: (question) => `<|user|>${question}<|end|><|assistant|>`,
  renderObservation: (output) => `\n${output}\n<|/output|>\n`,
  renderToolCall: (text, code, lang = 'mathjs') => `${fence(text, code, lang)}<|output|>`,
  renderFinal: (text) => `${text}<|end|>`,
  stop: ['<|output|>', '<|end|>'],
  toolStop: '<|output|>',
  eos: '<|end|>',
  codeBlockLangs: ['mathjs'],
  bos: null,
};

/**
 * `gemma`: the paper's Gemma-it format, as in the authors' inference code (WeiXiongUST/Building-Math-Agents-with-
 * Multi-Turn-Iterative-Preference-Learning, inference/utils/utils.py `construct_prompt` and
 * inference/infer_data/infer_eval.py): prompt `<bos><start_of_turn>user\n{question}<end_of_turn>\n<start_of_turn>model\n`;
 * a model turn is reasoning plus a ```python block and ends at `<end_of_turn>`; the code output comes back as a
 * user turn: `<end_of_turn>\n<start_of_turn>user\n```output\n{result}\n```<end_of_turn>\n<start_of_turn>model\n`.
 * Their stops were `<end_of_turn>`, `<eos>`, "```output", `<start_of_turn>`, removed from the text by vLLM; here
 * the stop is part of the action, so the observation starts after `<end_of_turn>`. We stop only at
 * `<end_of_turn>`: with the stop kept in the action, stopping at "```output" (a model writing its own output
 * block) would leave a dangling fence before the user turn. `<bos>` is left to the tokenizer/server.
 */
const gemma: ChatTemplate = {
  name: 'gemma',
  description: 'The paper\'s Gemma-it chat format: code in model turns, ```output blocks in user turns.',
  specialTokens: ['<bos>', '<eos>', '<pad>', '<start_of_turn>', '<end_of_turn>'],
  renderPrompt: (question) => `<start_of_turn>user\n${question}<end_of_turn>\n<start_of_turn>model\n`,
  renderObservation: (output) => `\n<start_of_turn>user\n\`\`\`output\n${output}\n\`\`\`<end_of_turn>\n<start_of_turn>model\n`,
  renderToolCall: (text, code, lang = 'mathjs') => `${fence(text, code, lang)}<end_of_turn>`,
  renderFinal: (text) => `${text}<end_of_turn>`,
  stop: ['<end_of_turn>'],
  toolStop: null,
  eos: '<end_of_turn>',
  codeBlockLangs: ['mathjs', 'python'],
  bos: '<bos>',
};

/**
 * `tora`: ToRA-style single assistant turn (`<|user|>\n{question}\n<|assistant|>\n`), code in fenced blocks,
 * the model stops at "```output" and the interpreter's result follows inside that block:
 * "```python\n{code}\n```\n```output\n{result}\n```\n". `</s>` ends the solution.
 */
const tora: ChatTemplate = {
  name: 'tora',
  description: 'ToRA-style: code blocks, the model opens ```output and the tool fills it in.',
  specialTokens: ['<s>', '</s>'],
  renderPrompt: (question) => `<|user|>\n${question}\n<|assistant|>\n`,
  renderObservation: (output) => `\n${output}\n\`\`\`\n`,
  renderToolCall: (text, code, lang = 'mathjs') => `${fence(text, code, lang)}\n\`\`\`output`,
  renderFinal: (text) => `${text}</s>`,
  stop: ['```output', '</s>'],
  toolStop: '```output',
  eos: '</s>',
  codeBlockLangs: ['mathjs', 'python'],
  bos: '<s>',
};

const TEMPLATES: Record<string, ChatTemplate> = { mathagent, gemma, tora };

export const TEMPLATE_NAMES: readonly string[] = Object.keys(TEMPLATES);
export const DEFAULT_TEMPLATE = 'mathagent';

export function getTemplate(name: string): ChatTemplate {
  const t = Object.prototype.hasOwnProperty.call(TEMPLATES, name) ? TEMPLATES[name] : undefined;
  if (!t) throw new Error(`unknown chat template "${name}"; known templates: ${TEMPLATE_NAMES.join(', ')}`);
  return t;
}

/** Which stop string the text ends with (the longest match), or null. */
export function endingStop(text: string, stops: readonly string[]): string | null {
  let best: string | null = null;
  for (const s of stops) if (s && text.endsWith(s) && (!best || s.length > best.length)) best = s;
  return best;
}

/** The text without the stop string it ends with (if any). */
export function stripStop(text: string, stops: readonly string[]): string {
  const s = endingStop(text, stops);
  return s ? text.slice(0, text.length - s.length) : text;
}
