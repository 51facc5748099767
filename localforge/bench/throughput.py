"""`localforge bench throughput`: several clients, one model, one decode loop.

N concurrent streaming clients (1, 2, 4, 8 by default) each ask the model (`--model`, any model
the store knows; SmolLM2-135M by default) for M tokens through `/api/chat`, with different
prompts, greedy. For each N, over a few rounds, it prints the aggregate generated tokens per
second (all tokens over the wall time from the first request to the last token; the median
round), the time to first token p50/p95 and the inter-token latency p50/p95 (over every request
of every round). The baseline is llama-cpp-python called directly in a process of its own,
answering the same N requests one after another, as a server without batching would (a later
request's first token waits for the earlier answers), with the model where LocalForge puts it and
in safe mode where its runners are (bench/target.py). Beside each N it prints what serving cost
beside the model (bench/costs.py): the server process's CPU per streamed token, and the runner's
own loop per decode step (sampling, detokenizing, stop strings, framing: the step outside
`llama_decode`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from localforge.bench import costs
from localforge.bench.server import served
from localforge.bench.streams import percentile, prompts, stream_chat
from localforge.bench.target import DEMO_MODEL, Target, resolve


def _row(clients: int, requests: list[tuple[float, list[float]]]) -> dict[str, float]:
    """One line of the table from each request's (arrival, token times)."""
    start = min(arrived for arrived, _ in requests)
    end = max((stamps[-1] for _, stamps in requests if stamps), default=start)
    tokens = sum(len(stamps) for _, stamps in requests)
    ttft = [1000 * (stamps[0] - arrived) for arrived, stamps in requests if stamps]
    itl = [1000 * (b - a) for _, stamps in requests for a, b in zip(stamps, stamps[1:], strict=False)]
    return {"clients": clients, "tokens_per_s": round(tokens / (end - start), 1) if end > start else 0.0,
            "ttft_p50_ms": round(percentile(ttft, 0.5), 1), "ttft_p95_ms": round(percentile(ttft, 0.95), 1),
            "itl_p50_ms": round(percentile(itl, 0.5), 2), "itl_p95_ms": round(percentile(itl, 0.95), 2),
            "tokens": tokens}


def _round(http: httpx.Client, model: str, clients: int, num_predict: int) -> list[tuple[float, list[float]]]:
    stamps: list[list[float]] = [[] for _ in range(clients)]
    threads = [threading.Thread(target=stream_chat, args=(http, model, prompt, num_predict, stamps[i]))
               for i, prompt in enumerate(prompts(clients))]
    arrived = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [(arrived, s) for s in stamps]


def through_localforge(http: httpx.Client, model: str, clients: int, num_predict: int,
                       rounds: int, server_pid: int) -> dict[str, float]:
    """`rounds` rounds of `clients` concurrent requests: the median round's throughput, the
    latency percentiles over every request of every round, and what serving them cost the
    server's CPU per token and the runner's loop per step (bench/costs.py)."""
    before = costs.read(http, server_pid)
    played = [_round(http, model, clients, num_predict) for _ in range(rounds)]
    streamed = sum(len(stamps) for requests in played for _, stamps in requests)
    return {**_summarise(clients, played), **costs.read(http, server_pid).since(before, streamed)}


def _summarise(clients: int, played: list[list[tuple[float, list[float]]]]) -> dict[str, float]:
    rows = sorted((_row(clients, requests) for requests in played), key=lambda r: r["tokens_per_s"])
    pooled = _row(clients, [r for requests in played for r in requests])
    return {**pooled, "tokens_per_s": rows[len(rows) // 2]["tokens_per_s"],
            "tokens": rows[len(rows) // 2]["tokens"]}


def baseline(target: Target, clients: list[int], num_predict: int, rounds: int) -> list[dict[str, float]]:
    played = [n for n in clients for _ in range(rounds)]
    done = subprocess.run([sys.executable, "-m", "localforge.bench.direct", str(target.path), "serial",
                           ",".join(map(str, played)), str(num_predict), *target.direct_args()],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the baseline failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    found = json.loads(done.stdout)
    return [_summarise(n, [[(r["arrived"], r["stamps"]) for r in runs] for m, runs in found if m == n])
            for n in clients]


def run(args: argparse.Namespace) -> dict[str, Any]:
    most = max(args.clients)
    target = resolve(args.model, parallel=most, num_ctx=args.num_ctx)
    model = target.name
    report: dict[str, Any] = {"model": model, "num_predict": args.num_predict, "gpu_layers": target.gpu_layers,
                              "safe_mode": target.safe_mode, "localforge": [], "baseline": []}
    settings = f"parallel = {most}\nnum_ctx = {args.num_ctx}"
    server_at = served(target.path, model, target.server_settings(), settings, target.data_dir)
    with server_at as (url, server, _), httpx.Client(
            base_url=url, timeout=300, limits=httpx.Limits(max_connections=most)) as http:
        _round(http, model, 1, 8)  # load and warm (and open the client's connections)
        for n in args.clients:
            print(f"LocalForge, {n} concurrent client(s), {args.rounds} rounds…", file=sys.stderr, flush=True)
            report["localforge"].append(through_localforge(http, model, n, args.num_predict, args.rounds,
                                                           server.pid))
    print("llama-cpp-python directly, one request after another…", file=sys.stderr, flush=True)
    report["baseline"] = baseline(target, args.clients, args.num_predict, args.rounds)
    return report


def scaling(rows: list[dict[str, float]], at: int = 4) -> float | None:
    by = {r["clients"]: r["tokens_per_s"] for r in rows}
    return round(by[at] / by[1], 2) if at in by and 1 in by and by[1] else None


def print_report(report: dict[str, Any]) -> None:
    print(f"{report['model']}, {report['num_predict']} tokens per request, greedy, different prompts; "
          f"{report['gpu_layers']} layers on the GPU{', safe mode' if report['safe_mode'] else ''}")
    header = f"{'':12}{'clients':>8}{'tokens/s':>10}{'TTFT p50':>10}{'TTFT p95':>10}{'ITL p50':>9}{'ITL p95':>9}"
    print(header)
    for label in ("localforge", "baseline"):
        for r in report[label]:
            print(f"{label:12}{r['clients']:>8}{r['tokens_per_s']:>10.1f}{r['ttft_p50_ms']:>8.0f}ms"
                  f"{r['ttft_p95_ms']:>8.0f}ms{r['itl_p50_ms']:>7.1f}ms{r['itl_p95_ms']:>7.1f}ms")
    print(f"{'':12}{'clients':>8}{'server CPU/token':>18}{'runner loop/step':>18}{'of the step':>13}")
    for r in report["localforge"]:
        print(f"{'localforge':12}{r['clients']:>8}{r['server_cpu_ms_per_token']:>16.3f}ms"
              f"{r['runner_loop_us_per_step']:>16.0f}µs{100 * r['runner_loop_share']:>12.1f}%")
    for label in ("localforge", "baseline"):
        ratio = scaling(report[label])
        if ratio is not None:
            print(f"{label}: aggregate throughput at 4 clients is {ratio}x one client")


def main(args: argparse.Namespace) -> int:
    report = run(args)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def add_parser(bench: Any) -> None:
    p = bench.add_parser("throughput", help="concurrent clients on one model: batching against one at a time",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEMO_MODEL, help=f"any model the store knows (default {DEMO_MODEL})")
    p.add_argument("--clients", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2, 4, 8],
                   help="numbers of concurrent clients, comma-separated (default 1,2,4,8)")
    p.add_argument("--num-predict", type=int, default=64, help="tokens each client asks for (default 64)")
    p.add_argument("--num-ctx", type=int, default=1024, help="context of each slot (default 1024)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each number of clients (default 3)")
    p.add_argument("--json", type=Path, help="write the figures to this file as JSON")
    p.set_defaults(func=main)
