"""The member's preference page, `/p/{token}`: a small server-rendered form (no JavaScript)
to choose the kinds of messages they get. The link is signed per member; the form carries a
signed, short-lived token of its own, so another site cannot post it for them."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, select_autoescape

from tidings import clock
from tidings.config import Settings, get_settings
from tidings.db import session_scope
from tidings.members.models import ConsentKind, Member
from tidings.notifications import preferences
from tidings.notifications.preferences import PreferenceError

router = APIRouter(tags=["preferences"], include_in_schema=False)
_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
PAGE = _ENV.from_string(
    """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ brand }} · 消息偏好</title>
<style>body{font-family:sans-serif;max-width:28rem;margin:1.5rem auto;padding:0 1rem}
label{display:block;padding:.8rem 0;border-bottom:1px solid #ddd;font-size:1.1rem}
button{margin-top:1rem;padding:.7rem 1.5rem;font-size:1.1rem}.note{color:#186a3b}</style>
</head><body>
<h1>{{ brand }} · 消息偏好</h1>
{% if error %}<p>{{ error }}</p>{% else %}
{% if saved %}<p class="note">已保存，下一条消息起生效。</p>{% endif %}
<p>请选择您愿意收到的消息类型：</p>
<form method="post">
<input type="hidden" name="form_token" value="{{ form_token }}">
{% for topic, word, on in choices %}
<label><input type="checkbox" name="receive" value="{{ topic }}"{% if on %} checked{% endif %}>
 {{ word }}</label>
{% endfor %}
<button type="submit">保存</button>
</form>
<p>订单、物流和验证码等服务通知不受影响。</p>
{% endif %}
</body></html>"""
)
# A page that would be framed by another site could trick a member into a click.
HEADERS = {"X-Frame-Options": "DENY", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _settings(request: Request) -> Settings:
    return getattr(request.app.state, "settings", None) or get_settings()


def _page(settings: Settings, **values: object) -> str:
    return PAGE.render(brand=settings.brand_name, **values)


def _show(request: Request, member_id: int, *, saved: bool) -> HTMLResponse:
    settings = _settings(request)
    with session_scope(request.app.state.engine) as session:
        chosen = preferences.current(db_session=session, member_id=member_id, settings=settings)
    words = preferences.topics(settings)
    choices = [(topic, words[topic], on) for topic, on in chosen.items()]
    body = _page(
        settings,
        choices=choices,
        saved=saved,
        form_token=preferences.form_token(member_id, settings),
    )
    return HTMLResponse(body, headers=HEADERS)


def _member(request: Request, token: str) -> int | HTMLResponse:
    settings = _settings(request)
    try:
        member_id = preferences.member_of(token, settings)
    except PreferenceError as error:
        return HTMLResponse(_page(settings, error=str(error)), status_code=403, headers=HEADERS)
    with session_scope(request.app.state.engine) as session:
        member = session.get(Member, member_id)
        if member is None or member.erased_at is not None:
            text = "找不到您的会员资料。"
            return HTMLResponse(_page(settings, error=text), status_code=404, headers=HEADERS)
    return member_id


@router.get("/p/{token}", response_class=HTMLResponse)
def preference_page(token: str, request: Request) -> HTMLResponse:
    """Shows a member the kinds of messages they receive, as checkboxes."""
    found = _member(request, token)
    return found if isinstance(found, HTMLResponse) else _show(request, found, saved=False)


@router.post("/p/{token}", response_class=HTMLResponse)
def save_preferences(
    token: str,
    request: Request,
    form_token: str = Form(""),
    receive: list[str] = Form(default_factory=list),
) -> HTMLResponse:
    """Saves the member's choices; each change is a consent event from the page."""
    settings = _settings(request)
    found = _member(request, token)
    if isinstance(found, HTMLResponse):
        return found
    try:
        same = preferences.form_member(form_token, settings) == found
    except PreferenceError:
        same = False
    if not same:
        text = "页面已过期，请重新打开链接后再保存。"
        return HTMLResponse(_page(settings, error=text), status_code=403, headers=HEADERS)
    wanted = set(receive)
    with session_scope(request.app.state.engine) as session:
        chosen = preferences.current(db_session=session, member_id=found, settings=settings)
        changes = [
            (found, topic, ConsentKind.OPT_IN if topic in wanted else ConsentKind.OPT_OUT)
            for topic, on in chosen.items()
            if on != (topic in wanted)
        ]
        preferences.record(
            db_session=session,
            changes=changes,
            source=preferences.SOURCE_PAGE,
            text_shown=None,
            now=clock.now(),
        )
    return _show(request, found, saved=True)
