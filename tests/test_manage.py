"""Model management through the official ollama client: pull from a Hub on loopback, blobs, create,
copy and delete, and the error each wrong request gets."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from conftest import RunningServer, listed, start_server, stop_server
from hub_server import Hub, start_hub
from tiny_gguf import write_tiny_llama

from localforge import config

GO_TEMPLATE = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}" \
              "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ggufs")
    return {name: write_tiny_llama(folder / f"{name}.gguf", seed=seed)
            for seed, name in enumerate(["q4", "q8", "resume", "upload", "configured", "doomed",
                                         "corrupt", "first", "second"])}


@pytest.fixture(scope="module")
def hub(ggufs: dict[str, Path]) -> Iterator[Hub]:
    running = start_hub()
    running.add("test/tiny", "tiny-Q4_K_M.gguf", ggufs["q4"].read_bytes())
    running.add("test/tiny", "tiny-Q8_0.gguf", ggufs["q8"].read_bytes())
    running.add("test/tiny", "mmproj-tiny-F16.gguf", b"GGUF not a model")
    running.add("test/resume", "resume.Q4_K_M.gguf", ggufs["resume"].read_bytes())
    real = ggufs["corrupt"].read_bytes()
    flipped = real[:1000] + bytes(b ^ 0xFF for b in real[1000:1100]) + real[1100:]
    running.add("test/corrupt", "corrupt-Q4_K_M.gguf", flipped, sha256=hashlib.sha256(real).hexdigest())
    running.add("test/notgguf", "weights-Q4_K_M.gguf", b"PK\x03\x04 a zip file, not a GGUF" * 100)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def manage_server(tmp_path_factory: pytest.TempPathFactory, hub: Hub,
                  ggufs: dict[str, Path]) -> Iterator[RunningServer]:
    """A server reading the Hub from HF_ENDPOINT, with a loose file and a config model; its
    request body limit is smaller than a GGUF, so blob uploads prove they bypass it."""
    models = tmp_path_factory.mktemp("manage-models")
    write_tiny_llama(models / "loose.gguf", seed=7)
    settings = (f'max_body_bytes = {64 * 1024}\n[[models]]\nname = "configured:latest"\n'
                f'path = "{ggufs["configured"]}"\n')
    running = start_server(tmp_path_factory.mktemp("manage"), models, settings,
                           env={"HF_ENDPOINT": hub.url, "LOCALFORGE_REGISTRY": hub.url})
    yield running
    stop_server(running)


@pytest.fixture
def client(manage_server: RunningServer) -> ollama.Client:
    return ollama.Client(host=manage_server.url, timeout=60)


@pytest.fixture
def http(manage_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=manage_server.url, timeout=60) as c:
        yield c


def blobs(server: RunningServer) -> set[str]:
    return {p.name for p in (server.models_dir / "blobs").iterdir()}


# settings
def test_hf_endpoint_comes_from_the_environment_as_huggingface_hub_reads_it() -> None:
    assert config.load(environ={}).hf_endpoint == "https://huggingface.co"
    assert config.load(environ={"HF_ENDPOINT": "http://mirror"}).hf_endpoint == "http://mirror"
    both = {"HF_ENDPOINT": "http://mirror", "LOCALFORGE_HF_ENDPOINT": "http://ours"}
    assert config.load(environ=both).hf_endpoint == "http://ours"


# pull
def test_pull_streams_progress_then_the_model_answers(client: ollama.Client, hub: Hub,
                                                     ggufs: dict[str, Path]) -> None:
    lines = list(client.pull("hf.co/test/tiny:q8_0", stream=True))
    statuses = [line.status for line in lines]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    progress = [line for line in lines if line.digest]
    size = ggufs["q8"].stat().st_size
    assert progress and all(line.total == size for line in progress)
    assert progress[-1].digest == f"sha256:{sha256(ggufs['q8'])}"
    assert progress[-1].completed == size
    completed = [line.completed or 0 for line in progress]
    assert completed == sorted(completed)
    assert "hf.co/test/tiny:q8_0" in listed(client)
    answer = client.generate(model="hf.co/test/tiny:q8_0", prompt="hello", options={"num_predict": 3})
    assert answer.done


def test_pull_without_a_tag_takes_q4_k_m_and_never_downloads_twice(
        http: httpx.Client, hub: Hub, ggufs: dict[str, Path]) -> None:
    response = http.post("/api/pull", json={"model": "hf.co/test/tiny", "stream": False})
    assert response.status_code == 200
    assert response.json() == {"status": "success"}
    tags = {m["model"]: m for m in http.get("/api/tags").json()["models"]}
    assert tags["hf.co/test/tiny:latest"]["digest"] == sha256(ggufs["q4"])
    downloads = len(hub.downloads)
    again = http.post("/api/pull", json={"name": "huggingface.co/test/tiny:Q4_K_M", "stream": False})
    assert again.json() == {"status": "success"}
    assert len(hub.downloads) == downloads  # the blob was already here
    assert "huggingface.co/test/tiny:Q4_K_M" in {m["model"] for m in http.get("/api/tags").json()["models"]}


def test_an_interrupted_pull_resumes_with_a_range_request(
        client: ollama.Client, manage_server: RunningServer, hub: Hub, ggufs: dict[str, Path]) -> None:
    digest = sha256(ggufs["resume"])
    hub.drop_after["resume.Q4_K_M.gguf"] = 50_000
    with pytest.raises(ollama.ResponseError, match="interrupted after 50000 of .* pull again to resume"):
        list(client.pull("hf.co/test/resume", stream=True))
    partial = manage_server.models_dir / "blobs" / f"sha256-{digest}-partial"
    assert partial.stat().st_size == 50_000
    assert "hf.co/test/resume:latest" not in listed(client)

    lines = list(client.pull("hf.co/test/resume", stream=True))
    assert lines[-1].status == "success"
    assert hub.downloads[-1] == ("resume.Q4_K_M.gguf", "bytes=50000-")
    assert not partial.exists()
    assert sha256(manage_server.models_dir / "blobs" / f"sha256-{digest}") == digest
    assert "hf.co/test/resume:latest" in listed(client)


def test_a_download_that_does_not_match_its_digest_is_never_registered(
        client: ollama.Client, manage_server: RunningServer, ggufs: dict[str, Path]) -> None:
    with pytest.raises(ollama.ResponseError, match="digest mismatch"):
        list(client.pull("hf.co/test/corrupt", stream=True))
    assert not any(sha256(ggufs["corrupt"]) in name for name in blobs(manage_server))
    assert "hf.co/test/corrupt:latest" not in listed(client)


def test_a_download_that_is_not_a_gguf_is_refused(http: httpx.Client,
                                                  manage_server: RunningServer) -> None:
    response = http.post("/api/pull", json={"model": "hf.co/test/notgguf", "stream": False})
    assert response.status_code == 400
    assert "weights-Q4_K_M.gguf from Hugging Face is not a valid GGUF" in response.json()["error"]
    assert not any(name.endswith("-partial") for name in blobs(manage_server))


def test_an_unknown_repository_is_a_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError, match="repository 'test/missing' does not exist") as err:
        list(client.pull("hf.co/test/missing", stream=True))
    assert err.value.status_code == 404


def test_an_unknown_quant_lists_the_ones_there_are(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError, match="no file for quant 'Q2_K'; available: Q4_K_M, Q8_0") as err:
        client.pull("hf.co/test/tiny:Q2_K")
    assert err.value.status_code == 404
    assert "F16" not in str(err.value)  # the mmproj file is a projector, not a model


def test_pull_of_a_name_that_is_not_on_hugging_face(http: httpx.Client) -> None:
    here = http.post("/api/pull", json={"model": "loose", "stream": False})
    assert here.json() == {"status": "success"}  # already present: nothing to do
    missing = http.post("/api/pull", json={"model": "llama3.2"})  # the registry is the stand-in Hub
    assert missing.status_code == 404
    assert "'llama3.2:latest' is not in the library" in missing.json()["error"]
    for bad in ("hf.co/../etc", "hf.co/only-owner", "hf.co/a/b/c"):
        assert http.post("/api/pull", json={"model": bad}).status_code == 400


def test_pull_stays_inside_the_repository(http: httpx.Client, hub: Hub, manage_server: RunningServer,
                                          ggufs: dict[str, Path]) -> None:
    """Issue 15: hub file paths were not confined (`../`)."""
    hub.add("test/escape", "../../escape-Q4_K_M.gguf", ggufs["q4"].read_bytes())
    response = http.post("/api/pull", json={"model": "hf.co/test/escape", "stream": False})
    assert response.status_code >= 400 and "outside repository" in response.json()["error"]
    assert not list(manage_server.models_dir.parent.rglob("escape*"))


def test_pull_follows_only_the_hubs_own_or_public_https_redirects() -> None:
    from localforge.store.download import may_follow
    from localforge.store.pull import confined

    hub = "http://127.0.0.1:9000"
    assert may_follow("http://127.0.0.1:9000/cdn/x", hub)
    assert may_follow("https://cdn-lfs.hf.co/repos/x", "https://huggingface.co")
    for url in ("http://cdn-lfs.hf.co/x", "https://127.0.0.1/x", "https://10.0.0.5/x", "https://localhost/x",
                "https://[::1]/x", "https://169.254.169.254/latest/meta-data", "file:///etc/passwd"):
        assert not may_follow(url, "https://huggingface.co"), url
    assert confined("a/b-Q4_K_M.gguf") and confined("x.gguf")
    for path in ("../x.gguf", "a/../../x.gguf", "/etc/x.gguf", "a//x.gguf", "a\\x.gguf", "a/./x.gguf", "x\n.gguf"):
        assert not confined(path), path


# blobs
def test_blobs_upload_streams_past_the_body_limit_and_checks_the_digest(
        client: ollama.Client, http: httpx.Client, manage_server: RunningServer,
        ggufs: dict[str, Path]) -> None:
    path = ggufs["upload"]
    assert path.stat().st_size > 64 * 1024
    digest = f"sha256:{sha256(path)}"
    assert http.head(f"/api/blobs/{digest}").status_code == 404
    assert client.create_blob(path) == digest
    assert http.head(f"/api/blobs/{digest}").status_code == 200

    wrong = "sha256:" + "0" * 64
    response = http.post(f"/api/blobs/{wrong}", content=path.read_bytes())
    assert response.status_code == 400
    assert "digest mismatch" in response.json()["error"]
    assert http.head(f"/api/blobs/{wrong}").status_code == 404
    assert not any(name.startswith(".") for name in blobs(manage_server))

    for bad in ("sha256:xyz", "md5:" + "0" * 32, "sha256:" + "A" * 64):
        assert http.head(f"/api/blobs/{bad}").status_code == 400
        response = http.post(f"/api/blobs/{bad}", content=b"data")
        assert response.status_code == 400
        assert "invalid digest" in response.json()["error"]


# create
def test_create_from_a_blob_with_template_system_and_parameters(
        client: ollama.Client, http: httpx.Client, ggufs: dict[str, Path]) -> None:
    digest = client.create_blob(ggufs["upload"])
    lines = list(client.create("made", files={"upload.gguf": digest}, template=GO_TEMPLATE,
                               system="Answer briefly.", license="MIT",
                               parameters={"temperature": 0.2, "num_ctx": 256, "stop": ["<|im_end|>"]},
                               stream=True))
    assert [line.status for line in lines][-2:] == ["writing manifest", "success"]
    assert "made:latest" in listed(client)
    show = http.post("/api/show", json={"model": "made"}).json()
    assert show["template"] == GO_TEMPLATE
    assert show["system"] == "Answer briefly."
    assert show["license"] == "MIT"
    assert 'temperature                    0.2' in show["parameters"]
    assert 'stop                           "<|im_end|>"' in show["parameters"]
    assert 'num_ctx                        256' in show["parameters"]
    assert client.generate(model="made", prompt="hi", options={"num_predict": 2}).done


def test_create_from_a_model_overrides_only_what_is_given(client: ollama.Client,
                                                          http: httpx.Client,
                                                          ggufs: dict[str, Path]) -> None:
    digest = client.create_blob(ggufs["upload"])
    client.create("base-model", files={"m.gguf": digest}, template=GO_TEMPLATE, system="one",
                  parameters={"temperature": 0.2})
    result = client.create("derived", from_="base-model", system="two",
                           parameters={"top_k": 5})
    assert result.status == "success"
    show = http.post("/api/show", json={"model": "derived"}).json()
    assert show["template"] == GO_TEMPLATE and show["system"] == "two"
    assert "temperature                    0.2" in show["parameters"]
    assert "top_k                          5" in show["parameters"]
    # a model outside the store works as a base too
    client.create("configured-terse", from_="configured", system="terse")
    assert http.post("/api/show", json={"model": "configured-terse"}).json()["system"] == "terse"


def test_create_from_a_gguf_path_on_the_server(client: ollama.Client, http: httpx.Client,
                                               ggufs: dict[str, Path], tmp_path: Path) -> None:
    client.create("from-path", from_=str(ggufs["configured"]))
    tags = {m["model"]: m for m in http.get("/api/tags").json()["models"]}
    assert tags["from-path:latest"]["details"]["family"] == "llama"
    relative = http.post("/api/create", json={"model": "x", "from": "models/x.gguf"})
    assert relative.status_code == 400 and "absolute path" in relative.json()["error"]
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for path in (tmp_path / "missing.gguf", text):
        response = http.post("/api/create", json={"model": "x", "from": str(path)})
        assert response.status_code == 400
        assert "not a readable .gguf file" in response.json()["error"]


@pytest.mark.parametrize(("change", "message"), [
    ({"files": {"m.gguf": "sha256:" + "1" * 64}}, f"blob sha256:{'1' * 64} for 'm.gguf' not found"),
    ({"files": {"junk.bin": "JUNK"}}, "'junk.bin' (sha256:"),
    ({"parameters": {"temprature": 0.5}}, "unknown parameter 'temprature'"),
    ({"parameters": {"top_k": "many"}}, "parameter 'top_k' must be a number"),
    ({"template": "{{ range .Messages }}{{ .Content }}"}, "template: missing {{ end }}"),
    ({"template": "{{ .Prompt "}, "template: unclosed action"),
    ({"template": "{% for m in messages %}"}, "template: Unexpected end of template"),
    ({"from": "no-such-model", "files": None}, "model 'no-such-model' not found"),
    ({"files": None}, "neither 'from' nor 'files' was specified"),
    ({"quantize": "q4_K_M"}, "quantize is not supported"),
    ({"model": "../escape"}, "invalid model name"),
])
def test_create_refuses_bad_input_and_writes_nothing(
        change: dict[str, object], message: str, client: ollama.Client, http: httpx.Client,
        manage_server: RunningServer, ggufs: dict[str, Path]) -> None:
    junk = manage_server.models_dir / "junk.bin"
    junk.write_bytes(b"JUNK" * 100)
    files = {"m.gguf": client.create_blob(ggufs["upload"]), "junk.bin": client.create_blob(junk)}
    request: dict[str, object] = {"model": "refused", "files": {"m.gguf": files["m.gguf"]}}
    request.update(change)
    if request.get("files") == {"junk.bin": "JUNK"}:
        request["files"] = {"junk.bin": files["junk.bin"]}
    response = http.post("/api/create", json={k: v for k, v in request.items() if v is not None})
    assert response.status_code in (400, 404), response.text
    assert message in response.json()["error"]
    assert "refused:latest" not in listed(client)
    assert not (manage_server.models_dir / "manifests" / "refused").exists()


# copy and delete
def test_copy_makes_a_second_name_for_any_model(client: ollama.Client) -> None:
    for source in ("loose", "configured", "hf.co/test/tiny:q8_0"):
        if source.startswith("hf.co"):
            client.pull(source)
        client.copy(source, f"copy-of-{source.split(':')[0].replace('/', '-')}")
    assert {"copy-of-loose:latest", "copy-of-configured:latest",
            "copy-of-hf.co-test-tiny:latest"} <= listed(client)
    assert client.generate(model="copy-of-configured", prompt="x", options={"num_predict": 1}).done
    with pytest.raises(ollama.ResponseError, match="model 'nothing-here' not found") as err:
        client.copy("nothing-here", "anything")
    assert err.value.status_code == 404
    with pytest.raises(ollama.ResponseError, match="invalid model name") as err:
        client.copy("loose", "bad/../name")
    assert err.value.status_code == 400


def test_delete_unloads_and_removes_blobs_no_other_model_uses(
        client: ollama.Client, http: httpx.Client, ggufs: dict[str, Path]) -> None:
    digest = client.create_blob(ggufs["doomed"])  # a file only this test uses
    client.create("doomed", files={"m.gguf": digest})
    client.copy("doomed", "survivor")
    client.generate(model="doomed", prompt="x", options={"num_predict": 1}, keep_alive="10m")
    assert "doomed:latest" in {m.model for m in client.ps().models}

    response = http.request("DELETE", "/api/delete", json={"model": "doomed"})
    assert response.status_code == 200 and response.content == b""
    assert "doomed:latest" not in {m.model for m in client.ps().models}
    assert "doomed:latest" not in listed(client)
    assert http.head(f"/api/blobs/{digest}").status_code == 200  # "survivor" still uses it
    client.delete("survivor")
    assert http.head(f"/api/blobs/{digest}").status_code == 404

    missing = http.request("DELETE", "/api/delete", json={"model": "doomed"})
    assert missing.status_code == 404
    assert missing.json() == {"error": "model 'doomed' not found"}


def test_a_replaced_model_releases_the_blob_nothing_else_uses(
        client: ollama.Client, http: httpx.Client, ggufs: dict[str, Path]) -> None:
    first, second = client.create_blob(ggufs["first"]), client.create_blob(ggufs["second"])
    client.create("replaced", files={"m.gguf": first})
    client.create("replaced", files={"m.gguf": second}, system="new")
    assert http.head(f"/api/blobs/{first}").status_code == 404
    assert http.head(f"/api/blobs/{second}").status_code == 200
    assert http.post("/api/show", json={"model": "replaced"}).json()["system"] == "new"


@pytest.mark.parametrize(("model", "where"), [
    ("loose", "in the models directory"), ("configured", "under [[models]] in the config file")])
def test_models_outside_the_store_cannot_be_deleted(model: str, where: str, client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError, match="not in the model store") as err:
        client.delete(model)
    assert err.value.status_code == 400
    assert where in str(err.value)
    assert f"{model}:latest" in listed(client)


def test_recreating_a_loaded_model_unloads_the_old_copy(http: httpx.Client,
                                                        manage_server: RunningServer) -> None:
    """Issue 15: re-creating a loaded model left its old runner resident."""
    import psutil

    def runners() -> int:
        return sum("localforge.runner" in " ".join(p.cmdline())
                   for p in psutil.Process(manage_server.process.pid).children())

    ask = {"model": "recreated", "prompt": "hi", "stream": False, "options": {"num_predict": 2}}
    for i, base in enumerate(["loose", "configured", "loose", "configured"]):  # another file each time
        assert http.post("/api/create", json={"model": "recreated", "from": base,
                                              "stream": False}).status_code == 200
        assert http.post("/api/generate", json=ask).status_code == 200
        if i == 0:
            loaded = runners()
    assert runners() <= loaded
    http.request("DELETE", "/api/delete", json={"model": "recreated"})


def test_a_gguf_symlink_error_does_not_name_its_target(http: httpx.Client, manage_server: RunningServer,
                                                       tmp_path: Path) -> None:
    secret = tmp_path / "secret-target-file.txt"
    secret.write_text("not a model")
    link = manage_server.models_dir / "linked.gguf"
    link.symlink_to(secret)
    try:
        answers = [http.post("/api/show", json={"model": "linked"}),
                   http.post("/api/generate", json={"model": "linked", "prompt": "hi", "stream": False}),
                   http.post("/api/create", json={"model": "fromlink", "from": str(link), "stream": False}),
                   http.get("/api/tags")]
        for answer in answers:
            assert answer.status_code < 500
            assert "secret-target-file" not in answer.text
        assert "secret-target-file" not in manage_server.log()
    finally:
        link.unlink()


def test_unused_uploaded_blobs_are_deleted_after_a_while(tmp_path: Path, ggufs: dict[str, Path]) -> None:
    """Issue 15: unreferenced uploaded blobs were kept for ever, with no size limit."""
    import os
    import time

    models = tmp_path / "models"
    models.mkdir()
    running = start_server(tmp_path, models)
    model_bytes, junk, fresh = ggufs["upload"].read_bytes(), b"never used " * 1000, b"uploaded just now"
    digests = {}
    try:
        for label, data in (("model", model_bytes), ("junk", junk)):
            digests[label] = "sha256:" + hashlib.sha256(data).hexdigest()
            assert httpx.post(f"{running.url}/api/blobs/{digests[label]}", content=data).status_code == 201
        assert httpx.post(running.url + "/api/create", json={
            "model": "uploaded", "files": {"m.gguf": digests["model"]}, "stream": False}).status_code == 200
    finally:
        stop_server(running)
    blobs = models / "blobs"
    hour_ago = time.time() - 2 * 3600
    for path in blobs.iterdir():
        os.utime(path, (hour_ago, hour_ago))
    (blobs / ("sha256-" + hashlib.sha256(fresh).hexdigest())).write_bytes(fresh)
    running = start_server(tmp_path, models)
    try:
        deadline = time.monotonic() + 10
        junk_path = blobs / digests["junk"].replace(":", "-")
        while junk_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not junk_path.exists()
        assert (blobs / digests["model"].replace(":", "-")).exists()  # a model uses it
        assert (blobs / ("sha256-" + hashlib.sha256(fresh).hexdigest())).exists()  # within the hour
        answer = httpx.post(running.url + "/api/generate", json={
            "model": "uploaded", "prompt": "hi", "stream": False, "options": {"num_predict": 2}}, timeout=60)
        assert answer.status_code == 200
    finally:
        stop_server(running)
