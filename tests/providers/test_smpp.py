"""The SMPP provider against a loopback SMSC of another SMPP implementation: what reaches the
handset, in which alphabet and in how many parts; receipts, replies, refusals, throttling;
and credentials that stay out of errors, reprs and logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import smpp34
from smsc import LoopbackSmsc

from tidings.config import Settings
from tidings.providers.base import Outcome, OutgoingMessage, get_provider
from tidings.providers.smpp import SmppAccount, SmppAccountError, SmppProvider
from tidings.providers.smpp_bind import Bind, BindSettings, NotHandedOver, SubmitRate
from tidings.providers.smpp_text import read_receipt, read_reply

PASSWORD = "s3cr3t!"
SIGNED = "【品牌】会员日全场8折，凭短信到店再送积分 拒收请回复R"


@pytest.fixture
def smsc() -> Iterator[LoopbackSmsc]:
    """A loopback SMSC that knows the account `tidings` / PASSWORD."""
    server = LoopbackSmsc(password=PASSWORD).start()
    yield server
    server.stop()


def account(smsc: LoopbackSmsc, **keys: Any) -> dict[str, Any]:
    """The keys of an SMPP account bound to the loopback SMSC."""
    return {
        "type": "smpp",
        "host": "127.0.0.1",
        "port": smsc.port,
        "system_id": "tidings",
        "password": PASSWORD,
        "source_addr": "10690000",
        "throttle_pause": 0.05,
        "send_timeout": 2.0,
        "response_timeout": 2.0,
        **keys,
    }


def provider(smsc: LoopbackSmsc, **keys: Any) -> SmppProvider:
    built = get_provider("smsc-a", Settings(provider_accounts={"smsc-a": account(smsc, **keys)}))
    assert isinstance(built, SmppProvider)
    return built


def send(provider: SmppProvider, *messages: OutgoingMessage) -> dict[int, Any]:
    async def go() -> dict[int, Any]:
        try:
            return {result.message_id: result for result in await provider.send_batch(messages)}
        finally:
            await provider.aclose()

    return asyncio.run(go())


def test_chinese_goes_as_ucs2_and_ascii_in_the_default_alphabet(smsc: LoopbackSmsc) -> None:
    results = send(
        provider(smsc),
        OutgoingMessage(1, "+8613800000001", SIGNED),
        OutgoingMessage(2, "+8613800000002", "Member day: 20% off {today} only, 5€ coupon"),
    )
    assert {r.outcome for r in results.values()} == {Outcome.ACCEPTED}
    shown = {handset.destination: handset for handset in smsc.handsets()}
    assert shown["8613800000001"].text == SIGNED
    assert shown["8613800000001"].data_coding == 8
    assert shown["8613800000002"].text == "Member day: 20% off {today} only, 5€ coupon"
    assert shown["8613800000002"].data_coding == 0
    assert {part.registered_delivery for part in smsc.accepted} == {1}


def test_a_long_message_goes_in_parts_the_handset_puts_back_together(smsc: LoopbackSmsc) -> None:
    chinese = "会员专享：" + "买一送一，" * 30  # 155 characters: 67 + 67 + 21
    english = "Dear member, " * 16  # 208 septets: 153 + 55
    results = send(
        provider(smsc),
        OutgoingMessage(1, "+8613800000001", chinese),
        OutgoingMessage(2, "+8613800000002", english),
    )
    shown = {handset.destination: handset for handset in smsc.handsets()}
    assert shown["8613800000001"].text == chinese
    assert shown["8613800000002"].text == english
    parts = [part for part in smsc.accepted if part.destination == "8613800000001"]
    assert [len(part.text) for part in parts] == [67, 67, 21]
    assert {part.esm_class & 0x40 for part in parts} == {0x40}  # each starts with a UDH
    assert {part.concat[0] for part in parts if part.concat} == {parts[0].concat[0]}  # type: ignore[index]
    assert [part.concat[1:] for part in parts if part.concat] == [(3, 1), (3, 2), (3, 3)]
    assert [len(p.text) for p in smsc.accepted if p.destination == "8613800000002"] == [153, 55]
    # The message goes by its first part's id, the one its receipt names.
    assert results[1].provider_message_id == shown["8613800000001"].message_ids[0]


def test_receipts_come_once_per_message_even_for_long_ones(smsc: LoopbackSmsc) -> None:
    smsc.behaviour.fate = lambda phone: "UNDELIV" if phone.endswith("2") else "DELIVRD"
    sender = provider(smsc)

    async def go() -> tuple[list[Any], list[Any]]:
        results = await sender.send_batch(
            [
                OutgoingMessage(1, "+8613800000001", "长" * 150),
                OutgoingMessage(2, "+8613800000002", "hello"),
            ]
        )
        receipts: list[Any] = []
        for _ in range(200):
            receipts += await sender.poll_receipts()
            if smsc.receipts_sent == 4 and len(receipts) >= 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        receipts += await sender.poll_receipts()
        await sender.aclose()
        return results, receipts

    results, receipts = asyncio.run(go())
    ids = {r.message_id: r.provider_message_id for r in results}
    assert smsc.receipts_sent == 4  # three parts and one short message
    assert sorted((r.provider_message_id, r.status, r.error_code) for r in receipts) == sorted(
        [(ids[1], "delivered", None), (ids[2], "failed", "UNDELIV:001")]
    )


def test_a_reply_comes_out_of_poll_replies(smsc: LoopbackSmsc) -> None:
    sender = provider(smsc)

    async def go() -> list[Any]:
        await sender.open()
        smsc.send_reply("+8613800000009", "什么时候结束？")
        replies: list[Any] = []
        for _ in range(300):
            replies += await sender.poll_replies()
            if replies:
                break
            await asyncio.sleep(0.01)
        await sender.aclose()
        return replies

    [reply] = asyncio.run(go())
    assert (reply.provider, reply.phone, reply.text) == (
        "smsc-a",
        "+8613800000009",
        "什么时候结束？",
    )
    assert reply.recipient == "10690000"


def test_a_refused_number_fails_with_the_command_status(smsc: LoopbackSmsc) -> None:
    smsc.behaviour.refuse = lambda phone: 0x0B if phone.endswith("4") else 0
    results = send(
        provider(smsc),
        OutgoingMessage(1, "+8613800000004", "hello"),
        OutgoingMessage(2, "+8613800000005", "hello"),
    )
    assert (results[1].outcome, results[1].error_code, results[1].permanent) == (
        Outcome.FAILED,
        "0x0B",
        True,
    )
    assert results[2].outcome is Outcome.ACCEPTED


def test_throttling_retries_and_closes_the_window(smsc: LoopbackSmsc) -> None:
    """The SMSC throttles a full window's worth of submits: those go back for later, and the
    bind pauses, then opens its window again one accepted submit at a time."""
    smsc.behaviour.answer_delay = 0.02
    sender = provider(smsc, window=8)
    messages = [OutgoingMessage(i, f"+86138000000{i:02d}", "hello") for i in range(1, 32)]

    async def go() -> list[Any]:
        await sender.send_batch(messages[:1])  # bound, so the next batch fills the window
        smsc.behaviour.throttle_next = 8
        try:
            return await sender.send_batch(messages[1:])
        finally:
            await sender.aclose()

    results = asyncio.run(go())
    retried = [r for r in results if r.outcome is Outcome.RETRY]
    assert {(r.error_code, r.retry_after) for r in retried} == {("0x58", 0.05)}
    assert len(retried) == 8 and sum(r.outcome is Outcome.ACCEPTED for r in results) == 22
    seen = smsc.outstanding_at_arrival[1:]  # the bind's unanswered submits as each arrived
    assert max(seen[:8]) >= 4, "the window was never full: the test proved nothing"
    # Without the cut, those after the pause would go together again (0, 1, 2, 3, ...).
    assert max(seen[8:13]) <= 2, seen


def test_a_late_answer_leaves_its_message_unknown_and_the_bind_up(smsc: LoopbackSmsc) -> None:
    smsc.behaviour.answer_delay = 0.5
    sender = provider(smsc, response_timeout=0.2)

    async def go() -> tuple[list[Any], list[Any]]:
        late = await sender.send_batch([OutgoingMessage(1, "+8613800000001", "hello")])
        smsc.behaviour.answer_delay = 0.0
        try:
            return late, await sender.send_batch([OutgoingMessage(2, "+8613800000002", "hi")])
        finally:
            await sender.aclose()

    late, next_one = asyncio.run(go())
    assert late == []  # left out of the answer: reconciliation settles it, never a resend
    assert [r.outcome for r in next_one] == [Outcome.ACCEPTED]
    assert smsc.binds == 1 and len(smsc.accepted) == 2


def test_no_bind_means_nothing_was_handed_over(smsc: LoopbackSmsc) -> None:
    from tidings.providers.base import ProviderUnavailable

    sender = provider(smsc, password="wrong", send_timeout=0.3)

    async def go() -> None:
        try:
            await sender.send_batch([OutgoingMessage(1, "+8613800000001", "hello")])
        finally:
            await sender.aclose()

    with pytest.raises(ProviderUnavailable):
        asyncio.run(go())
    assert smsc.accepted == [] and smsc.refused_binds >= 1


def test_credentials_stay_out_of_errors_reprs_and_logs(
    smsc: LoopbackSmsc, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(SmppAccountError) as error:
        SmppAccount.parse("smsc-a", {**account(smsc), "password": "far-too-long-secret"})
    assert "password" in str(error.value) and "far-too-long" not in str(error.value)
    with pytest.raises(SmppAccountError, match="port"):
        SmppAccount.parse("smsc-a", {**account(smsc), "port": "two"})
    sender = provider(smsc, password="wrong1", connect_timeout=0.2, send_timeout=0.6)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception, match="no bind is up"):
        send(sender, OutgoingMessage(1, "+8613800000001", "hello"))
    assert "SMPP bind smsc-a#1" in caplog.text  # the failed bind was logged...
    for shown in (caplog.text, repr(sender), repr(sender.account), str(sender.account)):
        assert "wrong1" not in shown and PASSWORD not in shown  # ...without its password


def test_receipt_text_and_tlvs_are_read() -> None:
    text = (
        b"id:0A1B sub:001 dlvrd:000 submit date:2611231200 done date:2611231201"
        b" stat:EXPIRED err:000 text:hi"
    )
    read = read_receipt(text, [])
    assert read is not None and (read.provider_message_id, read.status) == ("0A1B", "expired")
    # The receipted_message_id TLV wins over the text's id, as SMPP 3.4 defines it.
    tlv = read_receipt(b"id:2587 stat:DELIVRD err:000", [(0x001E, b"a1b\x00")])
    assert tlv is not None and (tlv.provider_message_id, tlv.status) == ("a1b", "delivered")
    by_state = read_receipt(b"", [(0x001E, b"77\x00"), (0x0427, b"\x08")])
    assert by_state is not None and (by_state.status, by_state.error) == ("failed", "REJECTD")
    pending = read_receipt(b"id:5 stat:ACCEPTD err:000", [])
    assert pending is not None and pending.status is None  # not final: not applied
    assert read_receipt(b"stat:DELIVRD", []) is None


def test_a_long_reply_is_read_part_by_part() -> None:
    first = read_reply(
        bytes((5, 0, 3, 9, 2, 1)) + "请问".encode("utf-16-be"), data_coding=8, esm_class=0x40
    )
    plain = read_reply("R".encode("gsm03.38"), data_coding=0, esm_class=0)
    assert (first.text, first.reference, first.total, first.number) == ("请问", 9, 2, 1)
    assert (plain.text, plain.reference) == ("R", None)


def test_the_rate_holds_in_every_second_and_wastes_none() -> None:
    now = [100.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    rate = SubmitRate(5, clock=lambda: now[0], sleep=sleep)

    async def take(count: int, give_up: float) -> list[float]:
        taken = []
        for _ in range(count):
            taken.append(await rate.take(give_up))
            now[0] += 0.01  # the submit itself
        return taken

    taken = asyncio.run(take(23, give_up=1_000.0))
    assert all(later - earlier >= 1.0 for earlier, later in zip(taken, taken[5:], strict=False))
    assert taken[-1] - taken[0] < 4.1  # 23 submits at 5 a second: four seconds and a bit
    with pytest.raises(NotHandedOver, match="busy"):
        asyncio.run(take(6, give_up=now[0] + 0.5))


def test_a_cut_connection_is_bound_again_and_sending_goes_on(smsc: LoopbackSmsc) -> None:
    smsc.drop_connection_at(1)
    sender = provider(smsc)

    async def go() -> tuple[list[Any], list[Any]]:
        cut = await sender.send_batch([OutgoingMessage(1, "+8613800000001", "hello")])
        try:
            return cut, await sender.send_batch([OutgoingMessage(2, "+8613800000002", "hi")])
        finally:
            await sender.aclose()

    cut, after = asyncio.run(go())
    assert cut == []  # taken but not answered: left to reconciliation, never resent
    assert [r.outcome for r in after] == [Outcome.ACCEPTED]
    assert smsc.binds == 2 and [p.destination for p in smsc.accepted] == [
        "8613800000001",
        "8613800000002",
    ]


class _Ended:
    """Stands for smpp34's Disconnected, which only the library makes."""


class _EndedSession:
    """A session whose events the test hands in: deliver_sm the library took, then its end."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[Any] = asyncio.Queue()

    async def next(self) -> Any:
        return await self.events.get()


def test_receipts_taken_before_a_send_found_the_session_broken_are_still_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The library answers each deliver_sm as it takes it, so the SMSC never sends those
    receipts again: when a send finds the session broken and drops it while the bind is
    behind in reading, the receipts the library had taken must still be read."""
    monkeypatch.setattr(smpp34, "Disconnected", _Ended)
    taken = ["receipt 1", "receipt 2", "receipt 3"]
    read: list[Any] = []
    bind = Bind("b1", BindSettings("127.0.0.1", 1, "x", "y", "", 1, 1.0, 1.0, 0.1), read.append)

    async def scenario() -> None:
        session = _EndedSession()
        bind._session = session  # type: ignore[assignment]
        reading = asyncio.create_task(bind._read())
        await asyncio.sleep(0)  # the bind waits for the session's next event
        await bind._drop(session)  # type: ignore[arg-type]  # as a submit that found it broken
        for event in [*taken, _Ended()]:
            session.events.put_nowait(event)
        await asyncio.wait_for(reading, 5)

    asyncio.run(scenario())
    assert read == taken
