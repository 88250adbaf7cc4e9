"""The MDC mapping (twin_stream/domain/mdc.py): every term names a real signal, every unit of the
table converts within its kind and is refused across kinds, and docs/protocol.md lists every
code with its source."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from twin_stream.domain.devices import METRICS_BY_TYPE
from twin_stream.domain.mdc import (
    KNOWN_UNMAPPED,
    MDC_TERMS,
    MDC_UNITS,
    SIGNAL_UCUM,
    UCUM_UNITS,
    Mapped,
    Refused,
    convert,
    map_observation,
    term_for,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_every_term_is_a_signal_of_its_device_type_in_a_unit_the_table_converts() -> None:
    for term in MDC_TERMS:
        spec = METRICS_BY_TYPE[term.device_type][term.metric]
        assert SIGNAL_UCUM.get(spec.unit, spec.unit) in UCUM_UNITS, term
        assert term.ref_id.startswith("MDC_")
        assert 0 < term.code < 2**32


def test_a_code_number_is_the_term_of_one_name_only() -> None:
    numbers = [t.code for t in MDC_TERMS] + list(KNOWN_UNMAPPED)
    names = [t.ref_id for t in MDC_TERMS] + list(KNOWN_UNMAPPED.values())
    assert len(set(numbers)) == len(numbers) and len(set(names)) == len(names)


def test_the_mdc_unit_codes_are_ucum_units_the_table_knows() -> None:
    assert set(MDC_UNITS.values()) <= set(UCUM_UNITS)


@pytest.mark.parametrize(
    ("device_type", "code", "value", "unit", "expected"),
    [
        ("infusion_pump", "157784", 125.0, "mL/h", Mapped("flow_rate", 125.0)),
        ("infusion_pump", "157784", 2.0, "mL/min", Mapped("flow_rate", 120.0)),
        ("infusion_pump", "MDC_FLOW_FLUID_PUMP", 0.25, "L/h", Mapped("flow_rate", 250.0)),
        ("ventilator", "151868", 0.5, "L", Mapped("tidal_volume", 500.0)),
        ("ventilator", "151817", 2.0, "kPa", Mapped("airway_pressure", 20.3943242596)),
        ("ventilator", "151817", 18, "cm[H2O]", Mapped("airway_pressure", 18.0)),
        ("ventilator", "152196", 0.4, "1", Mapped("o2_percent", 40.0)),
    ],
)
def test_an_observation_becomes_its_signals_reading_in_the_signals_unit(
    device_type: str, code: str, value: float, unit: str, expected: Mapped
) -> None:
    assert map_observation(device_type, code, value, unit) == expected


@pytest.mark.parametrize(
    ("device_type", "code", "value", "unit", "rule", "says"),
    [
        ("infusion_pump", "157784", 1.0, "cm[H2O]", "unit_mismatch", "a pressure"),
        ("infusion_pump", "157784", 1.0, "furlong/h", "unknown_unit", "furlong/h"),
        ("infusion_pump", "157784", 1.0, None, "no_unit", "OBX-6"),
        ("infusion_pump", "157784", 1.0, "", "no_unit", "OBX-6"),
        ("infusion_pump", "151868", 1.0, "mL", "unmapped_code", "not a signal of an infusion_pump"),
        ("patient_monitor", "147842", 60, "/min", "unmapped_code", "a patient's measurement"),
        ("patient_monitor", "MDC_PULS_OXIM_SAT_O2", 97, "%", "unmapped_code", "patient"),
        ("ventilator", "123", 1.0, "mL", "unknown_code", "not an MDC code"),
        ("ventilator", "MDC_NOTHING", 1.0, "mL", "unknown_code", "MDC_NOTHING"),
        ("ventilator", "151868", float("nan"), "mL", "not_a_number", "nan"),
    ],
)
def test_what_cannot_be_a_reading_is_refused_with_its_reason(
    device_type: str, code: str, value: float, unit: str | None, rule: str, says: str
) -> None:
    refused = map_observation(device_type, code, value, unit)
    assert isinstance(refused, Refused)
    assert refused.rule == rule
    assert says in refused.reason and refused.reason.endswith(f"[{rule}]")


def test_a_code_and_a_name_that_disagree_are_refused() -> None:
    refused = map_observation("ventilator", "151868", 1.0, "mL", name="MDC_PRESS_AWAY_INSP_PEAK")
    assert isinstance(refused, Refused) and refused.rule == "code_mismatch"
    assert term_for("151817", "MDC_PRESS_AWAY_INSP_PEAK") == 151817


def test_units_convert_only_within_their_kind() -> None:
    for unit, (kind, _) in UCUM_UNITS.items():
        for other, (other_kind, _) in UCUM_UNITS.items():
            result = convert(1.0, unit, other)
            if kind == other_kind:
                assert isinstance(result, float), (unit, other)
                back = convert(result, other, unit)
                assert isinstance(back, float) and back == pytest.approx(1.0)
            else:
                assert isinstance(result, Refused) and result.rule == "unit_mismatch"


def test_a_temperature_is_never_converted() -> None:
    refused = convert(37.0, "Cel", "K")
    assert isinstance(refused, Refused) and refused.rule == "unknown_unit"
    assert convert(37.0, "Cel", "Cel") == 37.0


def test_the_protocol_doc_lists_every_code_with_its_source() -> None:
    text = DOCS.read_text()
    section = text[text.index("## MDC codes") :]
    section = section[: section.find("\n## ", 4)] if "\n## " in section[4:] else section
    rows = [line for line in section.splitlines() if re.match(r"\| `?\d{5,6}", line)]
    documented = {int(re.findall(r"\d{5,6}", row)[0]): row for row in rows}
    for term in MDC_TERMS:
        row = documented[term.code]
        assert term.ref_id in row and term.metric in row and term.device_type in row
    for code, name in KNOWN_UNMAPPED.items():
        assert name in documented[code]
    assert "Source" in section and "11073-10101" in section
