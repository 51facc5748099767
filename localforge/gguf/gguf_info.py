"""What a GGUF file says about its model, read from its header without loading the weights."""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

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
    tensors: TensorBytes = field(default_factory=lambda: TensorBytes((), 0, 0, 0), repr=False)

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


@dataclass(slots=True, frozen=True)
class TensorBytes:
    """The weights' bytes as llama.cpp places them: each repeating block (`blk.N.*`), the input
    embeddings (always on the CPU) and the output layer (norm and projection). A model with tied
    embeddings has no projection of its own: on the CPU it reuses the input embeddings
    (`output_cpu` is the norm alone), on the GPU llama.cpp copies them there (`output`)."""

    layers: tuple[int, ...]
    input: int
    output: int
    output_cpu: int
    repack: tuple[int, ...] = ()  # each layer's copy in llama.cpp's AMX buffer (beside the mapped file)
    output_repack: int = 0  # the output projection's AMX copy (of the input embeddings if tied)

    @property
    def total(self) -> int:
        """Every weight's bytes once (a tied output shares the input embeddings')."""
        return sum(self.layers) + self.input + self.output_cpu

    def scaled(self, factor: float) -> TensorBytes:
        """The same model at another quantization, `factor` times the bytes, spread alike."""
        def times(n: int) -> int:
            return round(n * factor)

        return TensorBytes(tuple(map(times, self.layers)), times(self.input), times(self.output),
                           times(self.output_cpu), tuple(map(times, self.repack)), times(self.output_repack))


def tensor_nbytes(dims: list[int], ggml_type: int) -> int:
    block, size = GGML_QUANT_SIZES.get(GGMLQuantizationType(ggml_type), (1, 4))
    return int(np.prod(dims)) // block * size if dims else 0


# llama.cpp's AMX kernels (ggml-cpu/amx, built where the CPU has AMX-INT8): the weight types they
# repack into a buffer of their own, with the K alignment each needs and the bytes each block gains
_AMX_TYPES = {GGMLQuantizationType.Q4_0: (32, 0), GGMLQuantizationType.Q4_1: (32, 0),
              GGMLQuantizationType.Q8_0: (32, 4), GGMLQuantizationType.Q4_K: (256, 4),
              GGMLQuantizationType.Q5_K: (256, 4), GGMLQuantizationType.Q6_K: (256, 0),
              GGMLQuantizationType.IQ4_XS: (256, 2), GGMLQuantizationType.F16: (16, 0)}
_AMX_TILE_N = 32  # a matrix's output rows come in tiles of 2 x 16


def amx_nbytes(dims: list[int], ggml_type: int) -> int:
    """The bytes of a weight matrix's copy in llama.cpp's AMX buffer, 0 where AMX leaves it: a 2-D
    weight of a supported type whose shape fits the tiles, repacked with the extras each block
    carries there (`ggml_backend_amx_get_alloc_size` in ggml-cpu/amx/mmq.cpp; f16 is copied as is)."""
    if len(dims) != 2 or ggml_type not in _AMX_TYPES:
        return 0
    (k, n), (alignment, extra) = dims, _AMX_TYPES[GGMLQuantizationType(ggml_type)]
    if k % alignment or n % _AMX_TILE_N:
        return 0
    if ggml_type == GGMLQuantizationType.F16:
        return tensor_nbytes(dims, ggml_type)
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    return n * (k // block) * (size + extra)


def _layer(name: str) -> int | None:
    parts = name.split(".")
    return int(parts[1]) if parts[0] == "blk" and len(parts) > 1 and parts[1].isdigit() else None


def group_tensors(sizes: dict[str, int], amx: dict[str, int] | None = None) -> TensorBytes:
    """Group the tensors' bytes (`sizes`, and `amx`: each weight's AMX copy) as llama.cpp places them."""
    layers: dict[int, int] = {}
    repack: dict[int, int] = {}
    amx = amx or {}
    other = 0
    for name, nbytes in sizes.items():
        if (index := _layer(name)) is not None:
            layers[index] = layers.get(index, 0) + nbytes
            repack[index] = repack.get(index, 0) + amx.get(name, 0)
        elif not name.startswith(("token_embd", "output")):
            other += nbytes  # rope factors and the like: small, kept with the input
    embeddings, norm = sizes.get("token_embd.weight", 0), sizes.get("output_norm.weight", 0)
    projection = sizes.get("output.weight", 0)
    count = max(layers, default=-1) + 1
    # a tied output is a duplicate of the input embeddings: on the CPU it shares their bytes, but
    # AMX (a buffer type of its own for the projection) keeps a repacked copy of it
    output_repack = amx.get("output.weight", 0) if projection else amx.get("token_embd.weight", 0)
    return TensorBytes(tuple(layers.get(i, 0) for i in range(count)), embeddings + other,
                       norm + (projection or embeddings), norm + projection,
                       tuple(repack.get(i, 0) for i in range(count)), output_repack)


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class Truncated(EOFError):
    """The bytes end before the header does: a partial read of a file needs more of it."""


class _Cursor:
    """Reads GGUF's little-endian header straight from a memory map (or the first bytes of a
    file): the gguf package's reader takes seconds on a 262k-token vocabulary, this takes
    milliseconds."""

    def __init__(self, buffer: mmap.mmap | bytes) -> None:
        self.buf = buffer
        self.pos = 0

    def _need(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise Truncated(f"the header goes on past byte {len(self.buf)}")

    def unpack(self, fmt: str) -> Any:
        self._need(struct.calcsize(fmt))
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        self._need(length)
        raw = self.buf[self.pos:self.pos + length]
        self.pos += length
        return raw.decode("utf-8", "replace")

    def value(self, kind: int) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.unpack("<I"), self.unpack("<Q")
            if item_kind in _SCALARS:
                dtype = np.dtype(_SCALARS[item_kind])
                self._need(dtype.itemsize * count)
                items = np.frombuffer(self.buf, dtype, count, self.pos)
                self.pos += dtype.itemsize * count
                return items.tolist()
            return [self.value(item_kind) for _ in range(count)]
        if kind not in _SCALARS:
            raise ValueError(f"unknown GGUF value type {kind}")
        return self.unpack(_SCALARS[kind])


def _parse(buf: mmap.mmap | bytes, label: str) -> tuple[dict[str, Any], int, TensorBytes]:
    cursor = _Cursor(buf)
    if cursor.buf[:4] != GGUF_MAGIC:
        raise BadRequest(f"{label} is not a GGUF file")
    cursor.pos = 4
    version = cursor.unpack("<I")
    if version < 2:
        raise BadRequest(f"{label}: GGUF version {version} is not supported")
    n_tensors, n_kv = cursor.unpack("<Q"), cursor.unpack("<Q")
    metadata = {}
    for _ in range(n_kv):
        key = cursor.string()
        metadata[key] = cursor.value(cursor.unpack("<I"))
    parameters = 0
    sizes: dict[str, int] = {}
    amx: dict[str, int] = {}
    for _ in range(n_tensors):
        name = cursor.string()
        dims = [cursor.unpack("<Q") for _ in range(cursor.unpack("<I"))]
        ggml_type = cursor.unpack("<I")
        sizes[name], amx[name] = tensor_nbytes(dims, ggml_type), amx_nbytes(dims, ggml_type)
        cursor.unpack("<Q")
        parameters += int(np.prod(dims)) if dims else 0
    return metadata, parameters, group_tensors(sizes, amx)


def read(path: Path) -> GGUFInfo:
    """Read a GGUF header; raise BadRequest if the file is not a valid GGUF."""
    stat = path.stat()
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size)


def read_header(data: bytes, label: str, size: int) -> GGUFInfo:
    """The header of a file of `size` bytes from its first bytes (a Range request's answer);
    raise `Truncated` if they end before the header does, BadRequest if they are no GGUF."""
    try:
        metadata, parameter_count, tensors = _parse(data, label)
    except (BadRequest, Truncated):
        raise
    except (ValueError, struct.error, UnicodeError) as exc:
        raise BadRequest(f"{label} is not a valid GGUF file: {exc}") from exc
    return _info(Path(label), size, metadata, parameter_count, tensors)


@lru_cache(maxsize=64)
def _read_cached(path: str, mtime_ns: int, size: int) -> GGUFInfo:
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            metadata, parameter_count, tensors = _parse(buf, Path(path).name)
    except BadRequest:
        raise
    except (OSError, ValueError, struct.error, UnicodeError, EOFError) as exc:
        raise BadRequest(f"{Path(path).name} is not a valid GGUF file: {exc}") from exc
    return _info(Path(path), size, metadata, parameter_count, tensors)


def _info(path: Path, size: int, metadata: dict[str, Any], parameter_count: int,
          tensors: TensorBytes) -> GGUFInfo:
    tokens = metadata.get("tokenizer.ggml.tokens") or []
    for key, value in list(metadata.items()):
        if isinstance(value, list) and len(value) > _MAX_ARRAY:
            metadata[key] = None  # Ollama shows long arrays as null unless verbose
    architecture = str(metadata.get("general.architecture", "unknown"))
    return GGUFInfo(path, size, architecture, metadata, parameter_count, tokens, tensors)


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False
