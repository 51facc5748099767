"""A small subset of Go's text/template, enough for Ollama Modelfile templates.

Supported: `{{ .Field }}`, `{{ if .Field }}…{{ else if .Other }}…{{ else }}…{{ end }}`,
`{{ range .Messages }}…{{ end }}` (with `.Role`, `.Content` inside), `{{ if eq .Role "user" }}`,
`$.Field` for the outer scope, and the `{{-`/`-}}` whitespace trims. Anything else is a clear
BadRequest, so a template we cannot render is refused when it is created, not at chat time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from localforge.errors import BadRequest

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
_GO_STYLE = re.compile(r"\{\{-?\s*(\.|\$\.|if\s|range\s|end\b|else\b)")


def is_go_template(text: str) -> bool:
    return bool(_GO_STYLE.search(text))


@dataclass
class _Node:
    kind: str  # text | value | if | range
    arg: str = ""
    body: list[_Node] = field(default_factory=list)
    orelse: list[_Node] = field(default_factory=list)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(text):
        chunk = text[pos:m.start()]
        if m.group(1):
            chunk = chunk.rstrip()
        if out and out[-1][0] == "trim_next":
            out.pop()
            chunk = chunk.lstrip()
        out.append(("text", chunk))
        out.append(("action", m.group(2)))
        if m.group(3):
            out.append(("trim_next", ""))
        pos = m.end()
    tail = text[pos:]
    if out and out[-1][0] == "trim_next":
        out.pop()
        tail = tail.lstrip()
    out.append(("text", tail))
    return out


def _parse(tokens: list[tuple[str, str]], pos: int, stop: tuple[str, ...]) -> tuple[list[_Node], int, str]:
    nodes: list[_Node] = []
    while pos < len(tokens):
        kind, value = tokens[pos]
        pos += 1
        if kind == "text":
            if value:
                nodes.append(_Node("text", value))
            continue
        word = value.split(" ", 1)[0]
        if word in stop or value.startswith("else"):
            return nodes, pos, value
        if word in ("if", "range"):
            node = _Node(word, value[len(word):].strip())
            if word == "range" and not re.fullmatch(r"\$?\.\w+", node.arg):
                raise BadRequest(f"template: unsupported range {{{{ {value} }}}}")
            node.body, pos, ended = _parse(tokens, pos, ("end", "else"))
            if ended.startswith("else if"):
                inner, pos = _parse_else_if(tokens, pos, ended)
                node.orelse = [inner]
            elif ended == "else":
                node.orelse, pos, _ = _parse(tokens, pos, ("end",))
            nodes.append(node)
        elif value.startswith(".") or value.startswith("$."):
            nodes.append(_Node("value", value))
        elif value.startswith("/*") or not value:
            continue
        else:
            raise BadRequest(f"template: unsupported action {{{{ {value} }}}}")
    if stop:
        raise BadRequest("template: missing {{ end }}")
    return nodes, pos, ""


def _parse_else_if(tokens: list[tuple[str, str]], pos: int, header: str) -> tuple[_Node, int]:
    node = _Node("if", header[len("else if"):].strip())
    node.body, pos, ended = _parse(tokens, pos, ("end", "else"))
    if ended.startswith("else if"):
        inner, pos = _parse_else_if(tokens, pos, ended)
        node.orelse = [inner]
    elif ended == "else":
        node.orelse, pos, _ = _parse(tokens, pos, ("end",))
    return node, pos


def _lookup(expr: str, dot: dict[str, Any], root: dict[str, Any]) -> Any:
    scope = root if expr.startswith("$.") else dot
    key = expr.removeprefix("$").removeprefix(".")
    return scope.get(key, "") if key else dot


def _truth(expr: str, dot: dict[str, Any], root: dict[str, Any]) -> bool:
    m = re.fullmatch(r'(eq|ne)\s+(\S+)\s+"([^"]*)"', expr)
    if m:
        equal = str(_lookup(m.group(2), dot, root)) == m.group(3)
        return equal if m.group(1) == "eq" else not equal
    if re.fullmatch(r"\$?\.\w*", expr):
        return bool(_lookup(expr, dot, root))
    raise BadRequest(f"template: unsupported condition {expr!r}")


def _render(nodes: list[_Node], dot: dict[str, Any], root: dict[str, Any]) -> str:
    out: list[str] = []
    for node in nodes:
        if node.kind == "text":
            out.append(node.arg)
        elif node.kind == "value":
            out.append(str(_lookup(node.arg, dot, root)))
        elif node.kind == "if":
            branch = node.body if _truth(node.arg, dot, root) else node.orelse
            out.append(_render(branch, dot, root))
        elif node.kind == "range":
            items = _lookup(node.arg, dot, root) or []
            out.extend(_render(node.body, item, root) for item in items)
    return "".join(out)


def compile_template(text: str) -> list[_Node]:
    nodes, _, _ = _parse(_tokens(text), 0, ())
    return nodes


def render(text: str, values: dict[str, Any]) -> str:
    return _render(compile_template(text), values, values)
