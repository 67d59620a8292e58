"""Phone numbers to E.164, a whole column at a time.

The common case, an 11-digit mainland mobile however it is dressed (+86, 0086, 86, spaces,
dashes, dots, brackets, full-width digits), is recognised with Polars string expressions and
libphonenumber's own mobile pattern for China, so it never calls the phone library per row.
Only the rows left over (landlines, foreign numbers, broken ones: few in a real file) go
through `phonenumbers`, once per distinct value, and come back with a reason a person can
act on when they cannot receive SMS.
"""

from __future__ import annotations

import re

import phonenumbers
import polars as pl
from phonenumbers import NumberParseException, PhoneNumberType

from tidings.imports.parsing import TwoStep, with_parsed
from tidings.members.models import PhoneStatus

_CN = phonenumbers.PhoneMetadata.metadata_for_region("CN")
assert _CN is not None and _CN.mobile is not None
MAINLAND_MOBILE = f"^(?:{_CN.mobile.national_number_pattern})$"
MAINLAND_MOBILE_DIGITS = 11

FULL_WIDTH = [chr(0xFF10 + digit) for digit in range(10)] + ["＋", "－", "．", "（", "）", "\u3000"]
HALF_WIDTH = [str(digit) for digit in range(10)] + ["+", "-", ".", "(", ")", " "]
SEPARATORS = r"[\s\-.()/\u00a0]"
_HALF_WIDTH_TABLE = str.maketrans(dict(zip(FULL_WIDTH, HALF_WIDTH, strict=True)))
MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


def folded(expr: pl.Expr) -> pl.Expr:
    """The phone without dressing: half-width, no spaces, dashes, dots or brackets."""
    return expr.str.replace_many(FULL_WIDTH, HALF_WIDTH).str.replace_all(SEPARATORS, "")


def fast_e164(expr: pl.Expr, *, region: str = "CN") -> pl.Expr:
    """E.164 for a mainland mobile recognised without the phone library, else null."""
    # A leading 0 is the trunk prefix some people dial before a mobile from a landline.
    prefixes = r"\+86|0086|86|0" if region == "CN" else r"\+86|0086"
    bare = "?" if region == "CN" else ""
    national = folded(expr).str.replace(rf"^(?:{prefixes}){bare}(1\d{{10}})$", "$1")
    return pl.when(national.str.contains(MAINLAND_MOBILE)).then(pl.lit("+86") + national)


def classify(value: str, *, region: str = "CN") -> tuple[str | None, PhoneStatus, str | None]:
    """One phone through libphonenumber: (E.164 or None, status, reason when not usable)."""
    compact = re.sub(SEPARATORS, "", value.translate(_HALF_WIDTH_TABLE))
    if not re.fullmatch(r"\+?\d+", compact):
        return None, PhoneStatus.INVALID, f"phone '{value}' has characters other than digits"
    try:
        number = phonenumbers.parse(compact, region)
    except NumberParseException:
        return None, PhoneStatus.INVALID, f"phone '{value}' is not a phone number"
    national = str(number.national_number)
    if phonenumbers.is_valid_number(number):
        kind = phonenumbers.number_type(number)
        if kind in MOBILE_TYPES:
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            return e164, PhoneStatus.OK, None
        if kind == PhoneNumberType.FIXED_LINE:
            reason = f"phone '{value}' is a landline; SMS needs a mobile number"
            return None, PhoneStatus.LANDLINE, reason
        return None, PhoneStatus.INVALID, f"phone '{value}' cannot receive SMS ({kind_name(kind)})"
    if number.country_code == 86 and national.startswith("1"):
        if len(national) != MAINLAND_MOBILE_DIGITS:
            reason = (
                f"phone '{value}' has {len(national)} digits;"
                f" a mainland mobile number has {MAINLAND_MOBILE_DIGITS}"
            )
            return None, PhoneStatus.INVALID, reason
        reason = f"phone '{value}' starts with {national[:3]}, which no mainland mobile uses"
        return None, PhoneStatus.INVALID, reason
    return None, PhoneStatus.INVALID, f"phone '{value}' is not a valid number"


def kind_name(kind: int) -> str:
    """A readable name of a libphonenumber number type ('toll free', 'voip', ...)."""
    for name in dir(PhoneNumberType):
        if not name.startswith("_") and getattr(PhoneNumberType, name) == kind:
            return name.lower().replace("_", " ")
    return "not a mobile"


def normalise_phones(frame: pl.DataFrame, column: str = "phone", *, region: str) -> pl.DataFrame:
    """Adds `phone_e164`, `phone_status` and `phone_problem` (the reason) for `column`.

    A bare 11-digit mobile is checked with one pattern; only the other rows are folded, and
    only what folding cannot read goes to the library.
    """
    raw = pl.col(column).str.strip_chars(" \t\r\n\u3000\xa0").replace("", None)
    bare = pl.when(pl.col("_phone_raw").str.contains(MAINLAND_MOBILE)).then(
        pl.lit("+86") + pl.col("_phone_raw")
    )
    frame = with_parsed(
        frame.with_columns(raw.alias("_phone_raw")),
        {"_fast": TwoStep("_phone_raw", bare, fast_e164(pl.col("_phone_raw"), region=region))},
    )
    leftover = (
        frame.filter(pl.col("_fast").is_null() & pl.col("_phone_raw").is_not_null())
        .get_column("_phone_raw")
        .unique()
        .to_list()
    )
    if not leftover:
        return frame.with_columns(
            pl.col("_fast").alias("phone_e164"),
            pl.when(pl.col("_fast").is_not_null())
            .then(pl.lit(PhoneStatus.OK.value))
            .otherwise(pl.lit(PhoneStatus.MISSING.value))
            .alias("phone_status"),
            pl.lit(None, pl.String).alias("phone_problem"),
        ).drop("_phone_raw", "_fast")
    checked = [classify(value, region=region) for value in leftover]

    def looked_up(position: int) -> pl.Expr:
        values = [str(item[position]) if item[position] is not None else None for item in checked]
        return pl.col("_phone_raw").replace_strict(
            leftover, values, default=None, return_dtype=pl.String
        )

    frame = frame.with_columns(
        looked_up(0).alias("_slow"),
        looked_up(1).alias("_slow_status"),
        looked_up(2).alias("phone_problem"),
    )
    status = (
        pl.when(pl.col("_fast").is_not_null())
        .then(pl.lit(PhoneStatus.OK.value))
        .when(pl.col("_phone_raw").is_null())
        .then(pl.lit(PhoneStatus.MISSING.value))
        .otherwise(pl.col("_slow_status"))
    )
    return frame.with_columns(
        pl.coalesce("_fast", "_slow").alias("phone_e164"), status.alias("phone_status")
    ).drop("_phone_raw", "_fast", "_slow", "_slow_status")
