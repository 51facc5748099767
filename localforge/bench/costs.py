"""What serving costs beside the model: the server's CPU per streamed token, and the runner's own
loop per decode step.

The server process's CPU time (user + system, its runner processes excluded) over a stretch of
streaming, divided by the tokens streamed in it; and, from `/metrics`, the runners' decode steps
in it, their time and the part of it in `llama_decode` (the rest is sampling, detokenizing, stop
strings and framing: the runner's loop).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import psutil

_COUNTER = re.compile(r"^localforge_runner_(steps|step_seconds|decode_seconds)_total\{[^}]*\} (\S+)$", re.M)


@dataclass(slots=True, frozen=True)
class Costs:
    cpu_s: float  # the server process's CPU time so far
    steps: float  # the runners' decode steps so far, over every model
    step_s: float
    decode_s: float

    def since(self, before: Costs, tokens: int) -> dict[str, float]:
        steps, step_s = self.steps - before.steps, self.step_s - before.step_s
        loop_s = step_s - (self.decode_s - before.decode_s)
        return {"server_cpu_ms_per_token": round(1000 * (self.cpu_s - before.cpu_s) / tokens, 3) if tokens else 0.0,
                "runner_loop_share": round(loop_s / step_s, 3) if step_s > 0 else 0.0,
                "runner_loop_us_per_step": round(1e6 * loop_s / steps, 1) if steps else 0.0}


def read(http: httpx.Client, server_pid: int) -> Costs:
    times = psutil.Process(server_pid).cpu_times()
    found = {"steps": 0.0, "step_seconds": 0.0, "decode_seconds": 0.0}
    for name, value in _COUNTER.findall(http.get("/metrics").text):
        found[name] += float(value)
    return Costs(times.user + times.system, found["steps"], found["step_seconds"], found["decode_seconds"])
