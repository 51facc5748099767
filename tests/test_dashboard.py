"""The dashboard in a real headless browser: Debian's chromium driven by Playwright, over a real
LocalForge on loopback serving tiny GGUF models, with `auto` on and a fleet endpoint nobody
listens on. Screenshots of every view, at a laptop's and a phone's width, go to the test run's
temporary folder (the path is printed)."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ROUTER_NO_EXPLORATION, RunningServer, free_port, start_server, stop_server

playwright = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
LAPTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}
QUICK = {"num_predict": 4, "temperature": 0}
KEY = f"lf-{uuid.uuid4().hex}"
PRIVATE = "Email jane.doe@example.com and ask her about the invoice"

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists(),
                                reason="needs Debian's chromium: apt-get install -y chromium")

CONFIG = f"""
{ROUTER_NO_EXPLORATION}seed = 1
store_prompts = true

[router.models."tiny:latest"]
quality = {{ general = 0.7, coding = 0.4 }}

[router.models."tiny-fim:latest"]
quality = {{ general = 0.5, coding = 0.8 }}

[router.models."tiny-plain:latest"]
quality = {{ general = 0.3, coding = 0.3 }}

[router.models."far/ghost"]
quality = {{ general = 0.0, coding = 0.0 }}

[openai]
backoff_s = 0.05
retries = 0

[[openai.endpoints]]
name = "far"
base_url = "http://127.0.0.1:{free_port()}/v1"
prefix = "far/"
models = ["ghost"]
"""

# what `localforge bench replay --json` keeps in the data directory (figures of a small run)
REPLAY = {
    "apgr": 0.61, "cpt50": 0.345, "cpt80": 0.679, "weak": "mixtral-8x7b", "strong": "gpt-4",
    "evaluated": 3846, "learned": 3846, "seconds": 240.0,
    "baselines": {"always-cheapest": {"accuracy": 0.62}, "always-best": {"accuracy": 0.81}},
    "points": [{"dial": i, "cost_weight": 0.0, "share": s, "accuracy": a, "pgr": 0.0,
                "random_accuracy": 0.0, "cost": 0.0, "explored": 0}
               for i, (s, a) in enumerate([(0.0, 0.62), (0.12, 0.68), (0.3, 0.73), (0.5, 0.77),
                                           (0.7, 0.795), (0.9, 0.805), (1.0, 0.81)])],
}

# elements that reach past the right edge of the screen (clipped or scrolled, either is wrong)
WIDER_THAN_THE_SCREEN = """[...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
    .map(e => e.tagName + '.' + e.className + ': ' + (e.textContent || '').slice(0, 40))"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dashboard-screenshots")
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("dashboard")
    (home / "data").mkdir()
    (home / "data" / "replay.json").write_text(json.dumps(REPLAY))
    running = start_server(home, tiny_models, CONFIG)
    yield running
    stop_server(running)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=LAPTOP)
    yield context.new_page()
    context.close()


def chat(url: str, model: str, text: str = "hi", **extra: object) -> str:
    response = httpx.post(url + "/api/chat", timeout=60, json={
        "model": model, "messages": [{"role": "user", "content": text}], "stream": False,
        "options": QUICK, **extra})
    assert response.status_code == 200, response.text
    return response.headers["x-localforge-request-id"]


def watch(page: Page) -> list[str]:
    """The console errors and uncaught exceptions of a page, from now on."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.text} ({m.location.get('url')})")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def test_the_page_loads_with_no_console_errors_and_root_links_to_it(dash: RunningServer, page: Page) -> None:
    problems = watch(page)
    assert httpx.get(dash.url + "/").text == "Ollama is running"  # what clients compare
    page.goto(dash.url + "/")
    expect(page.get_by_text("Ollama is running")).to_be_visible()
    page.get_by_role("link", name="the dashboard").click()
    expect(page).to_have_url(dash.url + "/ui")
    expect(page.locator("#live")).to_have_text("live")
    for tab, marker in [("Requests", "#view-requests .toolbar"), ("Routing", "#view-routing .card"),
                        ("Health", "#view-health .backend"), ("Now", "#view-now .stats")]:
        page.get_by_role("link", name=tab, exact=True).click()
        expect(page.locator(marker).first).to_be_visible()
    assert problems == []
    for name in ("index.html", "dashboard.js", "dashboard.css"):  # shipped in the package, offline
        assert (Path(__file__).parent.parent / "localforge/server/dashboard/static" / name).exists()
    html = httpx.get(dash.url + "/ui").text
    assert "http" not in html.replace(dash.url, "")  # nothing from elsewhere


def test_a_chat_appears_in_the_request_list_within_two_seconds(dash: RunningServer, page: Page) -> None:
    problems = watch(page)
    page.goto(dash.url + "/ui#requests")
    expect(page.locator("#view-requests .toolbar")).to_be_visible()
    request_id = chat(dash.url, "tiny")
    row = page.locator(f'tr.request[data-id="{request_id}"]')
    expect(row).to_be_visible(timeout=2000)
    expect(row.locator('td[data-label="Model"]')).to_contain_text("tiny")
    expect(row.locator('td[data-label="Status"]')).to_contain_text("ok")
    expect(row.locator('td[data-label="Tokens"]')).to_contain_text("→")
    # the filter by status hides it, by model keeps it
    page.select_option("#filter-status", "error")
    expect(row).to_be_hidden(timeout=2000)
    page.select_option("#filter-status", "")
    page.select_option("#filter-model", "tiny")
    expect(row).to_be_visible(timeout=2000)
    row.click()
    expect(page.locator("#view-request")).to_contain_text("llama.cpp")
    assert problems == []


def test_a_loaded_model_shows_in_now_and_the_unload_button_unloads_it(dash: RunningServer, page: Page) -> None:
    problems = watch(page)
    page.goto(dash.url + "/ui#now")
    loaded = httpx.post(dash.url + "/api/generate", timeout=60,
                        json={"model": "tiny-plain", "keep_alive": "10m", "stream": False})
    assert loaded.json()["done_reason"] == "load"
    card = page.locator('article.model[data-model="tiny-plain:latest"]')
    expect(card).to_be_visible(timeout=2000)
    expect(card.locator(".badge")).to_have_text("ready")
    expect(card.locator(".keep")).to_contain_text("unloads in 9:")
    card.get_by_role("button", name="Unload").click()
    expect(card).to_be_hidden(timeout=10000)
    ps = httpx.get(dash.url + "/api/ps").json()["models"]
    assert "tiny-plain:latest" not in [m["name"] for m in ps]
    assert problems == []


def test_an_auto_requests_detail_shows_its_candidates_and_thumbs_down_changes_its_outcome(
        dash: RunningServer, page: Page) -> None:
    problems = watch(page)
    request_id = chat(dash.url, "auto", "Write a Python function that reverses a list.")
    page.goto(dash.url + f"/ui#request/{request_id}")
    candidates = page.locator("li.candidate")
    expect(candidates).to_have_count(4)  # the three tiny models and the far one
    expect(page.locator("li.candidate.chosen")).to_have_count(1)
    for part in ("prior", "quality", "cost term", "latency term"):
        expect(candidates.first).to_contain_text(part)
    expect(page.locator("#view-request")).to_contain_text("coding")  # the profile's task
    expect(page.locator("#view-request")).to_contain_text("Write a Python function")  # stored, not private
    expect(page.locator(".outcome")).to_have_count(0)
    page.get_by_role("button", name="Thumbs down").click()
    expect(page.locator(".outcome")).to_have_count(1)
    expect(page.locator(".outcome")).to_contain_text("feedback")
    expect(page.locator(".outcome .score-pill")).to_have_text("0")
    detail = httpx.get(dash.url + f"/ui/api/requests/{request_id}").json()
    assert [(o["kind"], o["score"]) for o in detail["route"]["outcomes"]] == [("feedback", 0.0)]
    assert problems == []


def test_a_private_prompt_is_never_shown(dash: RunningServer, page: Page) -> None:
    request_id = chat(dash.url, "auto", PRIVATE)
    detail = httpx.get(dash.url + f"/ui/api/requests/{request_id}").json()
    assert detail["route"]["sensitive"] and detail["prompt"] is None
    page.goto(dash.url + f"/ui#request/{request_id}")
    expect(page.locator("li.candidate").first).to_be_visible()
    expect(page.locator("#view-request")).to_contain_text("the prompt is never stored")
    assert "jane.doe" not in page.content()


def test_with_api_keys_the_page_asks_for_the_key(tmp_path: Path, tiny_models: Path, page: Page) -> None:
    guarded = start_server(tmp_path, tiny_models, f'api_keys = ["{KEY}"]\n')
    try:
        for path in ("/ui/api/now", "/ui/api/requests", "/ui/api/routing", "/ui/api/health"):
            assert httpx.get(guarded.url + path).status_code == 401, path
        assert httpx.get(guarded.url + "/ui").status_code == 200  # the shell holds no data
        page.goto(guarded.url + "/ui")
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible()
        expect(page.locator("#live")).to_have_text("needs a key")
        page.fill("#key-input", "wrong")
        page.click("#key-form button")
        expect(page.locator("#key-error")).to_be_visible()
        page.fill("#key-input", KEY)
        page.click("#key-form button")
        expect(dialog).to_be_hidden()
        expect(page.locator("#view-now .stats")).to_be_visible()
        expect(page.locator("#live")).to_have_text("live")
        page.reload()  # asked once: the key is kept
        expect(page.locator("#view-now .stats")).to_be_visible()
        expect(dialog).to_be_hidden()
        assert KEY not in guarded.log()
    finally:
        stop_server(guarded)


def test_every_view_fits_a_laptop_and_a_phone(dash: RunningServer, browser: Browser, shots: Path) -> None:
    for model in ("tiny", "tiny-fim", "auto", "auto", "auto:cheap"):
        chat(dash.url, model, "What is the capital of France?")
    httpx.post(dash.url + "/api/chat", json={"model": "ghost", "messages": []})  # an error
    httpx.post(dash.url + "/api/chat", timeout=30, json={
        "model": "far/ghost", "messages": [{"role": "user", "content": "hi"}], "stream": False})
    httpx.post(dash.url + "/api/generate", json={"model": "tiny", "keep_alive": "10m", "stream": False})
    auto_id = chat(dash.url, "auto", "Write a Python function that sorts a list of names.")
    for label, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport, device_scale_factor=1)
        page = context.new_page()
        problems = watch(page)
        for view, ready in [("now", "article.model"), ("requests", "tr.request"),
                            (f"request/{auto_id}", "li.candidate"), ("routing", ".bar-col"),
                            ("health", ".endpoint")]:
            page.goto(dash.url + f"/ui#{view}")
            page.locator(ready).first.wait_for()
            time.sleep(0.2)
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{view} scrolls sideways on a {label}"
            cut = page.evaluate(WIDER_THAN_THE_SCREEN)
            assert cut == [], f"{view} on a {label}: {cut}"
            page.screenshot(path=str(shots / f"{view.split('/')[0]}-{label}.png"), full_page=True)
        assert problems == [], problems
        context.close()

