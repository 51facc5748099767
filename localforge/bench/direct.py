"""The baseline of `localforge bench runners`: llama-cpp-python called directly, in a process of its own.

    python -m localforge.bench.direct MODEL.gguf RUNS NUM_PREDICT

Prints one JSON object: the time to first token and the decode rate of each warm run. It runs as
a subprocess so that a native fault here (the AMX path, say) cannot hide LocalForge's figures.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from typing import Any

from localforge.bench.streams import PROMPT, WARM_UP, Run


def measure(path: str, runs: int, num_predict: int) -> list[Run]:
    from llama_cpp import Llama

    # LocalForge's defaults: its context and a thread per core (llama-cpp-python's is half the cores)
    llm = Llama(path, n_ctx=4096, n_threads=os.cpu_count() or 2, verbose=False)
    measured = []
    for i in range(runs + WARM_UP):
        started = time.perf_counter()
        stamps: list[float] = []
        stream: Any = llm.create_chat_completion([{"role": "user", "content": PROMPT}], stream=True,
                                                 temperature=0, max_tokens=num_predict)
        for chunk in stream:
            if chunk["choices"][0]["delta"].get("content"):
                stamps.append(time.perf_counter())
        if i >= WARM_UP:
            measured.append(Run.from_stamps(started, stamps))
    return measured


def main() -> None:
    path, runs, num_predict = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps([asdict(run) for run in measure(path, runs, num_predict)]))


if __name__ == "__main__":
    main()
