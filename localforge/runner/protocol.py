"""What the server and a runner process say to each other: msgspec messages in length-prefixed frames.

The runner's stream starts with `MARK`, then each frame is a 4-byte big-endian length and one
msgpack-encoded message; whatever an import printed before the runner took over its stdout comes
before the mark and is only logged. The server sends `Load`
once, then any number of `Infer`/`Embed`, `Cancel` for an answer it no longer wants, and `Stop`.
The runner answers `Loaded` (or `Failed` with id 0), streams `Piece`s and then one `Done` for an
answer, `Embedded` for an embedding, and `Failed` for a request it could not serve.
"""

from __future__ import annotations

import struct
from typing import Any, Literal

import msgspec

RUNNER_MODULE = "localforge.runner"  # what the server runs: python -m localforge.runner
HEADER = struct.Struct(">I")
MARK = b"\x00LOCALFORGE-RUNNER-1\x00"
MAX_FRAME = 256 << 20  # the largest answer, a batch of embeddings, is a few tens of MB


class Load(msgspec.Struct, tag=True):
    params: dict[str, Any]  # llama_cpp.Llama's keyword arguments
    safe_mode: bool = False  # llama.cpp's extra buffer types (weight repacking) off
    parallel: int = 1  # sequences decoded together (slots), each with n_ctx cells


class Infer(msgspec.Struct, tag=True):
    id: int
    text: str
    add_bos: bool
    sampling: dict[str, Any]  # create_completion's keyword arguments, but the grammar
    format: str | dict[str, Any] | None = None  # "json" or a JSON schema, compiled in the runner
    want_context: bool = False
    # whose prompt cache it may reuse (a hash of its API key): a slot holding another scope's
    # tokens shares none of them with it
    scope: str = ""


class Embed(msgspec.Struct, tag=True):
    id: int
    texts: list[str]
    truncate: bool = True


class Cancel(msgspec.Struct, tag=True):
    id: int


class Stop(msgspec.Struct, tag=True):
    pass


class Loaded(msgspec.Struct, tag=True):
    n_ctx: int
    load_ns: int
    gpu_offload: bool  # llama.cpp was built with GPU offload
    base_rss: int  # the runner's resident bytes before it loaded the model
    buffers: dict[str, int] = {}  # llama.cpp's allocations, "kind:device" -> bytes (buffers.py)


class Piece(msgspec.Struct, tag=True):
    id: int
    text: str


class Done(msgspec.Struct, tag=True):
    id: int
    done_reason: str
    prompt_tokens: int
    eval_tokens: int
    prompt_ns: int
    eval_ns: int
    context: list[int] | None = None
    cached_tokens: int = 0  # prompt tokens the slot already held
    # the runner's own cost since its previous Done (summed over answers, its totals): decode
    # steps, their time (decoding, sampling, detokenizing, stop strings, framing), and the part
    # of it in llama_decode
    steps: int = 0
    step_ns: int = 0
    decode_ns: int = 0


class Embedded(msgspec.Struct, tag=True):
    id: int
    vectors: list[list[float]]
    prompt_tokens: int


FailureKind = Literal["bad_request", "unsupported", "backend"]


class Failed(msgspec.Struct, tag=True):
    id: int  # 0: the load
    kind: FailureKind
    message: str


ToRunner = Load | Infer | Embed | Cancel | Stop
FromRunner = Loaded | Piece | Done | Embedded | Failed

_encoder = msgspec.msgpack.Encoder()
to_runner = msgspec.msgpack.Decoder(ToRunner)  # type: ignore[arg-type]
from_runner = msgspec.msgpack.Decoder(FromRunner)  # type: ignore[arg-type]


def frame(message: ToRunner | FromRunner) -> bytes:
    body = _encoder.encode(message)
    return HEADER.pack(len(body)) + body


class BrokenStream(Exception):
    """The runner's stream is not frames: the runner cannot be trusted with another request."""


class Frames:
    """Splits a runner's stream into frame bodies, however the bytes arrive. The bytes before
    `MARK` are noise (`noise()` hands them over); a frame over `MAX_FRAME` is a `BrokenStream`."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._marked = False
        self._noise = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        if not self._marked and not self._find_mark():
            return []
        bodies = []
        while len(self._buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buffer)
            if size > MAX_FRAME:
                raise BrokenStream(f"a frame of {size} bytes, over the limit of {MAX_FRAME}")
            if len(self._buffer) < HEADER.size + size:
                break
            bodies.append(bytes(self._buffer[HEADER.size:HEADER.size + size]))
            del self._buffer[:HEADER.size + size]
        return bodies

    def _find_mark(self) -> bool:
        at = self._buffer.find(MARK)
        keep = 0 if at >= 0 else len(MARK) - 1  # the mark may be split across two reads
        cut = at if at >= 0 else max(0, len(self._buffer) - keep)
        self._noise += self._buffer[:cut]
        del self._buffer[:cut]
        if at < 0:
            return False
        del self._buffer[:len(MARK)]
        self._marked = True
        return True

    def noise(self) -> bytes:
        """What came before the mark, since the last call."""
        noise, self._noise = bytes(self._noise), bytearray()
        return noise


def on_gpu(device: str) -> bool:
    """Whether a buffer's device (in `Loaded.buffers`) is a GPU's memory (CUDA0, Metal…), not the
    host's (CPU, CPU_Mapped, CUDA_Host)."""
    return not device.upper().startswith("CPU") and not device.endswith("_Host")
