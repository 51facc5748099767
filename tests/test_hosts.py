"""DNS rebinding: on loopback, a request addressed to a name that is not local is refused with 403
in the client's error format, before any data is read; local names and addresses are served."""

from __future__ import annotations

import httpx
import pytest
from conftest import RunningServer
from litestar import Litestar, get
from litestar.testing import TestClient

from localforge.server import hosts

PROBES = ["/api/ps", "/api/tags", "/ui/api/requests", "/metrics", "/api/version", "/"]


def test_a_foreign_host_gets_403_on_every_endpoint(server: RunningServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for path in PROBES:
            refused = http.get(path, headers={"Host": f"attacker.example:{port}"})
            assert refused.status_code == 403, (path, refused.text)
            assert "attacker.example" in refused.json()["error"] and "allowed_hosts" in refused.json()["error"]
        v1 = http.get("/v1/models", headers={"Host": "attacker.example"})
        assert v1.status_code == 403
        assert v1.json()["error"]["code"] == "host_not_allowed"
        assert v1.json()["error"]["type"] == "invalid_request_error"
        # a POST is refused before its body is read or anything runs
        posted = http.post("/api/generate", headers={"Host": "rebind.attacker.example"},
                           json={"model": "tiny", "prompt": "hi", "stream": False})
        assert posted.status_code == 403


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "LOCALHOST.", "app.localhost",
                                  "192.168.1.20", "0.0.0.0", "127.0.0.2"])
def test_local_names_and_addresses_are_served(server: RunningServer, host: str) -> None:
    port = server.url.rsplit(":", 1)[1]
    response = httpx.get(server.url + "/api/ps", headers={"Host": f"{host}:{port}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert "models" in response.json()


def test_the_official_clients_still_work(server: RunningServer) -> None:
    import ollama
    import openai

    assert ollama.Client(host=server.url.replace("127.0.0.1", "localhost")).ps().models is not None
    models = openai.OpenAI(base_url=server.url + "/v1", api_key="unused").models.list()
    assert any(m.id.startswith("tiny") for m in models.data)


def app(bound: str, origins: list[str] | None = None, allowed: list[str] | None = None) -> Litestar:
    @get("/api/ps", sync_to_thread=False)
    def ps() -> dict[str, list[str]]:
        return {"models": []}

    return Litestar([ps], middleware=[hosts.refuse_other_hosts(bound, origins or [], allowed or [])])


def status(application: Litestar, host: str) -> int:
    with TestClient(application) as client:
        return client.get("/api/ps", headers={"Host": host}).status_code


def test_allowed_hosts_and_the_host_names_of_origins_are_served() -> None:
    configured = app("127.0.0.1", origins=["https://chat.example.org", "https://*.corp.example:8443", "*"],
                     allowed=["llm.home.arpa", "*.tail1234.ts.net"])
    for host in ("chat.example.org", "llm.home.arpa:11434", "box.tail1234.ts.net", "a.corp.example"):
        assert status(configured, host) == 200, host
    # the `*` origin lets any page call, but does not let any name reach the server
    for host in ("attacker.example", "example.org", "llm.home.arpa.attacker.example"):
        assert status(configured, host) == 403, host
    assert status(app("127.0.0.1", allowed=["*"]), "anything.example") == 200


def test_any_host_is_served_when_bound_to_another_address() -> None:
    """As Ollama: listening on 0.0.0.0 or a LAN address, the server is reached by names it cannot
    know (a container's service name, a DNS name); `api_keys` guard it there."""
    assert status(app("0.0.0.0"), "localforge.internal.example") == 200
    assert status(app("192.168.1.5"), "attacker.example") == 200
    assert status(app("localhost"), "attacker.example") == 403
    assert status(app("::1"), "attacker.example") == 403


def test_host_header_parsing() -> None:
    assert hosts.host_name("[::1]:11434") == "::1"
    assert hosts.host_name("LocalHost.:80") == "localhost"
    assert hosts.host_name("::1") == "::1"
    assert hosts.host_name("example.com") == "example.com"
    assert hosts.configured(["https://*.x.example:8443/", "*", "app://obsidian.md"], ["A.example."]) == [
        "a.example", "*.x.example", "obsidian.md"]
