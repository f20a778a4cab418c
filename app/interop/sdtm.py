"""CDISC SDTM LB in: one IL6 record read as the service's own request (``sdtm_export`` writes LB rows out).

An LB record (a JSON object keyed by SDTM variable names) becomes the plain request body that
``AssessmentIn`` validates, so an LB record meets every rule a plain request does; the LB-specific rules are
checked here first, each failure an ``InvalidInput`` pointing at the variable (never repeating its value).

The LB conventions followed (CDISC SDTM IG, LB domain): LBORRES/LBORRESU as collected; LBSTRESC/LBSTRESN/
LBSTRESU standardised, a censored result ("<1.5") keeping its sign in LBSTRESC with LBSTRESN null; LBLLOQ
in LBSTRESU units; LBSTAT/LBREASND only for a test not done; LBLOINC 26881-3 ("Interleukin 6
[Mass/volume] in Serum or Plasma"). Pure translation: no web framework, ORM or validation library.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, Inexact, InvalidOperation, Overflow
from typing import Any

from app.domain.decimals import plain
from app.domain.errors import InvalidInput
from app.domain.il6 import UNITS, Comparator
from app.domain.specimen import SpecimenType

LB_MEDIA_TYPE = "application/vnd.cdisc.sdtm.lb+json"
DOMAIN = "LB"
IL6_TESTCD = "IL6"
IL6_TEST = "Interleukin 6"
IL6_TEST_NAMES = ("Interleukin 6", "Interleukin-6", "IL-6", "IL6")
"""The LBTEST spellings accepted for IL6, in any letter case; anything else (another test's name sent with
LBTESTCD 'IL6') is refused, as the two disagree on what was measured. The export writes IL6_TEST."""
_IL6_TEST_KEYS = frozenset(name.casefold() for name in IL6_TEST_NAMES)
IL6_LOINC = "26881-3"
"""LOINC "Interleukin 6 [Mass/volume] in Serum or Plasma": the code for a reported serum (or plasma) IL6."""
NOT_DONE = "NOT DONE"

SPECIMENS: dict[str, SpecimenType] = {
    "SERUM": SpecimenType.SERUM,
    "PLASMA": SpecimenType.PLASMA,
    "WHOLE BLOOD": SpecimenType.WHOLE_BLOOD,
    "BODY FLUID": SpecimenType.OTHER_BODY_FLUID,
}
"""LBSPEC terms accepted, exactly as written (SDTM's upper case), and the specimen each is; the export writes
the same terms back. Any other term (URINE, CEREBROSPINAL FLUID, a misspelling) is refused rather than
guessed at: send 'BODY FLUID' to have a non-blood result recorded, as indeterminate."""
LOINC_SPECIMENS = frozenset({SpecimenType.SERUM, SpecimenType.PLASMA})
"""The specimens LOINC 26881-3 covers."""

VARIABLES = (
    "STUDYID",
    "DOMAIN",
    "USUBJID",
    "LBSEQ",
    "LBTESTCD",
    "LBTEST",
    "LBLOINC",
    "LBORRES",
    "LBORRESU",
    "LBSTRESC",
    "LBSTRESN",
    "LBSTRESU",
    "LBLLOQ",
    "LBSPEC",
    "LBMETHOD",
    "LBDTC",
    "SITEID",
    "LBSTAT",
    "LBREASND",
)
"""The variables read and checked."""
INFORMATIONAL = (
    "LBGRPID",
    "LBREFID",
    "LBSPID",
    "LBCAT",
    "LBSCAT",
    "LBORNRLO",
    "LBORNRHI",
    "LBSTNRLO",
    "LBSTNRHI",
    "LBSTNRC",
    "LBNRIND",
    "LBULOQ",
    "LBNAM",
    "LBBLFL",
    "LBLOBXFL",
    "LBFAST",
    "VISITNUM",
    "VISIT",
    "VISITDY",
    "TAETORD",
    "EPOCH",
    "LBDY",
    "LBTPT",
    "LBTPTNUM",
    "LBELTM",
    "LBTPTREF",
    "LBRFTDTC",
)
"""LB variables accepted but not used: none can change what the result means. They stay in the recorded
request body. Any variable in neither list (LBSPCUFL, say, which can mark a specimen unusable) is refused."""
_KNOWN = frozenset(VARIABLES) | frozenset(INFORMATIONAL)

PLAIN_POINTERS: dict[tuple[str | int, ...], str] = {
    ("subject_id",): "/USUBJID",
    ("site_id",): "/SITEID",
    ("il6", "value"): "/LBORRES",
    ("il6", "comparator"): "/LBORRES",
    ("il6", "unit"): "/LBORRESU",
    ("il6", "assay"): "/LBMETHOD",
    ("specimen", "type"): "/LBSPEC",
    ("specimen", "collected_at"): "/LBDTC",
}
"""Where a field of the plain request built from a record came from, to point an error at it."""

_RESULT = re.compile(r"(?P<comparator><=|>=|<|>)? ?(?P<number>[0-9]{1,64}(?:\.[0-9]{1,64})?)")
_RESULT_FORM = "a number as text ('12.3'), or a censored result ('<1.5', '<=1.5', '>5000', '>=5000')"
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_MAX_LBSEQ = 10**15
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact, Overflow, InvalidOperation])


@dataclass(frozen=True)
class Result:
    """A result as LBORRES or LBSTRESC writes it: a value, and its comparator when censored."""

    comparator: Comparator | None
    value: Decimal

    def text(self) -> str:
        return f"{self.comparator or ''}{plain(self.value)}"


def parse_result(text: str, pointer: str) -> Result:
    """Read a result's text exactly (Decimal, never float): '12.3', '<1.5', '< 1.5', '>=5000'."""
    match = _RESULT.fullmatch(text)
    if match is None:
        raise InvalidInput(pointer, f"Should be {_RESULT_FORM}.")
    comparator = match["comparator"]
    return Result(None if comparator is None else Comparator(comparator), Decimal(match["number"]))


@dataclass(frozen=True)
class LbRecord:
    """An LB record read as the service's plain request body, and the sender's id for the result."""

    assessment: dict[str, Any]
    """The body of a plain request (POST /v1/assessments as application/json), numbers as Decimal."""
    reference: str | None
    """"LBSEQ:<n>" when the record has an LBSEQ."""


def _absent(value: Any) -> bool:
    """JSON null, and the empty text SDTM writes for a missing character value, are both absent."""
    return value is None or value == ""


def _text(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    if _absent(value):
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"/{name}", "Should be text.")
    return value


def _required_text(record: Mapping[str, Any], name: str, why: str = "Required.") -> str:
    value = _text(record, name)
    if value is None:
        raise InvalidInput(f"/{name}", why)
    return value


def _number(record: Mapping[str, Any], name: str) -> Decimal | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise InvalidInput(f"/{name}", "Should be a JSON number.")
    number = Decimal(value)
    if not number.is_finite():
        raise InvalidInput(f"/{name}", "Should be a finite number.")
    return number


def _check_variables(record: Mapping[str, Any]) -> None:
    for name, value in record.items():
        if name not in _KNOWN:
            # The caller's key is not repeated: the error points at the record.
            raise InvalidInput(
                "",
                "Unknown variable: remove it (the accepted LB variables are listed in the OpenAPI document).",
            )
        if name in INFORMATIONAL and not (
            value is None or (isinstance(value, str | int | Decimal) and not isinstance(value, bool))
        ):
            raise InvalidInput(f"/{name}", "Should be text or a number.")


def _check_done(record: Mapping[str, Any]) -> None:
    status = _text(record, "LBSTAT")
    if status == NOT_DONE:
        raise InvalidInput("/LBSTAT", "The test was not done: there is no result to decide on.")
    if status is not None:
        raise InvalidInput("/LBSTAT", f"LBSTAT is only '{NOT_DONE}', for a test not done.")
    if _text(record, "LBREASND") is not None:
        raise InvalidInput("/LBREASND", f"LBREASND is only for a test not done (LBSTAT '{NOT_DONE}').")


def _unit(unit: str, name: str) -> str:
    if unit not in UNITS:
        accepted = ", ".join(f"'{code}'" for code in UNITS)
        raise InvalidInput(f"/{name}", f"Should be one of the UCUM codes {accepted}, exactly as written.")
    return unit


def _in_unit(value: Decimal, from_unit: str, to_unit: str) -> Decimal:
    """A value converted exactly between two of ``UNITS`` (their factors are powers of ten)."""
    try:
        return _EXACT.divide(_EXACT.multiply(value, UNITS[from_unit].pg_per_ml), UNITS[to_unit].pg_per_ml)
    except (Inexact, Overflow, InvalidOperation):
        raise InvalidInput("/LBSTRESU", "LBORRES cannot be converted exactly to LBSTRESU.") from None


def _check_standardised(record: Mapping[str, Any], result: Result, unit: str) -> None:
    """LBSTRESC, LBSTRESN and LBLLOQ, when given, agree exactly with LBORRES: a disagreement is refused,
    never settled by preferring one of them."""
    stresc = _text(record, "LBSTRESC")
    stresn = _number(record, "LBSTRESN")
    lloq = _number(record, "LBLLOQ")
    stresu = _text(record, "LBSTRESU")
    if stresu is None:
        if stresc is not None or stresn is not None or lloq is not None:
            raise InvalidInput("/LBSTRESU", "Required with LBSTRESC, LBSTRESN or LBLLOQ: it is their unit.")
        return
    _unit(stresu, "LBSTRESU")
    expected = Result(result.comparator, _in_unit(result.value, unit, stresu))
    if stresc is not None:
        standard = parse_result(stresc, "/LBSTRESC")
        if standard.comparator != expected.comparator or standard.value != expected.value:
            raise InvalidInput("/LBSTRESC", "Does not agree with LBORRES converted to LBSTRESU.")
    if stresn is not None:
        if expected.comparator is not None:
            raise InvalidInput("/LBSTRESN", "Should be null for a censored result (LBSTRESC keeps the sign).")
        if stresn != expected.value:
            raise InvalidInput("/LBSTRESN", "Does not agree with LBORRES converted to LBSTRESU.")
    if lloq is not None:
        if lloq < 0:
            raise InvalidInput("/LBLLOQ", "Should be a number >= 0.")
        below = expected.comparator in (Comparator.LT, Comparator.LE)
        if below and lloq != expected.value:
            raise InvalidInput("/LBLLOQ", "Does not agree with the limit LBORRES reports, in LBSTRESU.")


def read_lb_record(record: Any) -> LbRecord:
    """Read one SDTM LB record of a serum IL6 result as the plain request it stands for.

    Checks, in order: the variables are known; the test was done; DOMAIN, LBTESTCD, LBTEST and LBLOINC
    name an IL6 result; LBORRES/LBORRESU are a result in an accepted unit; LBSTRESC/LBSTRESN/LBLLOQ agree
    with it; LBSPEC is a known specimen term; LBDTC has a time and a UTC offset. USUBJID, SITEID, LBMETHOD
    (the assay id), the value's bounds and LBDTC's instant are then checked by the plain request's own
    rules. STUDYID is read as text and not compared with anything."""
    if not isinstance(record, dict):
        raise InvalidInput("", "Should be one SDTM LB record: a JSON object keyed by SDTM variable names.")
    _check_variables(record)
    _check_done(record)
    _text(record, "STUDYID")  # not compared with IL6_STUDY_ID: this reader has no settings (see README)
    if _required_text(record, "DOMAIN") != DOMAIN:
        raise InvalidInput("/DOMAIN", f"Should be '{DOMAIN}'.")
    if _required_text(record, "LBTESTCD") != IL6_TESTCD:
        raise InvalidInput("/LBTESTCD", f"Should be '{IL6_TESTCD}': this service decides on IL6 only.")
    if _required_text(record, "LBTEST").casefold() not in _IL6_TEST_KEYS:
        accepted = ", ".join(f"'{name}'" for name in IL6_TEST_NAMES)
        raise InvalidInput("/LBTEST", f"Should name interleukin 6: {accepted} (any letter case).")
    loinc = _text(record, "LBLOINC")
    if loinc is not None and loinc != IL6_LOINC:
        raise InvalidInput(
            "/LBLOINC", f"Should be '{IL6_LOINC}' (Interleukin 6, serum or plasma), or absent."
        )
    sequence = record.get("LBSEQ")
    if sequence is not None and (
        isinstance(sequence, bool) or not isinstance(sequence, int) or not 0 < sequence < _MAX_LBSEQ
    ):
        raise InvalidInput("/LBSEQ", "Should be a positive whole number.")

    result = parse_result(_required_text(record, "LBORRES"), "/LBORRES")
    if result.comparator is Comparator.LT and result.value.is_zero():
        raise InvalidInput("/LBORRES", "'<0' allows no concentration; report 0 or a limit.")
    unit = _unit(_required_text(record, "LBORRESU"), "LBORRESU")
    _check_standardised(record, result, unit)

    term = _required_text(record, "LBSPEC")
    specimen = SPECIMENS.get(term)
    if specimen is None:
        accepted = ", ".join(f"'{name}'" for name in SPECIMENS)
        raise InvalidInput("/LBSPEC", f"Should be one of {accepted}, exactly as written.")
    if loinc is not None and specimen not in LOINC_SPECIMENS:
        raise InvalidInput(
            "/LBLOINC", f"'{IL6_LOINC}' is for serum or plasma; LBSPEC names another specimen."
        )
    collected_at = _required_text(record, "LBDTC")
    if _DATE_TIME.fullmatch(collected_at) is None:
        raise InvalidInput(
            "/LBDTC", "Should be an ISO 8601 date and time with a UTC offset, e.g. '2026-11-20T09:30:00Z'."
        )

    il6: dict[str, Any] = {
        "value": result.value,
        "unit": unit,
        "assay": _required_text(record, "LBMETHOD"),
    }
    if result.comparator is not None:
        il6["comparator"] = result.comparator.value
    assessment: dict[str, Any] = {
        "subject_id": _required_text(record, "USUBJID"),
        "il6": il6,
        "specimen": {"type": specimen.value, "collected_at": collected_at},
    }
    site = _text(record, "SITEID")
    if site is not None:
        assessment["site_id"] = site
    return LbRecord(assessment, None if sequence is None else f"LBSEQ:{sequence}")
