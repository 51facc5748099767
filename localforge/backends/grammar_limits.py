"""What llama.cpp's grammar can take: a `format` schema is checked here, in the server, before a
runner builds a grammar from it.

llama.cpp aborts the whole runner on some schemas instead of refusing them: an empty `enum`
(or `anyOf`, `oneOf`, `type: []`) makes a rule with no alternatives, and a repetition bound in
the thousands (`maxLength`, `maxItems`, a pattern's `{1,100000}`) passes its grammar parser's
"sane defaults" for repeated rules. Both are refused here with a 400 naming the field.
"""

from __future__ import annotations

import re
from typing import Any

from localforge.errors import BadRequest

# llama.cpp refuses (then crashes on) rules repeated more than about 2,000 times in all; a
# string's character rule counts twice, so 500 leaves room for a group repeated inside another
MAX_REPEAT = 500
MAX_NODES = 5_000
MAX_PATTERN = 1_000
_BOUNDS = ("maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties")
_NONEMPTY = ("enum", "anyOf", "oneOf", "allOf", "type")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_DATA = ("enum", "const", "examples", "default")  # values, not schemas
_QUANTIFIER = re.compile(r"\{(\d*)(?:,(\d*))?\}")


def check(schema: Any) -> None:
    """Raise BadRequest naming the first part of `schema` llama.cpp's grammar cannot take."""
    stack: list[tuple[str, Any]] = [("format", schema)]
    seen = 0
    while stack:
        where, node = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise BadRequest(f"format: the schema has more than {MAX_NODES} parts")
        if isinstance(node, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        for key in _NONEMPTY:
            if key in node and isinstance(node[key], list) and not node[key]:
                raise BadRequest(f"{where}.{key} must not be empty")
        for key in _BOUNDS:
            value = node.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > MAX_REPEAT:
                raise BadRequest(f"{where}.{key} is {value}; llama.cpp's grammar takes at most "
                                 f"{MAX_REPEAT}")
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            _check_pattern(f"{where}.pattern", pattern)
        for key, value in node.items():
            if key in _SCHEMA_MAPS and isinstance(value, dict):  # names → schemas, any name
                stack.extend((f"{where}.{key}.{name}", sub) for name, sub in value.items())
            elif isinstance(value, (dict, list)) and key not in _DATA:
                stack.append((f"{where}.{key}", value))


def _check_pattern(where: str, pattern: str) -> None:
    """llama.cpp copies a repeated group once per repetition: the size of each repeated item
    (its atoms, its nested repetitions) times its bound must stay within MAX_REPEAT."""
    if len(pattern) > MAX_PATTERN:
        raise BadRequest(f"{where} is longer than {MAX_PATTERN} characters")
    frames: list[list[int]] = [[]]  # the sizes of the items in each open group
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            frames[-1].append(1)
            i += 2
            continue
        if char == "[":
            end = pattern.find("]", i + 2)
            frames[-1].append(1)
            i = len(pattern) if end < 0 else end + 1
            continue
        if char == "(":
            frames.append([])
        elif char == ")" and len(frames) > 1:
            group = frames.pop()
            frames[-1].append(max(sum(group), 1))
        elif char == "{" and (m := _QUANTIFIER.match(pattern, i)) and frames[-1]:
            bound = max(int(m.group(1) or 0), int(m.group(2) or 0))
            frames[-1][-1] *= max(bound, 1)
            if frames[-1][-1] > MAX_REPEAT:
                raise BadRequest(f"{where} repeats too much ({m.group(0)} on a part of size "
                                 f"{frames[-1][-1] // max(bound, 1)}); llama.cpp's grammar takes "
                                 f"at most {MAX_REPEAT} repetitions")
            i = m.end()
            continue
        elif char not in "^$|*+?":
            frames[-1].append(1)
        i += 1
