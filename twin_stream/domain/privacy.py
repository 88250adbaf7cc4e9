"""What identifies a person, and how a payload is redacted before it is kept. Pure: no I/O.

Devices send readings, never people's data; a message that carries some (a pump configured
with its patient's name, a gateway that forwards an HL7 ADT message) is refused, and its dead
letter must not keep what the platform was right to refuse (issue 23; docs/security.md,
"Identifiers are never kept"). Two kinds of patterns say what identifies a person:

* **keys** (:data:`IDENTIFIER_KEYS`): a JSON key that names an identifier (``patient_name``,
  ``mrn``, ``dob``, ``ssn``, ``address``, ``phone``, ``email``...), whatever its value;
* **values** (:data:`IDENTIFIER_VALUES`): a string that has the shape of one (an e-mail address,
  a phone number, a US social security number, an HL7 v2 ``PID`` or ``NK1`` segment), whatever
  its key.

Each match is replaced by a keyed hash (HMAC-SHA256 with the platform's redaction key, see
:class:`Redactor`): the same value gives the same token, so repeats can still be counted and
correlated, and no one without the key can test a guess ("is it Jane Roe?").

>>> redactor = Redactor(b"k" * 32)
>>> out = redactor.payload(b'{"seq": 7, "patient_name": "Jane Roe", "note": "jane@example.org"}')
>>> out.fields
('note', 'patient_name')
>>> body = json.loads(out.payload)
>>> body["seq"], body["patient_name"].startswith(TOKEN_PREFIX), "Jane" in out.payload.decode()
(7, True, False)
>>> body["patient_name"] == redactor.token("Jane Roe")
True

A payload with nothing to redact is kept byte for byte:

>>> redactor.payload(b'{"seq": 7}').payload
b'{"seq": 7}'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "IDENTIFIER_KEYS",
    "IDENTIFIER_VALUES",
    "MAX_DEPTH",
    "MAX_UNPARSED_BYTES",
    "TOKEN_PREFIX",
    "Match",
    "Redacted",
    "Redactor",
    "find_identifiers",
    "is_identifier_key",
    "value_kind",
]

#: What a redacted value becomes: this, then 32 hex digits of its HMAC-SHA256 (128 bits: no
#: two values of a deployment share a token in practice).
TOKEN_PREFIX: Final = "redacted:"
_TOKEN_RE: Final = re.compile(r"^redacted:[0-9a-f]{32}$")

#: The most of a payload that is no JSON a dead letter keeps (and none of it if it matches a
#: value pattern): what is not JSON cannot be redacted field by field, and 1 KiB is enough to
#: see what it was (a truncated frame, a wrong encoding, text sent to the wrong topic).
MAX_UNPARSED_BYTES: Final = 1024

#: Nesting past which a JSON document is treated as no JSON (kept only as its first bytes): no
#: message of the protocol nests more than 4 deep, and walking 500 levels of lists would
#: exhaust Python's recursion limit.
MAX_DEPTH: Final = 64


class _TooDeep(Exception):
    """A document nested past MAX_DEPTH."""


# A key's words run together in lower case (``patientName``, ``patient-name`` and
# ``PATIENT_NAME`` are one key), then match one of these whole. A plain ``name`` is not among
# them: devices and the platform name signals, detectors and rules with it.
_WHO = (
    r"(?:patient|person|pt|subject|first|last|given|family|full|middle|maiden|birth|nok"
    r"|nextofkin|kin|guardian|mother|father|spouse|caregiver|emergencycontact|contact)"
)
_WHERE = (
    r"(?:home|work|mobile|patient|contact|primary|nok|nextofkin|emergency|street|postal"
    r"|mailing)?"
)

#: Key patterns by kind: a key whose run-together lower-case form matches one is an identifier.
IDENTIFIER_KEYS: Final[dict[str, str]] = {
    "name": rf"{_WHO}names?|surname|forename|patient|patientinitials|initials",
    "mrn": r"mrn|medicalrecord(?:number|no|id)?|patient(?:id|number|no)|chartnumber",
    "date_of_birth": r"dob|dateofbirth|birthdate|birthday|borndate|bornon",
    "national_id": (
        r"ssn|socialsecurity(?:number|no)?|nationalid(?:number)?|nin|nhsnumber|nhsno|bsn"
        r"|insurance(?:number|id)|passport(?:number|no)?|driverslicen[cs]e(?:number)?|taxid"
    ),
    "address": rf"{_WHERE}address(?:line\d?)?|street|postcode|postalcode|zipcode|zip",
    "phone": rf"{_WHERE}(?:phone|phonenumber|telephone|tel|cellphone|fax)|mobile",
    "email": rf"{_WHERE}e?mail(?:address)?",
}
_KEY_RES: Final = {kind: re.compile(rf"^(?:{p})$") for kind, p in IDENTIFIER_KEYS.items()}

#: Value patterns by kind, searched in every string (and every key): a string that holds one is
#: an identifier. A bare date is not one (a reading's ``ts``, a firmware's build date): a date
#: of birth is found by its key.
IDENTIFIER_VALUES: Final[dict[str, str]] = {
    # Every repetition is bounded and every separator required: each pattern costs a bounded
    # number of steps a character, however long and hostile the string (a fuzzed 64 KiB one).
    "email": (
        r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}"
        r"\.[A-Za-z]{2,24}"
    ),
    # E.164 (+44 20 7946 0958, +442079460958) or three groups of digits (020 7946 0958,
    # 555-867-5309): an ISO date (2026-11-24) has groups of 4, 2, 2 and is no phone number.
    "phone": (
        r"(?<![\w.:+-])(?:\+\d{1,3}(?:[ .-]\(?\d{1,4}\)?){2,4}|\+\d{8,15}"
        r"|\(?\d{3}\)?[ .-]\d{3,4}[ .-]\d{4})(?![\w.:-])"
    ),
    "national_id": r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])",  # a US social security number
    # HL7 v2 patient identification and next of kin (HL7 v2.x chapter 3): a segment id, then
    # the field separator, at the start of a segment.
    "hl7_segment": r"(?:^|[\r\n])(?:PID|NK1)\|",
}
#: What a string must hold for a pattern to be worth trying (most hold none of it).
_NEEDS: Final[dict[str, tuple[str, ...]]] = {
    "email": ("@",),
    "phone": tuple("0123456789"),
    "national_id": ("-",),
    "hl7_segment": ("PID|", "NK1|"),
}
_VALUE_RES: Final = {kind: re.compile(p) for kind, p in IDENTIFIER_VALUES.items()}


def _words(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def is_identifier_key(key: str) -> str | None:
    """The kind of identifier ``key`` names, or None.

    >>> is_identifier_key("patientName"), is_identifier_key("DOB"), is_identifier_key("seq")
    ('name', 'date_of_birth', None)
    """
    words = _words(key)
    return next((kind for kind, r in _KEY_RES.items() if r.match(words)), None)


def value_kind(text: str) -> str | None:
    """The kind of identifier ``text`` holds, or None (a redaction token holds none).

    >>> value_kind("write to jane@example.org"), value_kind("2026-11-24T11:59:59Z")
    ('email', None)
    >>> value_kind("MSH|^~\\\\&|ADT\\rPID|1||12345^^^MRN||Roe^Jane")
    'hl7_segment'
    """
    if _TOKEN_RE.match(text):
        return None
    return next(
        (kind for kind, r in _VALUE_RES.items() if _worth_trying(kind, text) and r.search(text)),
        None,
    )


def _worth_trying(kind: str, text: str) -> bool:
    return any(needle in text for needle in _NEEDS[kind])


@dataclass(frozen=True)
class Match:
    """One identifier found in a document: where (a dotted path of keys), and which kind."""

    field: str
    kind: str


def _path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def find_identifiers(document: Any, parent: str = "", depth: int = 0) -> Iterator[Match]:
    """Every identifier in a parsed JSON document, by path (list items share their list's
    path, ``[]``); a value already redacted is none. What ``privacy scan`` looks for. What
    nests past :data:`MAX_DEPTH` is reported as kind ``unscanned`` (it was not looked at).

    >>> [(m.field, m.kind) for m in find_identifiers({"a": [{"email": "x@y.org"}], "dob": 1})]
    [('a[].email', 'email'), ('dob', 'date_of_birth')]
    """
    if depth > MAX_DEPTH and isinstance(document, dict | list):
        yield Match(parent or "(value)", "unscanned")
    elif isinstance(document, dict):
        for key, value in document.items():
            key = str(key)
            if (kind := value_kind(key)) is not None:
                yield Match(_path(parent, "(key)"), kind)
                continue
            path = _path(parent, key)
            kind = is_identifier_key(key)
            if kind is not None and not _is_redacted(value):
                yield Match(path, kind)
                continue
            yield from find_identifiers(value, path, depth + 1)
    elif isinstance(document, list):
        for item in document:
            yield from find_identifiers(item, f"{parent}[]", depth + 1)
    elif isinstance(document, str) and (kind := value_kind(document)) is not None:
        yield Match(parent or "(value)", kind)


def _is_redacted(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(_TOKEN_RE.match(value)))


@dataclass(frozen=True)
class Redacted:
    """A payload made fit to keep: its bytes, the fields redacted (sorted, never their values;
    ``(payload)`` when none of it was kept) and a note for the reason (empty: nothing changed).
    """

    payload: bytes
    fields: tuple[str, ...]
    note: str
    #: the strings that were replaced, to take out of any text about this payload too
    secrets: frozenset[str] = frozenset()


class Redactor:
    """Redacts with one key: each identifier becomes ``redacted:`` and 32 hex digits of its
    HMAC-SHA256, the same for the same value (repeats can be counted), and nothing that can be
    reversed or tested without the key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a redaction key has at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:  # never the key
        return "Redactor(<key>)"

    def token(self, value: str) -> str:
        """The keyed hash that stands for ``value``."""
        digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return TOKEN_PREFIX + digest.hexdigest()[:32]

    def payload(self, payload: bytes) -> Redacted:
        """``payload`` with its identifiers replaced (JSON), or kept only up to
        :data:`MAX_UNPARSED_BYTES` and not at all if it holds one (anything else)."""
        try:
            document = json.loads(payload)
        except (ValueError, RecursionError):  # not JSON (nor UTF-8): it cannot be redacted
            return self._unparsed(payload)
        fields: set[str] = set()
        secrets: set[str] = set()
        try:
            redacted = self._document(document, "", fields, secrets, 0)
        except _TooDeep:
            return self._unparsed(payload)
        if not fields:
            return Redacted(payload, (), "")
        ordered = tuple(sorted(fields))
        body = json.dumps(redacted, ensure_ascii=False, separators=(",", ":")).encode()
        return Redacted(body, ordered, f"redacted: {', '.join(ordered)}", frozenset(secrets))

    def _unparsed(self, payload: bytes) -> Redacted:
        text = payload.decode("utf-8", "replace")
        kind = value_kind(text)
        if kind is not None:
            return Redacted(b"", ("(payload)",), f"payload not kept: no JSON, and it holds {kind}")
        if len(payload) <= MAX_UNPARSED_BYTES:
            return Redacted(payload, (), "")
        note = f"no JSON: the letter keeps its first {MAX_UNPARSED_BYTES} of {len(payload)} bytes"
        return Redacted(payload[:MAX_UNPARSED_BYTES], (), note)

    def _document(
        self, value: Any, path: str, fields: set[str], secrets: set[str], depth: int
    ) -> Any:
        if depth > MAX_DEPTH:
            raise _TooDeep(path)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                key = str(key)
                if value_kind(key) is not None:
                    fields.add(_path(path, "(key)"))
                    secrets.add(key)
                    out[self.token(key)] = self._document(item, path, fields, secrets, depth + 1)
                    continue
                here = _path(path, key)
                if is_identifier_key(key) is not None and not _is_redacted(item):
                    fields.add(here)
                    secrets.update(_strings(item))
                    # a string stands for itself (the same token as in text); anything else
                    # for its JSON
                    raw = item if isinstance(item, str) else json.dumps(item, sort_keys=True)
                    out[key] = self.token(raw)
                    continue
                out[key] = self._document(item, here, fields, secrets, depth + 1)
            return out
        if isinstance(value, list):
            return [self._document(item, f"{path}[]", fields, secrets, depth + 1) for item in value]
        if isinstance(value, str) and value_kind(value) is not None:
            fields.add(path or "(value)")
            secrets.add(value)
            return self.token(value)
        return value

    def text(self, text: str, secrets: frozenset[str] = frozenset()) -> str:
        """``text`` (a reason, a log line) with each identifier in it replaced by its token:
        whatever matches a value pattern, and each of ``secrets`` (the values taken out of the
        payload it is about, which only their keys could tell apart).

        >>> r = Redactor(b"k" * 32)
        >>> r.text("device_type: 'Jane Roe' is unknown", frozenset({"Jane Roe"})) == (
        ...     f"device_type: '{r.token('Jane Roe')}' is unknown")
        True
        """
        for secret in sorted(secrets, key=len, reverse=True):
            if len(secret) >= 3:  # "1" or "ab" would take out half the text, and tells no one
                text = text.replace(secret, self.token(secret))
        for kind, pattern in _VALUE_RES.items():
            if not _worth_trying(kind, text):
                continue
            if kind == "hl7_segment":  # the segment and the rest of its line
                text = re.sub(r"(PID|NK1)\|[^\r\n]*", lambda m: f"{m[1]}|{self.token(m[0])}", text)
            else:
                text = pattern.sub(lambda m: self.token(m[0]), text)
        return text


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
