"""Settings: the only place environment variables are read (prefix TIDINGS_)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/tidings.db"


class Settings(BaseSettings):
    """Everything an operator may configure, each with a safe default."""

    model_config = SettingsConfigDict(env_prefix="TIDINGS_", env_file=".env", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL of the store; SQLite by default, PostgreSQL in production.",
    )
    var_dir: Path = Field(Path("./var"), description="Where local files (SQLite, inboxes) live.")
    default_region: str = Field(
        "CN", description="Region for phone numbers without a country code."
    )
    default_timezone: str = Field("Asia/Shanghai", description="Timezone of members without one.")
    brand_name: str = Field("tidings", description="Brand signature shown as 【品牌】.")
    opt_out_text: str = Field("拒收请回复R", description="Ends every marketing message.")
    short_link_domain: str = Field("t.example.cn", description="Domain of the brand's short links.")
    max_message_parts: int = Field(3, description="Most parts a message may take before a finding.")
    price_per_part_cents: int = Field(5, description="Price of one SMS part (分).")
    sensitive_words_file: Path | None = Field(
        None, description="A UTF-8 file of blocked terms, one per line, added to the shipped list."
    )
    send_window: str = Field("08:00-20:00", description="Local hours marketing may be sent.")
    quiet_hours: str = Field("22:00-08:00", description="Local hours nothing but replies is sent.")
    caps: str = Field(
        "default=4/30d;active=1/7d+triggers;gold=2/7d",
        description=(
            "Marketing and trigger messages per member by tier or lifecycle stage, over rolling "
            "windows: selector=limit/Nd. A rule ending in +triggers counts campaigns only and "
            "lets event triggers through beyond it (active members always get triggers)."
        ),
    )
    offer_cooldown_days: int = Field(30, description="Days before an offer type recurs.")
    no_marketing_on_holidays: bool = Field(
        False,
        description=(
            "When true, marketing due on a public holiday in mainland China (chinese-calendar) "
            "waits for the send window of the first day after the holiday."
        ),
    )
    import_batch_rows: int = Field(200_000, description="Rows read per batch when importing.")
    redis_url: str | None = Field(
        None, description="Redis URL; when set, workers share provider rate limits through it."
    )
    default_provider: str = Field("simulator", description="Provider of messages naming none.")
    provider_accounts: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Provider accounts by name, as JSON: each has a 'type' (smpp, aliyun,"
        " tencent, twilio, http) and that type's keys; see docs/providers.md.",
    )
    dispatch_batch_size: int = Field(1000, description="Messages a worker claims at a time.")
    dispatch_lease_seconds: float = Field(
        30.0, description="Seconds a claim is held before another worker may take it over."
    )
    dispatch_receipt_timeout: float = Field(
        3600.0, description="Seconds to wait for a receipt before asking the provider."
    )
    dispatch_max_attempts: int = Field(
        8, description="Tries of a throttled or refused message before it fails."
    )
    simulator_inbox: Path | None = Field(
        None,
        description="JSON-lines file of what each simulated handset received"
        " (default: simulator-inbox.jsonl under var_dir, i.e. ./var/simulator-inbox.jsonl).",
    )
    simulator_seed: int = Field(7, description="Seed of the simulator's outcomes.")
    simulator_latency_ms: float = Field(0.0, description="Simulated time of one request (ms).")
    simulator_throughput: int = Field(
        0, description="Messages per second the simulated SMSC takes before it throttles (0: any)."
    )
    simulator_rate_per_second: int = Field(
        0, description="Messages per second tidings sends to the simulator (0: no limit)."
    )
    simulator_concurrency: int = Field(4, description="Requests in flight to the simulator.")
    simulator_max_batch: int = Field(500, description="Messages in one simulated request.")
    simulator_delivery_rate: float = Field(
        0.97, description="Share of accepted messages reported delivered."
    )
    simulator_failure_rate: float = Field(
        0.005, description="Share of messages refused at once (an invalid number)."
    )
    simulator_throttle_share: float = Field(
        0.0, description="Share of requests answered 'throttled, try later'."
    )
    simulator_receipt_delay: str = Field(
        "1-20", description="Seconds between acceptance and receipt, as MIN-MAX."
    )
    simulator_reply_rate: float = Field(0.002, description="Share of delivered messages answered.")
    simulator_click_rate: float = Field(0.02, description="Share of delivered messages clicked.")
    reply_opt_out_keywords: str = Field(
        "TD,T,R,N,退订,退訂,拒收,取消,STOP,STOPALL,UNSUBSCRIBE,CANCEL,END,QUIT",
        description="Replies that opt a member out of marketing when they are all the reply"
        " says (case, full-width forms, punctuation and politeness ignored), comma-separated.",
    )
    reply_opt_out_anywhere: str = Field(
        "TD,退订,退訂,拒收,取消订阅,STOP,STOPALL,UNSUBSCRIBE,别再发,不要再发,别发了",
        description="Opt-out words that count inside a sentence too (请退订, 我要退订), unless"
        " a negation comes just before them (不要退订), comma-separated.",
    )
    reply_opt_in_keywords: str = Field(
        "START,UNSTOP,订阅,訂閱,重新订阅",
        description="Replies that subscribe a member again, comma-separated.",
    )
    reply_help_keywords: str = Field(
        "HELP,INFO,帮助,幫助", description="Replies answered with the help text, comma-separated."
    )
    reply_texts: dict[str, str] = Field(
        default_factory=dict,
        description="The brand's wording of automatic answers, as JSON by name (opt_out, opt_in,"
        " help, points, ...); see docs/configuration.md for the names and their {fields}.",
    )
    reply_intent_synonyms: dict[str, list[str]] = Field(
        default_factory=dict,
        description="More words for each intent of free-text replies, as JSON, e.g."
        ' {"points": ["会员分"]}; added to the shipped lists.',
    )
    reply_intent_threshold: float = Field(
        0.8,
        description="Confidence (0-1) above which a free-text reply is answered automatically;"
        " below it a ticket is opened with suggested answers.",
    )
    reply_immediate_minutes: int = Field(
        15,
        description="Minutes after a member's message within which an answer to it goes at"
        " once, even in quiet hours; later answers wait for the quiet hours to end.",
    )
    reply_delivery_offer_types: str = Field(
        "delivery",
        description="Offer types of messages that offer delivery: a reply of 1 to one of them"
        " opens a delivery ticket for the member's store (comma-separated).",
    )
    reply_survey_offer_types: str = Field(
        "survey",
        description="Offer types of survey messages: a reply of 1-5 or a short word to one is"
        " stored as that campaign's survey response (comma-separated).",
    )
    reply_survey_hours: int = Field(
        48, description="Hours after a survey message that an answer still counts for it."
    )
    ticket_first_response_minutes: int = Field(
        5, description="Minutes of opening hours within which a ticket needs a first answer."
    )
    ticket_opening_hours: str = Field(
        "09:00-21:00",
        description="Local hours (brand timezone) in which ticket deadlines run, HH:MM-HH:MM.",
    )
    ticket_default_team: str = Field(
        "service",
        description="Team queue for tickets of members without a store and of categories"
        " routed to no store.",
    )
    attribution_click_window_days: int = Field(
        7, description="Days after a person's click on a message's link that an order is its."
    )
    attribution_view_window_days: int = Field(
        3, description="Days after a message's delivery that an order is credited to it."
    )
    attribution_interval_seconds: int = Field(
        300, description="Seconds between attribution runs in the worker's housekeeping."
    )
    points_per_yuan: str = Field(
        "default=1",
        description="Points an order earns per yuan paid, by tier: tier=rate rules separated"
        " by ';' (e.g. default=1;gold=2); 'default' covers tiers not named.",
    )
    points_expiry_months: int = Field(12, description="Months after its order a lot expires.")
    points_expiring_days: int = Field(
        30, description="Days ahead that points_expiring and points_expiry_date look."
    )
    points_per_redemption: int = Field(
        100, description="Points one redemption unit takes (100 points -> one coupon unit)."
    )
    points_redemption_value_cents: int = Field(
        100, description="Value in cents (分) of the coupon one redemption unit gives."
    )
    points_coupon_valid_days: int = Field(
        90, description="Days a coupon bought with points stays valid."
    )
    points_gifts: dict[str, int] = Field(
        default_factory=dict,
        description="Gifts members may take for points, as JSON name -> points,"
        ' e.g. {"tote": 800}.',
    )
    coupon_secret: str | None = Field(
        None,
        description="Secret key coupon codes are derived from (default: a random key made once"
        " and kept in coupon.key under var_dir); give every process the same one and keep it.",
    )
    short_domain: str | None = Field(
        None,
        description="Base URL of the brand's short links, {short_domain}/s/{code}, e.g."
        " https://t.example.cn (default: the served address, http://api_host:api_port).",
    )
    short_link_secret: str | None = Field(
        None,
        description="Secret key short-link codes are derived from (default: a random key made"
        " once and kept in short-link.key under var_dir); give every process the same one.",
    )
    link_utm_source: str = Field("sms", description="utm_source added to campaign links.")
    link_utm_medium: str = Field(
        "sms", description="utm_medium added to campaign links (a campaign may set its own)."
    )
    short_link_cache_size: int = Field(
        100_000, description="Short links whose target the server keeps in memory."
    )
    click_flush_seconds: float = Field(
        0.1,
        description="Longest time a click waits in memory before it is written; what a crash"
        " of the server can lose.",
    )
    health_delivery_min: float = Field(
        0.98, description="Delivery rate (delivered of settled) below which health is breached."
    )
    health_opt_out_max: float = Field(
        0.003, description="Opt-outs per delivered message above which health is breached."
    )
    health_complaint_max: float = Field(
        0.001, description="Complaints per delivered message above which health is breached."
    )
    health_reply_min: float = Field(
        0.05, description="Replies per delivered message below which a note says so."
    )
    health_reply_max: float = Field(
        0.08, description="Replies per delivered message above which a note says so."
    )
    health_min_settled: int = Field(
        100, description="Settled messages a campaign, provider or day needs to be judged."
    )
    health_webhook_url: str | None = Field(
        None, description="URL each new health breach is posted to as JSON (none: only logged)."
    )
    health_webhook_secret: str | None = Field(
        None,
        description="When set, each health post is signed: header X-Tidings-Signature ="
        " sha256=<hex HMAC-SHA256 of the body with this secret>.",
    )
    health_check_minutes: float = Field(
        5.0, description="Minutes between health checks in the worker's housekeeping."
    )
    trigger_interval_seconds: float = Field(
        900.0,
        description="Seconds between passes of the date-trigger scheduler inside `tidings serve`"
        " and `tidings worker` (0: never; run `tidings trigger run-once` instead).",
    )
    api_host: str = Field("127.0.0.1", description="Address `tidings serve` binds to.")
    api_port: int = Field(8000, description="Port `tidings serve` binds to.")
    callback_secret: str | None = Field(
        None,
        description="Secret that signs status callbacks of API messages: header"
        " X-Tidings-Signature = sha256=<hex HMAC-SHA256 of the body with this secret>"
        " (default: a random key made once and kept in callback.key under var_dir).",
    )
    callback_max_attempts: int = Field(
        10, description="Posts of one status callback before it is given up as failed."
    )
    callback_timeout_seconds: float = Field(5.0, description="Seconds one callback post may take.")
    verification_secret: str | None = Field(
        None,
        description="Secret key of the keyed hash verification codes are kept as (never in"
        " clear; default: a random key made once and kept in verification.key under var_dir);"
        " give every process the same one.",
    )
    verification_digits: int = Field(6, description="Digits of a verification code.")
    verification_valid_minutes: int = Field(5, description="Minutes a verification code works.")
    verification_max_attempts: int = Field(
        5, description="Wrong codes allowed before a verification is locked."
    )
    verification_limit_per_phone: str = Field(
        "1/minute;5/hour",
        description="Verification codes one phone may be sent, as limits rules (N/period,"
        " separated by ';').",
    )
    verification_limit_per_ip: str = Field(
        "30/hour;200/day",
        description="Verification codes and checks one client address may ask for, as limits"
        " rules (N/period, separated by ';').",
    )
    verification_text: str = Field(
        "您的验证码是{code}，{minutes}分钟内有效。工作人员不会向您索要验证码，请勿告诉他人。",
        description="Wording of verification messages; {code} and {minutes} are filled in.",
    )
    preference_secret: str | None = Field(
        None,
        description="Secret that signs the members' preference page links (/p/...) (default: a"
        " random key made once and kept in preference.key under var_dir).",
    )
    preference_link_days: int = Field(90, description="Days a preference page link works.")
    preference_topics: str = Field(
        "promotions=促销;new_arrivals=上新;tips=贴士;surveys=调查",
        description="Kinds of messages members may decline, with the word of each in reply"
        " keywords and on the preference page: kind=word separated by ';'.",
    )
    preference_stop_prefix: str = Field(
        "TD", description="Reply prefix that declines one kind, e.g. TD促销 stops promotions."
    )
    preference_resume_prefix: str = Field(
        "DY", description="Reply prefix that takes one kind back, e.g. DY促销 resumes promotions."
    )
    large_purchase_cents: int = Field(
        200_000,
        description="Order amount in cents (分) above which the member gets the anti-fraud"
        " security reminder, once per order (0: never).",
    )
    large_purchase_hours: int = Field(
        24, description="Hours after an order that its large-purchase reminder still goes."
    )
    large_purchase_text: str = Field(
        "您刚刚消费{amount}元。谨防诈骗：我们不会以退款、积分清零、会员升级等理由向您索要"
        "验证码或要求转账，如有疑问请直接联系门店。",
        description="Wording of the large-purchase reminder; {amount} (yuan) is filled in.",
    )
    console_secret: str | None = Field(
        None,
        description="Key the console's session cookies are signed with (default: a random key"
        " made once and kept in console.key under var_dir); give every process the same one.",
    )
    console_https: bool = Field(
        False, description="Send the console's cookie only over HTTPS (set it behind TLS)."
    )
    console_session_hours: int = Field(12, description="Hours a console sign-in lasts.")
    console_sign_in_limit: str = Field(
        "5/minute",
        description="Sign-in attempts allowed per account, in `limits` notation (e.g."
        " 5/minute); more answer 429.",
    )
    console_sign_in_address_limit: str = Field(
        "30/minute",
        description="Sign-in attempts allowed per client address (an office shares one),"
        " in `limits` notation; more answer 429.",
    )
    console_dashboard_seconds: float = Field(
        60.0,
        description="Seconds the dashboard's figures are kept before a view recomputes them"
        " in the background.",
    )

    @property
    def short_link_base(self) -> str:
        """Where short links point: the short domain, or else the address served."""
        return (self.short_domain or f"http://{self.api_host}:{self.api_port}").rstrip("/")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Returns the process settings, read once from the environment."""
    return Settings()
