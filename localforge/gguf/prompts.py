"""Turning a chat or generate request into the text a model completes, and its answer back into
text and tool calls.

Templates come from the GGUF metadata (`tokenizer.chat_template`, Jinja as Hugging Face writes
them). A model without one gets a built-in template chosen from the special tokens it knows, as
Ollama ships a template per model family; the choice is shown in /api/show. A Modelfile-style
Go template (from /api/create or a request's `template`) is rendered with gotemplate.
"""

from __future__ import annotations

import functools
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from localforge.errors import BadRequest
from localforge.gguf import gotemplate
from localforge.inference import Inference, Message, ToolCall

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA = (
    "{{ bos_token }}{% set sys = namespace(text='') %}"
    "{% for m in messages %}{% if m.role == 'system' %}{% set sys.text = m.content + '\n\n' %}"
    "{% else %}<start_of_turn>{{ 'model' if m.role == 'assistant' else 'user' }}\n"
    "{% if loop.index0 <= 1 and m.role == 'user' %}{{ sys.text }}{% endif %}"
    "{{ m.content }}<end_of_turn>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
    "{{ m.content }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% set sys = namespace(text='') %}"
    "{% for m in messages %}{% if m.role == 'system' %}{% set sys.text = m.content + '\n\n' %}"
    "{% elif m.role == 'user' %}[INST] {{ sys.text if loop.last else '' }}{{ m.content }}[/INST]"
    "{% else %} {{ m.content }}{{ eos_token }}{% endif %}{% endfor %}"
)
PHI3 = (
    "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
PHI4 = (
    "{% for m in messages %}<|im_start|>{{ m.role }}<|im_sep|>{{ m.content }}<|im_end|>{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant<|im_sep|>{% endif %}"
)
PLAIN = (
    "{% for m in messages %}{{ m.role | capitalize }}: {{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
# (a special token the vocabulary must contain, template name, template, stop strings)
FALLBACKS = (
    ("<start_of_turn>", "gemma", GEMMA, ["<end_of_turn>"]),
    ("<|start_header_id|>", "llama3", LLAMA3, ["<|eot_id|>"]),
    ("<|im_sep|>", "phi4", PHI4, ["<|im_end|>"]),
    ("<|im_start|>", "chatml", CHATML, ["<|im_end|>"]),
    ("[INST]", "mistral", MISTRAL, ["</s>"]),
    ("<|assistant|>", "phi3", PHI3, ["<|end|>"]),
)
TOOL_INSTRUCTIONS = (
    "You can call these tools:\n{tools}\n\nTo call a tool, answer only with "
    "<tool_call>{{\"name\": <tool name>, \"arguments\": <arguments object>}}</tool_call>."
)
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
# a template is the client's code (a request's `template`, a created model's): its output and
# its time are bounded, and it runs in a worker thread (see LlamaCppBackend.infer)
MAX_PROMPT_CHARS = 16 * 2**20
TEMPLATE_SECONDS = 10.0


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's sandbox, where `'a' * 50000000` or `9 ** 9 ** 9` is an error, not gigabytes."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise TemplateError("exponent too large")
        if operator == "*":
            sized, count = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
            if isinstance(sized, (str, list, tuple)) and isinstance(count, int) \
                    and len(sized) * count > MAX_PROMPT_CHARS:
                raise TemplateError("a repeated string or list would be too large")
        return super().call_binop(context, operator, left, right)


_ENV = LimitedSandbox(trim_blocks=True, lstrip_blocks=True)
_ENV.globals["raise_exception"] = lambda message: (_ for _ in ()).throw(TemplateError(message))


@dataclass(slots=True)
class ChatTemplate:
    text: str
    source: str  # "gguf", "modelfile", or "built-in <family>"
    stop: list[str]


def choose(gguf_template: str, vocabulary: set[str], modelfile_template: str = "") -> ChatTemplate:
    """The template a model uses: Modelfile's, else the GGUF's, else a family fallback."""
    if modelfile_template:
        return ChatTemplate(modelfile_template, "modelfile", [])
    if gguf_template:
        stops = [stop for token, _, _, family_stops in FALLBACKS if token in gguf_template
                 for stop in family_stops]
        return ChatTemplate(gguf_template, "gguf", stops)
    for token, family, text, stops in FALLBACKS:
        if token in vocabulary:
            return ChatTemplate(text, f"built-in {family}", stops)
    return ChatTemplate(PLAIN, "built-in plain", ["\nUser:"])


def _message_dict(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_name:
        out["name"] = message.tool_name
    return out


def _with_tool_instructions(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    text = TOOL_INSTRUCTIONS.format(tools="\n".join(json.dumps(t) for t in tools))
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": messages[0]["content"] + "\n\n" + text}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


@functools.lru_cache(maxsize=64)
def _compiled(text: str) -> Template:
    """Compiling a chat template takes milliseconds; a model's template is compiled once."""
    return _ENV.from_string(text)


def render_chat(template: ChatTemplate, request: Inference, bos: str, eos: str,
                limit: int = MAX_PROMPT_CHARS, seconds: float = TEMPLATE_SECONDS) -> str:
    messages = [_message_dict(m) for m in request.messages]
    if request.system is not None and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": request.system})
    text = request.template or template.text
    if gotemplate.is_go_template(text):
        return _render_go(text, _go_chat_values(messages, request), limit)
    if request.tools and "tools" not in text:
        messages = _with_tool_instructions(messages, request.tools)
    return _render_jinja(text, limit, seconds, messages=messages, tools=request.tools or None,
                         add_generation_prompt=True, bos_token=bos, eos_token=eos)


def trial_render(text: str) -> None:
    """Render a template over a short conversation, as /api/create does before it keeps one:
    a template that fails, or renders nothing, is refused then, not at every later chat."""
    request = Inference(model="trial", kind="chat", system="You are helpful.", messages=[
        Message(role="user", content="Hello"), Message(role="assistant", content="Hi."),
        Message(role="user", content="How are you?")])
    out = render_chat(ChatTemplate(text, "modelfile", []), request, "<s>", "</s>", limit=2**20,
                      seconds=2.0)
    if not out.strip():
        raise BadRequest("template: it renders an empty prompt")


def _render_jinja(text: str, limit: int, seconds: float = TEMPLATE_SECONDS, **values: Any) -> str:
    """Render with the output capped at `limit` characters and the time at `seconds`."""
    deadline = time.monotonic() + seconds
    out: list[str] = []
    size = 0
    try:
        for piece in _compiled(text).generate(**values):
            size += len(piece)
            if size > limit:
                raise BadRequest(f"the prompt is longer than {limit} characters, more than the "
                                 "model's context can hold")
            if time.monotonic() > deadline:
                raise BadRequest(f"chat template took longer than {seconds:.0f} s")
            out.append(piece)
    except BadRequest:
        raise
    except Exception as exc:  # a template is code: any error in it is the template's, not ours
        raise BadRequest(f"chat template failed: {type(exc).__name__}: {exc}") from exc
    return "".join(out)


def _render_go(text: str, values: dict[str, Any], limit: int) -> str:
    try:
        out = gotemplate.render(text, values)
    except RecursionError as exc:
        raise BadRequest("template: nested too deeply") from exc
    if len(out) > limit:
        raise BadRequest(f"the prompt is longer than {limit} characters, more than the "
                         "model's context can hold")
    return out


def _go_chat_values(messages: list[dict[str, Any]], request: Inference) -> dict[str, Any]:
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    values = {
        "System": system, "Prompt": last_user, "Response": "", "Suffix": request.suffix,
        "Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages],
        "Tools": request.tools,
    }
    return values


def render_generate(template: ChatTemplate, request: Inference, bos: str, eos: str,
                    limit: int = MAX_PROMPT_CHARS) -> str:
    """/api/generate: the prompt goes through the template unless `raw` is set."""
    if request.raw:
        return request.prompt
    text = request.template or template.text
    if gotemplate.is_go_template(text):
        values = {"System": request.system or "", "Prompt": request.prompt, "Response": "",
                  "Suffix": request.suffix, "Messages": []}
        return _render_go(text, values, limit)
    chat = Inference(model=request.model, kind="chat", system=request.system,
                     messages=[Message(role="user", content=request.prompt)], template=text)
    return render_chat(template, chat, bos, eos, limit)


def parse_tool_calls(text: str, tools: list[dict[str, Any]]) -> tuple[str, list[ToolCall]]:
    """Split a model's answer into its text and the tool calls it made (Hermes `<tool_call>` or bare JSON)."""
    if not tools:
        return text, []
    known = {t.get("function", {}).get("name") for t in tools}
    bodies = _TOOL_CALL.findall(text)
    rest = _TOOL_CALL.sub("", text).strip() if bodies else text
    if not bodies and text.strip().startswith("{"):
        bodies, rest = [text.strip()], ""
    calls: list[ToolCall] = []
    for body in bodies:
        call = _tool_call(body, known, len(calls))
        if call is None:
            return text, []
        calls.append(call)
    return rest, calls


def _tool_call(body: str, known: set[str | None], index: int) -> ToolCall | None:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("name") not in known:
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            arguments = {"value": arguments}
    if not isinstance(arguments, dict):
        arguments = {"value": arguments}
    return ToolCall(name=data["name"], arguments=arguments, index=index)


def tool_call_schema(tools: list[dict[str, Any]], choice: str | dict[str, Any] | None) -> dict[str, Any]:
    """A JSON schema that only admits a call to one of the tools (for OpenAI's tool_choice)."""
    if isinstance(choice, dict):
        wanted = choice.get("function", {}).get("name")
        tools = [t for t in tools if t.get("function", {}).get("name") == wanted] or tools
    options = [
        {"type": "object", "properties": {
            "name": {"const": t["function"]["name"]},
            "arguments": t["function"].get("parameters") or {"type": "object"}},
         "required": ["name", "arguments"]}
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}
