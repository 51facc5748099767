"""Every llama.cpp function the runner calls is called as llama-cpp-python's binding declares it.

A C function called with the wrong arguments through ctypes is undefined behaviour, not an error
(the penalties sampler once got 4 arguments where llama.h takes 5: `n_vocab` received the last-n
window and the window whatever sat in a register). So the runner declares no C signatures of its
own, and every call it makes passes as many arguments as the binding's `argtypes` list.
"""

from __future__ import annotations

import ast
from pathlib import Path

import llama_cpp.llama_cpp as binding
import pytest

RUNNER = Path(__file__).parent.parent / "localforge" / "runner"


def native_calls(source: Path) -> list[tuple[int, str, int]]:
    """(line, function, positional arguments) of each `llama.f(...)` / `native.f(...)` call."""
    tree = ast.parse(source.read_text())
    aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for a in node.names if a.name == "llama_cpp.llama_cpp"}
    calls = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id in aliases):
            assert not any(isinstance(a, ast.Starred) for a in node.args), f"{source.name}:{node.lineno}"
            calls.append((node.lineno, node.func.attr, len(node.args)))
    return calls


@pytest.mark.parametrize("source", sorted(RUNNER.glob("*.py")), ids=lambda p: p.name)
def test_calls_match_the_bindings_declarations(source: Path) -> None:
    for line, name, count in native_calls(source):
        function = getattr(binding, name)
        argtypes = getattr(function, "argtypes", None)
        assert argtypes is not None, f"{source.name}:{line}: {name} is not a declared C function"
        assert count == len(argtypes), (f"{source.name}:{line}: {name} called with {count} arguments, "
                                        f"declared with {len(argtypes)}")


def test_the_runner_declares_no_c_signatures_of_its_own() -> None:
    for source in RUNNER.glob("*.py"):
        text = source.read_text()
        assert "CFUNCTYPE" not in text and "._lib" not in text, source.name


def test_the_check_sees_the_sampler_calls() -> None:
    names = {name for source in ("slots.py", "sampling.py") for _, name, _ in native_calls(RUNNER / source)}
    assert {"llama_sampler_init_penalties", "llama_sampler_init_grammar", "llama_decode",
            "llama_sampler_sample", "llama_tokenize"} <= names
