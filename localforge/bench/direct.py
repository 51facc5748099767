"""The baseline of `localforge bench runners` and `bench throughput`: llama-cpp-python called
directly, in a process of its own.

    python -m localforge.bench.direct MODEL.gguf warm RUNS NUM_PREDICT [--gpu-layers N] [--safe]
    python -m localforge.bench.direct MODEL.gguf serial CLIENTS[,CLIENTS...] NUM_PREDICT [...]

`warm` prints the time to first token and the decode rate of each of RUNS warm answers. `serial`
plays each number of clients as a server without batching would: their requests all arrive at
once and are answered one after another, so a later one's first token waits for the earlier
answers. It prints, per number of clients, each request's arrival, token times and count.
`--gpu-layers` is LocalForge's placement of the model (llama-cpp-python's default is none on
the GPU) and `--safe` its runners' safe mode (bench/target.py says which apply). It runs as a
subprocess so that a native fault here cannot hide LocalForge's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from typing import Any

from localforge.bench.streams import PROMPT, WARM_UP, Run, prompts


def _stream(llm: Any, prompt: str, num_predict: int) -> list[float]:
    stamps = []
    stream: Any = llm.create_chat_completion([{"role": "user", "content": prompt}], stream=True,
                                             temperature=0, max_tokens=num_predict)
    for chunk in stream:
        if chunk["choices"][0]["delta"].get("content"):
            stamps.append(time.perf_counter())
    return stamps


def warm(llm: Any, runs: int, num_predict: int) -> list[dict[str, Any]]:
    measured = []
    for i in range(runs + WARM_UP):
        started = time.perf_counter()
        stamps = _stream(llm, PROMPT, num_predict)
        if i >= WARM_UP:
            measured.append(asdict(Run.from_stamps(started, stamps)))
    return measured


def serial(llm: Any, clients: list[int], num_predict: int) -> list[tuple[int, list[dict[str, Any]]]]:
    """One round for each entry of `clients` (an entry may repeat, for several rounds)."""
    _stream(llm, PROMPT, 4)  # warm
    out = []
    for n in clients:
        arrived = time.perf_counter()
        out.append((n, [{"arrived": arrived, "stamps": _stream(llm, prompt, num_predict)} for prompt in prompts(n)]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m localforge.bench.direct")
    parser.add_argument("path")
    parser.add_argument("mode", choices=["warm", "serial"])
    parser.add_argument("amount")
    parser.add_argument("num_predict", type=int)
    parser.add_argument("--gpu-layers", type=int, default=0)
    parser.add_argument("--safe", action="store_true")
    args = parser.parse_args()
    if args.safe:
        from localforge.runner.engine import use_safe_mode

        use_safe_mode()
    from llama_cpp import Llama

    # LocalForge's defaults: a thread per core (llama-cpp-python's is half the cores)
    llm = Llama(args.path, n_ctx=4096, n_threads=os.cpu_count() or 2, n_gpu_layers=args.gpu_layers,
                verbose=False)
    if args.mode == "warm":
        print(json.dumps(warm(llm, int(args.amount), args.num_predict)))
    else:
        print(json.dumps(serial(llm, [int(n) for n in args.amount.split(",")], args.num_predict)))


if __name__ == "__main__":
    main()
