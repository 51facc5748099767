"""A local GGUF model's card: what /api/tags and /api/show say about it, read from its metadata."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from localforge.backends import gguf_info, prompts
from localforge.backends.base import ModelCard, ModelDetails
from localforge.store.layout import Manifest, digest_hex

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
