"""Cloud providers send only pre-approved templates: a rendered text is fitted to one and its
variables read back, and the campaign review learns which texts fit none."""

from __future__ import annotations

from tidings.config import Settings
from tidings.providers.templates import (
    ApprovedTemplate,
    TemplateBook,
    approval_missing,
    split_sign,
)

SETTINGS = Settings(
    provider_accounts={
        "ali": {
            "type": "aliyun",
            "templates": {"会员日": {"code": "SMS_1", "text": "${name}您好，全场${rate}折"}},
        },
        "tx": {"type": "tencent", "templates": {"会员日": {"code": "1110"}}},
        "us": {"type": "twilio"},
    }
)


def test_a_text_is_fitted_to_an_approved_template_and_its_variables_read_back() -> None:
    aliyun = TemplateBook(
        "aliyun",
        {"a": ApprovedTemplate(code="SMS_1", text="${name}您好，全场${rate}折，${name}专享")},
    )
    found = aliyun.match("王女士您好，全场8.5折，王女士专享")
    assert found is not None and (found.code, found.params) == (
        "SMS_1",
        {"name": "王女士", "rate": "8.5"},
    )
    assert aliyun.match("王女士您好，全场8.5折，李先生专享") is None  # one variable, two values
    assert aliyun.match("王女士您好，全场8.5折") is None
    tencent = TemplateBook("tencent", {"t": ApprovedTemplate(code="1110", text="{2}到{1}领券")})
    match = tencent.match("明天到南京东路店领券")
    assert match is not None and match.params == {"2": "明天", "1": "南京东路店"}


def test_the_signature_comes_off_the_text() -> None:
    assert split_sign("【好邻居】会员日", "默认") == ("好邻居", "会员日")
    assert split_sign("会员日【好邻居】", "默认") == ("默认", "会员日【好邻居】")


def test_the_review_learns_whether_a_text_fits_an_approved_template() -> None:
    assert approval_missing("ali", "【好邻居】王女士您好，全场8折", settings=SETTINGS) is None
    drifted = approval_missing("ali", "【好邻居】王女士您好，全场8折起", settings=SETTINGS)
    assert drifted is not None and "'ali'" in drifted and "approved" in drifted
    assert "code" in (approval_missing("tx", "会员日", settings=SETTINGS) or "")
    assert approval_missing("us", "any text at all", settings=SETTINGS) is None
    assert approval_missing("simulator", "any text at all", settings=SETTINGS) is None
