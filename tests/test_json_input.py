"""JSON from clients goes through one defensive parser: nesting depth, NaN/Infinity, huge numbers and (in FHIR
records) duplicate keys are 4xx OperationOutcomes that say what was wrong; records must validate as FHIR R4."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from scribe.errors import BadInputError, RecordsError
from scribe.json_input import nesting_depth, parse_json
from tests.conftest import SAMPLES
from tests.helpers.clinic import DR_A, new_encounter, post_records, spoken_encounter

BUNDLE = json.loads((SAMPLES / "cardiology_followup.bundle.json").read_text())
OBSERVATION = next(
    i
    for i, e in enumerate(BUNDLE["entry"])
    if e["resource"]["resourceType"] == "Observation" and "valueQuantity" in e["resource"]
)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested 100000 levels deep; at most 64 are accepted"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": [Infinity]}', "Infinity is not a JSON number"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"a": 1e309}', "the number 1e309 is out of range"),
        (b'{"a": 1', "not JSON (Expecting ',' delimiter at line 1 column 8)"),
        (b"\xff{}", "not UTF-8 text"),
        (b"[" + b"9" * 5000 + b"]", "not usable JSON (Exceeds the limit (4300 digits)"),
    ],
)
def test_what_the_parser_refuses(raw, message):
    with pytest.raises(BadInputError) as info:
        parse_json(raw, what="the thing")
    assert str(info.value).startswith("the thing: ") and message in str(info.value)


def test_depth_counts_structure_not_strings_and_duplicates_only_when_asked():
    assert nesting_depth(b'{"a": "[[[[{{{{", "b": [[1], {"c": []}]}') == 4
    assert nesting_depth(b'["\\"[[[[", [[]]]') == 3
    assert parse_json(b"[" * 64 + b"]" * 64)  # exactly the limit is fine
    assert parse_json(b'\xef\xbb\xbf{"a": 1, "a": 2}') == {"a": 2}
    with pytest.raises(BadInputError, match="the key 'a' appears twice in one object"):
        parse_json(b'{"a": 1, "b": {"a": 1, "a": 2}}', unique_keys=True)


DEEP = b"[" * 30_000 + b"]" * 30_000  # under every JSON route's size limit


def test_deep_nesting_is_a_422_on_every_json_route_and_the_server_stays_up(api: TestClient):
    encounter = spoken_encounter(api)
    note = api.post(f"/v1/encounters/{encounter}/note", headers=DR_A).json()["id"]
    json_type = {**DR_A, "Content-Type": "application/json"}
    for method, path in [
        ("POST", f"/v1/encounters/{encounter}/records"),
        ("PUT", f"/v1/notes/{note}"),
        ("POST", f"/v1/notes/{note}/sign"),
        ("POST", f"/v1/notes/{note}/amend"),
        ("POST", f"/v1/notes/{note}/addendum"),
        ("POST", f"/v1/encounters/{encounter}/note"),
        ("POST", "/v1/encounters"),
        ("PATCH", f"/v1/encounters/{encounter}"),
    ]:
        body = DEEP if path.endswith(("/records", f"/notes/{note}")) else b"[" * 20_000 + b"]" * 20_000
        response = api.request(method, path, content=body, headers={**json_type, "If-Match": 'W/"1"'})
        assert response.status_code == 422, (method, path, response.status_code, response.text)
        assert "levels deep; at most 64 are accepted" in response.json()["issue"][0]["diagnostics"], path
    for body in (b'{"confirm_unsupported": NaN}', b'{"confirm_unsupported": true, "attestation": 1e999}'):
        refused = api.post(f"/v1/notes/{note}/sign", content=body, headers=json_type)
        assert refused.status_code == 422 and "number" in refused.json()["issue"][0]["diagnostics"]
    named = api.post("/v1/encounters", content=b'{"patient": {"id": "pt-9", "name": Infinity}}', headers=json_type)
    assert named.status_code == 422 and "Infinity is not a JSON number" in named.text
    assert api.get("/healthz").status_code == 200
    assert api.post(f"/v1/notes/{note}/sign", json={"confirm_unsupported": True}, headers=DR_A).status_code == 200


def _post_records(api: TestClient, encounter: str, content: bytes):
    return post_records(api, encounter, content)


def test_records_are_refused_with_their_first_problem_named(api: TestClient):
    encounter = new_encounter(api, patient="pt-1001")
    nan = json.dumps(BUNDLE).replace('"value": 150', '"value": NaN', 1)
    assert nan != json.dumps(BUNDLE)
    twice = json.dumps(BUNDLE).replace('"resourceType": "Bundle",', '"resourceType": "Bundle", "type": "batch",', 1)
    misspelled = copy.deepcopy(BUNDLE)
    resource = misspelled["entry"][OBSERVATION]["resource"]
    resource["valeuQuantity"] = resource.pop("valueQuantity")
    bad_date = copy.deepcopy(BUNDLE)
    bad_date["entry"][OBSERVATION]["resource"]["effectiveDateTime"] = "last tuesday"
    no_type = {k: v for k, v in BUNDLE.items() if k != "type"}
    observation = f"entry[{OBSERVATION}] (Observation/{BUNDLE['entry'][OBSERVATION]['resource']['id']})"
    for content, message in [
        (nan.encode(), "NaN is not a JSON number"),
        (twice.encode(), "the key 'type' appears twice in one object"),
        (
            json.dumps(misspelled).encode(),
            f"{observation}: not valid FHIR R4 Observation: valeuQuantity: Extra inputs are not permitted",
        ),
        (json.dumps(bad_date).encode(), f"{observation}: not valid FHIR R4 Observation: effectiveDateTime:"),
        (
            json.dumps(no_type).encode(),
            "Bundle: not valid FHIR R4 Bundle: type: Value for the field 'type' is required",
        ),
    ]:
        response = _post_records(api, encounter, content)
        assert response.status_code == 422, (message, response.text)
        assert message in response.json()["issue"][0]["diagnostics"]
    assert api.get(f"/v1/encounters/{encounter}/context", headers=DR_A).json()["observations"] == []
    assert _post_records(api, encounter, json.dumps(BUNDLE).encode()).status_code == 201


def test_the_cli_reads_records_with_the_same_parser(capsys, tmp_path: Path, settings):
    from scribe.cli import run

    bad = copy.deepcopy(BUNDLE)
    bad["entry"][OBSERVATION]["resource"]["issued"] = "yesterday"
    cases = {
        "nan.json": json.dumps(BUNDLE).replace('"value": 150', '"value": NaN', 1),
        "deep.json": "[" * 5000 + "]" * 5000,
        "invalid.json": json.dumps(bad),
    }
    transcript = tmp_path / "visit.txt"
    transcript.write_text("[doctor] blood pressure is 148 over 92 .\n")
    for name, content in cases.items():
        path = tmp_path / name
        path.write_text(content)
        for command in (["transcribe", str(SAMPLES / "cardiology_followup.wav")], ["note", str(transcript)]):
            code = run([*command, "--records", str(path)])
            out, err = capsys.readouterr()
            assert code == 3 and out == "" and f"{path}: " in err and "Traceback" not in err, (name, command, err)
            expected = {
                "nan.json": "NaN is not a JSON number",
                "deep.json": "levels deep",
                "invalid.json": "not valid FHIR R4 Observation: issued",
            }[name]
            assert expected in err, (name, command, err)


def test_read_records_names_its_label():
    from scribe.records import read_records

    with pytest.raises(RecordsError, match=r"^upload\.json: the key 'id' appears twice"):
        read_records(b'{"resourceType": "Bundle", "id": "a", "id": "b"}', "upload.json")
