import warnings
from datetime import UTC, date, datetime

from sqlalchemy import func, inspect, select

from health.db import session_scope
from health.models import Account, Observation, SyncState
from health.records import AccountRecord, AccountRef, Batch, ObservationRecord, RecordError
from health.repo import store_batch

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _batch(value: float = 5.0, watermark: str = "w1") -> Batch:
    return Batch(
        accounts=[
            AccountRecord(
                source="salesforce",
                external_id="001A",
                name="Acme",
                domain="https://www.Acme.com/",
                segment="smb",
                renewal_date=date(2027, 1, 1),
            )
        ],
        observations=[
            ObservationRecord(AccountRef(crm_id="001A"), "active_users", NOW, value, "usage"),
            ObservationRecord(AccountRef(domain="acme.com"), "nps", NOW, 9, "survey"),
            ObservationRecord(AccountRef(domain="nobody.example"), "nps", NOW, 3, "survey"),
        ],
        errors=[RecordError("usage", "row 7", "unparsable date '31/02'")],
        watermark=watermark,
    )


def test_schema_is_migrated(engine):
    names = set(inspect(engine).get_table_names())
    assert {
        "account",
        "observation",
        "score",
        "scorechange",
        "outboxitem",
        "alembic_version",
    } <= names


def test_store_batch_is_idempotent_and_counts(engine):
    with session_scope(engine) as s:
        first = store_batch(session=s, source="salesforce", batch=_batch(), now=NOW)
    assert first.upserted == 3  # account + 2 matched observations
    assert first.unmatched == {"domain:nobody.example": 1}
    assert first.errors == 1
    with session_scope(engine) as s:
        again = store_batch(session=s, source="salesforce", batch=_batch(), now=NOW)
    assert (again.upserted, again.unchanged) == (0, 3)
    with session_scope(engine) as s:
        changed = store_batch(session=s, source="salesforce", batch=_batch(7.0, "w2"), now=NOW)
        assert changed.upserted == 1
        assert s.execute(select(func.count()).select_from(Observation)).scalar_one() == 2
        acc = s.exec(select(Account)).scalars().one()
        assert acc.domain == "acme.com"
        value = s.exec(select(Observation.value).where(Observation.signal == "active_users"))
        assert value.scalar_one() == 7.0
        assert s.get(SyncState, "salesforce").watermark == "w2"
        assert acc.updated_at.tzinfo is not None


def test_migrations_build_the_schema_the_models_declare(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import health.models  # noqa: F401  (the tables)

    def declared(obj, name, type_, reflected, compare_to) -> bool:
        # the PostgreSQL-only trigram lookup indexes (migration 0010) are not in the models
        return not (type_ == "index" and (name or "").endswith("_trgm"))

    with engine.connect() as conn, warnings.catch_warnings():
        # SQLite cannot reflect the expression index on lower(name) (0012): compared on PostgreSQL
        warnings.filterwarnings("ignore", message=".*expression-based index")
        context = MigrationContext.configure(conn, opts={"include_object": declared})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []
