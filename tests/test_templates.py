"""Modelfile-style Go templates and the fallback chat templates."""

from __future__ import annotations

import pytest

from localforge.backends import gotemplate, prompts
from localforge.errors import BadRequest
from localforge.inference import Inference, Message

OLLAMA_STYLE = ("{{- if .System }}<|system|>{{ .System }}<|end|>{{ end }}"
                "{{ range .Messages }}<|{{ .Role }}|>{{ .Content }}<|end|>{{ end }}<|assistant|>")


def test_go_template_renders_system_and_messages() -> None:
    out = gotemplate.render(OLLAMA_STYLE, {"System": "be brief", "Messages": [
        {"Role": "user", "Content": "hi"}, {"Role": "assistant", "Content": "hello"}]})
    assert out == "<|system|>be brief<|end|><|user|>hi<|end|><|assistant|>hello<|end|><|assistant|>"


def test_go_template_if_else_eq_and_trim() -> None:
    text = '{{ range .Messages }}{{ if eq .Role "user" }}Q: {{ else }}A: {{ end }}{{ .Content }}\n{{- end }}'
    messages = [{"Role": "user", "Content": "x"}, {"Role": "assistant", "Content": "y"}]
    out = gotemplate.render(text, {"Messages": messages})
    assert out == "Q: xA: y"
    assert gotemplate.render("{{ if .Suffix }}S{{ else if .Prompt }}P{{ else }}N{{ end }}",
                             {"Suffix": "", "Prompt": "p"}) == "P"


def test_unsupported_go_template_is_refused() -> None:
    with pytest.raises(BadRequest):
        gotemplate.compile_template("{{ range .Messages }}{{ json .Content }}{{ end }}")
    with pytest.raises(BadRequest):
        gotemplate.compile_template("{{ if .System }}unclosed")


def test_fallback_template_follows_the_vocabulary() -> None:
    assert prompts.choose("", {"<start_of_turn>", "<end_of_turn>"}).source == "built-in gemma"
    assert prompts.choose("", {"<|im_start|>"}).source == "built-in chatml"
    assert prompts.choose("", set()).source == "built-in plain"
    assert prompts.choose("{{ messages }}", {"<|im_start|>"}).source == "gguf"


def test_gemma_fallback_folds_the_system_prompt_into_the_first_turn() -> None:
    template = prompts.choose("", {"<start_of_turn>"})
    request = Inference(model="g", kind="chat", system="Be terse.",
                        messages=[Message("user", "Capital of France?")])
    text = prompts.render_chat(template, request, "<bos>", "<eos>")
    assert text == "<bos><start_of_turn>user\nBe terse.\n\nCapital of France?<end_of_turn>\n<start_of_turn>model\n"


def test_raw_generate_skips_the_template() -> None:
    template = prompts.choose("", {"<|im_start|>"})
    request = Inference(model="x", kind="generate", prompt="<|im_start|>raw", raw=True)
    assert prompts.render_generate(template, request, "", "") == "<|im_start|>raw"
