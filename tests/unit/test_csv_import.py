"""CSV import: header checks, line-numbered row errors, batching, and storing via ingest."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from connectors.files import CsvImport, read_csv_batches
from connectors.files.csv_import import COLUMNS
from health.ingest import ingest
from health.models import Account, Observation, Outcome, SyncError
from health.records import AccountRecord, AccountRef, ObservationRecord, OutcomeRecord
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH

SIGNALS = {"active_users", "nps", "csat"}


def write(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(text.lstrip("\n"))
    return path


def records(kind, path, **kw):
    out, errors = [], []
    for b in read_csv_batches(kind, path, signals=SIGNALS, **kw):
        out += b.accounts + b.observations + b.outcomes
        errors += [e.reason for e in b.errors]
    return out, errors


def test_accounts(tmp_path):
    path = write(
        tmp_path,
        """
external_id,name,domain,owner,segment,arr,customer_since,renewal_date,notes
001A,Acme,acme.com,ann@x.test,Mid-Market,120000,2024-01-15,2027-01-15,hi
001B,Beta,,,,,,,
001C,Gamma,,,giant,,,,
001D,Delta,,,,-5,,,
,Nameless,,,,,,,
001E,Epsilon,,,,,2024-02-30,,
""",
    )
    got, errors = records("accounts", path)
    assert got == [
        AccountRecord(
            "csv",
            "001A",
            "Acme",
            "acme.com",
            "ann@x.test",
            "mid_market",
            120000.0,
            date(2024, 1, 15),
            date(2027, 1, 15),
        ),
        AccountRecord("csv", "001B", "Beta"),
    ]
    assert errors == [
        "line 4: unknown segment 'giant' (use enterprise, mid_market, smb)",
        "line 5: negative arr '-5'",
        "line 6: missing external_id",
        "line 7: unparsable date '2024-02-30' in customer_since",
    ]


def test_accounts_source_column_names_the_crm(tmp_path):
    path = write(tmp_path, "Source,External_ID,Name\nSalesforce,001A,Acme\n")
    got, _ = records("accounts", path)
    assert got == [AccountRecord("salesforce", "001A", "Acme")]


def test_observations(tmp_path):
    path = write(
        tmp_path,
        """
account,domain,signal,observed_at,value,source
001A,,active_users,2026-10-01,12,
,Acme.com,nps,2026-10-02T09:30:00+02:00,9,survey
001A,,nps,2026-10-03T08:00:00,7,
001A,,mood,2026-10-01,3,
001A,,nps,31/02/2026,3,
001A,,nps,2026-10-01,high,
,,nps,2026-10-01,3,
001A,,csat,2026-10-01,,
""",
    )
    got, errors = records("observations", path)
    assert got == [
        ObservationRecord(
            AccountRef("001A"), "active_users", datetime(2026, 10, 1, tzinfo=UTC), 12.0, "csv"
        ),
        ObservationRecord(
            AccountRef(domain="acme.com"),
            "nps",
            datetime(2026, 10, 2, 7, 30, tzinfo=UTC),
            9.0,
            "survey",
        ),
        ObservationRecord(
            AccountRef("001A"), "nps", datetime(2026, 10, 3, 8, tzinfo=UTC), 7.0, "csv"
        ),
    ]
    assert errors == [
        "line 5: unknown signal 'mood' (not in the scoring model's catalogue)",
        "line 6: unparsable date '31/02/2026' in observed_at",
        "line 7: not a number 'high' in value",
        "line 8: missing account (or domain)",
        "line 9: missing value",
    ]


def test_observation_signals_must_be_in_the_model_catalogue(tmp_path):
    path = write(
        tmp_path,
        "account,signal,observed_at,value\n1,open_tickets,2026-10-01,2\n"
        "1,not_a_signal,2026-10-01,2\n",
    )
    with pytest.raises(ValueError, match="needs the scoring model's signal keys"):
        read_csv_batches("observations", path)
    signals = load_model(DEFAULT_MODEL_PATH).signals
    batch = next(read_csv_batches("observations", path, signals=signals))
    assert [o.signal for o in batch.observations] == ["open_tickets"]
    assert [e.reason for e in batch.errors] == [
        "line 3: unknown signal 'not_a_signal' (not in the scoring model's catalogue)"
    ]


def test_outcomes(tmp_path):
    path = write(
        tmp_path,
        """
account,domain,kind,occurred_on,arr_change
001A,,Renewed,2026-06-30,
,beta.io,churned,2026-07-31,-50000
001A,,upsold,2026-06-30,
001A,,expanded,,10
""",
    )
    got, errors = records("outcomes", path)
    assert got == [
        OutcomeRecord(AccountRef("001A"), "renewed", date(2026, 6, 30), "csv"),
        OutcomeRecord(
            AccountRef(domain="beta.io"), "churned", date(2026, 7, 31), "csv", arr_change=-50000.0
        ),
    ]
    assert errors == [
        "line 4: unknown kind 'upsold' (use renewed, churned, expanded)",
        "line 5: missing occurred_on",
    ]


@pytest.mark.parametrize(
    ("kind", "header", "missing"),
    [
        ("accounts", "external_id,domain", "name"),
        ("observations", "signal,observed_at,value", "account|domain"),
        ("observations", "account,signal,value", "observed_at"),
        ("outcomes", "account,kind", "occurred_on"),
        ("outcomes", "", "account|domain, kind, occurred_on"),
    ],
)
def test_missing_columns_fail_up_front_with_the_expected_columns(tmp_path, kind, header, missing):
    path = write(tmp_path, header + "\n1,2,3\n")
    with pytest.raises(ValueError, match="missing column") as err:
        read_csv_batches(kind, path, signals=SIGNALS)  # no iteration needed
    assert f"missing column(s) {missing} " in str(err.value)
    assert ", ".join(COLUMNS[kind][0]) in str(err.value)
    with pytest.raises(ValueError, match="missing column"):
        CsvImport(kind, path)


def test_unknown_kind_and_batching(tmp_path):
    with pytest.raises(ValueError, match="unknown import kind 'contacts'"):
        read_csv_batches("contacts", write(tmp_path, "a\n"))
    rows = "".join(f"00{i},Name {i}\n" for i in range(23))
    batches = list(
        read_csv_batches("accounts", write(tmp_path, "external_id,name\n" + rows), batch_size=10)
    )
    assert [len(b.accounts) for b in batches] == [10, 10, 3]
    assert [b.fetched for b in batches] == [10, 10, 3]
    assert all(b.watermark is None for b in batches)


def test_csv_import_stores_through_ingest(engine, tmp_path):
    accounts = write(tmp_path, "external_id,name,domain\n001A,Acme,acme.com\n001B,Beta,\n", "a.csv")
    observations = write(
        tmp_path,
        """
account,domain,signal,observed_at,value
001A,,nps,2026-10-01,9
,acme.com,csat,2026-10-02,100
001Z,,nps,2026-10-01,5
001B,,nps,2026-13-01,5
""",
        "o.csv",
    )
    outcomes = write(
        tmp_path, "account,kind,occurred_on,arr_change\n001B,churned,2026-09-30,-9\n", "r.csv"
    )
    ingest(engine, CsvImport("accounts", accounts))
    report = ingest(engine, CsvImport("observations", observations, signals=SIGNALS))
    ingest(engine, CsvImport("outcomes", outcomes))
    assert report.stored.unmatched == {"001Z": 1}
    with Session(engine) as s:
        assert sorted(s.exec(select(Account.source, Account.external_id)).all()) == [
            ("csv", "001A"),
            ("csv", "001B"),
        ]
        obs = s.exec(
            select(Account.external_id, Observation.signal, Observation.value).join(Account)
        ).all()
        assert sorted(obs) == [("001A", "csat", 100.0), ("001A", "nps", 9.0)]
        assert s.exec(select(Outcome.kind, Outcome.arr_change)).all() == [("churned", -9.0)]
        assert s.exec(select(SyncError.source, SyncError.reason)).all() == [
            ("csv", "line 5: unparsable date '2026-13-01' in observed_at")
        ]
    again = ingest(engine, CsvImport("observations", observations, signals=SIGNALS))
    assert again.stored.upserted == 0  # re-importing a file changes nothing
