"""The access rule on its own: what each kind of caller may read and change (routes are tested through the API)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from scribe.access import check_change, check_create, check_read, check_stream, readable, readable_notes
from scribe.auth.smart import DRAFTS_SCOPE
from scribe.auth.tokens import CLINICIAN_SCOPES, Principal
from scribe.errors import ForbiddenError
from scribe.store.models import Encounter, Note

OWNER = Principal("dr-a", CLINICIAN_SCOPES, 0)
OTHER = Principal("dr-b", CLINICIAN_SCOPES, 0)
EHR = Principal("ehr", ("system/DocumentReference.rs",), 0)
EHR_DRAFTS = Principal("ehr", ("system/DocumentReference.rs", DRAFTS_SCOPE), 0)


def test_the_owner_reads_and_changes_another_clinician_neither():
    check_read(OWNER, "dr-a")
    check_change(OWNER, "dr-a", "sign this note")
    check_create(OWNER)
    with pytest.raises(ForbiddenError, match="another clinician"):
        check_read(OTHER, "dr-a")
    with pytest.raises(ForbiddenError, match="only the encounter's clinician can sign this note"):
        check_change(OTHER, "dr-a", "sign this note")


def test_a_system_client_reads_every_clinicians_but_changes_and_creates_nothing():
    check_read(EHR, "dr-a")
    with pytest.raises(ForbiddenError):
        check_change(EHR, "dr-a", "edit this note")
    with pytest.raises(ForbiddenError, match="not by system clients"):
        check_create(EHR)
    with pytest.raises(ForbiddenError):
        check_change(Principal("dr-a", ("system/DocumentReference.rs",), 0), "dr-a", "edit")  # same name, a client


def test_a_stream_appends_only_to_its_holders_encounter():
    check_stream("dr-a", "dr-a")
    with pytest.raises(ForbiddenError, match="another clinician"):
        check_stream("dr-b", "dr-a")


def where(query) -> str:
    return (
        str(query.compile(compile_kwargs={"literal_binds": True})).split("WHERE", 1)[-1]
        if query.whereclause is not None
        else ""
    )


def test_queries_narrow_to_what_the_caller_may_read():
    assert "encounters.clinician = 'dr-a'" in where(readable(select(Encounter), Encounter.clinician, OWNER))
    assert where(readable(select(Encounter), Encounter.clinician, EHR)) == ""
    assert "notes.clinician = 'dr-a'" in where(readable_notes(select(Note), OWNER))
    assert "draft" not in where(readable_notes(select(Note), OWNER))  # a clinician sees their own drafts
    assert "notes.status != 'draft'" in where(readable_notes(select(Note), EHR))
    assert where(readable_notes(select(Note), EHR_DRAFTS)) == ""
