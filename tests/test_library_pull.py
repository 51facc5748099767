"""Pulls from the Ollama library through the registry protocol, against a stand-in registry on
loopback, with the official ollama client; and Hugging Face pulls of a gated repository."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest
from conftest import RunningServer, listed, start_server, stop_server
from hub_server import Hub, start_hub
from tiny_gguf import write_tiny_llama

CHATML_GO = ("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
             "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
             "<|im_start|>assistant\n")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("library-ggufs")
    made = {name: write_tiny_llama(folder / f"{name}.gguf", seed=20 + seed)
            for seed, name in enumerate(["plain", "tagged", "resume", "corrupt", "gated"])}
    made["bare"] = write_tiny_llama(folder / "bare.gguf", chat_template=None, seed=30)
    return {name: path.read_bytes() for name, path in made.items()}


@pytest.fixture(scope="module")
def registry(ggufs: dict[str, bytes]) -> Iterator[Hub]:
    running = start_hub()
    running.publish("library/tinyllama:latest", {
        "model": ggufs["plain"], "template": CHATML_GO.encode(), "system": b"You are terse.",
        "params": json.dumps({"temperature": 0.3, "stop": ["<|im_end|>"], "unknown_knob": 1}).encode(),
        "license": b"MIT License", "messages": json.dumps([{"role": "user", "content": "hi"},
                                                           {"role": "assistant", "content": "hello"}]).encode()})
    running.publish("someone/tinychat:q8", {"model": ggufs["tagged"]})
    running.publish("library/resumable:latest", {"model": ggufs["resume"]})
    running.publish("library/corrupt:latest", {"model": ggufs["corrupt"]}, corrupt="model")
    running.publish("library/badtemplate:latest", {"model": ggufs["plain"], "template": b"{{ .Prompt }}"},
                    corrupt="template")
    running.publish("library/bare:latest", {"model": ggufs["bare"], "template": CHATML_GO.encode()})
    running.add("gated/tiny", "tiny-Q4_K_M.gguf", ggufs["gated"])
    running.tokens["gated/tiny"] = "hf_secret"
    yield running
    running.stop()


@pytest.fixture(scope="module")
def library_server(tmp_path_factory: pytest.TempPathFactory, registry: Hub) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("library"), tmp_path_factory.mktemp("library-models"),
                           env={"LOCALFORGE_REGISTRY": registry.url, "HF_ENDPOINT": registry.url,
                                "HF_TOKEN": "hf_secret"})
    yield running
    stop_server(running)


@pytest.fixture
def client(library_server: RunningServer) -> ollama.Client:
    return ollama.Client(host=library_server.url, timeout=60)


def show(client: ollama.Client, model: str) -> dict[str, Any]:
    return httpx.post(f"{client._client.base_url}/api/show", json={"model": model}).json()  # type: ignore[no-any-return]


def test_a_library_name_pulls_every_layer_with_ollamas_progress(
        client: ollama.Client, registry: Hub, ggufs: dict[str, bytes], library_server: RunningServer) -> None:
    lines = list(client.pull("tinyllama", stream=True))
    statuses = [line.status for line in lines]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    model = sha256(ggufs["plain"])
    progress = [line for line in lines if line.digest == f"sha256:{model}"]
    assert progress and progress[0].status == f"pulling {model[:12]}"
    assert progress[-1].total == progress[-1].completed == len(ggufs["plain"])
    assert len({line.digest for line in lines if line.digest}) == 7  # 6 layers and the config
    assert "tinyllama:latest" in listed(client)

    shown = show(client, "tinyllama")
    assert shown["system"] == "You are terse." and shown["license"] == "MIT License"
    assert 'temperature                    0.3' in shown["parameters"]
    assert "unknown_knob" not in shown["parameters"]
    stored = json.loads((library_server.models_dir / "manifests" / "tinyllama" / "latest").read_text())
    assert stored["messages"][0]["content"] == "hi"
    # the GGUF has its own chat template, which wins over the library's Go template
    assert shown["model_info"]["localforge.template_source"] == "gguf"
    assert client.chat("tinyllama", [{"role": "user", "content": "hello"}], options={"num_predict": 2}).done


def test_namespace_and_tag_and_the_same_model_twice(client: ollama.Client, registry: Hub) -> None:
    assert client.pull("someone/tinychat:q8").status == "success"
    assert "someone/tinychat:q8" in listed(client)
    before = len(registry.downloads)
    assert client.pull("registry.ollama.ai/someone/tinychat:q8").status == "success"
    assert len(registry.downloads) == before  # the blob was here: only the manifest was asked


def test_a_gguf_without_a_template_uses_the_library_template(client: ollama.Client) -> None:
    client.pull("bare")
    shown = show(client, "bare")
    assert shown["template"] == CHATML_GO
    assert shown["model_info"]["localforge.template_source"] == "modelfile"
    assert client.chat("bare", [{"role": "user", "content": "hello"}], options={"num_predict": 2}).done


def test_a_dropped_connection_resumes_where_it_stopped(
        client: ollama.Client, registry: Hub, library_server: RunningServer, ggufs: dict[str, bytes]) -> None:
    digest = sha256(ggufs["resume"])
    registry.drop_after["library/resumable:latest model"] = 40_000
    with pytest.raises(ollama.ResponseError, match="interrupted after 40000 of .* pull again to resume"):
        list(client.pull("resumable", stream=True))
    partial = library_server.models_dir / "blobs" / f"sha256-{digest}-partial"
    assert partial.stat().st_size == 40_000
    assert "resumable:latest" not in listed(client)
    assert client.pull("resumable").status == "success"
    assert registry.downloads[-1] == ("library/resumable:latest model", "bytes=40000-")
    assert not partial.exists()
    assert sha256((library_server.models_dir / "blobs" / f"sha256-{digest}").read_bytes()) == digest


@pytest.mark.parametrize("model", ["corrupt", "badtemplate"])
def test_a_layer_that_does_not_match_its_digest_is_never_registered(
        model: str, client: ollama.Client, library_server: RunningServer, ggufs: dict[str, bytes]) -> None:
    with pytest.raises(ollama.ResponseError, match="digest mismatch"):
        list(client.pull(model, stream=True))
    assert f"{model}:latest" not in listed(client)
    blobs = {p.name for p in (library_server.models_dir / "blobs").iterdir()}
    assert f"sha256-{sha256(ggufs['corrupt'])}" not in blobs
    assert not any(name.endswith("-partial") for name in blobs if sha256(ggufs["corrupt"]) in name)


def test_unknown_and_bad_names_are_clear_errors(library_server: RunningServer) -> None:
    with httpx.Client(base_url=library_server.url, timeout=30) as http:
        missing = http.post("/api/pull", json={"model": "no-such-model"})
        assert missing.status_code == 404
        assert "'no-such-model:latest' is not in the library" in missing.json()["error"]
        for bad in ("../etc/passwd", "a/b/c", "x:..", "other.host/ns/name"):
            response = http.post("/api/pull", json={"model": bad})
            assert response.status_code == 400, bad
            assert "invalid model name" in response.json()["error"]
    assert not any(p.name == "etc" for p in library_server.models_dir.rglob("*"))


def test_a_gated_hugging_face_repository_opens_with_hf_token(client: ollama.Client, registry: Hub) -> None:
    assert client.pull("hf.co/gated/tiny").status == "success"
    assert "Bearer hf_secret" in registry.authorizations
    assert "hf.co/gated/tiny:latest" in listed(client)


def test_the_registry_setting_defaults_to_ollamas() -> None:
    from localforge import config

    assert config.load(environ={}).registry == "https://registry.ollama.ai"
    assert config.load(environ={"LOCALFORGE_REGISTRY": "http://mirror"}).registry == "http://mirror"
