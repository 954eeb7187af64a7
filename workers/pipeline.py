"""The pipeline's use-cases as plain functions: sync a source, score accounts, flush the
outbox to the CRMs, and one whole pass of the three. The CLI, the Celery tasks, the Slack bot
and the benchmarks call these; none of them holds a use-case of its own.

Every step commits before the next one reads what it wrote; one source or CRM failing never
stops the others (what was committed stays, and is scored and written back).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from connectors.base import ConnectorError
from connectors.files.csv_import import CsvImport
from connectors.registry import build_sink, build_source, configured_sinks, configured_sources
from health import accounts
from health.backfill import BackfillReport, backfill_scores, first_observed_day
from health.db import session_scope
from health.ingest import SyncReport, ingest
from health.locks import exclusive
from health.models import Account
from health.outbox import RetryPolicy
from health.records import Batch
from health.repo import utcnow
from health.rescore import rescore
from health.score_writes import RescoreReport
from health.scoring.model import ScoringModel
from health.settings import Settings
from playbooks.loader import PlaybookError, load_playbooks
from playbooks.runner import run_playbooks, sweep_playbooks
from playbooks.store import ApplyReport
from workers.writeback import FlushReport, flush_outbox

OnBatch = Callable[[SyncReport, Batch], None]


@dataclass
class RunReport:
    syncs: list[SyncReport] = field(default_factory=list)
    scoring: RescoreReport | None = None
    flushes: list[FlushReport] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # source or CRM -> why

    @property
    def touched(self) -> set[int]:
        return set().union(*(r.stored.touched_accounts for r in self.syncs))


def today() -> date:
    return datetime.now(UTC).date()


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        base_seconds=settings.writeback_retry_seconds,
        max_permanent=settings.writeback_max_attempts,
    )


def sync_source(
    engine: Engine,
    source,
    *,
    on_batch: OnBatch | None = None,
    report: SyncReport | None = None,
    primary: str = "salesforce",
) -> SyncReport:
    """Pull what changed in one source since its watermark and store it, batch by batch.
    Two syncs of one source never overlap: the second returns at once with `busy` set."""
    report = report if report is not None else SyncReport(source=source.name)
    with exclusive(engine, f"sync-{source.name}") as mine:
        if not mine:
            report.busy = True
            return report
        return ingest(engine, source, on_batch=on_batch, report=report, primary=primary)


def sync_named(
    engine: Engine, settings: Settings, name: str, *, on_batch: OnBatch | None = None
) -> SyncReport:
    source = build_source(settings, name)
    return sync_source(engine, source, on_batch=on_batch, primary=settings.primary_crm)


def sync_all(
    engine: Engine,
    settings: Settings,
    *,
    only: str | None = None,
    on_batch: OnBatch | None = None,
    into: RunReport | None = None,
) -> RunReport:
    """Sync every configured source (or `only`); a failing one is recorded, the rest go on."""
    run = into if into is not None else RunReport()
    for name in [only] if only else configured_sources(settings):
        report = SyncReport(source=name)
        try:
            source = build_source(settings, name)
            sync_source(
                engine, source, on_batch=on_batch, report=report, primary=settings.primary_crm
            )
        except ConnectorError as exc:
            run.failed[name] = str(exc)
        run.syncs.append(report)
    return run


def score_accounts(
    engine: Engine,
    settings: Settings,
    model: ScoringModel,
    account_ids: Iterable[int] | None,
    *,
    day: date | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> RescoreReport:
    """Score the accounts (None: every live one) for `day` (default today, UTC), queueing
    each changed score for the CRMs this deployment writes to; then, for today's scores, run
    the playbooks on the changes (committed by then). A broken playbook set is reported in
    `playbooks_error` and runs nothing; the scores stand."""
    report = rescore(
        engine,
        model,
        day=day or today(),
        account_ids=account_ids,
        workers=workers,
        progress=progress,
        targets=configured_sinks(settings),
    )
    if report.change_ids and (day is None or day == today()):
        try:
            report.playbooks = run_playbooks(
                engine,
                load_playbooks(settings.healthbot_playbooks),
                change_ids=report.change_ids,
                now=utcnow(),
            )
        except PlaybookError as exc:
            report.playbooks_error = f"playbooks not run: {exc}"
    return report


def recheck_tasks(engine: Engine, settings: Settings) -> ApplyReport:
    """Re-evaluate every account with a live task (conditions that cleared lead to recovery,
    also without a score change); then escalate overdue tasks and bring back snoozed ones."""
    book = load_playbooks(settings.healthbot_playbooks)
    now = utcnow()
    report = run_playbooks(engine, book, change_ids=[], now=now, recheck_live=True)
    report.add(sweep_playbooks(engine, book, now=now))
    return report


def sweep_tasks(engine: Engine, settings: Settings) -> ApplyReport:
    """Escalate overdue tasks and bring back snoozed ones (beat, every few minutes)."""
    return sweep_playbooks(engine, load_playbooks(settings.healthbot_playbooks), now=utcnow())


def backfill_history(
    engine: Engine,
    settings: Settings,
    model: ScoringModel,
    *,
    since: date | None = None,
    until: date | None = None,
    every: int = 1,
    replace: bool = False,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> BackfillReport:
    """Rebuild score history from stored observations (default: from the first observed day
    to today), every `every` days; the newest score of each account is queued for the CRMs.
    `on_start(accounts, days)` is told the size of the job before it starts."""
    with session_scope(engine) as session:
        first = first_observed_day(session=session)
    end = until or today()
    start = since or first or end
    report = backfill_scores(
        engine,
        model,
        start=start,
        end=end,
        every=every,
        renewal_known_from=today(),
        replace=replace,
        workers=workers,
        progress=progress,
        targets=configured_sinks(settings),
        on_start=on_start,
    )
    return report


def flush_crm(
    engine: Engine,
    settings: Settings,
    name: str,
    *,
    on_chunk: Callable[[FlushReport], None] | None = None,
) -> FlushReport:
    return flush_outbox(
        engine, build_sink(settings, name), policy=retry_policy(settings), on_chunk=on_chunk
    )


def flush_all(
    engine: Engine,
    settings: Settings,
    *,
    on_chunk: Callable[[FlushReport], None] | None = None,
    into: RunReport | None = None,
) -> RunReport:
    """Write pending scores to every configured CRM; a failing CRM keeps its rows queued."""
    run = into if into is not None else RunReport()
    for name in configured_sinks(settings):
        try:
            run.flushes.append(flush_crm(engine, settings, name, on_chunk=on_chunk))
        except ConnectorError as exc:
            run.failed[f"{name} writeback"] = str(exc)
    return run


def run_once(
    engine: Engine,
    settings: Settings,
    model: ScoringModel,
    *,
    on_batch: OnBatch | None = None,
    on_chunk: Callable[[FlushReport], None] | None = None,
    workers: int = 1,
) -> RunReport:
    """One full pass: sync every configured source → score the accounts whose data changed
    → write the changed scores to every configured CRM."""
    run = sync_all(engine, settings, on_batch=on_batch)
    if run.touched:
        run.scoring = score_accounts(engine, settings, model, run.touched, workers=workers)
    return flush_all(engine, settings, on_chunk=on_chunk, into=run)


def import_csv(
    engine: Engine, kind: str, path: Path, model: ScoringModel, *, on_batch: OnBatch | None = None
) -> SyncReport:
    """Load a CSV of accounts, observations or outcomes (columns: docs/import-formats.md).
    ValueError names what is wrong with the file."""
    return sync_source(engine, CsvImport(kind, path, signals=model.signals), on_batch=on_batch)


def link_accounts(
    engine: Engine, settings: Settings, model: ScoringModel, first: str, second: str
) -> tuple[Account, Account, RescoreReport]:
    """Join two accounts a person says are one customer, then score the one that remains
    (its score goes to every CRM record it now links). Returns (kept, absorbed, scoring)."""
    with session_scope(engine) as session:
        keep, absorb = accounts.link_accounts(
            session=session, first=first, second=second, now=utcnow(), primary=settings.primary_crm
        )
    return keep, absorb, score_accounts(engine, settings, model, [keep.id])


def unlink_record(
    engine: Engine, settings: Settings, model: ScoringModel, record: str
) -> tuple[Account, RescoreReport]:
    """Take one CRM record off its account, then score both accounts again."""
    with session_scope(engine) as session:
        left, home = accounts.unlink_record(
            session=session, record=record, now=utcnow(), primary=settings.primary_crm
        )
    return home, score_accounts(engine, settings, model, [left, home.id])
