"""A small hand-built world for the attribution and report tests: stores, members, a campaign
with its variants, messages in given states, short links, clicks, coupons and orders."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from tidings.campaigns.models import Campaign, CampaignStatus, Variant
from tidings.dispatch.models import Message, MessageState
from tidings.loyalty.models import Coupon, CouponStatus
from tidings.members.models import Member, Store
from tidings.orders.models import Order
from tidings.tracking.models import Click, ShortLink

SENT = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
PRICE_PER_PART = 5  # cents


class World:
    """Writes rows through one session (flushed, not committed) and hands back their ids."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.stores: dict[str, int] = {}
        self._serial = itertools.count(1)

    def _add(self, row: object) -> None:
        self.session.add(row)
        self.session.flush()

    def store(self, code: str) -> int:
        """The store of this code, created on first use."""
        if code not in self.stores:
            row = Store(code=code, name=f"店{code}", city="上海")
            self._add(row)
            self.stores[code] = row.id
        return self.stores[code]

    def member(self, store: str = "SH01") -> int:
        """A new member of `store`."""
        serial = next(self._serial)
        row = Member(code=f"M{serial}", phone=f"+86139{serial:08d}", store_id=self.store(store))
        self._add(row)
        return row.id

    def campaign(
        self, *, variants: tuple[str, ...] = ("A", "B"), holdout_share: float = 0.0
    ) -> tuple[int, dict[str, int]]:
        """A completed campaign and its variants (the first is the control)."""
        campaign = Campaign(
            name="周末鲜果节", status=CampaignStatus.COMPLETED, holdout_share=holdout_share
        )
        self._add(campaign)
        ids = {}
        for position, name in enumerate(variants):
            variant = Variant(
                campaign_id=campaign.id, name=name, template="{name}您好", is_control=position == 0
            )
            self._add(variant)
            ids[name] = variant.id
        return campaign.id, ids

    def message(
        self,
        *,
        campaign_id: int | None,
        member_id: int,
        variant_id: int | None = None,
        state: MessageState = MessageState.DELIVERED,
        sent_at: datetime = SENT,
        delivered_after: timedelta | None = timedelta(seconds=5),
        skip_reason: str | None = None,
        parts: int = 1,
        trigger_id: int | None = None,
    ) -> Message:
        """One message; delivered ones get `delivered_at` = sent + `delivered_after`."""
        serial = next(self._serial)
        sent = state not in (
            MessageState.SKIPPED,
            MessageState.CANCELLED,
            MessageState.PLANNED,
            MessageState.QUEUED,
        )
        delivered = state == MessageState.DELIVERED and delivered_after is not None
        row = Message(
            dedupe_key=f"test:{campaign_id}:{member_id}:{serial}",
            campaign_id=campaign_id,
            variant_id=variant_id,
            trigger_id=trigger_id,
            member_id=member_id,
            phone=f"+86139{member_id:08d}",
            text="【品牌】您好 拒收请回复R",
            parts=parts,
            cost_cents=parts * PRICE_PER_PART if sent else 0,
            state=state,
            skip_reason=skip_reason,
            send_at=sent_at,
            submitted_at=sent_at if sent else None,
            delivered_at=sent_at + delivered_after if delivered and delivered_after else None,
        )
        self._add(row)
        return row

    def click(self, message: Message, at: datetime, *, robot: bool = False) -> None:
        """A click on the message's short link (its link is made on first use)."""
        link = (
            self.session.query(ShortLink)
            .filter_by(campaign_id=message.campaign_id, member_id=message.member_id)
            .one_or_none()
        )
        if link is None:
            link = ShortLink(
                code=f"c{next(self._serial)}",
                campaign_id=message.campaign_id,
                member_id=message.member_id,
                target_url="https://shop.example.cn/fruit",
            )
            self._add(link)
        ua = "facebookexternalhit/1.1" if robot else "Mozilla/5.0 (iPhone)"
        self._add(Click(link_id=link.id, clicked_at=at, user_agent=ua, is_robot=robot))

    def order(self, member_id: int, at: datetime, amount_cents: int = 10_000) -> Order:
        """An order of the member at `at`."""
        row = Order(
            external_id=f"POS{next(self._serial)}",
            member_id=member_id,
            ordered_at=at,
            amount_cents=amount_cents,
        )
        self._add(row)
        return row

    def redeem(self, *, campaign_id: int, member_id: int, order: Order) -> None:
        """The member's coupon of the campaign, redeemed on `order` at the POS."""
        self._add(
            Coupon(
                code=f"CP{next(self._serial):08d}",
                member_id=member_id,
                campaign_id=campaign_id,
                value_cents=500,
                valid_from=SENT,
                status=CouponStatus.REDEEMED,
                redeemed_at=order.ordered_at,
                redeemed_order_ref=order.external_id,
                redeemed_amount_cents=order.amount_cents,
            )
        )


def hand_built_campaign(world: World) -> dict[str, int]:
    """Campaign A/B with a holdout, in two stores, whose outcomes are known one by one:

    m1 (A, SH01) delivered, clicked by a person, orders ¥200 a day later (click-through);
    m2 (A, SH01) delivered, clicked by a link-preview robot only, replies with a question;
    m3 (A, SH01) failed, two parts;
    m4 (B, SH01) delivered, redeems its coupon on a ¥50 order two days later (direct);
    m5 (B, BJ01) delivered, replies R and opts out;
    m6 (B, BJ01) taken by the provider without a receipt yet, then complains;
    h1, h2 held out (h1 orders ¥100 a day later); s1 skipped as opted out before.
    """
    from tidings.campaigns.sources import phone_hash
    from tidings.inbound.models import Reply
    from tidings.members.models import ConsentEvent, ConsentKind, Suppression, SuppressionReason

    campaign, variants = world.campaign(holdout_share=0.25)
    a, b = variants["A"], variants["B"]
    ids = {name: world.member("BJ01" if name in ("m5", "m6") else "SH01") for name in NAMES}
    msg = {
        "m1": world.message(campaign_id=campaign, variant_id=a, member_id=ids["m1"]),
        "m2": world.message(campaign_id=campaign, variant_id=a, member_id=ids["m2"]),
        "m3": world.message(
            campaign_id=campaign,
            variant_id=a,
            member_id=ids["m3"],
            state=MessageState.FAILED,
            parts=2,
        ),
        "m4": world.message(campaign_id=campaign, variant_id=b, member_id=ids["m4"]),
        "m5": world.message(campaign_id=campaign, variant_id=b, member_id=ids["m5"]),
        "m6": world.message(
            campaign_id=campaign, variant_id=b, member_id=ids["m6"], state=MessageState.SUBMITTED
        ),
    }
    for name, reason in (("h1", "holdout"), ("h2", "holdout"), ("s1", "opted_out")):
        world.message(
            campaign_id=campaign,
            member_id=ids[name],
            state=MessageState.SKIPPED,
            skip_reason=reason,
        )
    world.click(msg["m1"], SENT + timedelta(hours=1))
    world.click(msg["m2"], SENT + timedelta(seconds=30), robot=True)
    world.order(ids["m1"], SENT + timedelta(days=1), 20_000)
    coupon_order = world.order(ids["m4"], SENT + timedelta(days=2), 5_000)
    world.redeem(campaign_id=campaign, member_id=ids["m4"], order=coupon_order)
    world.order(ids["h1"], SENT + timedelta(days=1), 10_000)
    world.order(ids["m1"], SENT - timedelta(days=10), 9_900)  # before: counts for nothing
    replied = SENT + timedelta(hours=2)
    for name, text, intent in (("m2", "几点关门？", "question"), ("m5", "R", "opt_out")):
        world._add(
            Reply(
                provider="simulator",
                provider_message_id=f"mo-{name}",
                phone=msg[name].phone,
                member_id=ids[name],
                text=text,
                received_at=replied,
                in_reply_to_message_id=msg[name].id,
                intent=intent,
            )
        )
    world._add(
        ConsentEvent(
            member_id=ids["m5"], kind=ConsentKind.OPT_OUT, source="reply", occurred_at=replied
        )
    )
    world._add(
        Suppression(
            phone_hash=phone_hash(msg["m6"].phone),
            reason=SuppressionReason.COMPLAINED,
            source="reply",
            created_at=replied,
        )
    )
    return {"campaign": campaign, **ids}


NAMES = ("m1", "m2", "m3", "m4", "m5", "m6", "h1", "h2", "s1")
