"""Modelfile-style Go templates and the fallback chat templates."""

from __future__ import annotations

from pathlib import Path

import ollama
import pytest
from conftest import start_server, stop_server
from tiny_gguf import write_tiny_llama

from localforge.errors import BadRequest
from localforge.gguf import gotemplate, prompts
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


def test_a_model_without_an_end_of_turn_it_learned_gets_a_default_cap(tmp_path: Path) -> None:
    """A base model given a built-in template never learned that template's end of turn: it
    would generate until the context is full (minutes, for Gemma 3 270M base). Such a model
    gets a default num_predict, shown in /api/show; a request's own num_predict still wins."""
    models = tmp_path / "models"
    models.mkdir()
    # thousands of plain words make the end-of-text token rare: greedy runs on and on
    write_tiny_llama(models / "babbler.gguf", chat_template=None, extra_vocab=4000, seed=5)
    running = start_server(tmp_path, models, "n_threads = 1\n")
    try:
        client = ollama.Client(host=running.url, timeout=120)
        shown = client.show("babbler")
        cap = int(dict(line.split() for line in (shown.parameters or "").splitlines())["num_predict"])
        assert 0 < cap <= 1024
        assert "num_predict" in (shown.modelfile or "") and "end of turn" in (shown.modelfile or "")
        ask = [{"role": "user", "content": "Tell me about the capital of France."}]
        reply = client.chat("babbler", messages=ask, options={"temperature": 0})
        assert reply.done_reason == "length" and reply.eval_count == cap
        asked = client.chat("babbler", messages=ask, options={"temperature": 0, "num_predict": 7})
        assert asked.eval_count == 7
    finally:
        stop_server(running)
