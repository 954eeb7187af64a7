"""`/health NAME` reads the account and its brief in a fixed number of statements: a longer
score history or more open tasks add rows, never statements. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select

from bot.commands import answer, brief_message
from bot.context import BotContext
from health.db import session_scope
from health.models import Account, PlaybookTask, Score
from health.rescore import rescore
from tests.storage.test_scoring_storage import DAY, MODEL, seed

NOW = datetime.combine(DAY, datetime.min.time(), UTC) + timedelta(hours=12)


def give_history(engine, name: str, *, days: int, tasks: int) -> int:
    """`days` daily scores (copies of DAY's) and `tasks` open tasks for the account `name`."""
    with session_scope(engine) as s:
        account = s.exec(select(Account).where(Account.name == name)).scalars().one()
        latest = s.exec(select(Score).where(Score.account_id == account.id)).scalars().one()
        for d in range(1, days):
            copy = {k: v for k, v in latest.model_dump().items() if k != "id"}
            s.add(Score(**copy | {"score_date": DAY - timedelta(days=d)}))
        for k in range(tasks):
            s.add(
                PlaybookTask(
                    account_id=account.id,
                    playbook=f"playbook-{k}",
                    title=f"Call them ({k})",
                    steps=["call", "write down what they said"],
                    owner="dana@x.test",
                    triggered_at=NOW,
                    created_at=NOW,
                    updated_at=NOW,
                    last_triggered_at=NOW,
                    due_at=NOW + timedelta(days=k + 1),
                )
            )
        return account.id


def statements(engine, fn) -> tuple[int, dict]:
    sent: list[str] = []

    def count(conn, cursor, statement, params, context, executemany) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        out = fn()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(sent), out


def test_a_brief_costs_the_same_statements_whatever_its_history_and_tasks(engine):
    seed(engine, n_accounts=3, days=40)
    rescore(engine, MODEL, day=DAY)
    give_history(engine, "Account 1", days=95, tasks=1)
    many = give_history(engine, "Account 2", days=200, tasks=9)
    ctx = BotContext(engine=engine, model=MODEL)

    loaded: list[Score] = []

    def on_load(score: Score, _context) -> None:
        loaded.append(score)

    event.listen(Score, "load", on_load)
    try:
        n_some, some_msg = statements(engine, lambda: answer(ctx, "account 1", "U1", None))
        n_many, many_msg = statements(engine, lambda: answer(ctx, "ACCOUNT 2", "U1", None))
    finally:
        event.remove(Score, "load", on_load)
    # the newest score whole; the older days' totals only (not 90 breakdowns parsed)
    assert len(loaded) == 2
    # lookup, latest score, older totals, changes, outcomes, records, freshness, tasks
    assert n_some == n_many <= 8
    # the same brief by id (a button): the account by primary key instead of the lookup
    n_by_id, by_id = statements(engine, lambda: brief_message(ctx, many))
    assert n_by_id == n_many and by_id == many_msg

    def shown(msg: dict) -> str:
        return " ".join(str(b) for b in msg["blocks"])

    assert "(90 days)" in shown(many_msg) and "(90 days)" in shown(some_msg)  # the cap
    assert shown(many_msg).count("Call them (") == 9 and shown(some_msg).count("Call them (") == 1
    assert "Call them (8)" in shown(many_msg)


def test_an_exact_name_domain_or_crm_id_wins_over_longer_names_that_contain_it(engine):
    seed(engine, n_accounts=12, days=40)  # Account 1 and Account 10, Account 11
    rescore(engine, MODEL, day=DAY)
    ctx = BotContext(engine=engine, model=MODEL)
    for query in ("Account 1", "account 1", "a1.test", "A1"):
        msg = answer(ctx, query, "U1", None)
        assert msg["blocks"][0]["text"]["text"] == "Account 1", query
    picker = answer(ctx, "account", "U1", None)  # no exact match: the candidates
    assert picker["text"].startswith("'account' matches 8 accounts")
    with session_scope(engine) as s:  # two accounts named alike: a picker, not a guess
        twin = s.exec(select(Account).where(Account.name == "Account 3")).scalars().one()
        s.add(Account(**replace_fields(twin, external_id="B3", domain="b3.test")))
    assert " matches 2 accounts" in answer(ctx, "ACCOUNT 3", "U1", None)["text"]


def replace_fields(account: Account, **changes) -> dict:
    fields = {k: v for k, v in account.model_dump().items() if k != "id"}
    return fields | changes


def test_no_match_suggests_the_closest_names(engine):
    seed(engine, n_accounts=12, days=5)
    with session_scope(engine) as s:
        first = s.exec(select(Account).where(Account.name == "Account 3")).scalars().one()
        s.add(Account(**replace_fields(first, external_id="ACME", name="Acme", domain=None)))
    ctx = BotContext(engine=engine, model=MODEL)
    # trigram candidates on PostgreSQL, every name on SQLite: the same suggestions
    missing = answer(ctx, "Acount 11", "U1", None)["blocks"][0]["text"]["text"]
    assert missing.startswith("No account matches *Acount 11*. Did you mean *Account 11*, ")
    # a swap of two letters leaves too few trigrams in common (0.11 < 0.3): every name
    swapped = answer(ctx, "Amce", "U1", None)["blocks"][0]["text"]["text"]
    assert swapped == "No account matches *Amce*. Did you mean *Acme*?"
