"""What a GGUF file says about its model, read from its header without loading the weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader, GGUFValueType, LlamaFileType

from localforge.errors import BadRequest

GGUF_MAGIC = b"GGUF"
# arrays longer than this (token lists, merges) are summarised, as Ollama does without `verbose`
_MAX_ARRAY = 64


@dataclass(slots=True)
class GGUFInfo:
    path: Path
    size: int
    architecture: str
    metadata: dict[str, Any]
    parameter_count: int
    tokens: list[str] = field(default_factory=list, repr=False)

    def arch_value(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def context_length(self) -> int:
        return int(self.arch_value("context_length", 2048))

    @property
    def chat_template(self) -> str:
        return str(self.metadata.get("tokenizer.chat_template", "") or "")

    @property
    def quantization(self) -> str:
        file_type = self.metadata.get("general.file_type")
        if file_type is None:
            return "unknown"
        try:
            return LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_")
        except ValueError:
            return f"type{file_type}"

    @property
    def parameter_size(self) -> str:
        n = self.parameter_count
        if n >= 1e9:
            return f"{n / 1e9:.1f}B"
        return f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"

    def token(self, key: str) -> str:
        """The text of a special token named in the metadata (`bos`, `eos`), or ""."""
        index = self.metadata.get(f"tokenizer.ggml.{key}_token_id")
        if index is None or not (0 <= int(index) < len(self.tokens)):
            return ""
        return self.tokens[int(index)]

    @property
    def has_fim(self) -> bool:
        if "tokenizer.ggml.fim_pre_token_id" in self.metadata:
            return True
        vocab = set(self.tokens[-2048:]) | set(self.tokens[:2048])
        return {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"} <= vocab

    @property
    def is_embedding_model(self) -> bool:
        return self.architecture in {"bert", "nomic-bert", "jina-bert-v2", "t5encoder"} or bool(
            self.metadata.get(f"{self.architecture}.pooling_type"))


def _field_value(reader_field: Any) -> Any:
    types = reader_field.types
    if not types:
        return None
    if types[0] == GGUFValueType.ARRAY:
        if types[-1] == GGUFValueType.STRING:
            return [bytes(reader_field.parts[i]).decode("utf-8", "replace") for i in reader_field.data]
        return [reader_field.parts[i].tolist()[0] for i in reader_field.data]
    if types[0] == GGUFValueType.STRING:
        return bytes(reader_field.parts[reader_field.data[0]]).decode("utf-8", "replace")
    value = reader_field.parts[reader_field.data[0]]
    return value.tolist()[0] if isinstance(value, np.ndarray) else value


def read(path: Path) -> GGUFInfo:
    """Read a GGUF header; raise BadRequest if the file is not a valid GGUF."""
    stat = path.stat()
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _read_cached(path: str, mtime_ns: int, size: int) -> GGUFInfo:
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != GGUF_MAGIC:
                raise BadRequest(f"{Path(path).name} is not a GGUF file")
        reader = GGUFReader(path, "r")
    except BadRequest:
        raise
    except Exception as exc:  # the gguf package raises several kinds on a damaged file
        raise BadRequest(f"{Path(path).name} is not a valid GGUF file: {exc}") from exc
    metadata: dict[str, Any] = {}
    tokens: list[str] = []
    for name, reader_field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        value = _field_value(reader_field)
        if name == "tokenizer.ggml.tokens":
            tokens = value
        if isinstance(value, list) and len(value) > _MAX_ARRAY:
            value = None  # Ollama shows long arrays as null unless verbose
        metadata[name] = value
    parameter_count = int(sum(int(np.prod(t.shape)) for t in reader.tensors))
    architecture = str(metadata.get("general.architecture", "unknown"))
    return GGUFInfo(Path(path), size, architecture, metadata, parameter_count, tokens)


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False
