"""What `localforge show` and `/show info` print about a model, from `/api/show`."""

from __future__ import annotations

from typing import Any


def table(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, four spaces apart, as `ollama list` prints them."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("    ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def describe(info: dict[str, Any]) -> str:
    details, model_info = info.get("details") or {}, info.get("model_info") or {}
    arch = model_info.get("general.architecture", details.get("family", ""))
    lines = ["  Model"]
    for label, value in [("architecture", arch), ("parameters", details.get("parameter_size")),
                         ("context length", model_info.get(f"{arch}.context_length")),
                         ("embedding length", model_info.get(f"{arch}.embedding_length")),
                         ("quantization", details.get("quantization_level"))]:
        if value:
            lines.append(f"    {label:<20}{value}")
    lines += ["", "  Capabilities", *(f"    {c}" for c in info.get("capabilities") or [])]
    if info.get("parameters"):
        lines += ["", "  Parameters", *(f"    {line}" for line in info["parameters"].splitlines())]
    if info.get("system"):
        lines += ["", "  System", *(f"    {line}" for line in info["system"].splitlines())]
    return "\n".join(lines)
