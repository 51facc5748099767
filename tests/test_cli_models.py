"""`localforge pull`, `rm`, `cp`, `stop` and `create` as a user types them, against a running
server that pulls from a stand-in registry on loopback; the Modelfile they read."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pexpect
import pytest
from conftest import RunningServer, listed, start_server, stop_server
from hub_server import Hub, start_hub
from tiny_gguf import write_tiny_llama

from localforge import modelfile
from localforge.errors import BadRequest

COMMANDS = ("run", "pull", "rm", "cp", "stop", "create", "list", "ps", "show")


ROOT = Path(__file__).parent.parent


def cli(*args: str, server: RunningServer, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it; from another folder, this checkout is still the one run."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "localforge.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "OLLAMA_HOST": server.url, "PYTHONPATH": path},
                          timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli-ggufs")
    return {name: write_tiny_llama(folder / f"{name}.gguf", seed=40 + seed)
            for seed, name in enumerate(["first", "resume", "corrupt", "local"])}


@pytest.fixture(scope="module")
def registry(ggufs: dict[str, Path]) -> Iterator[Hub]:
    running = start_hub()
    running.publish("library/tinyone:latest", {"model": ggufs["first"].read_bytes(), "system": b"Be brief."})
    running.publish("library/resumable:latest", {"model": ggufs["resume"].read_bytes()})
    running.publish("library/broken:latest", {"model": ggufs["corrupt"].read_bytes()}, corrupt="model")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, registry: Hub) -> Iterator[RunningServer]:
    models = tmp_path_factory.mktemp("cli-models")
    write_tiny_llama(models / "tiny.gguf")
    running = start_server(tmp_path_factory.mktemp("cli"), models, env={"LOCALFORGE_REGISTRY": registry.url})
    yield running
    stop_server(running)


@pytest.fixture
def client(server: RunningServer) -> ollama.Client:
    return ollama.Client(host=server.url, timeout=60)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_documents_itself_and_its_host_option(command: str, server: RunningServer) -> None:
    shown = cli(command, "--help", server=server)
    assert shown.returncode == 0 and "--host" in shown.stdout
    assert command in cli("--help", server=server).stdout


def test_pull_shows_each_layer_then_success(server: RunningServer, client: ollama.Client,
                                            ggufs: dict[str, Path]) -> None:
    pulled = cli("pull", "tinyone", server=server)
    assert pulled.returncode == 0, pulled.stderr
    digest = hashlib.sha256(ggufs["first"].read_bytes()).hexdigest()
    lines = pulled.stderr.splitlines()
    assert lines[0] == "pulling manifest"
    assert any(line.startswith(f"pulling {digest[:12]}: 100% ▕") for line in lines), lines
    assert lines[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    assert "tinyone:latest" in listed(client)


def test_pull_on_a_terminal_draws_bars_with_rate_and_time_left(server: RunningServer, registry: Hub) -> None:
    registry.publish("library/big:latest", {"model": write_tiny_llama(
        server.models_dir.parent / "big.gguf", n_embd=64, extra_vocab=8000, seed=9).read_bytes()})
    registry.pace["library/big:latest model"] = 0.03  # about 2 MB/s: two seconds in all
    child = pexpect.spawn(sys.executable, ["-m", "localforge.cli", "pull", "big"], encoding="utf-8",
                          env={**os.environ, "OLLAMA_HOST": server.url}, timeout=60)
    child.expect(pexpect.EOF)
    child.close()
    drawn = child.before or ""
    assert child.exitstatus == 0, drawn
    assert "\x1b[2K" in drawn  # lines are redrawn in place
    assert "100% ▕█████████████████████████▏" in drawn
    assert "B/s" in drawn  # the rate and the time left, while a layer is coming
    assert re.search(r"\d+% ▕█*\s*▏ [\d.]+ [KM]B/[\d.]+ MB  [\d.]+ [KM]B/s  \d+s", drawn), drawn
    assert drawn.rstrip().endswith("success")


def test_an_interrupted_pull_says_so_and_the_next_one_resumes(
        server: RunningServer, registry: Hub, client: ollama.Client) -> None:
    registry.drop_after["library/resumable:latest model"] = 30_000
    failed = cli("pull", "resumable", server=server)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "interrupted after 30000 of" in failed.stderr and "pull again to resume" in failed.stderr
    resumed = cli("pull", "resumable", server=server)
    assert resumed.returncode == 0, resumed.stderr
    assert registry.downloads[-1] == ("library/resumable:latest model", "bytes=30000-")
    assert "resumable:latest" in listed(client)


def test_a_corrupted_blob_is_refused(server: RunningServer, client: ollama.Client) -> None:
    refused = cli("pull", "broken", server=server)
    assert refused.returncode == 1 and "Error: digest mismatch" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "broken:latest" not in listed(client)


def test_cp_rm_and_stop(server: RunningServer, client: ollama.Client) -> None:
    copied = cli("cp", "tiny", "tiny-copy", server=server)
    assert copied.returncode == 0 and "copied 'tiny' to 'tiny-copy'" in copied.stdout
    assert "tiny-copy:latest" in listed(client)
    client.generate("tiny-copy", "hi", options={"num_predict": 1}, keep_alive="10m")
    assert cli("stop", "tiny-copy", server=server).returncode == 0
    assert "tiny-copy:latest" not in {m.model for m in client.ps().models}
    not_loaded = cli("stop", "tiny-copy", server=server)
    assert not_loaded.returncode == 1 and "not loaded" in not_loaded.stderr
    removed = cli("rm", "tiny-copy", server=server)
    assert removed.returncode == 0 and "deleted 'tiny-copy'" in removed.stdout
    assert "tiny-copy:latest" not in listed(client)
    missing = cli("rm", "tiny-copy", server=server)
    assert missing.returncode == 1 and "model 'tiny-copy' not found" in missing.stderr
    bad = cli("cp", "tiny", "../escape", server=server)
    assert bad.returncode == 1 and "invalid model name" in bad.stderr


MODELFILE = '''# a model made from a GGUF file beside this Modelfile
FROM ./weights/local.gguf
PARAMETER temperature 0.2
PARAMETER stop "<|im_end|>"
PARAMETER stop "User:"
SYSTEM """You are a pirate.
Answer in one line."""
TEMPLATE """{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}<|im_start|>user
{{ .Prompt }}<|im_end|>
<|im_start|>assistant
"""
MESSAGE user Who are you?
MESSAGE assistant A pirate.
LICENSE MIT
'''


def test_create_uploads_the_gguf_and_applies_the_modelfile(
        server: RunningServer, client: ollama.Client, ggufs: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "local.gguf").write_bytes(ggufs["local"].read_bytes())
    (tmp_path / "Modelfile").write_text(MODELFILE)
    created = cli("create", "pirate", server=server, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert created.stderr.splitlines()[-1] == "success"
    shown = httpx.post(server.url + "/api/show", json={"model": "pirate"}).json()
    assert shown["system"] == "You are a pirate.\nAnswer in one line."
    assert shown["template"].startswith("{{ if .System }}")
    assert 'stop                           "User:"' in shown["parameters"]
    assert "temperature                    0.2" in shown["parameters"]
    assert shown["license"] == "MIT"
    assert client.generate("pirate", "hi", options={"num_predict": 2}).done

    # a second model from the first, by name, with -f naming another file
    (tmp_path / "Derived").write_text("FROM pirate\nSYSTEM Be a parrot.\n")
    derived = cli("create", "parrot", "-f", str(tmp_path / "Derived"), server=server)
    assert derived.returncode == 0, derived.stderr
    assert httpx.post(server.url + "/api/show", json={"model": "parrot"}).json()["system"] == "Be a parrot."


@pytest.mark.parametrize(("text", "message"), [
    ("FROM tiny\nADAPTER ./lora.gguf\n", "Modelfile line 2: ADAPTER is not supported"),
    ("FROM tiny\nPARAMETER temprature 1\n", "Modelfile line 2: unknown parameter 'temprature'"),
    ("FROM tiny\nPARAMETER top_k many\n", "Modelfile line 2: parameter 'top_k' must be a number"),
    ("FROM tiny\n\nDRAFT x\n", "Modelfile line 3: unknown instruction 'DRAFT'"),
    ("FROM tiny\nMESSAGE robot hi\n", "Modelfile line 2: MESSAGE role must be one of"),
    ('FROM tiny\nSYSTEM """never closed\n', 'Modelfile line 2: unterminated """ block'),
    ("PARAMETER top_k 5\n", "Modelfile has no FROM line"),
    ("FROM ./missing.gguf\n", "Modelfile line 1: FROM ./missing.gguf: no such file"),
    ("FROM ghost\n", "model 'ghost' not found"),
])
def test_create_refuses_a_bad_modelfile_naming_the_line(
        text: str, message: str, server: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(text)
    refused = cli("create", "refused", server=server, cwd=tmp_path)
    assert refused.returncode == 1 and message in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_missing_modelfile_is_a_clear_error(server: RunningServer, tmp_path: Path) -> None:
    missing = cli("create", "x", "-f", str(tmp_path / "nope"), server=server)
    assert missing.returncode == 1 and "cannot read the Modelfile" in missing.stderr


def test_the_legacy_modelfile_field_of_api_create(server: RunningServer, client: ollama.Client,
                                                  ggufs: dict[str, Path]) -> None:
    digest = client.create_blob(ggufs["local"])
    text = f"FROM @{digest}\nPARAMETER num_ctx 512\nSYSTEM Legacy.\nMESSAGE user hi\n"
    response = httpx.post(server.url + "/api/create", json={"model": "legacy", "modelfile": text,
                                                             "stream": False}, timeout=60)
    assert response.json() == {"status": "success"}
    shown = httpx.post(server.url + "/api/show", json={"model": "legacy"}).json()
    assert shown["system"] == "Legacy." and "num_ctx                        512" in shown["parameters"]
    bad = httpx.post(server.url + "/api/create", json={"model": "x", "modelfile": "FROM tiny\nADAPTER a\n"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("Modelfile line 2: ADAPTER")


def test_the_modelfile_parser_reads_what_ollama_writes() -> None:
    parsed = modelfile.parse('from  llama3.2\nparameter num_ctx 4096\nLICENSE """one\ntwo"""\nLICENSE "three"\n')
    assert parsed.from_ == "llama3.2" and parsed.parameters == {"num_ctx": 4096}
    assert parsed.license == ["one\ntwo", "three"]
    assert modelfile.parse("FROM @sha256:" + "a" * 64).from_blob == "sha256:" + "a" * 64
    with pytest.raises(BadRequest, match="line 1"):
        modelfile.parse('FROM "unclosed\n')
