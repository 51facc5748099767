"""Ollama's Modelfile: `FROM`, `PARAMETER`, `TEMPLATE`, `SYSTEM`, `MESSAGE` and `LICENSE`.

Instructions are case-insensitive, `#` starts a comment line, and a value is the rest of the line,
a `"quoted string"`, or a `\"\"\"block\"\"\"` that may span lines. `ADAPTER` (LoRA) and anything else
LocalForge cannot honour is refused with the line it is on, never silently dropped. Both
`localforge create -f` and the legacy `modelfile` field of `/api/create` read Modelfiles here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from localforge.errors import BadRequest
from localforge.options import KNOWN, parse_modelfile_parameters

ROLES = ("system", "user", "assistant")
_INSTRUCTION = re.compile(r"^([A-Za-z]+)(?:\s+|$)(.*)$", re.S)
_BLOB = re.compile(r"^@?(sha256[:-][0-9a-f]{64})$")
REFUSED = {
    "adapter": "ADAPTER is not supported: merge the LoRA adapter into the GGUF file first",
    "requires": "REQUIRES is not supported",
    "quantize": "QUANTIZE is not supported: use a GGUF that is already quantized",
}


class ModelfileError(BadRequest):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"Modelfile line {line}: {message}")
        self.line = line


@dataclass(slots=True)
class Modelfile:
    from_: str = ""
    from_line: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    license: list[str] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)

    @property
    def from_blob(self) -> str | None:
        """`FROM @sha256:<hex>` (what old Ollama clients send after uploading the file)."""
        m = _BLOB.match(self.from_)
        return m.group(1).replace("-", ":", 1) if m else None


def _value(text: str, lines: list[str], index: int) -> tuple[str, int]:
    """The value starting at `text` (the rest of line `index`) and the index of its last line."""
    stripped = text.strip()
    if stripped.startswith('"""'):
        body = stripped[3:]
        end = index
        while '"""' not in body:
            end += 1
            if end >= len(lines):
                raise ModelfileError(index + 1, 'unterminated """ block')
            body += "\n" + lines[end]
        value, _, after = body.partition('"""')
        if after.strip():
            raise ModelfileError(end + 1, f'unexpected text after """: {after.strip()!r}')
        return value, end
    if stripped.startswith('"'):
        try:
            value = json.loads(stripped)
        except ValueError:
            raise ModelfileError(index + 1, f"malformed quoted string: {stripped}") from None
        return str(value), index
    return stripped, index


def parse(text: str) -> Modelfile:
    """Parse a Modelfile; raise ModelfileError naming the line of the first problem."""
    result = Modelfile()
    raw_parameters: dict[str, Any] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        number = index + 1
        if not line or line.startswith("#"):
            index += 1
            continue
        m = _INSTRUCTION.match(line)
        if not m:
            raise ModelfileError(number, f"cannot read {line!r}")
        command, rest = m.group(1).lower(), m.group(2)
        if command in REFUSED:
            raise ModelfileError(number, REFUSED[command])
        if command == "parameter":
            name, _, rest = rest.strip().partition(" ")
            value, index = _value(rest, lines, index)
            if name not in KNOWN:
                raise ModelfileError(number, f"unknown parameter '{name}'")
            if not value:
                raise ModelfileError(number, f"PARAMETER {name} needs a value")
            if name == "stop":
                raw_parameters.setdefault("stop", []).append(value)
            else:
                raw_parameters[name] = value
            try:
                parse_modelfile_parameters({name: raw_parameters[name]})
            except BadRequest as exc:
                raise ModelfileError(number, exc.message) from None
        elif command == "message":
            role, _, rest = rest.strip().partition(" ")
            if role.lower() not in ROLES:
                raise ModelfileError(number, f"MESSAGE role must be one of {', '.join(ROLES)}, not '{role}'")
            value, index = _value(rest, lines, index)
            result.messages.append({"role": role.lower(), "content": value})
        elif command in ("from", "template", "system", "license"):
            value, index = _value(rest, lines, index)
            if command == "from":
                if not value:
                    raise ModelfileError(number, "FROM needs a model name, a GGUF file or a blob")
                result.from_, result.from_line = value, number
            elif command == "license":
                result.license.append(value)
            else:
                setattr(result, command, value)
        else:
            raise ModelfileError(number, f"unknown instruction '{m.group(1).upper()}'")
        index += 1
    if not result.from_:
        raise BadRequest("Modelfile has no FROM line: name the model or GGUF file to start from")
    result.parameters = parse_modelfile_parameters(raw_parameters)
    return result
