"""Redaction of identifiers (issue 23, item 1): what the dead-letter topic and the logs keep of
a payload that identifies a person."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from typer.testing import CliRunner

from twin_stream import redaction
from twin_stream.bridge.routing import dead_letter, route
from twin_stream.cli import app
from twin_stream.config import load_settings
from twin_stream.dlq import Letter, replay_target
from twin_stream.domain.privacy import (
    MAX_UNPARSED_BYTES,
    TOKEN_PREFIX,
    Redactor,
    find_identifiers,
    is_identifier_key,
    value_kind,
)
from twin_stream.errors import ConfigError
from twin_stream.privacy_scan import scan_record

ROOT = Path(__file__).resolve().parents[2]

KEY = b"k" * 32
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
R = Redactor(KEY)


def _reading(**extra: object) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "device_id": "pump-0001",
            "device_type": "infusion_pump",
            "seq": 7,
            "ts": "2026-12-07T11:59:59Z",
            "fw": "2.4.1",
            "metrics": {"motor_current": 0.31},
            **extra,
        }
    )


def test_a_patient_name_is_hashed_and_the_reason_names_only_the_field() -> None:
    raw = _reading(patient_name="Jane Roe")
    routed = route("twin/v1/devices/pump-0001/telemetry", raw, now=NOW)
    assert routed.kafka_topic == "twin.dlq" and routed.reason is not None
    assert b"Jane" not in routed.value and b"Roe" not in routed.value
    letter = orjson.loads(routed.value)
    assert letter["redacted"] == ["patient_name"]
    assert "redacted: patient_name" in routed.reason and "Jane" not in routed.reason
    assert routed.reason.endswith("[extra_forbidden]")  # the rule stays last, for the sink
    body = orjson.loads(base64.b64decode(letter["payload_base64"]))
    assert body["patient_name"].startswith(TOKEN_PREFIX)
    assert body["seq"] == 7 and body["metrics"] == {"motor_current": 0.31}


def test_the_same_value_gives_the_same_token_and_another_key_another() -> None:
    a = R.payload(b'{"mrn": "12345678"}').payload
    assert R.payload(b'{"mrn": "12345678"}').payload == a
    assert Redactor(b"j" * 32).payload(b'{"mrn": "12345678"}').payload != a
    assert R.payload(b'{"mrn": "87654321"}').payload != a


def test_every_kind_of_identifier_is_found_by_key_or_by_value() -> None:
    document = {
        "firstName": "Jane",
        "MRN": "A-1",
        "date_of_birth": "1984-03-02",
        "ssn": "x",
        "home_address": {"street": "1 Main St"},
        "phone": 1,
        "e-mail": "x",
        "note": "call +44 20 7946 0958",
        "contact": ["jane@example.org"],
        "hl7": "MSH|^~\\&|ADT\rPID|1||12345^^^MRN||Roe^Jane",
        "kin": "NK1|1|Roe^John",
        "id": "123-45-6789",
    }
    found = {(m.field, m.kind) for m in find_identifiers(document)}
    assert {field.removesuffix("[]") for field, _ in found} == set(document)
    out = R.payload(orjson.dumps(document))
    assert {f.removesuffix("[]") for f in out.fields} == set(document)
    for secret in ("Jane", "1984", "Main", "7946", "example.org", "12345", "6789"):
        assert secret not in out.payload.decode()


def test_what_identifies_no_one_is_left_alone() -> None:
    for key in ("seq", "ts", "fw", "device_id", "name", "metrics", "rate", "pid"):
        assert is_identifier_key(key) is None, key
    for value in ("2026-12-07T11:59:59Z", "2.4.1", "pump-0001", "0.31", "1984-03-02"):
        assert value_kind(value) is None, value
    raw = _reading()
    assert R.payload(raw).payload == raw and R.payload(raw).fields == ()
    # a valid reading is routed as before
    assert route("twin/v1/devices/pump-0001/telemetry", raw, now=NOW).reason is None


def test_a_payload_that_is_no_json_is_kept_short_and_none_of_it_if_it_holds_one() -> None:
    small = R.payload(b"{not json")
    assert small.payload == b"{not json" and small.fields == ()
    big = R.payload(b"x" * 5000)
    assert big.payload == b"x" * MAX_UNPARSED_BYTES and "1024 of 5000" in big.note
    hl7 = R.payload(b"MSH|^~\\&|ADT\rPID|1||12345^^^MRN||Roe^Jane\r")
    assert hl7.payload == b"" and hl7.fields == ("(payload)",)
    letter = orjson.loads(
        dead_letter("t", b"mail jane@example.org", "bad [json_invalid]", NOW).value
    )
    assert letter["payload_base64"] == "" and letter["redacted"] == ["(payload)"]
    assert "payload not kept" in letter["reason"] and "jane" not in letter["reason"]


def test_values_taken_out_of_the_payload_are_taken_out_of_the_reason_and_topic() -> None:
    routed = dead_letter(
        "twin/v1/devices/jane@example.org/telemetry",
        b'{"patient": "Jane Roe"}',
        "device_type: 'Jane Roe' is no device type; write to jane@example.org [bad]",
        NOW,
    )
    assert b"Jane" not in routed.value and b"example.org" not in routed.value
    assert routed.reason is not None and routed.reason.endswith("(redacted: patient) [bad]")


def test_a_redacted_letter_is_not_replayed_and_says_why() -> None:
    routed = route("twin/v1/devices/pump-0001/telemetry", _reading(dob="1984-03-02"), now=NOW)
    letter = Letter.decode(0, 1, routed.key, routed.value)
    target = replay_target(letter)
    assert target.reason is not None and target.kafka_topic == "twin.dlq"
    assert target.reason.startswith("redacted (dob)")
    # an unredacted letter still replays
    plain = dead_letter(
        "twin/v1/devices/pump-0001/telemetry", _reading(), "why [r]", NOW, "pump-0001"
    )
    assert replay_target(Letter.decode(0, 2, plain.key, plain.value)).reason is None


def test_the_redactor_never_shows_its_key() -> None:
    assert "k" * 16 not in repr(R) and "k" * 16 not in str(R)


_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
)
_json = st.deferred(
    lambda: (
        _scalars
        | st.lists(_json, max_size=3)
        | st.dictionaries(st.text(max_size=12), _json, max_size=3)
    )
)


@given(_json, st.sampled_from(["Jane Roe", "jane.roe@example.org", "+1 555 867 5309"]))
def test_a_planted_identifier_never_survives_redaction(document: object, secret: str) -> None:
    # a name is found by its key; an e-mail address or a phone number anywhere
    misc = [] if secret == "Jane Roe" else [f"x {secret} y"]
    planted = {"patient_name": secret, "data": document, "misc": misc}
    out = R.payload(json.dumps(planted).encode())
    assert secret not in out.payload.decode()
    assert "patient_name" in out.fields
    # what is redacted is found no more
    assert list(find_identifiers(json.loads(out.payload))) == [
        m for m in find_identifiers(json.loads(out.payload)) if m.kind == "unscanned"
    ]


@given(_json)
def test_redaction_is_idempotent_and_deterministic(document: object) -> None:
    raw = json.dumps(document).encode()
    once = R.payload(raw)
    assert R.payload(raw) == once
    assert R.payload(once.payload).payload == once.payload


def test_without_a_key_a_process_makes_its_own_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(redaction, "_redactor", None)
    with caplog.at_level(logging.WARNING, logger="twin_stream.redaction"):
        made = redaction.install(None)
        assert redaction.redactor() is made and redaction.install(None) is made
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("TWIN_PRIVACY__REDACTION_KEY is not set")
    key = SecretStr("s" * 32)
    assert redaction.install(key).token("x") == Redactor(b"s" * 32).token("x")
    assert "s" * 32 not in caplog.text


def test_the_key_is_a_setting_and_compose_will_not_start_a_service_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWIN_PRIVACY__REDACTION_KEY", "short")
    with pytest.raises(ConfigError, match="TWIN_PRIVACY__REDACTION_KEY"):
        load_settings()
    monkeypatch.setenv("TWIN_PRIVACY__REDACTION_KEY", "k" * 32)
    settings = load_settings()
    assert settings.privacy.redaction_key is not None
    assert "k" * 32 not in repr(settings)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("bridge", "worker", "sink"):
        value = compose[name]["environment"]["TWIN_PRIVACY__REDACTION_KEY"]
        assert value.startswith("${REDACTION_KEY:?"), (name, value)


def test_the_scan_looks_into_json_text_keys_and_a_letters_payload() -> None:
    def found(key: bytes | None, value: bytes | None) -> list[tuple[str, str]]:
        return [(m.field, m.kind) for m in scan_record(key, value)]

    assert found(b"pump-0001", b'{"seq": 1, "metrics": {"motor_current": 0.3}}') == []
    assert found(b"jane@example.org", None) == [("(key)", "email")]
    assert found(None, b"\x80\x04MSH|^~\\&|ADT\rPID|1||1^^^MRN\r.") == [("(value)", "hl7_segment")]
    unredacted = orjson.dumps(
        {"reason": "r", "payload_base64": base64.b64encode(b'{"dob": 1}').decode()}
    )
    assert found(None, unredacted) == [("payload.dob", "date_of_birth")]
    letter = dead_letter("t", b'{"dob": "1984-03-02"}', "why [r]", NOW)
    assert found(letter.key, letter.value) == []  # redacted already: no finding


def test_privacy_scan_says_what_it_reads_and_what_its_exit_status_means() -> None:
    result = CliRunner().invoke(app, ["privacy", "scan", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for words in ("Kafka topic", "changelogs", "InfluxDB measurement", "never the value"):
        assert words in text, words
    assert "Exit status 1 if anything was found, 0 if nothing" in text
    assert "--since" in text and "--json" in text
