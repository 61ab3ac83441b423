/**
 * Chat templates rendered with a real Jinja implementation (`@huggingface/jinja`), from a model's
 * tokenizer_config.json `chat_template` (or chat_template.jinja), with the variables HF
 * transformers' `apply_chat_template` passes: messages, add_generation_prompt, tools, the special
 * tokens (bos_token, eos_token, ...), plus any extra keyword (e.g. enable_thinking).
 */
import { Template } from '@huggingface/jinja';

export interface ChatContentPart {
  type?: string;
  text?: string;
}

export interface ChatMessage {
  readonly role: string;
  /** OpenAI allows an array of content parts; only text parts are rendered. */
  readonly content: string | ReadonlyArray<ChatContentPart> | null;
  readonly [key: string]: unknown;
}

export interface RenderOptions {
  /** Append the assistant turn's opening (default true, as for a generation request). */
  addGenerationPrompt?: boolean;
  /** OpenAI `tools` (passed to the template as `tools` when non-empty). */
  tools?: readonly unknown[];
  /** Extra template variables (OpenAI `chat_template_kwargs`, e.g. `{enable_thinking: false}`). */
  kwargs?: Readonly<Record<string, unknown>>;
  /**
   * End the prompt inside the last message, so the model continues it (vLLM's and transformers'
   * `continue_final_message`): rendered without the generation prompt and cut after the last
   * message's text. Not with addGenerationPrompt.
   */
  continueFinalMessage?: boolean;
}

export class ChatTemplateError extends Error {}

/** The marker transformers appends to the message it continues (continue_final_message). */
const CONTINUE_TAG = 'CONTINUE_FINAL_MESSAGE_TAG ';

/** A message's content as one string: text parts joined by "\n", as vLLM joins them; null is "". */
export function contentText(content: ChatMessage['content']): string {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  const texts: string[] = [];
  for (const p of content) if (typeof p?.text === 'string') texts.push(p.text);
  return texts.join('\n');
}

/** A compiled chat template plus the special-token strings it may reference. */
export class ChatTemplate {
  private readonly template: Template;
  /** The shipped default template is also written out in code (same output, no interpreter). */
  private readonly isDefault: boolean;

  constructor(
    readonly source: string,
    private readonly specialTokens: Readonly<Record<string, string>> = {},
  ) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new ChatTemplateError(`the chat template does not parse as Jinja: ${(err as Error).message}`);
    }
    this.isDefault = source === DEFAULT_CHATML_TEMPLATE;
  }

  render(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    if (opts.continueFinalMessage) return this.renderContinued(messages, opts);
    if (this.isDefault) {
      const fast = renderDefault(messages, opts.addGenerationPrompt ?? true);
      if (fast !== undefined) return fast;
    }
    return this.renderJinja(messages, opts);
  }

  /**
   * continue_final_message as transformers (5.x) does it: the last message's text gets a marker
   * appended, the conversation is rendered without a generation prompt, and the prompt ends where
   * the marker begins (trailing whitespace dropped too when the template trimmed the marker's
   * space), so whatever the template writes after the message (its end-of-turn tokens) is cut.
   */
  private renderContinued(messages: readonly ChatMessage[], opts: RenderOptions): string {
    if (opts.addGenerationPrompt) throw new ChatTemplateError('continue_final_message and add_generation_prompt cannot both be true');
    const last = messages[messages.length - 1];
    if (!last) throw new ChatTemplateError('continue_final_message needs a last message to continue');
    const final = contentText(last.content);
    const tagged = [...messages.slice(0, -1), { ...last, content: final + CONTINUE_TAG }];
    const rendered = this.renderJinja(tagged, { ...opts, addGenerationPrompt: false, continueFinalMessage: false });
    const at = rendered.lastIndexOf(CONTINUE_TAG.trim());
    if (at < 0 || !rendered.includes(final.trim()))
      throw new ChatTemplateError(
        'continue_final_message: the chat template does not render the last message as given, so the prompt cannot end inside it; send the request without continue_final_message',
      );
    return rendered.startsWith(CONTINUE_TAG, at) ? rendered.slice(0, at) : rendered.slice(0, at).trimEnd();
  }

  /** Through the Jinja interpreter, whatever the template (tests compare the default's fast path with it). */
  renderJinja(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    // Content parts become one string, as vLLM does for text-only models; other fields pass through.
    const msgs = messages.map((m) => (typeof m.content === 'string' ? m : { ...m, content: contentText(m.content) }));
    const ctx: Record<string, unknown> = {
      ...this.specialTokens,
      ...opts.kwargs,
      messages: msgs,
      add_generation_prompt: opts.addGenerationPrompt ?? true,
    };
    if (opts.tools && opts.tools.length > 0) ctx.tools = opts.tools;
    try {
      return this.template.render(ctx);
    } catch (err) {
      throw new ChatTemplateError(`the chat template failed on these messages: ${(err as Error).message}`);
    }
  }
}

/**
 * The shipped default: Qwen2.5-style ChatML without tools. Like Qwen2.5's own template it adds a
 * default system message when the conversation has none, which is what makes unrelated user
 * prompts share a first KV block.
 */
export const DEFAULT_SYSTEM_PROMPT = 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.';
export const DEFAULT_CHATML_TEMPLATE =
  "{%- if not messages or messages[0]['role'] != 'system' %}" +
  `{{- '<|im_start|>system\\n${DEFAULT_SYSTEM_PROMPT}<|im_end|>\\n' }}` +
  '{%- endif %}' +
  '{%- for message in messages %}' +
  "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}" +
  '{%- endfor %}' +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/**
 * DEFAULT_CHATML_TEMPLATE written out: the router renders every chat request with it, and the Jinja
 * interpreter costs several times the string concatenation it amounts to. Undefined (use Jinja)
 * when a role is not a string. The template reads only roles, contents and add_generation_prompt.
 */
function renderDefault(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string | undefined {
  let out = messages.length === 0 || messages[0]!.role !== 'system' ? `<|im_start|>system\n${DEFAULT_SYSTEM_PROMPT}<|im_end|>\n` : '';
  for (const m of messages) {
    if (typeof m.role !== 'string') return undefined;
    out += `<|im_start|>${m.role}\n${typeof m.content === 'string' ? m.content : contentText(m.content)}<|im_end|>\n`;
  }
  return addGenerationPrompt ? `${out}<|im_start|>assistant\n` : out;
}

/** Special-token variables from a tokenizer_config.json (values may be strings or AddedToken objects). */
export function specialTokenVars(config: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token', 'sep_token', 'cls_token', 'mask_token']) {
    const v = config[key];
    if (typeof v === 'string') out[key] = v;
    else if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string')
      out[key] = (v as { content: string }).content;
  }
  return out;
}

/**
 * The `chat_template` of a tokenizer_config.json: a string, or a list of named templates ("default"
 * wins, else the first). `name` picks another named one (transformers uses "tool_use" for a request
 * with tools when the list has it); undefined when there is none by that name.
 */
export function templateFromConfig(config: Record<string, unknown>, name?: string): string | undefined {
  const t = config.chat_template;
  if (typeof t === 'string') return name === undefined ? t : undefined;
  if (Array.isArray(t)) {
    const named = t.filter((x): x is { name: string; template: string } => typeof x?.name === 'string' && typeof x?.template === 'string');
    if (name !== undefined) return named.find((x) => x.name === name)?.template;
    return (named.find((x) => x.name === 'default') ?? named[0])?.template;
  }
  return undefined;
}
