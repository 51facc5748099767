"""RouteLLM's routing metrics over a swept dial: PGR, APGR and CPT.

A point is (share of calls sent to the strong model, accuracy). PGR of a point is the share of the
gap between always-weak and always-strong accuracy that it recovers. The curve of PGR against the
share runs from always-weak (0, 0) to always-strong (1, 1): both ends are reachable by any router
(send everything one way), so they anchor the curve; APGR is the trapezoid area under it over
[0, 1], and CPT(x) the smallest share at which the curve, linearly interpolated, reaches x.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class Point:
    share: float  # share of calls sent to the strong model, 0..1
    accuracy: float


def pgr(accuracy: float, weak: float, strong: float) -> float:
    if strong == weak:
        raise ValueError("the strong and weak models score the same; PGR is undefined")
    return (accuracy - weak) / (strong - weak)


def curve(points: list[Point], weak: float, strong: float) -> list[tuple[float, float]]:
    """(share, PGR) pairs sorted by share, anchored at (0, 0) and (1, 1)."""
    inner = sorted((min(max(p.share, 0.0), 1.0), pgr(p.accuracy, weak, strong)) for p in points)
    return [(0.0, 0.0), *inner, (1.0, 1.0)]


def apgr(points: list[Point], weak: float, strong: float) -> float:
    pairs = curve(points, weak, strong)
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(pairs, pairs[1:], strict=False))


def cpt(points: list[Point], weak: float, strong: float, target: float) -> float:
    """The smallest strong-call share at which PGR reaches `target` (0.5 for CPT(50%))."""
    pairs = curve(points, weak, strong)
    for (x0, y0), (x1, y1) in zip(pairs, pairs[1:], strict=False):
        if y1 >= target:
            if y0 >= target or y1 == y0:
                return x0 if y0 >= target else x1
            return x0 + (x1 - x0) * (target - y0) / (y1 - y0)
    return 1.0


def random_point(share: float, weak: float, strong: float) -> Point:
    """What routing at random with this share scores in expectation (its PGR equals the share)."""
    return Point(share, weak + share * (strong - weak))
