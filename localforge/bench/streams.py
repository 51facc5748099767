"""Timing streamed answers the same way through LocalForge and through llama-cpp-python directly.

A run records the time to its first piece of text and the times of every later piece; the decode
rate is pieces per second between the first and the last one (each piece is one token).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass

import httpx

from localforge.lines import lines

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
WARM_UP = 2
TOPICS = ["a lighthouse keeper", "a lost robot", "a city under the sea", "a dragon who bakes bread",
          "a train that never stops", "a garden on the moon", "a clockmaker's apprentice", "a winter fox"]


def prompts(n: int) -> list[str]:
    """n different prompts of the same kind (no two share the prompt cache beyond the template)."""
    return [f"Write a short story about {TOPICS[i % len(TOPICS)]}." for i in range(n)]


@dataclass(slots=True)
class Run:
    ttft_s: float
    tokens: int
    decode_tps: float

    @classmethod
    def from_stamps(cls, started: float, stamps: list[float]) -> Run:
        if not stamps:
            return cls(0.0, 0, 0.0)
        span = stamps[-1] - stamps[0]
        return cls(stamps[0] - started, len(stamps), (len(stamps) - 1) / span if span > 0 else 0.0)


def stream_chat(http: httpx.Client, model: str, prompt: str, num_predict: int, stamps: list[float]) -> None:
    """One greedy streamed `/api/chat` answer; the time each piece of text arrived goes in `stamps`."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}],
            "options": {"temperature": 0, "num_predict": num_predict}}
    with http.stream("POST", "/api/chat", json=body) as response:
        for line in lines(response.iter_bytes()):
            if line and json.loads(line).get("message", {}).get("content"):
                stamps.append(time.perf_counter())


def through_localforge(url: str, model: str, runs: int, num_predict: int) -> list[Run]:
    measured = []
    with httpx.Client(base_url=url, timeout=120) as http:
        for i in range(runs + WARM_UP):
            started = time.perf_counter()
            stamps: list[float] = []
            stream_chat(http, model, PROMPT, num_predict, stamps)
            if i >= WARM_UP:
                measured.append(Run.from_stamps(started, stamps))
    return measured


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[int(p * (len(ordered) - 1))] if ordered else 0.0


def summary(runs: list[Run]) -> dict[str, float]:
    ttft = [r.ttft_s * 1000 for r in runs]
    tps = [r.decode_tps for r in runs if r.tokens > 1]
    return {"ttft_median_ms": round(statistics.median(ttft), 2) if ttft else 0.0,
            "ttft_p90_ms": round(percentile(ttft, 0.9), 2),
            "decode_tokens_per_s": round(statistics.median(tps), 1) if tps else 0.0,
            "tokens": round(statistics.median([r.tokens for r in runs]), 1) if runs else 0.0}
