"""How a sandbox account's product usage moves over the window (its hidden trajectory), and
how churn follows from it: the usage level per day relative to the account's normal (1.0).
Pure: each function draws only from the `random.Random` it is given."""

from __future__ import annotations

import random

TRAJECTORIES = ("thriving", "slow_decline", "sudden_shock", "recovering")
MIX = (0.45, 0.22, 0.13, 0.20)  # share of accounts on each trajectory
# churn probability at a renewal: base + slope * trouble (1 - usage level on the day)
CHURN = {
    "thriving": (0.03, 0.0),
    "slow_decline": (0.12, 0.9),
    "sudden_shock": (0.12, 0.9),
    "recovering": (0.04, 0.3),
}
# share of churners whose usage fades before the close, and how many days ahead the fade starts
FADE_SHARE, FADE_LEAD = 0.8, (100, 200)


def curve(rng: random.Random, traj: str, days: int) -> tuple[list[float], int | None]:
    """Usage level per window day relative to the account's normal (1.0), and the onset of
    the trajectory's event in days before `end` (None for thriving)."""
    if traj == "thriving":  # steady, or growing up to +35% over the last year
        g = 0.0 if rng.random() < 0.4 else rng.uniform(0.05, 0.35)
        return [max(0.6, 1.0 + g * (366 - days + i) / 365) for i in range(days)], None
    m, loss = [1.0] * days, rng.uniform(0.4, 0.7)
    if traj == "slow_decline":
        onset = rng.randint(90, 150)

        def level(k: int) -> float:
            return 1.0 - loss * (onset - k) / onset

    elif traj == "sudden_shock":  # the drop takes 2-7 days
        onset, drop = rng.randint(20, 75), rng.randint(2, 7)

        def level(k: int) -> float:
            return 1.0 - loss * min(1.0, (onset - k + 1) / drop)

    else:  # recovering: fall, hold at the bottom, climb back near normal before `end`
        onset, fall, hold = rng.randint(150, 270), rng.randint(10, 25), rng.randint(20, 45)
        rec, loss = min(rng.randint(45, 100), onset - fall - hold - 10), loss * 0.85
        final = rng.uniform(0.93, 1.02)

        def level(k: int) -> float:
            e = onset - k
            if e < fall:
                return 1.0 - loss * e / fall
            if e < fall + hold:
                return 1.0 - loss
            return min(final, 1.0 - loss + (final - 1.0 + loss) * (e - fall - hold) / rec)

    for i in range(max(0, days - 1 - onset), days):
        m[i] = level(days - 1 - i)
    return m, onset


def fade_before_close(rng: random.Random, m: list[float], first: int, close: int) -> int:
    """Most churners decided long before the paperwork: usage fades from a few months ahead of
    the close (the 60-90+ days of warning article 001 describes); the rest leave by surprise.
    Lowers `m` in place; returns the day index the fade starts (`close` for none)."""
    if rng.random() >= FADE_SHARE:
        return close
    start, ramp_days = close - rng.randint(*FADE_LEAD), rng.randint(20, 60)
    depth = rng.uniform(0.35, 0.7)
    for i in range(max(first, start), close):
        m[i] = max(0.05, m[i] * (1.0 - depth * min(1.0, (i - start + 1) / ramp_days)))
    return start
