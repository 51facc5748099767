"""Model management: POST /api/pull, HEAD/POST /api/blobs/:digest, POST /api/create, POST /api/copy
and DELETE /api/delete; and LocalForge's own POST /api/pull/files.

Pull and create stream progress lines (NDJSON) unless `stream` is false, in which case only the
last line is sent. Everything that can go wrong before the first line (a bad name, an unknown
repository or quant, a missing blob, a bad template) is answered with its real status.

Pull takes Hugging Face names, `hf.co/{owner}/{repo}[:{quant}]`, from `hf_endpoint` (or HF_ENDPOINT),
and Ollama-library names, `name[:tag]` and `namespace/name[:tag]`, from `registry`. A model that is
already here and did not come from the registry succeeds without a download; one that did is
pulled again, which fetches only the layers that changed. A Hugging Face name without a tag takes
the file that fits the scheduler's memory pools best, and the line after `pulling manifest` says
which and why (localforge/store/fit.py); `/api/pull/files` lists the repository's files with where
each would run, for `localforge pull --list`. Create takes `files` (one uploaded GGUF
blob), or `from`: a model name, or an absolute path to a readable `.gguf` file on the server's own
disk, which is served in place, not copied; or the legacy `modelfile` text (localforge/modelfile.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import msgspec
from litestar import Request, Response, delete, head, post
from litestar.response import Stream

from localforge import modelfile, names
from localforge.backends import cards
from localforge.errors import BadRequest, ModelNotFound
from localforge.server import body, ollama_wire, streams
from localforge.server.services import Services
from localforge.store import create as making
from localforge.store import library
from localforge.store import pull as pulling
from localforge.store.fit import Machine
from localforge.store.layout import Manifest


class FilesRequest(msgspec.Struct):
    model: str


class HubFileFit(msgspec.Struct):
    path: str
    quant: str
    size: int
    fits: str  # `GPU`, `GPU+CPU 63%`, `CPU`, `too big`, or `split` for a part of a split file
    weights: int | None
    context: int | None
    chosen: bool


class FilesResponse(msgspec.Struct):
    """A repository's GGUF files and where each would run on this server."""

    model: str
    vram: int
    ram: int
    num_ctx: int
    files: list[HubFileFit]
    reason: str  # which file a pull of `model` takes, and why


def _progress(step: pulling.PullStep) -> ollama_wire.Progress:
    return ollama_wire.Progress(status=step.status, digest=step.digest, total=step.total,
                                completed=step.completed)


async def _answer(steps: AsyncIterator[pulling.PullStep], stream: bool | None) -> Response[Any] | Stream:
    """NDJSON progress, or with `stream: false` only the last line."""
    if stream is False:
        last = pulling.PullStep("success")
        async for step in steps:
            last = step
        return Response(_progress(last))
    return streams.ndjson(await streams.with_first(steps), _progress)


# pull
async def _pull_known(name: str) -> AsyncIterator[pulling.PullStep]:
    yield pulling.PullStep("pulling manifest")
    yield pulling.PullStep("success")


async def _refreshing(services: Services, steps: AsyncIterator[pulling.PullStep],
                      ) -> AsyncIterator[pulling.PullStep]:
    async for step in steps:
        if step.status == "success":
            await services.registry.refresh()
        yield step


@post("/api/pull", status_code=200)
async def pull(request: Request, services: Services) -> Response[Any] | Stream:
    req = await body.read(request, ollama_wire.PullRequest, services.settings.max_body_bytes)
    name = req.model or req.name
    if not name:
        raise BadRequest("model is required")
    hub = pulling.hub_name(name)
    if hub is not None:
        steps = pulling.pull(services.store, services.settings.hf_endpoint, hub, _machine(services))
        return await _answer(_refreshing(services, steps), req.stream)
    registry = services.settings.registry
    wanted = library.library_name(name, registry)
    if await _here_not_from_registry(services, name):
        return await _answer(_pull_known(name), req.stream)
    return await _answer(_refreshing(services, library.pull(services.store, registry, wanted)), req.stream)


def _machine(services: Services) -> Machine:
    """What a pulled model will be loaded into: the pools the scheduler places models in, less
    the runner's own VRAM where the scheduler has measured it (as it reserves it in a load)."""
    return Machine.of(services.settings, services.scheduler.budget.pools, services.scheduler.policy.overhead)


@post("/api/pull/files", status_code=200)
async def pull_files(request: Request, services: Services) -> FilesResponse:
    req = await body.read(request, FilesRequest, services.settings.max_body_bytes)
    hub = pulling.hub_name(req.model)
    if hub is None:
        raise BadRequest(f"'{req.model}' is not a Hugging Face name: listing files takes "
                         "hf.co/{owner}/{repo}")
    machine = _machine(services)
    plan = await pulling.survey(services.store, services.settings.hf_endpoint, hub, machine)
    files = [HubFileFit(f.path, f.quant, f.size, "split" if fit is None else fit.label,
                        None if fit is None else fit.weights, None if fit is None else fit.context,
                        f == plan.chosen)
             for f, fit in zip(plan.files, plan.fits, strict=True)]
    return FilesResponse(hub.model, machine.pools.vram, machine.pools.ram, machine.num_ctx, files, plan.reason)


async def _here_not_from_registry(services: Services, name: str) -> bool:
    """A loose file, a config model, a created or copied one: nothing in the registry to update."""
    stored = services.store.read(name)
    if stored is not None:
        return stored.source.split("/", 1)[0] != urlsplit(services.settings.registry).netloc
    try:
        await services.registry.resolve(name)
    except ModelNotFound:
        return False
    return True


# blobs
@head("/api/blobs/{digest:str}")
async def blob_exists(digest: str, services: Services) -> Response[None]:
    found = services.store.has_blob(digest)
    return Response(None, status_code=200 if found else 404)


@post("/api/blobs/{digest:str}", request_max_body_size=None)
async def blob_upload(digest: str, request: Request, services: Services) -> Response[bytes]:
    """Stream the body to disk (no size limit: GGUF files are gigabytes), then check its digest."""
    created = await making.receive_blob(services.store, digest, request.stream())
    return Response(b"", status_code=201 if created else 200)


# create
def _with_modelfile(req: ollama_wire.CreateRequest) -> ollama_wire.CreateRequest:
    """The legacy `modelfile` text fills in whatever the request does not say itself."""
    if not req.modelfile:
        return req
    parsed = modelfile.parse(req.modelfile)
    base: dict[str, Any] = {}
    if not req.from_ and not req.files:
        blob = parsed.from_blob
        base = {"files": {"model.gguf": blob}} if blob else {"from_": parsed.from_}
    messages = [ollama_wire.WireMessage(role=m["role"], content=m["content"]) for m in parsed.messages]
    return msgspec.structs.replace(
        req, **base,
        template=req.template if req.template is not None else parsed.template,
        system=req.system if req.system is not None else parsed.system,
        license=req.license if req.license is not None else (parsed.license or None),
        parameters={**parsed.parameters, **(req.parameters or {})} or None,
        messages=req.messages if req.messages is not None else (messages or None))


async def _create_steps(manifest: Manifest) -> AsyncIterator[pulling.PullStep]:
    if manifest.gguf.startswith("sha256"):
        yield pulling.PullStep(f"using existing layer {manifest.gguf}")
    else:
        yield pulling.PullStep(f"using GGUF file {manifest.gguf}")
    yield pulling.PullStep("writing manifest")
    yield pulling.PullStep("success")


async def _base(services: Services, req: ollama_wire.CreateRequest) -> tuple[Manifest, str]:
    """The model's GGUF and the settings it starts from; the label names it in errors."""
    if req.adapters:
        raise BadRequest("adapters are not supported: merge the adapter into a GGUF first")
    if req.quantize:
        raise BadRequest("quantize is not supported: pull or upload a GGUF that is already quantized")
    if req.from_ and req.files:
        raise BadRequest("give either 'from' or 'files', not both")
    if req.files:
        manifest = making.from_blob(services.store, req.files)
        return manifest, f"'{next(iter(req.files))}' ({manifest.gguf})"
    if not req.from_:
        raise BadRequest("neither 'from' nor 'files' was specified")
    if making.looks_like_path(req.from_):
        manifest = making.from_path(req.from_)
        return manifest, req.from_  # as given: a link's target is not the client's business
    stored = services.store.read(req.from_)
    if stored is not None:
        return stored, f"the file of model '{req.from_}'"
    entry = await services.registry.resolve(req.from_)
    return cards.manifest_of(entry.card), f"the file of model '{req.from_}'"


@post("/api/create", status_code=200)
async def create(request: Request, services: Services) -> Response[Any] | Stream:
    req = _with_modelfile(await body.read(request, ollama_wire.CreateRequest, services.settings.max_body_bytes))
    name = names.canonical(req.model or req.name)
    base, label = await _base(services, req)
    messages = [msgspec.to_builtins(m) for m in req.messages] if req.messages is not None else None
    # settle renders the template once to check it: CPU work, off the event loop
    manifest = await anyio.to_thread.run_sync(partial(
        making.settle, base, name, template=req.template, system=req.system,
        parameters=req.parameters, license=req.license, messages=messages))
    if services.store.read(name) is not None:  # re-created: its loaded copy must not linger
        with contextlib.suppress(ModelNotFound):
            await services.scheduler.unload(await services.registry.resolve(name))
    await making.write_checked(services.store, manifest, label)
    await services.registry.refresh()
    return await _answer(_create_steps(manifest), req.stream)


# copy and delete
@post("/api/copy", status_code=200)
async def copy(request: Request, services: Services) -> Response[bytes]:
    req = await body.read(request, ollama_wire.CopyRequest, services.settings.max_body_bytes)
    if not req.source or not req.destination:
        raise BadRequest("source and destination are required")
    destination = names.canonical(req.destination)
    source = services.store.read(req.source)
    if source is None:
        source = cards.manifest_of((await services.registry.resolve(req.source)).card)
    manifest = await anyio.to_thread.run_sync(partial(
        making.settle, source, destination, template=None, system=None, parameters=None,
        license=None, messages=None))
    await making.write_checked(services.store, manifest, f"the file of model '{req.source}'")
    await services.registry.refresh()
    return Response(b"", status_code=200)


@delete("/api/delete", status_code=200)
async def delete_model(request: Request, services: Services) -> Response[bytes]:
    req = await body.read(request, ollama_wire.DeleteRequest, services.settings.max_body_bytes)
    name = req.model or req.name
    if not name:
        raise BadRequest("model is required")
    if not services.store.manifest_path(name).is_file():
        card = (await services.registry.resolve(name)).card  # ModelNotFound if unknown
        raise BadRequest(f"model '{name}' is not in the model store and cannot be deleted "
                         f"here: it is {cards.origin(services.settings, services.store, card)}")
    with contextlib.suppress(ModelNotFound):  # a manifest whose file is gone is still deleted
        await services.scheduler.unload(await services.registry.resolve(name))
    manifest = services.store.read(name)
    services.store.delete(name)
    if manifest is not None:
        making.remove_unreferenced(services.store, manifest.gguf)
    await services.registry.refresh()
    return Response(b"", status_code=200)


ROUTES: list[Callable[..., Any]] = [pull, pull_files, blob_exists, blob_upload, create, copy, delete_model]
