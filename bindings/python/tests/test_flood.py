"""The flood scenarios of issue 16, as a Python user meets them: one
subscription that is never read, and a callback that sleeps 1 ms per
message, each flooded for ten heartbeat windows. On the same link requests
keep being answered and a second subscription gets everything; neither side
sees ``peer_down`` (no false death, so no redial storm); and every message
is accounted for: delivered, or refused at the sender with
``BufferFullError`` and counted in its stats, none lost without a count.

Each wait is bounded (a timeout on the call, or the WATCHDOG); the
endpoints, and the callback's thread with them, end with their ``with``."""

from __future__ import annotations

import threading
import time
from typing import Callable, List, Tuple

import netchan

from conftest import WATCHDOG, wait_until

# A 0.1 s heartbeat: a link that stopped answering would be declared lost
# after 0.3 s; each flood lasts ten times that.
HEARTBEAT = 0.1
FLOOD = 10 * 3 * HEARTBEAT


def _flood(p: netchan.Endpoint, path: str, every: int, tick: Callable[[], None]) -> Tuple[List[int], int]:
    """Publishes numbered messages on ``path`` for FLOOD seconds, calling
    ``tick`` every ``every`` publishes; returns the numbers accepted and how
    many were refused with ``BufferFullError``."""
    accepted: List[int] = []
    refused = 0
    i = 0
    end = time.monotonic() + FLOOD
    while time.monotonic() < end:
        try:
            p.publish(path, i.to_bytes(8, "little"))
            accepted.append(i)
        except netchan.BufferFullError:
            refused += 1
        i += 1
        if i % every == 0:
            tick()
    return accepted, refused


def _no_loss_of_liveness(events: netchan.Events, who: str) -> None:
    while True:
        ev = events.try_recv()
        if ev is None:
            return
        assert ev.kind not in ("peer_down", "reconnecting", "connection_error"), (who, ev)


def test_an_unread_subscription_never_stalls_its_link() -> None:
    with netchan.Endpoint("unread-sub", heartbeat_interval=HEARTBEAT) as s, netchan.Endpoint(
        "unread-pub", heartbeat_interval=HEARTBEAT, send_timeout=0.05
    ) as p:
        unread = s.subscribe("flood/unread", capacity=500)
        other = s.subscribe("flood/other")
        s.serve("echo", lambda req: req.payload)
        s_events, p_events = s.events(), p.events()
        p.connect(s.listen("tcp://127.0.0.1:0"))
        assert p.wait_for_subscribers("flood/unread", timeout=WATCHDOG)
        assert p.wait_for_subscribers("flood/other", timeout=WATCHDOG)
        assert p.wait_for_servers("echo", timeout=WATCHDOG)

        others = requests = 0

        def tick() -> None:
            nonlocal others, requests
            p.publish("flood/other", others.to_bytes(8, "little"))
            others += 1
            assert p.request("echo", b"still there?", timeout=1.0) == b"still there?"
            requests += 1

        accepted, refused = _flood(p, "flood/unread", 50, tick)
        assert refused > 0 and requests > 10, (refused, requests)

        # The other subscription on the same link got everything, in order.
        for k in range(others):
            m = other.recv(timeout=WATCHDOG)
            assert m is not None and m.payload == k.to_bytes(8, "little")
        _no_loss_of_liveness(s_events, "subscriber")
        _no_loss_of_liveness(p_events, "publisher")
        # Every accepted publish waits in the unread queue, in order; every
        # refusal was counted at the sender; nothing else happened to any.
        got = []
        for _ in accepted:
            m = unread.recv(timeout=WATCHDOG)
            assert m is not None
            got.append(int.from_bytes(m.payload, "little"))
        assert got == accepted
        assert unread.recv(timeout=0.2) is None
        assert p.stats()["total"]["dropped_send_full"] == refused
        assert s.stats()["total"]["dropped_queue_full"] == 0


def test_a_callback_that_sleeps_per_message_keeps_its_link_alive_and_loses_nothing() -> None:
    with netchan.Endpoint("sleepy-sub", heartbeat_interval=HEARTBEAT) as s, netchan.Endpoint(
        "sleepy-pub", heartbeat_interval=HEARTBEAT, send_timeout=0.05
    ) as p:
        got: List[int] = []
        lock = threading.Lock()

        def slow(msg: netchan.Message) -> None:
            time.sleep(0.001)
            with lock:
                got.append(int.from_bytes(msg.payload, "little"))

        s.subscribe("flood/slow", slow, capacity=256)
        s.serve("echo", lambda req: req.payload)
        s_events, p_events = s.events(), p.events()
        p.connect(s.listen("tcp://127.0.0.1:0"))
        assert p.wait_for_subscribers("flood/slow", timeout=WATCHDOG)
        assert p.wait_for_servers("echo", timeout=WATCHDOG)

        requests = 0

        def tick() -> None:
            nonlocal requests
            assert p.request("echo", b"ping", timeout=1.0) == b"ping"
            requests += 1

        accepted, refused = _flood(p, "flood/slow", 200, tick)
        assert refused > 0 and requests > 10, (refused, requests)

        # The callback drains what was accepted, every message, in order.
        def drained() -> bool:
            with lock:
                return len(got) >= len(accepted)

        wait_until(drained, "the callback to drain the accepted messages")
        time.sleep(0.1)
        with lock:
            assert got == accepted
        _no_loss_of_liveness(s_events, "subscriber")
        _no_loss_of_liveness(p_events, "publisher")
        assert p.stats()["total"]["dropped_send_full"] == refused
        assert s.stats()["total"]["dropped_queue_full"] == 0
