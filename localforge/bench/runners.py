"""`localforge bench runners`: what running models in runner processes costs, and that it leaks nothing.

It starts `localforge serve` on one model (`--model`, any model the store knows; SmolLM2-135M
from the demo package by default), then measures over HTTP:

- the time to first token and the decode rate of streamed `/api/chat` answers, warm, against
  llama-cpp-python's `create_chat_completion` on the same model, prompt and sampling, called
  directly in a process of its own (`localforge.bench.direct`), with the model where LocalForge
  puts it and in safe mode where its runners are (bench/target.py);
- memory over N load/unload cycles: the server's resident memory and its runners' after each
  load and after each unload. Unloading ends the runner, so its memory goes back to the system.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from localforge.bench.server import served
from localforge.bench.streams import summary, through_localforge
from localforge.bench.target import DEMO_MODEL, Target, resolve
from localforge.runner.protocol import RUNNER_MODULE

MB = 2**20


@dataclass(slots=True)
class Cycle:
    loaded_server: int
    loaded_runners: int
    unloaded_server: int
    unloaded_runners: int
    runners_left: int


def runner_processes(server_pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(server_pid).children():
        try:
            if RUNNER_MODULE in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def _rss(processes: list[psutil.Process]) -> int:
    total = 0
    for process in processes:
        with suppress(psutil.Error):  # it may have ended since
            total += process.memory_info().rss
    return total


def memory_cycles(url: str, model: str, server_pid: int, cycles: int,
                  progress: Callable[[int, Cycle], None] | None = None) -> list[Cycle]:
    """Load and unload `model` `cycles` times through the API; memory after each step."""
    server = psutil.Process(server_pid)
    out = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for i in range(cycles):
            client.post("/api/generate", json={"model": model}).raise_for_status()
            loaded = (server.memory_info().rss, _rss(runner_processes(server_pid)))
            client.post("/api/generate", json={"model": model, "keep_alive": 0}).raise_for_status()
            left = _wait_for_runners_to_end(server_pid)
            cycle = Cycle(*loaded, server.memory_info().rss, _rss(left), len(left))
            out.append(cycle)
            if progress:
                progress(i + 1, cycle)
    return out


def _wait_for_runners_to_end(server_pid: int, timeout: float = 10) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := runner_processes(server_pid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def direct(target: Target, runs: int, num_predict: int) -> dict[str, float]:
    from localforge.bench.streams import Run

    done = subprocess.run([sys.executable, "-m", "localforge.bench.direct", str(target.path), "warm", str(runs),
                           str(num_predict), *target.direct_args()], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.returncode}  # type: ignore[dict-item]
    return summary([Run(**r) for r in json.loads(done.stdout)])


def run(args: argparse.Namespace) -> dict[str, Any]:
    target = resolve(args.model)
    model = target.name
    report: dict[str, Any] = {"model": model, "runs": args.runs, "num_predict": args.num_predict,
                              "gpu_layers": target.gpu_layers, "safe_mode": target.safe_mode}
    with served(target.path, model, target.server_settings(), remembered=target.data_dir) as (
            url, process, startup_s):
        report["startup_s"] = round(startup_s, 2)
        print(f"server up in {startup_s:.2f} s; {args.runs} warm streamed answers through LocalForge…",
              file=sys.stderr, flush=True)
        report["localforge"] = summary(through_localforge(url, model, args.runs, args.num_predict))
        print(f"{args.cycles} load/unload cycles…", file=sys.stderr, flush=True)

        def progress(i: int, c: Cycle) -> None:
            print(f"  cycle {i:3d}: server {c.unloaded_server / MB:7.1f} MiB, runner while loaded "
                  f"{c.loaded_runners / MB:7.1f} MiB, runners left {c.runners_left}", file=sys.stderr, flush=True)

        cycles = memory_cycles(url, model, process.pid, args.cycles, progress)
    print(f"{args.runs} warm answers from llama-cpp-python directly…", file=sys.stderr, flush=True)
    report["direct"] = direct(target, args.runs, args.num_predict)
    report["memory"] = {"server_first_mib": round(cycles[0].unloaded_server / MB, 1),
                        "server_last_mib": round(cycles[-1].unloaded_server / MB, 1),
                        "runner_loaded_mib": round(max(c.loaded_runners for c in cycles) / MB, 1),
                        "runners_left_after_unload": max(c.runners_left for c in cycles)}
    if args.plot:
        _plot(cycles, args.plot)
    return report


def _plot(cycles: list[Cycle], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(range(1, len(cycles) + 1))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(x, [c.unloaded_server / MB for c in cycles], label="server, after unload")
    ax.plot(x, [(c.loaded_server + c.loaded_runners) / MB for c in cycles], label="server + runner, loaded")
    ax.plot(x, [(c.unloaded_server + c.unloaded_runners) / MB for c in cycles], "--",
            label="server + runners, after unload")
    ax.set_xlabel("load/unload cycle")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="center right")
    ax.set_title("SmolLM2-135M loaded and unloaded through runner processes")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def print_report(report: dict[str, Any]) -> None:
    lf, dr, mem = report["localforge"], report["direct"], report["memory"]
    print(f"time to first token and decode rate, {report['model']}, {report['runs']} warm runs, "
          f"{report['num_predict']} tokens each; {report['gpu_layers']} layers on the GPU"
          f"{', safe mode' if report['safe_mode'] else ''}")
    print(f"  server start-up: {report['startup_s']:.2f} s")
    for label, r in (("LocalForge /api/chat via a runner", lf), ("llama-cpp-python directly    ", dr)):
        if "error" in r:
            print(f"  {label}: failed (exit {r['error']})")
            continue
        print(f"  {label}: TTFT median {r['ttft_median_ms']:6.1f} ms, p90 {r['ttft_p90_ms']:6.1f} ms; "
              f"decode {r['decode_tokens_per_s']:6.1f} tokens/s")
    if "error" not in dr:
        print(f"  difference: TTFT {lf['ttft_median_ms'] - dr['ttft_median_ms']:+.1f} ms at the median; "
              f"decode {100 * (lf['decode_tokens_per_s'] / dr['decode_tokens_per_s'] - 1):+.1f}%")
    print(f"memory over {report['cycles']} load/unload cycles: server {mem['server_first_mib']} MiB after the "
          f"first, {mem['server_last_mib']} MiB after the last; a loaded runner {mem['runner_loaded_mib']} MiB; "
          f"runners left after an unload: {mem['runners_left_after_unload']}")


def main(args: argparse.Namespace) -> int:
    report = run(args)
    report["cycles"] = args.cycles
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def add_parser(bench: Any) -> None:
    p = bench.add_parser("runners", help="time to first token, decode rate and memory through runner processes",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEMO_MODEL, help=f"any model the store knows (default {DEMO_MODEL})")
    p.add_argument("--runs", type=int, default=30, help="warm streamed answers each way (default 30)")
    p.add_argument("--num-predict", type=int, default=64, help="tokens per answer (default 64)")
    p.add_argument("--cycles", type=int, default=30, help="load/unload cycles (default 30)")
    p.add_argument("--plot", type=Path, help="write the memory per cycle as a PNG")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=main)
