"""The baseline of `localforge bench runners` and `bench throughput`: llama-cpp-python called
directly, in a process of its own.

    python -m localforge.bench.direct MODEL.gguf warm RUNS NUM_PREDICT
    python -m localforge.bench.direct MODEL.gguf serial CLIENTS[,CLIENTS...] NUM_PREDICT

`warm` prints the time to first token and the decode rate of each of RUNS warm answers. `serial`
plays each number of clients as a server without batching would: their requests all arrive at
once and are answered one after another, so a later one's first token waits for the earlier
answers. It prints, per number of clients, each request's arrival, token times and count.
It runs as a subprocess so that a native fault here (the AMX path, say) cannot hide LocalForge's
figures.
"""

from __future__ import annotations

import json
import os
import sys
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
    from llama_cpp import Llama

    path, mode, amount, num_predict = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    # LocalForge's defaults: a thread per core (llama-cpp-python's is half the cores)
    llm = Llama(path, n_ctx=4096, n_threads=os.cpu_count() or 2, verbose=False)
    if mode == "warm":
        print(json.dumps(warm(llm, int(amount), num_predict)))
    else:
        print(json.dumps(serial(llm, [int(n) for n in amount.split(",")], num_predict)))


if __name__ == "__main__":
    main()
