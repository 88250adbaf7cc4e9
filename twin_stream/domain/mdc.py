"""IEEE 11073 MDC codes and UCUM units -> each device type's signals: the one mapping every
gateway uses (HL7 v2 PCD-01 today, SDC later), so that the same reading from either becomes the
same telemetry. Pure: no I/O.

A term is found by its numeric code (``partition * 65536 + term code``, as OBX-3 and SDC carry
it) or by its reference id (``MDC_...``); its value is converted from the unit it came in to the
signal's unit where UCUM allows it (both units of one kind: a volume flow, a pressure...):

>>> mapped = map_observation("infusion_pump", "157784", 0.1, "L/h")
>>> mapped.metric, mapped.value
('flow_rate', 100.0)
>>> map_observation("ventilator", "MDC_VOL_AWAY_TIDAL", 450, "mL").value
450.0

Anything else is refused with its reason, and the rule last in brackets, as the platform's dead
letters write it:

>>> refused = map_observation("infusion_pump", "157784", 5, "mm[Hg]")
>>> print(refused.reason)  # doctest: +NORMALIZE_WHITESPACE
157784 MDC_FLOW_FLUID_PUMP: mm[Hg] (a pressure) cannot be converted to mL/h
(a volume flow) [unit_mismatch]
>>> map_observation("patient_monitor", "150456", 97, "%").rule
'unmapped_code'
>>> map_observation("infusion_pump", "999999", 1, "mL").reason
'999999: not an MDC code of the mapping (docs/protocol.md, "MDC codes") [unknown_code]'

The sources of the codes are in ``docs/protocol.md`` ("MDC codes").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from twin_stream.domain.devices import METRICS_BY_TYPE, DeviceType

__all__ = [
    "KNOWN_UNMAPPED",
    "MDC_TERMS",
    "MDC_UNITS",
    "Mapped",
    "MdcTerm",
    "Refused",
    "SIGNAL_UCUM",
    "UCUM_UNITS",
    "convert",
    "map_observation",
    "term_for",
    "ucum_of_mdc_unit",
]


@dataclass(frozen=True)
class MdcTerm:
    """One IEEE 11073-10101 term the platform maps to a signal of a device type."""

    code: int  # partition * 65536 + term code (the numeric code OBX-3 and SDC carry)
    ref_id: str  # the reference id, MDC_...
    device_type: str
    metric: str


#: The terms the platform maps, by device type. Only codes whose number and name were checked
#: against IEEE 11073-10101 usage (docs/protocol.md, "MDC codes", says where): a device-health
#: signal with no 11073 term (a motor current, a board temperature) is not in the table.
MDC_TERMS: Final[tuple[MdcTerm, ...]] = (
    MdcTerm(157784, "MDC_FLOW_FLUID_PUMP", DeviceType.INFUSION_PUMP, "flow_rate"),
    MdcTerm(151868, "MDC_VOL_AWAY_TIDAL", DeviceType.VENTILATOR, "tidal_volume"),
    MdcTerm(151817, "MDC_PRESS_AWAY_INSP_PEAK", DeviceType.VENTILATOR, "airway_pressure"),
    MdcTerm(152196, "MDC_CONC_AWAY_O2_INSP", DeviceType.VENTILATOR, "o2_percent"),
)

#: Terms of 11073 that are known but are a patient's measurements, which no twin keeps: refused
#: with that reason rather than as unknown.
KNOWN_UNMAPPED: Final[dict[int, str]] = {
    150456: "MDC_PULS_OXIM_SAT_O2",
    147842: "MDC_ECG_HEART_RATE",
}

#: The signals' units in UCUM (METRICS_BY_TYPE writes a few in their common form).
SIGNAL_UCUM: Final[dict[str, str]] = {"cmH2O": "cm[H2O]", "mmHg": "mm[Hg]", "degC": "Cel"}

#: UCUM units the gateways convert between: ``{code: (kind, factor to the kind's base unit)}``.
#: Factors are UCUM's definitions (cm[H2O] = 98.0665 Pa, mm[Hg] = 133.322 Pa). Temperatures
#: are not here (their scales have offsets: a temperature must come in the signal's own unit).
UCUM_UNITS: Final[dict[str, tuple[str, float]]] = {
    # volume, base mL
    "L": ("volume", 1000.0),
    "dL": ("volume", 100.0),
    "mL": ("volume", 1.0),
    "uL": ("volume", 0.001),
    # volume flow, base mL/h
    "L/h": ("volume flow", 1000.0),
    "mL/h": ("volume flow", 1.0),
    "uL/h": ("volume flow", 0.001),
    "L/min": ("volume flow", 60_000.0),
    "mL/min": ("volume flow", 60.0),
    "mL/s": ("volume flow", 3600.0),
    # pressure, base Pa
    "Pa": ("pressure", 1.0),
    "hPa": ("pressure", 100.0),
    "kPa": ("pressure", 1000.0),
    "mbar": ("pressure", 100.0),
    "cm[H2O]": ("pressure", 98.0665),
    "mm[Hg]": ("pressure", 133.322),
    # fraction, base 1
    "%": ("fraction", 0.01),
    "1": ("fraction", 1.0),
}

#: MDC unit codes (IEEE 11073-10101 dimensions) OBX-6 may carry instead of UCUM, by number and
#: by reference id.
MDC_UNITS: Final[dict[str, str]] = {
    "263762": "mL",
    "MDC_DIM_MILLI_L": "mL",
    "265266": "mL/h",
    "MDC_DIM_MILLI_L_PER_HR": "mL/h",
    "266048": "cm[H2O]",
    "MDC_DIM_CM_H2O": "cm[H2O]",
    "266016": "mm[Hg]",
    "MDC_DIM_MMHG": "mm[Hg]",
    "262688": "%",
    "MDC_DIM_PERCENT": "%",
}

_BY_CODE: Final = {(t.device_type, t.code): t for t in MDC_TERMS}
_CODE_OF_NAME: Final = {t.ref_id: t.code for t in MDC_TERMS} | {
    name: code for code, name in KNOWN_UNMAPPED.items()
}
_NAME_OF_CODE: Final = {code: name for name, code in _CODE_OF_NAME.items()}


@dataclass(frozen=True)
class Mapped:
    """An observation as a signal's reading: the metric and its value in the signal's unit."""

    metric: str
    value: float


@dataclass(frozen=True)
class Refused:
    """Why an observation cannot be a reading; ``rule`` is ``unknown_code``, ``unmapped_code``
    (a known term no signal of the device type is), ``code_mismatch`` (its number and name
    disagree), ``no_unit``, ``unknown_unit``, ``unit_mismatch`` or ``not_a_number``."""

    rule: str
    message: str

    @property
    def reason(self) -> str:
        return f"{self.message} [{self.rule}]"


def ucum_of_mdc_unit(code: str) -> str | None:
    """The UCUM unit of an MDC unit code or reference id (None if the table lacks it).

    >>> ucum_of_mdc_unit("265266"), ucum_of_mdc_unit("MDC_DIM_CM_H2O"), ucum_of_mdc_unit("1")
    ('mL/h', 'cm[H2O]', None)
    """
    return MDC_UNITS.get(code.strip())


def term_for(code: str, name: str | None = None) -> int | Refused:
    """The numeric code of a term given by its number, its reference id, or both (which must
    agree). A code outside the table is ``unknown_code``.

    >>> term_for("151868"), term_for("MDC_VOL_AWAY_TIDAL"), term_for("151868", "MDC_VOL_AWAY_TIDAL")
    (151868, 151868, 151868)
    >>> term_for("151868", "MDC_FLOW_FLUID_PUMP").rule
    'code_mismatch'
    """
    code, name = code.strip(), (name or "").strip() or None
    number = int(code) if code.isdigit() else _CODE_OF_NAME.get(code)
    by_name = _CODE_OF_NAME.get(name) if name else None
    if number is None and by_name is None:
        shown = " ".join(p for p in (code, name) if p)
        return Refused(
            "unknown_code",
            f'{shown}: not an MDC code of the mapping (docs/protocol.md, "MDC codes")',
        )
    if number is None:
        assert by_name is not None
        return by_name
    if by_name is not None and by_name != number:
        return Refused("code_mismatch", f"{code} is not {name} (that is {by_name})")
    if number not in _NAME_OF_CODE:
        return Refused(
            "unknown_code",
            f'{number}: not an MDC code of the mapping (docs/protocol.md, "MDC codes")',
        )
    return number


def _label(code: int) -> str:
    return f"{code} {_NAME_OF_CODE[code]}"


def convert(value: float, unit: str, to: str) -> float | Refused:
    """``value`` in ``unit`` as a value in ``to`` (both UCUM), or why it cannot be.

    >>> convert(1.5, "L/min", "mL/min"), convert(20, "cm[H2O]", "kPa")
    (1500.0, 1.96133)
    >>> convert(40, "Cel", "K").rule
    'unknown_unit'
    """
    source, target = UCUM_UNITS.get(unit), UCUM_UNITS.get(to)
    if unit == to:
        return float(value)
    if source is None or target is None:
        unknown = unit if source is None else to
        known = ", ".join(UCUM_UNITS)
        return Refused(
            "unknown_unit", f"{unknown} is not a UCUM unit the platform converts (it does: {known})"
        )
    if source[0] != target[0]:
        return Refused(
            "unit_mismatch",
            f"{unit} (a {source[0]}) cannot be converted to {to} (a {target[0]})",
        )
    # 12 significant digits: 0.1 L/h is 100.0 mL/h, not 100.00000000000001
    return float(f"{float(value) * source[1] / target[1]:.12g}")


def map_observation(
    device_type: str, code: str, value: float, unit: str | None, name: str | None = None
) -> Mapped | Refused:
    """One observation (an MDC code, or reference id ``name``, a value and its UCUM ``unit``)
    of a device of ``device_type`` as one of its signals' readings, or why it cannot be."""
    number = term_for(code, name)
    if isinstance(number, Refused):
        return number
    term = _BY_CODE.get((device_type, number))
    if term is None:
        if number in KNOWN_UNMAPPED:
            why = "a patient's measurement, which no twin keeps"
        else:
            article = "an" if device_type[:1] in "aeiou" else "a"
            why = f"not a signal of {article} {device_type}"
        return Refused("unmapped_code", f"{_label(number)}: {why}")
    if not unit:
        return Refused("no_unit", f"{_label(number)}: no unit (OBX-6 is empty)")
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return Refused("not_a_number", f"{_label(number)}: {value!r} is not a number")
    spec = METRICS_BY_TYPE[device_type][term.metric]
    converted = convert(value, unit, SIGNAL_UCUM.get(spec.unit, spec.unit))
    if isinstance(converted, Refused):
        return Refused(converted.rule, f"{_label(number)}: {converted.message}")
    return Mapped(term.metric, converted)
