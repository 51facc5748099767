"""The linear bandit's online update equals the batch ridge solution, and survives a save."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from localforge.route.bandit import LinearBandit


def test_online_updates_equal_the_batch_ridge_solution() -> None:
    rng = np.random.default_rng(3)
    d, n, ridge = 6, 40, 2.0
    xs = rng.normal(size=(n, d))
    truth = rng.normal(size=d)
    ys = xs @ truth + rng.normal(scale=0.1, size=n)
    weights = rng.uniform(0.2, 1.0, size=n)
    bandit = LinearBandit(d, ridge)
    for x, y, w in zip(xs, ys, weights, strict=True):
        bandit.update("m", x, float(y), float(w))
    batch = np.linalg.solve(ridge * np.eye(d) + (xs * weights[:, None]).T @ xs, (xs * weights[:, None]).T @ ys)
    x = rng.normal(size=d)
    assert bandit.estimate("m", x) == pytest.approx(float(x @ batch), rel=1e-6)
    assert bandit.arms["m"].n == n


def test_an_unseen_model_has_no_residual_and_wide_uncertainty() -> None:
    bandit = LinearBandit(3)
    x = np.array([1.0, 0.0, 1.0])
    assert bandit.estimate("new", x) == 0.0
    bandit.update("old", x, 0.5)
    assert bandit.variance("old", x) < bandit.variance("new", x)


def test_bad_outcomes_lower_the_estimate_only_near_their_context() -> None:
    bandit = LinearBandit(2)
    coding, chat = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    for _ in range(20):
        bandit.update("m", coding, -0.4)
    assert bandit.estimate("m", coding) < -0.3
    assert bandit.estimate("m", chat) == pytest.approx(0.0)


def test_state_survives_save_and_load_and_a_mismatched_file_is_refused(tmp_path: Path) -> None:
    bandit = LinearBandit(4)
    x = np.array([0.5, -1.0, 2.0, 1.0])
    bandit.update("a", x, 0.3)
    bandit.update("b", x, -0.2)
    path = tmp_path / "bandit.npz"
    bandit.save(path)
    again = LinearBandit(4)
    assert again.load(path)
    assert again.estimate("a", x) == pytest.approx(bandit.estimate("a", x))
    assert again.estimate("b", x) == pytest.approx(bandit.estimate("b", x))
    assert not LinearBandit(5).load(path)
    assert not LinearBandit(4).load(tmp_path / "missing.npz")
