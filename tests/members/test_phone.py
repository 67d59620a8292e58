"""Phones to E.164: the Polars fast path agrees with libphonenumber and accepts every dressing."""

from __future__ import annotations

import phonenumbers
import polars as pl
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tidings.members.phone import fast_e164, normalise_phones

FULL_WIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")
mobiles = st.builds(
    lambda second, rest: "1" + second + rest,
    st.sampled_from("3456789"),
    st.text(alphabet="0123456789", min_size=9, max_size=9),
).filter(lambda digits: phonenumbers.is_valid_number(phonenumbers.parse(digits, "CN")))


def dress(digits: str, prefix: str, style: int) -> str:
    spaced = f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    dashed = f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
    forms = [digits, spaced, dashed, f"({digits[:3]}) {digits[3:]}", f"{digits[:3]}.{digits[3:]}"]
    dressed = prefix + forms[style % len(forms)]
    return dressed.translate(FULL_WIDTH) if style >= len(forms) else dressed


def normalised(values: list[str | None]) -> pl.DataFrame:
    return normalise_phones(
        pl.DataFrame({"phone": values}, schema={"phone": pl.String}), region="CN"
    )


@settings(max_examples=200, deadline=None)
@given(mobiles, st.sampled_from(["", "+86", "+86 ", "0086", "0086-", "86"]), st.integers(0, 9))
def test_any_dressing_of_a_mainland_mobile_gives_the_same_e164(
    digits: str, prefix: str, style: int
) -> None:
    frame = normalised([dress(digits, prefix, style)])
    assert frame.row(0, named=True)["phone_e164"] == f"+86{digits}"
    assert frame.row(0, named=True)["phone_status"] == "ok"


SMS_TYPES = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="0123456789", min_size=0, max_size=15),
    st.sampled_from(["", "+86", "0086", "86", "+"]),
)
@example("4520100000", "+")  # Denmark: fixed line or mobile, so it may take SMS
def test_fast_path_agrees_with_phonenumbers_on_any_digits(digits: str, prefix: str) -> None:
    value = prefix + digits
    fast = pl.DataFrame({"p": [value]}).select(fast_e164(pl.col("p")).alias("p"))["p"][0]
    try:
        number = phonenumbers.parse(value, "CN")
        reference = (
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if phonenumbers.is_valid_number(number)
            # A number that may be a mobile (US numbers, some European ones) can take SMS.
            and phonenumbers.number_type(number) in SMS_TYPES
            else None
        )
    except phonenumbers.NumberParseException:
        reference = None
    if fast is not None:
        assert fast == reference
    assert normalised([value])["phone_e164"][0] == reference


@settings(max_examples=200, deadline=None)
@given(mobiles)
def test_every_valid_mainland_mobile_takes_the_fast_path(digits: str) -> None:
    fast = pl.DataFrame({"p": [digits]}).select(fast_e164(pl.col("p")).alias("p"))["p"][0]
    assert fast == f"+86{digits}"


def test_broken_phones_get_a_reason_a_person_can_act_on() -> None:
    frame = normalised(["1380013800", "138abc00000", "010-12345678", "14012345678", "", None])
    rows = frame.rows(named=True)
    assert (
        rows[0]["phone_problem"]
        == "phone '1380013800' has 10 digits; a mainland mobile number has 11"
    )
    assert "other than digits" in rows[1]["phone_problem"]
    assert rows[2]["phone_status"] == "landline"
    assert "landline" in rows[2]["phone_problem"]
    assert rows[3]["phone_status"] == "invalid"
    assert [row["phone_status"] for row in rows[4:]] == ["missing", "missing"]
    assert all(row["phone_e164"] is None for row in rows)


def test_library_is_asked_once_per_distinct_leftover(monkeypatch) -> None:
    from tidings.members import phone

    calls: list[str] = []
    original = phone.classify

    def counting(value: str, *, region: str = "CN"):  # type: ignore[no-untyped-def]
        calls.append(value)
        return original(value, region=region)

    monkeypatch.setattr(phone, "classify", counting)
    values = ["13800138000", "+86 139 0013 9000"] * 1000 + ["010-12345678"] * 50
    frame = normalised(values)
    assert calls == ["010-12345678"]
    assert frame["phone_e164"].null_count() == 50
