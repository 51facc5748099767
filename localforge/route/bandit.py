"""An online contextual bandit: one Bayesian logistic regression per model.

Each model's chance of a good answer is modelled as `σ(logit(prior) + x · θ)` over the profile's
feature vector x, so with no data the estimate is the prior and every outcome moves it; in logit
space a feature that matters moves a 0.9 model less than a 0.6 one, as it does in the data.
The posterior of θ is kept as a Gaussian (mean θ, covariance Σ, prior N(0, I / penalty)) and
updated per outcome by one Newton step on its log-likelihood (the extended Kalman filter for
logistic regression): a Sherman-Morrison downdate of Σ, so an update costs O(d²) and never a
matrix inversion. `x · Σ · x` gives the estimate's uncertainty in logits, which the router turns
into the spread of its Thompson draws. Outcomes may be fractions of 0..1 (graded answers).
State is plain numpy arrays, saved with `numpy.savez` and read back with `allow_pickle=False`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PRIOR_CLIP = 0.02  # a prior of 0 or 1 would be an infinite logit: no outcome could move it
FORMAT = "logistic-1"  # what `save` writes; a file in another format is relearned from sqlite


@dataclass(slots=True)
class Arm:
    sigma: np.ndarray  # (d, d) posterior covariance of θ
    theta: np.ndarray  # (d,) posterior mean
    n: int = 0


def logit(p: float) -> float:
    p = min(max(p, PRIOR_CLIP), 1.0 - PRIOR_CLIP)
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-min(max(z, -40.0), 40.0)))


class LogisticBandit:
    def __init__(self, dimensions: int, penalty: float = 10.0) -> None:
        self.dimensions = dimensions
        self.penalty = penalty
        self.arms: dict[str, Arm] = {}

    def _arm(self, name: str) -> Arm:
        arm = self.arms.get(name)
        if arm is None:
            d = self.dimensions
            arm = self.arms[name] = Arm(np.eye(d) / self.penalty, np.zeros(d))
        return arm

    def estimate(self, name: str, x: np.ndarray, prior: float) -> float:
        """The chance of a good answer this model is expected to have on context x."""
        arm = self.arms.get(name)
        return sigmoid(logit(prior) + (0.0 if arm is None else float(x @ arm.theta)))

    def variance(self, name: str, x: np.ndarray) -> float:
        """How uncertain that estimate is, in logits squared."""
        arm = self.arms.get(name)
        return float(x @ x) / self.penalty if arm is None else float(x @ arm.sigma @ x)

    def spread(self, name: str, x: np.ndarray, estimate: float) -> float:
        """The standard deviation, in probability, of `estimate` (this model's `estimate` on
        context x): the posterior's spread in logits through σ (the delta method)."""
        return estimate * (1.0 - estimate) * math.sqrt(self.variance(name, x))

    def update(self, name: str, x: np.ndarray, outcome: float, prior: float,
               weight: float = 1.0) -> None:
        """Learn that this model scored `outcome` (0..1) on context x, counted `weight` times."""
        arm = self._arm(name)
        p = sigmoid(logit(prior) + float(x @ arm.theta))
        curvature = weight * max(p * (1.0 - p), 1e-3)
        u = arm.sigma @ x
        arm.sigma -= np.outer(u, u) / (1.0 / curvature + float(x @ u))
        arm.theta += arm.sigma @ x * (weight * (outcome - p))
        arm.n += 1

    def save(self, path: Path) -> None:
        names = sorted(self.arms)
        np.savez(path, format=np.array(FORMAT), names=np.array(names, dtype=str),
                 sigma=np.stack([self.arms[n].sigma for n in names]) if names else np.zeros((0,)),
                 theta=np.stack([self.arms[n].theta for n in names]) if names else np.zeros((0,)),
                 n=np.array([self.arms[n].n for n in names], dtype=np.int64))

    def load(self, path: Path) -> bool:
        """Read saved state; False (and a fresh state) when the file is missing, of another
        format or does not fit."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if "format" not in data or str(data["format"]) != FORMAT:
                    return False
                names = [str(n) for n in data["names"]]
                if names and data["sigma"].shape[1:] != (self.dimensions, self.dimensions):
                    return False
                self.arms = {n: Arm(data["sigma"][i].copy(), data["theta"][i].copy(), int(data["n"][i]))
                             for i, n in enumerate(names)}
        except (OSError, KeyError, ValueError):
            return False
        return True
