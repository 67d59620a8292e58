"""A test SMSC on loopback, built on aiosmpplib's PDU codec: another SMPP implementation than
the client's (smpp34), so the tests show that the two understand each other on the wire.

It runs its own event loop on a thread (or, with `python tests/providers/smsc.py`, in a
process of its own for the bench), accepts binds, answers `submit_sm` with message ids, sends
a receipt (`deliver_sm`) for every part it accepted after a short delay, throttles a share of
submits on request, cuts a connection in the middle of a send, sends replies from handsets,
and writes down every submit it accepted so a test can check that none came twice and none
went missing. Receipts and replies wait for a bound session and are sent again when one
breaks off before answering, as a real SMSC does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from struct import unpack_from

from aiosmpplib import (
    NPI,
    TON,
    BindReceiverResp,
    BindTransceiverResp,
    BindTransmitterResp,
    DeliverSm,
    EnquireLinkResp,
    GenericNack,
    PhoneNumber,
    SmppCommand,
    SmppCommandStatus,
    SmppDataCoding,
    SmppMessage,
    SubmitSm,
    SubmitSmResp,
    UnbindResp,
)
from aiosmpplib.protocol import BindTransceiver
from aiosmpplib.state import MESSAGE_STATE, RECEIPTED_MESSAGE_ID, OptionalParam, PduHeader

HEADER = 16  # bytes of an SMPP PDU header
RECEIPT_WINDOW = 64  # deliver_sm sent to one session before waiting for answers
STATES = {"DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "REJECTD": 8}
BINDS: dict[SmppCommand, tuple[type[BindTransceiverResp], bool]] = {
    SmppCommand.BIND_TRANSCEIVER: (BindTransceiverResp, True),  # (answer, receives)
    SmppCommand.BIND_RECEIVER: (BindReceiverResp, True),
    SmppCommand.BIND_TRANSMITTER: (BindTransmitterResp, False),
}


@dataclass(frozen=True, slots=True)
class Accepted:
    """One submit_sm the SMSC took: one part of a message to a handset."""

    message_id: str
    session: int
    destination: str
    source: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    text: str  # this part's text, decoded
    concat: tuple[int, int, int] | None  # (reference, parts, this part's number) from the UDH
    at: float  # time.monotonic() when it arrived


@dataclass(frozen=True, slots=True)
class Handset:
    """What a handset shows: the parts of one message put back together."""

    destination: str
    text: str
    data_coding: int
    message_ids: tuple[str, ...]


@dataclass(slots=True)
class _Session:
    number: int
    writer: asyncio.StreamWriter
    system_id: str = ""
    receives: bool = False
    received: int = 0  # submits read
    answered: int = 0  # submits answered
    pending: dict[int, tuple[asyncio.Future[int], DeliverSm]] = field(default_factory=dict)


@dataclass(slots=True)
class Behaviour:
    """What the SMSC does with the submits it gets; a test changes it while it runs."""

    receipt_delay: float = 0.02  # seconds from accepting a part to its receipt
    answer_delay: float = 0.0  # seconds before answering a submit
    throttle_share: float = 0.0  # share of submits answered ESME_RTHROTTLED
    throttle_next: int = 0  # the next N submits are throttled
    drop_at: int = 0  # the N-th submit from now is accepted, then the connection is cut
    fate: Callable[[str], str] = lambda destination: "DELIVRD"
    refuse: Callable[[str], int] = lambda destination: 0  # a command_status, 0 to accept


class LoopbackSmsc:
    """The SMSC: start it, point an SMPP account at `port`, look at what it accepted."""

    def __init__(self, *, system_id: str = "tidings", password: str = "secret", seed: int = 1):
        self.system_id = system_id
        self.password = password
        self.behaviour = Behaviour()
        self.port = 0
        self.accepted: list[Accepted] = []
        self.throttled = 0
        self.binds = 0  # binds accepted, reconnects included
        self.refused_binds = 0
        self.outstanding_at_arrival: list[int] = []  # submits of the session then unanswered
        self.receipts_sent = 0
        self._random = random.Random(seed)
        self._ids = itertools.count(1)
        self._sessions: dict[int, _Session] = {}
        self._numbers = itertools.count(1)
        self._sequence = itertools.count(1)
        self._outbox: asyncio.Queue[DeliverSm] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # The outside: start, stop, and ask for things from the test's thread.

    def start(self) -> LoopbackSmsc:
        """Starts the SMSC on a thread and waits until it listens."""
        self._thread = threading.Thread(target=self._run, name="test-smsc", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the test SMSC did not start")
        return self

    def stop(self) -> None:
        """Closes every session and the listener."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def drop_connection_at(self, submit_number: int) -> None:
        """Accepts the N-th submit from now, then cuts its connection before answering."""
        self.behaviour.drop_at = submit_number

    def send_reply(self, phone: str, text: str, to: str = "10690000") -> None:
        """A handset sends a text back (an MO deliver_sm, UCS-2 when not plain ASCII)."""
        ucs2 = not text.isascii()
        message = DeliverSm(
            short_message=text,
            source=PhoneNumber(phone.removeprefix("+"), TON.INTERNATIONAL, NPI.ISDN),
            destination=PhoneNumber(to),
            encoding="ucs2" if ucs2 else None,
            registered_delivery=0,
        )
        self._submit_threadsafe(message)

    def handsets(self) -> list[Handset]:
        """What every handset shows, long messages put back together from their parts."""
        whole: list[Handset] = []
        long: dict[tuple[str, int], list[Accepted]] = {}
        for part in list(self.accepted):
            if part.concat is None:
                whole.append(
                    Handset(part.destination, part.text, part.data_coding, (part.message_id,))
                )
            else:
                long.setdefault((part.destination, part.concat[0]), []).append(part)
        for (destination, _), parts in long.items():
            parts.sort(key=lambda part: part.concat[2] if part.concat else 0)
            text = "".join(part.text for part in parts)
            ids = tuple(part.message_id for part in parts)
            whole.append(Handset(destination, text, parts[0].data_coding, ids))
        return whole

    def sessions_bound(self) -> int:
        """How many sessions are bound now."""
        return sum(1 for session in list(self._sessions.values()) if session.system_id)

    # The inside: one event loop on the SMSC's thread.

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._outbox = asyncio.Queue()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port or 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        sender = self._loop.create_task(self._send_outbox())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            sender.cancel()
            self._server.close()
            for session in list(self._sessions.values()):
                session.writer.transport.abort()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    def _submit_threadsafe(self, message: DeliverSm) -> None:
        assert self._loop is not None and self._outbox is not None
        self._loop.call_soon_threadsafe(self._outbox.put_nowait, message)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(next(self._numbers), writer)
        self._sessions[session.number] = session
        try:
            while True:
                header_bytes = await reader.readexactly(HEADER)
                length = unpack_from("!I", header_bytes)[0]
                if length < HEADER:
                    break  # the stream is out of step: no PDU can be read from it any more
                pdu = header_bytes + await reader.readexactly(length - HEADER)
                if not self._handle(session, pdu):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._sessions.pop(session.number, None)
            for future, message in session.pending.values():
                if not future.done():
                    future.cancel()
                    self._outbox.put_nowait(message)  # type: ignore[union-attr]
            writer.transport.abort()

    def _handle(self, session: _Session, pdu: bytes) -> bool:
        """Answers one PDU; False when the session must end."""
        try:
            header = SmppMessage.parse_header(pdu)
        except ValueError:
            session.writer.write(GenericNack(unpack_from("!I", pdu, 12)[0]).pdu())
            return True
        command = header.smpp_command
        if command in BINDS:
            return self._bind(session, pdu, header)
        if command is SmppCommand.SUBMIT_SM:
            return self._submit(session, pdu, header)
        if command is SmppCommand.DELIVER_SM_RESP:
            found = session.pending.pop(header.sequence_num, None)
            if found is not None and not found[0].done():
                found[0].set_result(header.command_status)
                if header.command_status:  # refused for now (a full queue): again later
                    asyncio.get_running_loop().call_later(0.1, self._outbox.put_nowait, found[1])  # type: ignore[union-attr]
        elif command is SmppCommand.ENQUIRE_LINK:
            session.writer.write(EnquireLinkResp(header.sequence_num).pdu())
        elif command is SmppCommand.UNBIND:
            session.writer.write(UnbindResp(header.sequence_num).pdu())
            return False
        return True

    def _bind(self, session: _Session, pdu: bytes, header: PduHeader) -> bool:
        bind = BindTransceiver.from_pdu(pdu, header)
        answer, receives = BINDS[header.smpp_command]
        ok = bind.system_id == self.system_id and bind.password == self.password  # type: ignore[attr-defined]
        status = SmppCommandStatus.ESME_ROK if ok else SmppCommandStatus.ESME_RINVPASWD
        session.writer.write(answer(header.sequence_num, status, system_id="TESTSMSC").pdu())
        if not ok:
            self.refused_binds += 1
            return False
        self.binds += 1
        session.system_id, session.receives = self.system_id, receives
        return True

    def _submit(self, session: _Session, pdu: bytes, header: PduHeader) -> bool:
        sequence = header.sequence_num
        submit = SubmitSm.from_pdu(pdu, header, "gsm0338")
        assert isinstance(submit, SubmitSm)
        self.outstanding_at_arrival.append(session.received - session.answered)
        session.received += 1
        behaviour = self.behaviour
        if behaviour.throttle_next > 0 or self._random.random() < behaviour.throttle_share:
            behaviour.throttle_next = max(0, behaviour.throttle_next - 1)
            self.throttled += 1
            self._answer(session, SubmitSmResp(sequence, SmppCommandStatus.ESME_RTHROTTLED))
            return True
        refusal = behaviour.refuse(submit.destination.number)
        if refusal:
            self._answer(session, SubmitSmResp(sequence, SmppCommandStatus(refusal)))
            return True
        accepted = self._accept(session, submit)
        if behaviour.drop_at > 0:
            behaviour.drop_at -= 1
            if behaviour.drop_at == 0:
                session.writer.transport.abort()  # accepted, never answered
                return False
        self._answer(session, SubmitSmResp(sequence, message_id=accepted.message_id))
        return True

    def _answer(self, session: _Session, response: SubmitSmResp) -> None:
        def send() -> None:
            session.answered += 1
            if not session.writer.is_closing():
                session.writer.write(response.pdu())

        if self.behaviour.answer_delay:
            asyncio.get_running_loop().call_later(self.behaviour.answer_delay, send)
        else:
            send()

    def _accept(self, session: _Session, submit: SubmitSm) -> Accepted:
        concat = None
        if submit.esm_class & 0x40:
            reference, number, parts = submit.get_segmentation_data()
            concat = (reference, parts, number)
        accepted = Accepted(
            message_id=f"{next(self._ids):x}",
            session=session.number,
            destination=submit.destination.number,
            source=submit.source.number,
            data_coding=SmppDataCoding[submit.encoding].value if submit.encoding else 0,
            esm_class=submit.esm_class,
            registered_delivery=submit.registered_delivery,
            text=submit.short_message,
            concat=concat,
            at=time.monotonic(),
        )
        self.accepted.append(accepted)
        if submit.registered_delivery & 0x01:
            receipt = self._receipt(accepted)
            loop = asyncio.get_running_loop()
            loop.call_later(self.behaviour.receipt_delay, self._outbox.put_nowait, receipt)  # type: ignore[union-attr]
        return accepted

    def _receipt(self, accepted: Accepted) -> DeliverSm:
        stat = self.behaviour.fate(accepted.destination)
        stamp = datetime.now(UTC).strftime("%y%m%d%H%M")
        err = "000" if stat == "DELIVRD" else "001"
        text = (
            f"id:{accepted.message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'}"
            f" submit date:{stamp} done date:{stamp} stat:{stat} err:{err} text:"
        )
        return DeliverSm(
            short_message=text,
            source=PhoneNumber(accepted.destination, TON.INTERNATIONAL, NPI.ISDN),
            destination=PhoneNumber(accepted.source),
            esm_class=0x04,
            registered_delivery=0,
            optional_params=[
                OptionalParam(RECEIPTED_MESSAGE_ID, accepted.message_id),
                OptionalParam(MESSAGE_STATE, STATES.get(stat, 7)),
            ],
        )

    async def _send_outbox(self) -> None:
        """Hands receipts and replies to bound sessions, again when one breaks off."""
        assert self._outbox is not None
        while True:
            message = await self._outbox.get()
            session = await self._open_window()
            sequence = next(self._sequence)
            message.sequence_num = sequence
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            session.pending[sequence] = (future, message)
            session.writer.write(message.pdu())
            if message.esm_class & 0x04:
                self.receipts_sent += 1

    async def _open_window(self) -> _Session:
        """A bound session with room in its window. A session that broke off while this
        waited for room is passed over: it handed back what it had pending when it ended, and
        a message put in its window after that would be lost."""
        while True:
            session = await self._receiving_session()
            while len(session.pending) >= RECEIPT_WINDOW and not session.writer.is_closing():
                await asyncio.sleep(0.001)
            if session.number in self._sessions and not session.writer.is_closing():
                return session

    async def _receiving_session(self) -> _Session:
        while True:
            bound = [s for s in self._sessions.values() if s.receives and not s.writer.is_closing()]
            if bound:
                return min(bound, key=lambda session: len(session.pending))
            await asyncio.sleep(0.01)


def main() -> None:
    """Runs the SMSC in a process of its own (the bench); prints its record on SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--throttle-share", type=float, default=0.0)
    parser.add_argument("--drop-at", type=int, default=0)
    parser.add_argument("--receipt-delay", type=float, default=0.02)
    parser.add_argument("--record", required=True, help="JSON file written on SIGTERM")
    options = parser.parse_args()
    smsc = LoopbackSmsc()
    smsc.port = options.port
    smsc.behaviour.throttle_share = options.throttle_share
    smsc.behaviour.drop_at = options.drop_at
    smsc.behaviour.receipt_delay = options.receipt_delay
    smsc.start()
    print(smsc.port, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    record = {
        "accepted": [asdict(part) for part in smsc.accepted],
        "throttled": smsc.throttled,
        "receipts_sent": smsc.receipts_sent,
    }
    with open(options.record, "w") as handle:
        json.dump(record, handle)
    with contextlib.suppress(Exception):
        smsc.stop()


if __name__ == "__main__":
    main()
