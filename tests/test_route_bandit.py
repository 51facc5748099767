"""The logistic bandit's online updates track the batch posterior, and its state survives a save."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from localforge.route.bandit import LogisticBandit, logit


def batch_map(xs: np.ndarray, ys: np.ndarray, offset: float, penalty: float) -> np.ndarray:
    """The maximum a posteriori θ of the same model, by Newton's method on every outcome at once."""
    theta = np.zeros(xs.shape[1])
    for _ in range(30):
        p = 1 / (1 + np.exp(-(offset + xs @ theta)))
        hessian = (xs * (p * (1 - p))[:, None]).T @ xs + penalty * np.eye(xs.shape[1])
        theta += np.linalg.solve(hessian, xs.T @ (ys - p) - penalty * theta)
    return theta


def test_online_estimates_track_the_batch_posterior() -> None:
    rng = np.random.default_rng(3)
    d, n, penalty, prior = 5, 2000, 2.0, 0.7
    xs = rng.normal(size=(n, d)) / np.sqrt(d)
    truth = rng.normal(size=d)
    ys = (rng.random(n) < 1 / (1 + np.exp(-(logit(prior) + xs @ truth)))).astype(float)
    bandit = LogisticBandit(d, penalty)
    for x, y in zip(xs, ys, strict=True):
        bandit.update("m", x, float(y), prior)
    batch = batch_map(xs, ys, logit(prior), penalty)
    probes = rng.normal(size=(50, d)) / np.sqrt(d)
    online = np.array([bandit.estimate("m", x, prior) for x in probes])
    offline = 1 / (1 + np.exp(-(logit(prior) + probes @ batch)))
    assert np.abs(online - offline).max() < 0.03
    assert bandit.arms["m"].n == n


def test_an_unseen_model_scores_its_prior_with_wide_uncertainty() -> None:
    bandit = LogisticBandit(3)
    x = np.array([1.0, 0.0, 1.0])
    assert bandit.estimate("new", x, 0.8) == pytest.approx(0.8)
    bandit.update("old", x, 1.0, 0.8)
    assert bandit.variance("old", x) < bandit.variance("new", x)
    assert bandit.spread("old", x, bandit.estimate("old", x, 0.8)) < bandit.spread("new", x, 0.8)


def test_bad_outcomes_lower_the_estimate_only_near_their_context() -> None:
    bandit = LogisticBandit(2)
    coding, chat = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    for _ in range(40):
        bandit.update("m", coding, 0.0, 0.8)
    assert bandit.estimate("m", coding, 0.8) < 0.5
    assert bandit.estimate("m", chat, 0.8) == pytest.approx(0.8)


def test_graded_outcomes_pull_the_estimate_towards_their_mean() -> None:
    bandit = LogisticBandit(1, penalty=1.0)
    x = np.array([1.0])
    for _ in range(300):
        bandit.update("m", x, 0.3, 0.8)
    assert bandit.estimate("m", x, 0.8) == pytest.approx(0.3, abs=0.03)


def test_a_prior_of_one_can_still_be_moved() -> None:
    bandit = LogisticBandit(1)
    x = np.array([1.0])
    for _ in range(50):
        bandit.update("m", x, 0.0, 1.0)
    assert bandit.estimate("m", x, 1.0) < 0.7


def test_state_survives_save_and_load_and_a_mismatched_file_is_refused(tmp_path: Path) -> None:
    bandit = LogisticBandit(4)
    x = np.array([0.5, -1.0, 2.0, 1.0])
    bandit.update("a", x, 1.0, 0.6)
    bandit.update("b", x, 0.0, 0.6)
    path = tmp_path / "bandit.npz"
    bandit.save(path)
    again = LogisticBandit(4)
    assert again.load(path)
    assert again.estimate("a", x, 0.6) == pytest.approx(bandit.estimate("a", x, 0.6))
    assert again.variance("b", x) == pytest.approx(bandit.variance("b", x))
    assert not LogisticBandit(5).load(path)
    assert not LogisticBandit(4).load(tmp_path / "missing.npz")


def test_a_file_of_the_old_ridge_format_is_refused(tmp_path: Path) -> None:
    """The ridge bandit's state means something else; the router relearns from sqlite instead."""
    path = tmp_path / "bandit.npz"
    np.savez(path, names=np.array(["a"]), a_inv=np.eye(4)[None], b=np.zeros((1, 4)), n=np.array([3]))
    assert not LogisticBandit(4).load(path)
