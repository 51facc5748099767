"""`localforge pull`, `rm`, `cp`, `stop` and `create`: managing a running server's models, as the
`ollama` commands of the same names do."""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from localforge import modelfile, names
from localforge.console import client
from localforge.console.client import HOST_HELP, Failed
from localforge.console.progress import Progress
from localforge.console.show import table
from localforge.errors import BadRequest
from localforge.resources.budget import size
from localforge.resources.placement import Pools
from localforge.store.create import looks_like_path
from localforge.store.fit import Machine

CHUNK = 1 << 20


def checked_name(name: str) -> str:
    try:
        return names.canonical(name)
    except BadRequest as exc:
        raise Failed(exc.message) from None


def pull(args: argparse.Namespace, model: str) -> None:
    """Pull with a progress bar per layer on stderr (stdout stays for answers)."""
    progress = Progress(sys.stderr)
    try:
        with client.stream(args, "/api/pull", {"model": model}) as (_, items):
            for item in items:
                progress.update(item)
    finally:
        progress.close()


def cmd_pull(args: argparse.Namespace) -> int:
    if args.list:
        return list_files(args)
    pull(args, args.model)
    return 0


def list_files(args: argparse.Namespace) -> int:
    """The repository's GGUF files, smallest first, with where each would run on the server; the
    one a pull of the name takes is marked, and the line after the table says why."""
    found = client.call(args, "POST", "/api/pull/files", {"model": args.model}, timeout=120)
    machine = Machine(Pools(found["vram"], found["ram"]), found["num_ctx"])
    print(f"{found['model']}: {machine.describe()}, context {found['num_ctx']}")
    rows = [["", "FILE", "SIZE", "FITS"]]
    for f in sorted(found["files"], key=lambda f: (f["size"], f["path"])):
        rows.append(["*" if f["chosen"] else "", f["path"], size(f["size"]), f["fits"]])
    print(table(rows))
    print(f"* {found['reason']}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    for model in args.models:
        client.call(args, "DELETE", "/api/delete", {"model": model})
        print(f"deleted '{model}'")
    return 0


def cmd_cp(args: argparse.Namespace) -> int:
    client.call(args, "POST", "/api/copy", {"source": args.source, "destination": args.destination})
    print(f"copied '{args.source}' to '{args.destination}'")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    wanted = checked_name(args.model)
    loaded = {checked_name(m["model"]) for m in client.call(args, "GET", "/api/ps")["models"]}
    if wanted not in loaded:
        raise Failed(f"couldn't find model \"{args.model}\" to stop: it is not loaded")
    client.call(args, "POST", "/api/generate",
                {"model": args.model, "prompt": "", "keep_alive": 0, "stream": False}, timeout=None)
    return 0


# create
def _chunks(path: Path, progress: Progress, digest: str) -> Iterator[bytes]:
    total, sent = path.stat().st_size, 0
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            sent += len(block)
            progress.update({"status": f"copying file {digest}", "digest": digest,
                             "total": total, "completed": sent})
            yield block


def _upload(args: argparse.Namespace, path: Path, progress: Progress) -> str:
    """The file's digest, sent to the server unless it already has it."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            sha.update(block)
    digest = f"sha256:{sha.hexdigest()}"
    if not client.has_blob(args, digest):
        client.upload(args, path, digest, _chunks(path, progress, digest))
    return digest


def _source(args: argparse.Namespace, parsed: modelfile.Modelfile, folder: Path,
            progress: Progress) -> dict[str, Any]:
    """`from` for a model name, `files` for a GGUF file here (uploaded) or a blob."""
    if parsed.from_blob:
        return {"files": {"model.gguf": parsed.from_blob}}
    path = (folder / Path(parsed.from_).expanduser()).resolve()
    if not path.exists():
        if looks_like_path(parsed.from_):
            raise Failed(f"Modelfile line {parsed.from_line}: FROM {parsed.from_}: no such file")
        return {"from": parsed.from_}
    if path.is_dir() or path.suffix.lower() != ".gguf":
        raise Failed(f"Modelfile line {parsed.from_line}: FROM {parsed.from_} is not a .gguf file; "
                     "LocalForge creates models from GGUF files only")
    progress.update({"status": "gathering model components"})
    return {"files": {path.name: _upload(args, path, progress)}}


def cmd_create(args: argparse.Namespace) -> int:
    name = checked_name(args.name)
    path = Path(args.file).expanduser()
    try:
        text = path.read_text()
    except OSError as exc:
        raise Failed(f"cannot read the Modelfile {path}: {exc.strerror}") from None
    try:
        parsed = modelfile.parse(text)
    except BadRequest as exc:
        raise Failed(exc.message) from None
    progress = Progress(sys.stderr)
    try:
        body: dict[str, Any] = {"model": name, **_source(args, parsed, path.parent, progress)}
        for key, value in [("template", parsed.template), ("system", parsed.system),
                           ("parameters", parsed.parameters or None), ("license", parsed.license or None),
                           ("messages", parsed.messages or None)]:
            if value is not None:
                body[key] = value
        with client.stream(args, "/api/create", body) as (_, items):
            for item in items:
                progress.update(item)
    finally:
        progress.close()
    return 0


def add_parsers(sub: Any) -> None:
    """The five commands, each with `--host` as the other client commands have it."""
    def command(name: str, func: Any, text: str, description: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=text, description=description)
        p.add_argument("--host", help=HOST_HELP)
        p.set_defaults(func=func)
        return p

    p = command("pull", cmd_pull, "pull a model from the Ollama library or Hugging Face",
                "Pull a model onto the server: NAME[:TAG] or NAMESPACE/NAME[:TAG] from the Ollama "
                "library (the server's `registry` setting), or hf.co/OWNER/REPO[:QUANT] from Hugging "
                "Face. Without a QUANT, the largest file that fits the server's GPU is taken (else "
                "the best that runs partly on the GPU, or without a GPU Q4_K_M), and the line after "
                "`pulling manifest` says which and why; a QUANT is always honoured. Shows a "
                "progress bar per layer; an interrupted pull resumes where it stopped.")
    p.add_argument("model", help="e.g. llama3.2, qwen2.5:7b, hf.co/bartowski/SmolLM2-135M-Instruct-GGUF")
    p.add_argument("--list", action="store_true",
                   help="list a Hugging Face repository's GGUF files, their sizes and whether each "
                   "fits the server's GPU (GPU), partly (GPU+CPU 63%%: that share of layers on the "
                   "GPU), the CPU alone, or not at all (too big); download nothing")
    p = command("rm", cmd_rm, "remove models", "Remove one or more models from the server's store.")
    p.add_argument("models", nargs="+", metavar="MODEL", help="model names")
    p = command("cp", cmd_cp, "copy a model", "Copy a model under a new name.")
    p.add_argument("source", help="the model to copy")
    p.add_argument("destination", help="the new name")
    p = command("stop", cmd_stop, "unload a running model", "Unload a model the server has loaded.")
    p.add_argument("model", help="a model listed by `localforge ps`")
    p = command("create", cmd_create, "create a model from a Modelfile",
                "Create a model from a Modelfile: FROM (a model name, a GGUF file, which is "
                "uploaded, or @sha256:… blob), PARAMETER, TEMPLATE, SYSTEM, MESSAGE and LICENSE. "
                "ADAPTER is refused.")
    p.add_argument("name", help="the new model's name")
    p.add_argument("-f", "--file", default="Modelfile", help="the Modelfile (default ./Modelfile)")
