"""The README's claims, checked against the code: its development command works after its set-up,
every top-level setting it says has a LOCALFORGE_ variable has one, and the cap is explained."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from localforge import config

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()

# a value for each top-level setting, as it would be written in the environment
SAMPLES: dict[str, tuple[str, Any]] = {
    "host": ("0.0.0.0", "0.0.0.0"), "port": ("1234", 1234), "data_dir": ("/tmp/lf-data", Path("/tmp/lf-data")),
    "models_dir": ("/tmp/lf-models", Path("/tmp/lf-models")), "keep_alive": ("10m", "10m"),
    "parallel": ("3", 3), "max_queue": ("7", 7), "vram_budget": ("8GiB", "8GiB"), "ram_budget": ("4GiB", "4GiB"),
    "starvation_s": ("12.5", 12.5), "min_resident_s": ("2", 2.0), "schedule_policy": ("fifo", "fifo"),
    "max_body_bytes": ("1024", 1024), "default_num_ctx": ("2048", 2048), "n_threads": ("2", 2),
    "demo_models": ("false", False), "origins": ("http://a.example, http://b.example",
                                                 ["http://a.example", "http://b.example"]),
    "allowed_hosts": ("llm.home.arpa, *.ts.net", ["llm.home.arpa", "*.ts.net"]),
    "hf_endpoint": ("https://hf-mirror.example", "https://hf-mirror.example"),
    "registry": ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    "safe_mode": ("on", "on"), "runner_cooldown_s": ("30", 30.0),
    "api_keys": ("key-one,key-two", ["key-one", "key-two"]),
}


def test_every_top_level_setting_has_its_variable_or_the_readme_says_not() -> None:
    fields = set(config.Settings.__struct_fields__)
    assert set(SAMPLES) | set(config.NOT_IN_ENV) == fields, "a new setting needs a sample here"
    for name, (raw, expected) in SAMPLES.items():
        settings = config.load(environ={f"LOCALFORGE_{name.upper()}": raw})
        assert getattr(settings, name) == expected, name
    assert config.load(environ={"LOCALFORGE_API_KEY": "only-one"}).api_keys == ["only-one"]
    section = README[README.index("## Configuration"):README.index("### What is recorded")]
    for name in set(config.NOT_IN_ENV) - {"plugins"}:  # plugins: the sections LocalForge does not know
        assert f"`{name}`" in section, f"the README does not say {name} has no LOCALFORGE_ variable"


def test_the_development_command_works_after_the_set_up() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {re.split(r"[<>=]", d)[0] for d in extras["dev"]} >= {"ruff", "mypy"}
    set_up = next(line for line in README.splitlines() if "-m pytest" in line and "pip install" in line)
    assert re.search(r"\.\[[^\]]*\bdev\b[^\]]*\]", set_up), set_up
    assert set_up in (ROOT / ".ci" / "run").read_text()  # CI runs exactly the README's command
    assert ".venv/bin/ruff check localforge tests && .venv/bin/mypy localforge" in README


def test_the_readme_says_what_the_daily_budget_counts() -> None:
    text = README[README.index("### The `auto` model"):README.index("## Plugins")]
    paragraph = next(p for p in text.split("\n\n") if "daily_budget" in p and "counts" in p)
    for word in ("expected", "UTC", "auto"):
        assert word in paragraph
