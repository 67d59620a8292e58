"""A campaign sent by the worker through an SMPP account to the loopback SMSC: receipts settle
every message as the SMSC decided, throttling only delays, and a connection cut in the middle
of a send loses no message and sends none twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from smsc import LoopbackSmsc
from sqlalchemy import Engine, text

from dispatch.conftest import add_campaign, add_messages, states
from tidings.config import Settings
from tidings.dispatch.reconcile import LOST_BY_CRASH
from tidings.dispatch.worker import Worker, WorkerReport

ACCOUNT = "smsc-a"


@pytest.fixture
def smsc() -> Iterator[LoopbackSmsc]:
    """A loopback SMSC with quick receipts."""
    server = LoopbackSmsc(password="secret").start()
    yield server
    server.stop()


def settings(smsc: LoopbackSmsc, *, lease: float = 3.0, **keys: Any) -> Settings:
    """A worker sending at any hour through two binds to the loopback SMSC; `lease` seconds
    bound how long a batch may wait for answers (see `providers.smpp._fit_to_lease`)."""
    account = {
        "type": "smpp",
        "host": "127.0.0.1",
        "port": smsc.port,
        "system_id": "tidings",
        "password": "secret",
        "source_addr": "10690000",
        "binds": 2,
        "window": 5,
        "throttle_pause": 0.05,
        "send_timeout": 0.5,
        "response_timeout": 0.5,
        **keys,
    }
    return Settings(
        provider_accounts={ACCOUNT: account},
        default_provider=ACCOUNT,
        dispatch_batch_size=50,
        dispatch_lease_seconds=lease,
        dispatch_receipt_timeout=30.0,  # a run ends once all settle; a busy machine delays receipts
        send_window="00:00-00:00",
        quiet_hours="",
    )


def queue(engine: Engine, count: int) -> list[int]:
    """Queues `count` messages of a running campaign through the SMPP account."""
    ids = add_messages(engine, count, campaign_id=add_campaign(engine))
    with engine.begin() as connection:
        connection.execute(text("UPDATE messages SET provider = :p"), {"p": ACCOUNT})
    return ids


def run(engine: Engine, smsc: LoopbackSmsc, *, lease: float = 3.0, **keys: Any) -> WorkerReport:
    worker = Worker(engine, settings=settings(smsc, lease=lease, **keys), concurrency=2)
    return asyncio.run(worker.run(once=True))


def by_phone(engine: Engine) -> dict[str, tuple[str, str | None, str | None]]:
    """Each message's (state, error code, provider message id) by its phone, without '+'."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT phone, state, error_code, provider_message_id FROM messages")
        ).all()
    return {phone.removeprefix("+"): (state, code, pmid) for phone, state, code, pmid in rows}


def test_receipts_settle_each_message_as_the_smsc_decided(
    engine: Engine, smsc: LoopbackSmsc
) -> None:
    fates = {"0": "UNDELIV", "1": "EXPIRED", "2": "REJECTD"}
    smsc.behaviour.fate = lambda phone: fates.get(phone[-1], "DELIVRD")
    [long_id, *_] = queue(engine, 30)
    with engine.begin() as connection:
        long_text = "【品牌】会员日" + "全场八折，" * 40 + "拒收请回复R"
        connection.execute(
            text("UPDATE messages SET text = :t, parts = 4 WHERE id = :id"),
            {"t": long_text, "id": long_id},
        )
    report = run(engine, smsc)
    found = by_phone(engine)
    for phone, (state, code, _) in found.items():
        expected = {"UNDELIV": "failed", "EXPIRED": "expired", "REJECTD": "failed"}
        assert state == expected.get(fates.get(phone[-1], ""), "delivered"), phone
        if state == "failed":
            assert code == f"{fates[phone[-1]]}:001"
    assert states(engine) == Counter({"delivered": 21, "failed": 6, "expired": 3})
    assert report.receipts == 30  # one per message, the long one's later parts set aside
    handsets = {handset.destination: handset for handset in smsc.handsets()}
    [long_phone] = [p for p, h in handsets.items() if len(h.message_ids) > 1]
    assert handsets[long_phone].text == long_text and len(handsets[long_phone].message_ids) == 4
    assert found[long_phone][2] == handsets[long_phone].message_ids[0]


def test_throttling_delays_but_loses_and_doubles_nothing(
    engine: Engine, smsc: LoopbackSmsc
) -> None:
    smsc.behaviour.throttle_share = 0.1
    queue(engine, 60)
    report = run(engine, smsc)
    # Every throttled submit comes back for another try; a busy machine may add retries of
    # its own (a batch that waited too long for the rate goes back unsent).
    assert smsc.throttled > 0 and report.tally.counts.get("retried", 0) >= smsc.throttled
    assert states(engine) == Counter({"delivered": 60})
    accepted = Counter(part.destination for part in smsc.accepted)
    assert len(accepted) == 60 and set(accepted.values()) == {1}


@pytest.mark.slow
def test_a_dropped_connection_loses_nothing_and_sends_nothing_twice(
    engine: Engine, smsc: LoopbackSmsc
) -> None:
    """The SMSC takes the 25th submit and cuts its connection before answering. What the
    client had written on that connection without an answer cannot be known: those messages
    end `unknown` (there is no query API to ask) and are never sent again; every other
    message is sent exactly once and delivered."""
    queue(engine, 80)
    smsc.drop_connection_at(25)
    # Answers get a second, not the 0.4 s the other tests leave them: on a busy machine an
    # answer the SMSC sent late made one more message `unknown` than the cut explains.
    run(engine, smsc, lease=8.0, response_timeout=1.0)
    found = by_phone(engine)
    accepted = Counter(part.destination for part in smsc.accepted)
    assert set(accepted.values()) == {1}, "a message was sent twice"
    delivered = {phone for phone, (state, _, _) in found.items() if state == "delivered"}
    unknown = {phone for phone, (state, _, _) in found.items() if state == "unknown"}
    assert delivered | unknown == set(found), Counter(state for state, _, _ in found.values())
    assert {found[phone][1] for phone in unknown} == {LOST_BY_CRASH}
    # Unknown: the submit the SMSC took without answering, any written after it on that
    # connection (a window's worth at most), and, on a busy machine, one whose answer came
    # after the client stopped waiting; the SMSC took all the delivered ones, once.
    cut = smsc.accepted[24].destination  # the 25th submit taken
    taken_unanswered = set(accepted) - delivered
    assert cut in taken_unanswered and taken_unanswered <= unknown
    assert delivered <= set(accepted) and len(unknown) <= 2 * 5
    assert smsc.sessions_bound() == 0  # the worker unbound when it stopped
