"""A local GGUF model's card: what /api/tags and /api/show say about it, read from its metadata;
and back from a card to the file and settings it came from (to copy a model into the store)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from localforge import names
from localforge.backends.base import ModelCard, ModelDetails
from localforge.config import Settings
from localforge.errors import BadRequest
from localforge.gguf import gguf_info, prompts
from localforge.store.layout import Manifest, ModelStore, digest_hex

BACKEND = "llama.cpp"
# A model whose template is LocalForge's built-in one never learned that template's end of turn
# (a base model such as Gemma 3 270M): it would generate until its context is full. Its answers
# stop here unless the request or the model's parameters set num_predict.
UNTRUSTED_END_NUM_PREDICT = 512


def _digest(manifest: Manifest, path: Path) -> str:
    """The blob digest for stored models; a stable id from path, size and time for loose files."""
    if manifest.gguf.startswith("sha256"):
        return digest_hex(manifest.gguf)
    stat = path.stat()
    return hashlib.sha256(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()


def card_for(manifest: Manifest, path: Path) -> ModelCard:
    info = gguf_info.read(path)
    template = prompts.choose(info.chat_template, set(info.tokens), manifest.template)
    capabilities = ["embedding"] if info.is_embedding_model else ["completion"]
    if not info.is_embedding_model:
        # templates that do not render tools themselves get LocalForge's tool instructions
        capabilities.append("tools")
        if info.has_fim:
            capabilities.append("insert")
    model_info = {k: v for k, v in info.metadata.items() if not k.startswith("tokenizer.chat")}
    model_info["general.parameter_count"] = info.parameter_count
    model_info["localforge.template_source"] = template.source
    notes = [f"template: {template.source}"]
    if template.source.startswith("built-in"):
        notes.append("the GGUF file carries no chat template; LocalForge uses its built-in "
                     f"{template.source.removeprefix('built-in ')} template for this family")
    parameters = dict(manifest.parameters)
    if template.stop and "stop" not in parameters:
        parameters["stop"] = template.stop
    if template.source.startswith("built-in") and "num_predict" not in parameters:
        parameters["num_predict"] = UNTRUSTED_END_NUM_PREDICT
        notes.append(f"no end of turn of its own: answers stop after {UNTRUSTED_END_NUM_PREDICT} "
                     "tokens (num_predict) unless a request sets num_predict")
    stat = path.stat()
    return ModelCard(
        name=manifest.model,
        backend=BACKEND,
        size=info.size,
        digest=_digest(manifest, path),
        modified_at=datetime.fromtimestamp(stat.st_mtime, UTC),
        details=ModelDetails(
            format="gguf", family=info.architecture, families=[info.architecture],
            parameter_size=info.parameter_size, quantization_level=info.quantization),
        capabilities=capabilities,
        context_length=info.context_length,
        model_info=model_info,
        template=template.text,
        system=manifest.system,
        parameters=parameters,
        license=manifest.license,
        modelfile_notes=notes,
        locality="local",
        source={"path": str(path), "template_source": template.source,
                "template_stop": template.stop},
    )


# where a model comes from
def manifest_of(card: ModelCard) -> Manifest:
    """A manifest that serves the same file with the same settings, for a model outside the store."""
    path = card.source.get("path")
    if card.backend != BACKEND or not path:
        raise BadRequest(f"model '{card.name}' is served by the {card.backend} backend and has "
                         "no GGUF file here to copy")
    modelfile = card.source.get("template_source") == "modelfile"
    parameters = dict(card.parameters)
    if not modelfile and parameters.get("stop") == card.source.get("template_stop"):
        parameters.pop("stop")  # it came from the template; a new template brings its own
    return Manifest(model=card.name, gguf=str(path), template=card.template if modelfile else "",
                    system=card.system, parameters=parameters, license=card.license, source="file")


def origin(settings: Settings, store: ModelStore, card: ModelCard) -> str:
    """Where a model outside the store comes from, and how to remove it instead."""
    path = Path(card.source.get("path") or "")
    if card.backend != BACKEND:
        return f"served by the {card.backend} backend"
    if path.suffix == ".gguf" and path.parent == store.root.resolve():
        return f"the file {path} in the models directory; delete the file to remove it"
    configured = {names.canonical(m.name).lower() for m in settings.models if names.is_valid(m.name)}
    if names.canonical(card.name).lower() in configured:
        return "declared under [[models]] in the config file; remove it there"
    return "a demo model from localforge[demo]; set demo_models = false to hide it"
