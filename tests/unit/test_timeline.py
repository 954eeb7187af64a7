"""Statistics at many instants at once (`Timeline`) agree with the per-series reference."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np

from health.scoring.engine import plan_of
from health.scoring.model import load_model
from health.scoring.stats import summarize
from health.scoring.timeline import Timeline, epoch
from health.scoring.vector import fill
from health.settings import DEFAULT_MODEL_PATH

MODEL = load_model(DEFAULT_MODEL_PATH)
START = datetime(2026, 1, 1, tzinfo=UTC)


def random_observations(
    rng: random.Random, accounts: int
) -> list[tuple[int, str, datetime, float]]:
    obs = []
    for a in range(accounts):
        for d in range(0, 400, rng.choice((1, 3, 7))):  # daily, sparse and weekly series
            at = START + timedelta(days=d, hours=rng.randint(0, 23))
            obs.append((a, "active_users", at, float(rng.randint(0, 50))))
            if rng.random() < 0.2:
                obs.append((a, "nps", at, float(rng.randint(0, 10))))
            if rng.random() < 0.03:
                obs.append((a, "sev1_ticket", at, 1.0))
        obs.append((a, "seats", START + timedelta(days=rng.randint(0, 300)), 40.0))
    return obs


def test_timeline_matches_the_reference_at_every_instant():
    rng = random.Random(5)
    obs = random_observations(rng, 6)
    signals = sorted({o[1] for o in obs})
    timeline = Timeline(
        signals,
        np.array([o[0] for o in obs]),
        np.array([signals.index(o[1]) for o in obs]),
        np.array([epoch(o[2]) for o in obs]),
        np.array([o[3] for o in obs]),
    )
    columns = plan_of(MODEL).columns
    queries = [
        (a, START + timedelta(days=d, hours=h))
        for a in range(6)
        for d in (-3, 0, 5, 89, 120, 181, 260, 399, 800)
        for h in (0, 13)
    ]
    got = timeline.columns(
        columns, np.array([a for a, _ in queries]), np.array([epoch(t) for _, t in queries])
    )
    expected = fill(
        columns,
        [summarize(((s, at, v) for acc, s, at, v in obs if acc == a), now) for a, now in queries],
    )
    assert got.shape == expected.shape
    latest_at = [k for k, (_, f) in enumerate(columns) if f == 1]  # not read by the engine
    keep = [k for k in range(len(columns)) if k not in latest_at]
    np.testing.assert_allclose(got[keep], expected[keep], rtol=1e-9, equal_nan=True)
    assert np.isfinite(got[keep]).any() and np.isnan(got[keep]).any()  # both cases covered


def test_two_values_at_the_newest_instant_read_as_the_larger_as_in_sql():
    timeline = Timeline(
        ["nps"],
        np.array([0, 0, 0]),
        np.array([0, 0, 0]),
        np.array([50, 100, 100]),
        np.array([9.0, 3.0, 7.0]),
    )
    columns = [("nps", 0)]  # latest
    assert timeline.columns(columns, np.array([0]), np.array([101]))[0, 0] == 7.0


def test_an_account_without_observations_has_no_statistics():
    timeline = Timeline(["nps"], np.array([0]), np.array([0]), np.array([100]), np.array([5.0]))
    x = timeline.columns(plan_of(MODEL).columns, np.array([1, 0]), np.array([200, 200]))
    assert np.isnan(x[:, 0]).all() and not np.isnan(x[:, 1]).all()
