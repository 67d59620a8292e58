"""Telling people from machines on a short link: link-preview robots of chat apps, crawlers,
command-line tools and prefetches are recorded but marked, so reports count people only.

Every word that marks a robot is in this module, in the lists below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

# (word in the user agent, lower case; reason recorded). The first that matches names it.
# Chat apps fetch a link when it is pasted or received, to show a preview card.
LINK_PREVIEWS: tuple[tuple[str, str], ...] = (
    ("wechatbot", "preview:wechat"),
    ("wxwork-preview", "preview:wechat"),
    ("mmwebsdk-preview", "preview:wechat"),
    ("qq-url-manager", "preview:qq"),
    ("qqurlmanager", "preview:qq"),
    ("tencenttraveler-preview", "preview:qq"),
    ("slackbot", "preview:slack"),
    ("slack-imgproxy", "preview:slack"),
    ("telegrambot", "preview:telegram"),
    ("whatsapp", "preview:whatsapp"),
    ("facebookexternalhit", "preview:facebook"),
    ("facebot", "preview:facebook"),
    ("facebookcatalog", "preview:facebook"),
    ("twitterbot", "preview:twitter"),
    ("applebot", "preview:apple"),
    ("discordbot", "preview:discord"),
    ("linkedinbot", "preview:linkedin"),
    ("skypeuripreview", "preview:skype"),
    ("pinterestbot", "preview:pinterest"),
    ("dingtalkbot", "preview:dingtalk"),
    ("bytespider", "crawler:bytedance"),
    ("baiduspider", "crawler:baidu"),
    ("googlebot", "crawler:google"),
    ("bingbot", "crawler:bing"),
    ("yisouspider", "crawler:yisou"),
    ("sogou web spider", "crawler:sogou"),
    ("360spider", "crawler:360"),
)
# Programs rather than browsers: scripts, scanners, link checkers.
TOOLS: tuple[tuple[str, str], ...] = (
    ("curl/", "tool:curl"),
    ("wget/", "tool:wget"),
    ("python-requests", "tool:python"),
    ("python-httpx", "tool:python"),
    ("python-urllib", "tool:python"),
    ("aiohttp", "tool:python"),
    ("go-http-client", "tool:go"),
    ("okhttp", "tool:okhttp"),
    ("java/", "tool:java"),
    ("apache-httpclient", "tool:java"),
    ("libwww-perl", "tool:perl"),
    ("node-fetch", "tool:node"),
    ("axios/", "tool:node"),
    ("headlesschrome", "tool:headless"),
    ("phantomjs", "tool:headless"),
    ("postmanruntime", "tool:postman"),
)
# Any other self-declared robot: "bot" as a word or ending a name before its version
# (SomeBot/2.0, but not the CUBOT phone), crawler, spider, scanner, preview, monitor.
GENERIC_WORDS = ("bot", "crawler", "spider", "scanner", "preview", "monitor")
GENERIC_ROBOT = re.compile(r"\bbot\b|[a-z]bot/|crawler|spider|scanner|\bpreview\b|monitor")
# Headers a browser or app sends when it loads a page ahead of a person asking for it.
PREFETCH_HEADERS: tuple[tuple[str, str], ...] = (
    ("purpose", "prefetch"),
    ("sec-purpose", "prefetch"),
    ("x-moz", "prefetch"),
    ("x-purpose", "preview"),
)
# HEAD asks only whether the link works: link checkers and previews, never a person.
HEAD_REASON = "head"
NO_AGENT_REASON = "no_user_agent"  # every browser and app sends one
UA_CACHE_SIZE = 4096  # distinct user agents remembered; the same few recur all day


def robot_reason(method: str, user_agent: str | None, headers: Mapping[str, str]) -> str | None:
    """Why a request for a short link is not a person's click, or None if it may be one."""
    if method.upper() == "HEAD":
        return HEAD_REASON
    for name, word in PREFETCH_HEADERS:
        value = headers.get(name)
        if value is not None and word in value.lower():
            return f"{word}:{name}"
    return agent_reason(user_agent or "")


@lru_cache(maxsize=UA_CACHE_SIZE)
def agent_reason(user_agent: str) -> str | None:
    """Why a user agent is a robot's, or None if it may be a person's."""
    agent = user_agent.strip().lower()
    if not agent:
        return NO_AGENT_REASON
    for word, reason in (*LINK_PREVIEWS, *TOOLS):
        if word in agent:
            return reason
    found = GENERIC_ROBOT.search(agent)
    if found is None:
        return None
    return "robot:" + next(word for word in GENERIC_WORDS if word in found.group(0))
