"""Listing and describing models, as Open WebUI, Continue, Copilot and the ollama client do."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import ollama
from conftest import start_server, stop_server


def test_root_and_version_answer_like_ollama(http: httpx.Client) -> None:
    assert http.get("/").text == "Ollama is running"
    assert http.head("/").status_code == 200
    version = http.get("/api/version").json()["version"]
    # Copilot needs >= 0.6.4 and Open WebUI parses the version as dotted integers
    assert tuple(map(int, version.split("."))) >= (0, 6, 4)


def test_list_shows_every_model_with_details(client: ollama.Client) -> None:
    models = {m.model: m for m in client.list().models}
    assert {"tiny:latest", "tiny-fim:latest", "tiny-plain:latest", "smollm2:135m"} <= set(models)
    smol = models["smollm2:135m"]
    assert smol.size > 50_000_000
    assert len(smol.digest or "") == 64
    assert smol.details.family == "llama"
    assert smol.details.quantization_level == "Q4_1"
    assert smol.details.parameter_size == "135M"


def test_tags_carry_name_and_model(http: httpx.Client) -> None:
    models = http.get("/api/tags").json()["models"]
    for model in models:
        assert model["name"] == model["model"]
    assert {m["details"]["format"] for m in models if m["name"].startswith("tiny")} == {"gguf"}


def test_show_reads_the_gguf_metadata(client: ollama.Client) -> None:
    info = client.show("smollm2:135m")
    assert info.modelinfo["general.architecture"] == "llama"
    assert info.modelinfo["llama.context_length"] == 8192
    assert "completion" in (info.capabilities or [])
    assert "<|im_start|>" in (info.template or "")
    assert 'stop                           "<|im_end|>"' in (info.parameters or "")
    assert "num_ctx" in (info.parameters or "")


def test_show_accepts_the_legacy_name_key_and_implicit_latest(http: httpx.Client) -> None:
    # Continue sends {"name": ...}; "tiny" and "tiny:latest" are the same model
    response = http.post("/api/show", json={"name": "tiny"})
    assert response.status_code == 200
    assert response.json()["model_info"]["general.architecture"] == "llama"


def test_a_model_without_a_template_gets_a_family_fallback_and_says_so(client: ollama.Client) -> None:
    info = client.show("tiny-plain")
    assert info.modelinfo["localforge.template_source"].startswith("built-in")
    assert "built-in" in (info.modelfile or "")


def test_fim_capable_model_advertises_insert(client: ollama.Client) -> None:
    assert "insert" in (client.show("tiny-fim").capabilities or [])
    assert "insert" not in (client.show("tiny").capabilities or [])


def test_a_hanging_endpoint_never_slows_local_requests(tmp_path: Path, tiny_models: Path) -> None:
    """An OpenAI endpoint that accepts connections and never answers: listing its models takes
    the probe's whole timeout. Local requests are served from the last known list meanwhile."""
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(64)  # the kernel completes the handshakes; nobody ever reads or answers
    config = f"""
[openai]
refresh_s = 0.5
probe_timeout_s = 2.0

[[openai.endpoints]]
name = "hanging"
base_url = "http://127.0.0.1:{hanging.getsockname()[1]}/v1"
"""
    running = start_server(tmp_path, tiny_models, config)
    try:
        client = ollama.Client(host=running.url, timeout=60)
        client.generate("tiny", "hi", options={"num_predict": 1})  # loaded once, before timing
        slowest, until = 0.0, time.monotonic() + 12  # the registry's 5 s freshness runs out twice
        while time.monotonic() < until:
            started = time.monotonic()
            client.generate("tiny", "hi", options={"num_predict": 1})
            assert "tiny:latest" in {m.model for m in client.list().models}
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.25)
        assert slowest < 2.5, f"a local request waited {slowest:.1f} s for the hanging endpoint"
    finally:
        stop_server(running)
        hanging.close()
