"""A HubSpot company's `salesforceaccountid` (HubSpot's Salesforce integration) becomes its
cross-reference: the same customer's Salesforce Account Id."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from connectors.hubspot.mapping import (
    COMPANY_PROPS,
    SALESFORCE_ACCOUNT_ID,
    company_records,
    salesforce_id,
)
from connectors.sandbox.names import salesforce_id as sandbox_salesforce_id

SF_ID = sandbox_salesforce_id("001", 4242)  # 18 characters, as Salesforce's API returns it


def company(**props) -> dict:
    base = {
        "name": "Raven Biotech",
        "domain": "ravenbiotech.com",
        "hs_lastmodifieddate": "2026-10-30T09:12:44.120Z",
        "hs_object_id": "10001",
    }
    return {"id": "10001", "properties": base | props, "archived": False}


def account_of(obj: dict):
    out = company_records(obj, {})
    assert not isinstance(out, Exception) and isinstance(out, tuple), out
    return out[0]


def test_the_property_is_read_with_every_company():
    assert SALESFORCE_ACCOUNT_ID == "salesforceaccountid"
    assert SALESFORCE_ACCOUNT_ID in COMPANY_PROPS


def test_salesforce_account_id_becomes_the_cross_reference():
    rec = account_of(company(salesforceaccountid=SF_ID))
    assert (rec.source, rec.external_id, rec.cross_ref) == ("hubspot", "10001", SF_ID)


def test_a_portal_without_the_integration_has_no_cross_reference():
    # the property does not exist (left out of the answer), exists unset (null), or is blank
    assert account_of(company()).cross_ref is None
    assert account_of(company(salesforceaccountid=None)).cross_ref is None
    assert account_of(company(salesforceaccountid="  ")).cross_ref is None


def test_a_deleted_company_keeps_its_cross_reference():
    out = company_records(company(salesforceaccountid=SF_ID), {}, deleted=True)
    assert out[0].deleted and out[0].cross_ref == SF_ID


def test_a_15_character_id_gets_the_case_safe_suffix_salesforce_returns():
    assert len(SF_ID) == 18
    assert salesforce_id(SF_ID[:15]) == SF_ID
    assert account_of(company(salesforceaccountid=f" {SF_ID[:15]} ")).cross_ref == SF_ID


def test_values_that_are_not_salesforce_ids_are_kept_as_given():
    for value in ("12345", "not an id", "001SB00000042" + "x" * 10):
        assert salesforce_id(value) == value.strip()


ALNUM = string.ascii_letters + string.digits


@given(st.text(alphabet=ALNUM, min_size=15, max_size=15))
def test_the_suffix_tells_ids_that_differ_only_in_case_apart(base):
    full = salesforce_id(base)
    assert len(full) == 18 and full[:15] == base
    assert salesforce_id(full) == full  # an 18-character id is kept
    flipped = base.swapcase()
    if flipped.lower() == base.lower() and flipped != base:
        assert salesforce_id(flipped)[15:] != full[15:]


@given(st.integers(min_value=0, max_value=10**10 - 1), st.sampled_from(["001", "a0B", "0Q0"]))
def test_the_suffix_is_the_one_salesforce_computes(n, prefix):
    full = sandbox_salesforce_id(prefix, n)
    assert salesforce_id(full[:15]) == full
