"""Ollama's `options`: known keys are type-checked, unknown keys are ignored as Ollama does."""

from __future__ import annotations

import logging
import math
from typing import Any

from localforge.errors import BadRequest

log = logging.getLogger(__name__)

_NUMBER = (int, float)
_INT = (int,)
PREDICT_OPTIONS: dict[str, tuple[type, ...]] = {
    "num_keep": _INT, "seed": _INT, "num_predict": _INT, "top_k": _INT, "top_p": _NUMBER,
    "min_p": _NUMBER, "typical_p": _NUMBER, "repeat_last_n": _INT, "temperature": _NUMBER,
    "repeat_penalty": _NUMBER, "presence_penalty": _NUMBER, "frequency_penalty": _NUMBER,
    "mirostat": _INT, "mirostat_tau": _NUMBER, "mirostat_eta": _NUMBER, "tfs_z": _NUMBER,
    "penalize_newline": (bool,), "stop": (list,),
}
# options that change how a model is loaded: a different value means a different resident copy
LOAD_OPTIONS: dict[str, tuple[type, ...]] = {
    "num_ctx": _INT, "num_batch": _INT, "num_gpu": _INT, "main_gpu": _INT, "use_mmap": (bool,),
    "use_mlock": (bool,), "num_thread": _INT, "low_vram": (bool,), "numa": (bool,),
    "vocab_only": (bool,), "f16_kv": (bool,), "logits_all": (bool,),
}
KNOWN = PREDICT_OPTIONS | LOAD_OPTIONS
INT32 = (-(2**31), 2**31 - 1)
# what llama.cpp can take: outside these it fails to load, allocates terabytes or aborts
RANGES: dict[str, tuple[int, int]] = {
    "num_batch": (1, 2**20), "num_ctx": (0, 2**24), "num_thread": (0, 1024),
    "num_gpu": (-1, 2**20), "main_gpu": (0, 1024), "mirostat": (0, 2), "repeat_last_n": (-1, 2**31 - 1),
    "seed": (-(2**63), 2**64 - 1),
}


def _coerce(key: str, value: Any, types: tuple[type, ...]) -> Any:
    if value is None:
        return None
    if types == _INT and isinstance(value, float) and value.is_integer():
        return int(value)
    if bool not in types and isinstance(value, bool):
        raise BadRequest(f"option \"{key}\" must be a number, got {value!r}")
    if not isinstance(value, types):
        kind = "a list of strings" if types == (list,) else types[0].__name__
        kind = "a number" if types == _NUMBER else kind
        raise BadRequest(f"option \"{key}\" must be {kind}, got {type(value).__name__}")
    if key == "stop" and not all(isinstance(s, str) for s in value):  # type: ignore[attr-defined]
        raise BadRequest("option \"stop\" must be a list of strings")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"option \"{key}\" must be a finite number, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = RANGES.get(key, INT32)
        if not low <= value <= high:
            raise BadRequest(f"option \"{key}\" must be between {low} and {high}, got {value}")
    return value


def validate(options: Any) -> dict[str, Any]:
    """Type-check the known options; drop unknown ones; raise BadRequest naming a bad one."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise BadRequest("options must be an object")
    clean: dict[str, Any] = {}
    for key, value in options.items():
        types = KNOWN.get(key)
        if types is None:
            log.debug("ignoring unknown option %r", key)
            continue
        if key == "stop" and isinstance(value, str):
            value = [value]
        coerced = _coerce(key, value, types)
        if coerced is not None:
            clean[key] = coerced
    return clean


# the load options that change what llama.cpp loads; the others (low_vram, f16_kv, …) are
# accepted for compatibility but must not make a second resident copy of a model
RELOAD_OPTIONS = ("num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "use_mlock", "num_thread")


def load_key(options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The load-time options that distinguish one resident configuration from another."""
    return tuple(sorted((k, v) for k, v in options.items() if k in RELOAD_OPTIONS))


def parse_modelfile_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Modelfile `parameters` may repeat `stop`; values arrive as strings or lists."""
    clean: dict[str, Any] = {}
    for key, value in parameters.items():
        types = KNOWN.get(key)
        if types is None:
            raise BadRequest(f"unknown parameter '{key}'")
        if value is None:
            raise BadRequest(f"parameter '{key}' needs a value, got null")
        if key == "stop":
            clean[key] = _coerce(key, value if isinstance(value, list) else [value], types)
            continue
        if isinstance(value, list):
            if not value:
                raise BadRequest(f"parameter '{key}' needs a value, got []")
            value = value[-1]
        if isinstance(value, str):
            try:
                value = bool(value.lower() == "true") if types == (bool,) else (
                    int(value) if types == _INT else float(value))
            except ValueError as exc:
                raise BadRequest(f"parameter '{key}' must be a number, got {value!r}") from exc
        clean[key] = _coerce(key, value, types)
    return clean
