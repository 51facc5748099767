"""The chat templates Ollama-library models carry, and the prompt a pulled model really gets.

The fixtures are the TEMPLATE layers of the library's common families (written down from the
library; tool-calling branches kept, since they are what makes them hard). A GGUF that carries its
own `tokenizer.chat_template` uses that; one that does not gets the library template when
LocalForge's Go subset can render it, else the built-in template of its family.
"""

from __future__ import annotations

import pytest

from localforge.gguf import prompts
from localforge.inference import Inference, Message
from localforge.store import library

LLAMA3 = '''{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>
{{- if .System }}

{{ .System }}
{{- end }}
{{- if .Tools }}

You are a helpful assistant with tool calling capabilities.
{{- end }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>
{{- if .ToolCalls }}
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}
{{- else }}

{{ .Content }}
{{- end }}{{ if not $last }}<|eot_id|>{{ end }}
{{- end }}
{{- end }}'''

QWEN = '''{{- if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}'''

GEMMA = '''{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}'''

MISTRAL = '''{{- range $index, $_ := .Messages }}
{{- if eq .Role "user" }}
{{- if and (eq (len (slice $.Messages $index)) 1) $.Tools }}[AVAILABLE_TOOLS] {{ $.Tools }}[/AVAILABLE_TOOLS]
{{- end }}[INST] {{ if and $.System (eq (len (slice $.Messages $index)) 1) }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }}
{{- if .Content }} {{ .Content }}
{{- end }}</s>
{{- end }}
{{- end }}'''

PHI3 = '''{{ if .System }}<|system|>
{{ .System }}<|end|>
{{ end }}{{ if .Prompt }}<|user|>
{{ .Prompt }}<|end|>
{{ end }}<|assistant|>
{{ .Response }}<|end|>'''

PHI4 = '''{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}<|im_sep|>
{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_end|>
<|im_start|>assistant<|im_sep|>
{{ end }}
{{- end }}'''

# family: (library template, special tokens of its vocabulary, what the prompt must contain, its end)
FAMILIES = {
    "llama3": (LLAMA3, {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
               "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
               "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    "qwen": (QWEN, {"<|im_start|>", "<|im_end|>"},
             "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
             "<|im_start|>assistant\n"),
    "gemma": (GEMMA, {"<start_of_turn>", "<end_of_turn>"},
              "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n", "<start_of_turn>model\n"),
    "mistral": (MISTRAL, {"[INST]", "[/INST]"}, "[INST] Hi[/INST] Hello</s>[INST] Be brief.\n\nAgain?[/INST]",
                "[/INST]"),
    "phi3": (PHI3, {"<|user|>", "<|assistant|>", "<|end|>"},
             "<|system|>\nBe brief.<|end|>\n<|user|>\nAgain?<|end|>\n", "<|assistant|>\n"),
    "phi4": (PHI4, {"<|im_start|>", "<|im_sep|>", "<|im_end|>"},
             "<|im_start|>system<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>Hi<|im_end|>",
             "<|im_start|>assistant<|im_sep|>"),
}


def conversation(family: str) -> Inference:
    if family in ("mistral", "phi3"):  # the second turn shows history and where the system goes
        turns = [Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Again?")]
    else:
        turns = [Message("user", "Hi")]
    return Inference(model=family, kind="chat", system="Be brief.", messages=turns)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_pulled_model_without_its_own_template_gets_its_familys_format(family: str) -> None:
    template_text, vocabulary, contains, ending = FAMILIES[family]
    kept = library.usable_template(template_text)
    chosen = prompts.choose("", vocabulary, kept)
    prompt = prompts.render_chat(chosen, conversation(family), "", "</s>")
    assert contains in prompt, (chosen.source, prompt)
    assert prompt.endswith(ending), (chosen.source, prompt)


def test_legacy_templates_are_cut_at_the_response() -> None:
    assert library.usable_template(PHI3).endswith("<|assistant|>\n")
    assert ".Response" not in library.usable_template(PHI3)


def test_the_ggufs_own_template_wins() -> None:
    chosen = prompts.choose("{{ messages }}", {"<|im_start|>"}, "")
    assert chosen.source == "gguf"
