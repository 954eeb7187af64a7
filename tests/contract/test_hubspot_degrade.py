"""A HubSpot portal without the custom healthbot_* properties, and one per missing property:
the sync reads every company, deal, ticket and contact it can, each missing property switches
off only what reads it and is reported once."""

from __future__ import annotations

from collections import Counter

import pytest

from connectors.hubspot.fields import CUSTOM_PROPS
from connectors.sandbox.hubspot_api import CUSTOM_DATA_PROPERTIES, start_hubspot_sandbox
from connectors.sandbox.portfolio import generate_portfolio
from tests.contract.test_hubspot import make_source

PORTFOLIO = generate_portfolio(accounts=24, days=150, seed=9)
EVERY = [(kind, name) for kind, props in CUSTOM_PROPS.items() for name in props]


def pulled(source) -> dict:
    out = {"accounts": {}, "signals": Counter(), "outcomes": Counter(), "errors": Counter()}
    for batch in source.pull(None):
        out["accounts"].update({a.external_id: a for a in batch.accounts})
        out["signals"].update(o.signal for o in batch.observations)
        out["outcomes"].update((o.kind, o.arr_change is not None) for o in batch.outcomes)
        out["errors"].update(e.key for e in batch.errors)
    return out


@pytest.fixture(scope="module")
def complete() -> dict:
    with start_hubspot_sandbox(PORTFOLIO) as sb:
        source = make_source(sb)
        out = pulled(source)
        calls = sb.server.count()
    assert source.switched_off == []  # every property present: nothing off, nothing new
    return out | {"calls": calls}


def test_a_portal_without_custom_properties_reads_everything_else(complete):
    with start_hubspot_sandbox(PORTFOLIO, custom_properties=False) as sb:
        first = sorted(sb.store.objects["companies"], key=int)[0]
        sb.store.objects["companies"][first]["properties"]["annualrevenue"] = "250000"
        source = make_source(sb)
        got = pulled(source)
        calls = sb.server.count()
    assert [s.field for s in source.switched_off] == [f"{k}.{n}" for k, n in EVERY]
    assert all("create the" in s.fix and "in HubSpot" in s.fix for s in source.switched_off)
    assert set(got["accounts"]) == set(complete["accounts"])
    assert {k: a.arr for k, a in got["accounts"].items() if a.arr} == {first: 250000.0}
    assert all(a.renewal_date is None for a in got["accounts"].values())
    # segments from the numberofemployees bands (the seed's head counts, not its segments)
    assert all(a.segment is not None for a in got["accounts"].values())
    off = {"exec_meeting", "champion_left"}
    assert complete["signals"].keys() >= off
    assert got["signals"] == Counter({s: n for s, n in complete["signals"].items() if s not in off})
    assert sum(got["outcomes"].values()) == sum(complete["outcomes"].values())
    assert got["errors"] == Counter({"contacts": 1})  # the champion search's 400, as before
    assert calls <= complete["calls"]  # no request added to find out


@pytest.mark.parametrize(("kind", "name"), EVERY, ids=[f"{k}.{n}" for k, n in EVERY])
def test_one_missing_property_is_reported_once(kind, name):
    with start_hubspot_sandbox(PORTFOLIO, champion_properties=kind != "contacts") as sb:
        sb.store.absent.add((kind, name))
        source = make_source(sb, page_size=10)  # several pages: still reported once
        got = pulled(source)
    assert [(s.field, s.key) for s in source.switched_off] == [(f"{kind}.{name}", name)]
    assert len(got["accounts"]) == len(PORTFOLIO.accounts)


def test_the_fake_serves_only_listed_properties_as_absent():
    assert set(EVERY) <= set(CUSTOM_DATA_PROPERTIES)


def test_doctor_lists_the_missing_company_properties():
    from health.settings import Settings
    from workers.doctor import check_source

    with start_hubspot_sandbox(PORTFOLIO, custom_properties=False) as sb:
        settings = Settings(_env_file=None, hubspot_access_token=sb.token, hubspot_base_url=sb.url)
        check = check_source(settings, "hubspot")
        calls = sb.server.count()
    assert check.ok is True and calls == 1
    assert "4 fields missing, read without: companies.healthbot_segment missing" in check.detail
    assert "create the companies property healthbot_arr (number) in HubSpot" in check.detail
