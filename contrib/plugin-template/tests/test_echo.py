"""The template's own test: the backend answers as a LocalForge backend must, with no server."""

from __future__ import annotations

import anyio
from localforge_echo import EchoBackend, register_backends

from localforge.config import Settings
from localforge.inference import Delta, Final, Inference, Message


def test_registers_one_backend_with_the_configured_model_name() -> None:
    found: list[EchoBackend] = []
    register_backends(register=found.append, settings=Settings(plugins={"echo": {"model": "parrot:1b"}}))
    assert [card.name for card in found[0].models()] == ["parrot:1b"]


def test_streams_the_last_user_message_back_then_a_final() -> None:
    backend = EchoBackend("echo:latest")
    request = Inference(model="echo", kind="chat", messages=[
        Message(role="user", content="first"), Message(role="assistant", content="x"),
        Message(role="user", content="hello there world")])

    async def run() -> list[object]:
        return [e async for e in backend.infer(backend.models()[0], request)]

    events = anyio.run(run)
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "hello there world"
    assert isinstance(events[-1], Final) and events[-1].eval_tokens == 3
