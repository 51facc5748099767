"""An online linear contextual bandit: one Bayesian ridge regression per model.

Each model's outcome is modelled as `prior + x · θ + noise` over the profile's feature vector x,
so with no data the estimate is the prior and every outcome moves it. The inverse of the design
matrix is kept and updated with Sherman-Morrison, so an update costs O(d²) and never a matrix
inversion. `x · A⁻¹ · x` gives the estimate's uncertainty, which the router reports as evidence.
State is plain numpy arrays, saved with `numpy.savez` and read back with `allow_pickle=False`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(slots=True)
class Arm:
    a_inv: np.ndarray  # (d, d) inverse of the ridge design matrix
    b: np.ndarray  # (d,) sum of residual × features
    theta: np.ndarray  # (d,) the ridge solution a_inv @ b, kept up to date by each update
    n: int = 0


class LinearBandit:
    def __init__(self, dimensions: int, ridge: float = 1.0) -> None:
        self.dimensions = dimensions
        self.ridge = ridge
        self.arms: dict[str, Arm] = {}

    def _arm(self, name: str) -> Arm:
        arm = self.arms.get(name)
        if arm is None:
            d = self.dimensions
            arm = self.arms[name] = Arm(np.eye(d) / self.ridge, np.zeros(d), np.zeros(d))
        return arm

    def estimate(self, name: str, x: np.ndarray) -> float:
        """The residual over the prior this model is expected to score on context x."""
        arm = self.arms.get(name)
        return 0.0 if arm is None else float(x @ arm.theta)

    def variance(self, name: str, x: np.ndarray) -> float:
        """How uncertain that estimate is (in units of the outcome noise)."""
        arm = self.arms.get(name)
        return float(x @ x) / self.ridge if arm is None else float(x @ arm.a_inv @ x)

    def update(self, name: str, x: np.ndarray, residual: float, weight: float = 1.0) -> None:
        """Learn that this model's outcome on context x was `prior + residual`."""
        arm = self._arm(name)
        xs = x * np.sqrt(weight)
        u = arm.a_inv @ xs
        c = 1.0 + float(xs @ u)
        # recursive least squares: θ moves along u by the surprise, A⁻¹ by a rank-one downdate
        arm.theta += u * (np.sqrt(weight) * residual - float(xs @ arm.theta)) / c
        u /= np.sqrt(c)
        arm.a_inv -= np.outer(u, u)
        arm.b += weight * residual * x
        arm.n += 1

    def save(self, path: Path) -> None:
        names = sorted(self.arms)
        np.savez(path, names=np.array(names, dtype=str),
                 a_inv=np.stack([self.arms[n].a_inv for n in names]) if names else np.zeros((0,)),
                 b=np.stack([self.arms[n].b for n in names]) if names else np.zeros((0,)),
                 n=np.array([self.arms[n].n for n in names], dtype=np.int64))

    def load(self, path: Path) -> bool:
        """Read saved state; False (and a fresh state) when the file is missing or does not fit."""
        try:
            with np.load(path, allow_pickle=False) as data:
                names = [str(n) for n in data["names"]]
                if names and data["a_inv"].shape[1:] != (self.dimensions, self.dimensions):
                    return False
                self.arms = {n: Arm(data["a_inv"][i].copy(), data["b"][i].copy(),
                                    data["a_inv"][i] @ data["b"][i], int(data["n"][i]))
                             for i, n in enumerate(names)}
        except (OSError, KeyError, ValueError):
            return False
        return True
