"""Where a short link leads: the campaign's URL with its UTM parameters added, the URL's own
query and fragment kept, so the retailer's web analytics see which campaign and variant
brought each visit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from tidings.config import Settings

URL_SAFE = ":/?#[]@!$&'()*+,;=%~"  # characters a URL keeps as they are


class TargetError(ValueError):
    """A campaign's link cannot be a short link's target (the message says why)."""


@dataclass(frozen=True)
class Utm:
    """The UTM parameters of a campaign's links; utm_content is each variant's name."""

    source: str
    medium: str
    campaign: str

    def as_json(self) -> dict[str, str]:
        """As kept in the campaign's `links` column."""
        return {"source": self.source, "medium": self.medium, "campaign": self.campaign}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Utm:
        """Reads what `as_json` wrote."""
        return cls(str(value["source"]), str(value["medium"]), str(value["campaign"]))


def check_target(url: str) -> str:
    """Returns `url` stripped (and ASCII) if it is a full http(s) address, or says what is
    wrong."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise TargetError(f"link '{url}' is not a URL ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise TargetError(
            f"link '{url}' must be a full http(s) address without spaces,"
            " e.g. https://shop.example.com/sale"
        )
    # A redirect's Location header is ASCII: other characters (a path in Chinese) go
    # percent-encoded, as a browser would send them; what is encoded already stays.
    return quote(url, safe=URL_SAFE)


def target_url(url: str, utm: Utm | None, *, variant: str) -> str:
    """The campaign's URL with utm_source, utm_medium, utm_campaign and utm_content added.

    Parameters the URL already has are kept as they are and not added twice: the retailer
    who wrote them meant them.
    """
    if utm is None:
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in query}
    wanted = {
        "utm_source": utm.source,
        "utm_medium": utm.medium,
        "utm_campaign": utm.campaign,
        "utm_content": variant,
    }
    added = [(name, value) for name, value in wanted.items() if name not in present and value]
    if not added:
        return url
    joined = f"{parts.query}&{urlencode(added)}" if parts.query else urlencode(added)
    return urlunsplit(parts._replace(query=joined))


def campaign_links(
    url: str | None,
    *,
    utm: bool,
    medium: str | None,
    campaign: str | None,
    settings: Settings,
) -> dict[str, Any] | None:
    """What a new campaign keeps in its `links` column: its checked URL and UTM parameters
    (utm_campaign None means the campaign's id, known once it is stored)."""
    if url is None:
        return None
    kept = Utm(settings.link_utm_source, medium or settings.link_utm_medium, campaign or "")
    return {"url": check_target(url), "utm": kept.as_json() if utm else None}
