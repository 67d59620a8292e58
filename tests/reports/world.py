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
        sent = state not in (MessageState.SKIPPED, MessageState.CANCELLED, MessageState.PLANNED)
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
        link = self.session.query(ShortLink).filter_by(dedupe_key=message.dedupe_key).one_or_none()
        if link is None:
            link = ShortLink(
                code=f"c{next(self._serial)}",
                dedupe_key=message.dedupe_key,
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
