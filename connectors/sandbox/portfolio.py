"""Deterministic sandbox customer portfolios: demo data, test data, seed data for vendor fakes.

Pure: stdlib + health.records; no I/O, no clock, never the global ``random``. The window is
the ``days`` days ``start..end`` inclusive; every timestamp is aware UTC and earlier than
midnight after ``end``. Each account draws from its own ``random.Random`` seeded from
(seed, index) and names come from one seeded shuffle, so account *i* (id, name, profile) does
not depend on how many accounts are generated; child ids are sequential over the portfolio.
Event timestamps are unique per account, so observation natural keys never collide.
The entity dataclasses live in `connectors.sandbox.entities` and are re-exported here.
"""

from __future__ import annotations

import calendar
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta

from connectors.sandbox import names as N
from connectors.sandbox.entities import (
    Contact,
    Invoice,
    NpsResponse,
    Portfolio,
    Renewal,
    SandboxAccount,
    Ticket,
    Touch,
    UsageDay,
)
from connectors.sandbox.names import salesforce_id
from connectors.sandbox.trajectories import (
    CHURN,
    MIX,
    TRAJECTORIES,
    curve,
    fade_before_close,
)
from connectors.stripe.mapping import Due, days_late_series
from health.records import AccountRecord, AccountRef, ObservationRecord, OutcomeRecord

__all__ = [
    "TRAJECTORIES", "Contact", "Invoice", "NpsResponse", "Portfolio", "Renewal", "SandboxAccount",
    "Ticket", "Touch", "UsageDay", "account_records", "generate_portfolio", "observation_records",
    "outcome_records",
]  # fmt: skip
_DAY, _SECOND = timedelta(days=1), timedelta(seconds=1)
# segment: seats lo-hi, $/seat/year, tickets/weekday, days between touches, contacts lo-hi,
# share of calls/meetings with an executive, touch kind weights (call, meeting, email), CSMs
_SEGMENTS = {
    "enterprise": (200, 2000, (550, 900), 0.10, 8, (4, 8), 0.15, (35, 35, 30), N.CSMS[0:2]),
    "mid_market": (40, 300, (450, 750), 0.05, 15, (3, 5), 0.08, (40, 20, 40), N.CSMS[2:5]),
    "smb": (5, 50, (350, 600), 0.02, 30, (1, 3), 0.04, (30, 10, 60), N.CSMS[5:]),
}
_SOLVE_HOURS = {"urgent": 8.0, "high": 30.0, "normal": 60.0, "low": 120.0}


def _anniversary(d: date, year: int) -> date:
    return d.replace(year=year, day=min(d.day, calendar.monthrange(year, d.month)[1]))


def _add_months(d: date, n: int) -> date:
    y, m = divmod(d.month - 1 + n, 12)
    return date(d.year + y, m + 1, min(d.day, calendar.monthrange(d.year + y, m + 1)[1]))


def _round_arr(x: float) -> float:
    return float(max(100, round(x / 100) * 100))


class _Gen:
    def __init__(self, p: Portfolio, seed: int) -> None:
        self.p, self.seed, self.days = p, seed, (p.end - p.start).days + 1
        self.dates = [p.start + timedelta(days=i) for i in range(self.days + 1)]
        self.mid = [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in self.dates]
        holiday = {(12, d) for d in range(24, 32)} | {(1, 1)}
        # day kinds: 0 weekday, 1 Friday, 2 weekend, 3 holiday weekday
        self.kind = [
            2 if d.weekday() > 4 else 3 if (d.month, d.day) in holiday else int(d.weekday() == 4)
            for d in self.dates
        ]
        self.counters = dict.fromkeys(("003", "00T", "006", "tkt", "inv"), 0)

    def _id(self, kind: str) -> str:
        n = self.counters[kind] = self.counters[kind] + 1
        if kind == "tkt":
            return str(100000 + n)
        return f"INV-{n:07d}" if kind == "inv" else salesforce_id(kind, n)

    def _stamp(self, i: int, lo_minute: int, hi_minute: int) -> datetime:
        """A time on day i, unique within the account."""
        ts = self.mid[i] + timedelta(minutes=self.rng.randint(lo_minute, hi_minute))
        while ts in self.used:
            ts += _SECOND
        self.used.add(ts)
        return ts

    def account(self, i: int, name: str, domain: str) -> None:
        rng = self.rng = random.Random(f"sandbox:{self.seed}:{i}")
        p, days, self.used = self.p, self.days, set()
        aid = self.aid = salesforce_id("001", i + 1)
        r = rng.random()
        seg = "enterprise" if r < 0.15 else "mid_market" if r < 0.5 else "smb"
        lo, hi, (plo, phi), trate, every, (clo, chi), exec_p, touch_w, csms = _SEGMENTS[seg]
        seats = int(lo * (hi / lo) ** rng.random())  # log-uniform, with a volume discount below
        arr = _round_arr(seats * rng.uniform(plo, phi) * (1 - 0.15 * (seats - lo) / (hi - lo)))
        if days > 14 and rng.random() < 0.08:  # a new customer, onboarding inside the window
            cs = p.start + timedelta(days=rng.randint(1, days - 8))
        else:
            cs = p.start - timedelta(days=rng.randint(20, 6 * 365))
        cs_idx = self.cs_idx = (cs - p.start).days
        traj = rng.choices(TRAJECTORIES, MIX)[0]
        m, onset = curve(rng, traj, days)
        if onset is not None and days - 1 - onset - cs_idx < 45:  # event would predate onboarding
            traj, (m, onset) = "thriving", curve(rng, "thriving", days)
        event = days - 1 - onset if onset is not None else -(10**6)  # its day index
        renewal_date = _anniversary(cs, p.end.year)
        if renewal_date <= p.end:
            renewal_date = _anniversary(cs, p.end.year + 1)

        # Renewals inside the window decide churn, expansion and the seats/ARR timeline.
        last, churned_on, seats_now, arr_now, changes = days, None, seats, arr, [(0, seats, arr)]
        for year in range(max(cs.year + 1, p.start.year), p.end.year + 1):
            close = _anniversary(cs, year)
            if not p.start <= close <= p.end:
                continue
            idx, prior, (base, slope) = (close - p.start).days, arr_now, CHURN[traj]
            t = max(0.0, 1.0 - m[idx])
            expand_p = 0.4 if traj == "thriving" else max(0.0, 0.12 - 0.3 * t)
            if rng.random() < base + slope * t:
                outcome, f, price = "churned", 0.0, 0.0
            elif rng.random() < expand_p:
                outcome, f, price = "expanded", rng.uniform(1.1, 1.5), 1.0
            elif t > 0.15:  # renewed with a downsell
                outcome, f, price = "renewed", rng.uniform(0.7, 0.95), 1.0
            else:  # renewed at a small list-price uplift
                outcome, f, price = "renewed", 1.0, rng.uniform(1.0, 1.06)
            amount = _round_arr(prior * f * price) if f else 0.0
            p.renewals.append(Renewal(self._id("006"), aid, close, outcome, amount, prior))
            if outcome == "churned":
                last, churned_on = idx, close
                break
            seats_now = math.ceil(seats_now * f) if f > 1 else max(1, int(seats_now * f))
            arr_now = amount
            changes.append((idx, seats_now, arr_now))
        first = max(0, cs_idx)
        fade_from = days if churned_on is None else fade_before_close(rng, m, first, last)

        # Contacts; the champion may leave (the shock itself, during a decline, or by chance).
        mode = rng.choice(("champion", "sev1", "both")) if traj == "sudden_shock" else ""
        leave = None
        if mode in ("champion", "both"):
            leave = event
        elif traj == "slow_decline" and rng.random() < 0.3:
            leave = rng.randint(event, days - 1)
        elif fade_from < last and rng.random() < 0.35:  # the champion's exit starts the fade
            leave = max(first, fade_from)
        elif traj != "sudden_shock" and rng.random() < 0.04 and first + 30 < days:
            leave = rng.randint(first + 30, days - 1)
        leave = leave if leave is not None and first <= leave < last else None
        joined = []  # (contact, day index from which it can answer a survey)
        n_contacts = rng.randint(clo, chi)
        people = rng.sample(range(len(N.FIRST_NAMES) * len(N.LAST_NAMES)), n_contacts + 1)
        replace = leave is not None and (traj in ("thriving", "recovering") or rng.random() < 0.3)
        for k in range(n_contacts + 1):
            since, left = first, None
            if k == n_contacts:  # a new champion replacing the one who left
                if not replace or (since := leave + rng.randint(14, 45)) >= last:
                    break
            elif k == 0:
                left = leave
            elif rng.random() < 0.05 and first < days - 1:
                left = rng.randint(first + 1, days - 1)
            fn, ln = divmod(people[k], len(N.LAST_NAMES))
            fn, ln, champion = N.FIRST_NAMES[fn], N.LAST_NAMES[ln], k in (0, n_contacts)
            title = rng.choice(N.CHAMPION_TITLES if champion else N.OTHER_TITLES)
            left_on = self.dates[left] if left is not None else None
            email = f"{fn}.{ln}@{domain}".lower()
            c = Contact(self._id("003"), aid, f"{fn} {ln}", email, title, champion, left_on)
            p.contacts.append(c)
            joined.append((c, since))

        # Daily usage, tickets and touches.
        f0 = rng.randint(5, 7) if traj == "thriving" else rng.randint(3, 6)
        u0 = rng.uniform(0.7, 0.9) if traj == "thriving" else rng.uniform(0.45, 0.85)
        epu, ramp, drift = rng.uniform(3, 12), rng.randint(30, 60), 0.0
        wfk = (1.0, 0.93, rng.uniform(0.3, 0.4), 0.55)  # by day kind; weekends 30-40%
        exec_at = event + rng.randint(2, 10) if traj == "sudden_shock" else -1
        gauss, rand, add, dates = rng.gauss, rng.random, p.usage.append, self.dates
        cur, pos, self.last_sentiment = seats, 1, -(10**6)
        for i in range(first, last):
            while pos < len(changes) and changes[pos][0] <= i:
                cur, pos = changes[pos][1], pos + 1
            kind, mi = self.kind[i], m[i]
            wf = wfk[kind]
            level = mi if i - cs_idx >= ramp else mi * (0.25 + 0.75 * (i - cs_idx) / ramp)
            drift = 0.85 * drift + gauss(0, 0.02)
            active = int(seats * u0 * level * wf * (1 + drift + gauss(0, 0.06)) + 0.5)
            active = 0 if active < 0 else cur if active > cur else active
            feats = int(f0 * min(level, 1.1) * (0.55 + 0.45 * wf) + gauss(0, 0.6) + 0.5)
            feats = 0 if active == 0 or feats < 0 else 8 if feats > 8 else feats
            events = int(active * epu * (0.85 + 0.3 * rand()))
            add(UsageDay(aid, dates[i], active, cur, feats, events))
            t = 1.0 - mi if mi < 1.0 else 0.0
            if rand() < trate * (1 + 3 * t) * (0.3 if kind == 2 else 1.0):
                self._ticket(i, t)
            if i == event and (mode in ("sev1", "both") or (traj == "recovering" and rand() < 0.5)):
                for _ in range(rng.randint(1, 2) if mode else 1):
                    self._ticket(i, 0.6, "urgent")
            tp = (0.1 if kind == 2 else 1.4) / every * (2.5 if i - cs_idx < 60 else 1.0)
            if traj == "slow_decline" or i >= fade_from:
                tp *= 1.0 - t  # the customer stops answering
            elif 0 <= i - event < 30:
                tp *= 3.0 if traj == "sudden_shock" else 1.5  # the CSM works the save
            if rand() < tp or i == exec_at:
                self._touch(i, t, m, exec_p, touch_w, forced=i == exec_at)

        # NPS surveys every quarter; fewer and lower answers when things go badly.
        bias = gauss(0, 0.7)
        for s in range(first + rng.randint(0, 90), last, 91):
            t, h = max(0.0, 1.0 - m[s]), min(1.0, m[s])
            for c, since in joined:
                answers = since <= s and (c.left_on is None or c.left_on > dates[s])
                if answers and rand() < 0.35 * (1 - 0.5 * t):
                    at = self._stamp(min(s + rng.randint(0, 6), last - 1), 0, 1439)
                    score = round(gauss(2.0 + 6.5 * h + bias, 1.3))
                    p.nps.append(NpsResponse(aid, at, max(0, min(10, score))))

        # Invoices: SMB monthly by card (failures), others quarterly or annually net 30 (late).
        card = seg == "smb" or (seg == "mid_market" and rand() < 0.3)
        period = 1 if card else 12 if seg == "enterprise" and rand() < 0.5 else 3
        months = (p.start.year - cs.year) * 12 + p.start.month - cs.month - 2
        for k in range(max(0, months // period), 10**6):
            issue = _add_months(cs, k * period)
            if issue > p.end or (issue - p.start).days >= last:
                break
            due = issue if card else issue + timedelta(days=30)
            if due < p.start:
                continue
            di = (due - p.start).days
            t = max(0.0, 1.0 - m[min(di, days - 1)])
            amount = round(next(a for j, _, a in reversed(changes) if j <= di) * period / 12, 2)
            failed, paid = card and rand() < 0.01 + 0.15 * t, due
            if failed:  # the card is retried a few days later; in trouble, collections
                paid = due + timedelta(days=rng.randint(2, 12) + (40 if rand() < t else 0))
            elif not card and rand() < 0.06 + 0.5 * t:
                paid = due + timedelta(days=rng.randint(3, 20) + int(50 * t * rand()))
            elif not card:
                paid = due - timedelta(days=rng.randint(0, 20))
            paid = None if paid is not None and paid > p.end else paid
            p.invoices.append(Invoice(self._id("inv"), aid, due, paid, failed, amount))

        if churned_on is None:
            p.renewals.append(Renewal(self._id("006"), aid, renewal_date, "open", arr_now, arr_now))
        shock = p.end - timedelta(days=onset or 0) if traj == "sudden_shock" else None
        owner = rng.choice(csms)
        p.accounts.append(
            SandboxAccount(aid, name, domain, owner, seg, seats_now, arr_now, cs, renewal_date,
                           traj, shock, churned_on)
        )  # fmt: skip

    def _ticket(self, i: int, t: float, priority: str | None = None) -> None:
        rng = self.rng
        if priority is None:
            r = rng.random()
            priority = "urgent" if r < 0.015 + 0.05 * t else "high" if r < 0.17 + 0.15 * t else ""
            priority = priority or ("low" if r > 0.75 else "normal")
        created = self._stamp(i, 6 * 60, 23 * 60)
        hours = _SOLVE_HOURS[priority] * (1 + t) * rng.lognormvariate(0, 0.6)
        solved: datetime | None = created + timedelta(hours=hours)
        escalated = rng.random() < (0.35 if priority == "urgent" else 0.03) + 0.15 * t
        horizon, satisfaction = self.mid[self.days], None
        if solved < horizon:
            status = "closed" if horizon - solved > timedelta(days=4) else "solved"
            if rng.random() < 0.35:
                good = rng.random() < 0.92 - 0.7 * t - (0.15 if escalated else 0.0)
                satisfaction = "good" if good else "bad"
        else:
            solved = None
            recent = horizon - created < _DAY
            status = "new" if recent else "pending" if rng.random() < 0.3 else "open"
        subject = rng.choice(N.TICKET_SUBJECTS[priority])
        self.p.tickets.append(
            Ticket(self._id("tkt"), self.aid, created, solved, priority, status, subject,
                   satisfaction, escalated)
        )  # fmt: skip

    def _touch(self, i: int, t: float, m: list[float], exec_p: float, weights: tuple[int, ...],
               *, forced: bool) -> None:  # fmt: skip
        rng = self.rng
        kind = "meeting" if forced else rng.choices(("call", "meeting", "email"), weights)[0]
        executive = forced or (kind != "email" and rng.random() < exec_p)
        topic = "executive" if executive else "onboarding" if i - self.cs_idx < 60 else kind
        topic = "rescue" if topic == kind and t > 0.3 and rng.random() < 0.5 else topic
        sentiment = None
        if i - self.last_sentiment >= 25:  # the CSM's gut, about monthly, lagging a week
            self.last_sentiment, h = i, min(1.0, m[max(0, i - 7)])
            sentiment = max(1, min(5, round(1.0 + 3.4 * h + rng.gauss(0, 0.6))))
        at, subject = self._stamp(i, 13 * 60, 23 * 60), rng.choice(N.TOUCH_SUBJECTS[topic])
        self.p.touches.append(
            Touch(self._id("00T"), self.aid, at, kind, executive, subject, sentiment)
        )


def generate_portfolio(
    accounts: int = 500, days: int = 365, *, seed: int = 7, end: date = date(2026, 11, 1)
) -> Portfolio:
    """A portfolio of `accounts` accounts over the `days` days ending on `end` (inclusive)."""
    if accounts < 0 or days < 1:
        raise ValueError("accounts must be >= 0 and days >= 1")
    p = Portfolio(start=end - timedelta(days=days - 1), end=end)
    gen, seen = _Gen(p, seed), set()
    for i, name in enumerate(N.company_names(accounts, seed)):
        stem = "".join(ch for ch in name.lower() if ch.isalnum())
        domain, n = f"{stem}.com", 2
        while domain in seen:
            domain, n = f"{stem}{n}.com", n + 1
        seen.add(domain)
        gen.account(i, name, domain)
    return p


def _days_late(invoices: Iterable[Invoice], end: date) -> Iterator[tuple[date, int]]:
    """(day, days the oldest open invoice is overdue): weekly while any is, 0 on settling
    (the series the Stripe connector derives from the same invoices)."""
    dues = [Due(v.account_id, v.due_on, v.paid_on) for v in invoices]
    return days_late_series(dues, end, snapshot=False)


def observation_records(p: Portfolio, *, source: str = "sandbox") -> Iterator[ObservationRecord]:
    """Every signal observation the portfolio implies (grouped by signal, not time-ordered)."""
    refs = {a.external_id: AccountRef(crm_id=a.external_id) for a in p.accounts}
    midnight: dict[date, datetime] = {}

    def at(d: date) -> datetime:
        if (ts := midnight.get(d)) is None:
            ts = midnight[d] = datetime(d.year, d.month, d.day, tzinfo=UTC)
        return ts

    obs, seats = ObservationRecord, {}
    for u in p.usage:  # ordered by account, then day
        ref, ts = refs[u.account_id], at(u.day)
        if seats.get(u.account_id) != u.seats:
            seats[u.account_id] = u.seats
            yield obs(ref, "seats", ts, float(u.seats), source)
        yield obs(ref, "active_users", ts, float(u.active_users), source)
        yield obs(ref, "core_features_used", ts, float(u.core_features_used), source)
        yield obs(ref, "key_events", ts, float(u.key_events), source)
    changes: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for t in p.tickets:
        ref = refs[t.account_id]
        changes[t.account_id].append((t.created_at, 1))
        if t.priority == "urgent":
            yield obs(ref, "sev1_ticket", t.created_at, 1.0, source)
        if t.escalated:
            yield obs(ref, "escalation", t.created_at, 1.0, source)
        if t.solved_at is not None:
            changes[t.account_id].append((t.solved_at, -1))
            if t.satisfaction is not None:
                csat = 100.0 if t.satisfaction == "good" else 0.0
                yield obs(ref, "csat", t.solved_at, csat, source)
    for a in p.accounts:  # open_tickets: 0 on the first day, then each day the count changes
        ref, count, shown = refs[a.external_id], 0, 0
        yield obs(ref, "open_tickets", at(max(p.start, a.customer_since)), 0.0, source)
        events = sorted(changes.get(a.external_id, ()))
        for k, (ts, delta) in enumerate(events):
            count += delta
            if (k + 1 == len(events) or events[k + 1][0].date() != ts.date()) and count != shown:
                shown = count
                yield obs(ref, "open_tickets", ts, float(count), source)
    for v in p.touches:
        ref = refs[v.account_id]
        yield obs(ref, "csm_touch", v.occurred_at, 1.0, source)
        if v.executive:
            yield obs(ref, "exec_meeting", v.occurred_at, 1.0, source)
        if v.sentiment is not None:
            yield obs(ref, "csm_sentiment", v.occurred_at, float(v.sentiment), source)
    for n in p.nps:
        yield obs(refs[n.account_id], "nps", n.responded_at, float(n.score), source)
    for c in p.contacts:
        if c.is_champion and c.left_on is not None:
            yield obs(refs[c.account_id], "champion_left", at(c.left_on), 1.0, source)
    by_account: dict[str, list[Invoice]] = defaultdict(list)
    for v in p.invoices:
        by_account[v.account_id].append(v)
        if v.failed:
            yield obs(refs[v.account_id], "payment_failed", at(v.due_on), 1.0, source)
    for account_id, invoices in by_account.items():
        for d, late in _days_late(invoices, p.end):
            yield obs(refs[account_id], "payment_days_late", at(d), float(late), source)


def account_records(p: Portfolio, *, source: str = "sandbox") -> list[AccountRecord]:
    return [
        AccountRecord(source, a.external_id, a.name, a.domain, a.owner, a.segment, a.arr,
                      a.customer_since, a.renewal_date)
        for a in p.accounts
    ]  # fmt: skip


def outcome_records(p: Portfolio, *, source: str = "sandbox") -> list[OutcomeRecord]:
    """Closed renewals as outcomes; arr_change is the ARR after minus the ARR before."""
    return [
        OutcomeRecord(AccountRef(crm_id=r.account_id), r.outcome, r.close_date, source,
                      arr_change=r.amount - r.prior_amount, external_id=r.external_id)
        for r in p.renewals
        if r.outcome != "open"
    ]  # fmt: skip
