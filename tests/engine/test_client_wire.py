"""Pure pieces of the lean client: packet encoding and the receive policies."""

from __future__ import annotations

import pytest

from faultlab.harness.clients import wire
from faultlab.harness.clients.profiles import profile
from faultlab.harness.clients.receive import policy


def test_open_packet_gives_sid_upgrades_and_timers_in_seconds() -> None:
    info = wire.parse_open('0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,'
                           '"pingTimeout":20000,"maxPayload":1000000}')
    assert info == wire.OpenInfo("abc", ["websocket"], 25.0, 20.0)
    with pytest.raises(wire.ProtocolError, match="expected an Engine"):
        wire.parse_open("40{}")
    with pytest.raises(wire.ProtocolError, match="bad Engine"):
        wire.parse_open('0{"sid":"abc"}')


def test_events_acks_and_payloads_round_trip() -> None:
    assert wire.event_packet(["chat message", "hi"]) == '42["chat message","hi"]'
    assert wire.event_packet(["chat message", "hi", None], 12) == '4212["chat message","hi",null]'
    assert wire.split_id('12[{"error":"x"}]') == (12, '[{"error":"x"}]')
    assert wire.split_id("[]") == (None, "[]")
    assert wire.connect_packet({"pid": "p", "serverOffset": 3}) == '40{"pid":"p","serverOffset":3}'
    packets = ["2", '42["chat message","a",1]']
    assert wire.decode_payload(wire.encode_payload(packets)) == packets
    assert wire.decode_payload("") == []


def test_naive_shows_everything_and_keeps_the_last_offset() -> None:
    p = policy("naive", resume_from=2)
    assert [p.accept(o) for o in (5, 4, 5)] == [True, True, True]
    assert p.server_offset == 5
    assert 1 in p.shown and 4 in p.shown and 3 not in p.shown


def test_strict_shows_each_offset_once_and_keeps_the_highest() -> None:
    p = policy("strict")
    assert [p.accept(o) for o in (1, 3, 2, 3, "7", None)] == [True, True, True, False, False,
                                                              False]
    assert p.server_offset == 3 and set(p.shown) == {1, 2, 3}
    with pytest.raises(ValueError, match="naive or strict"):
        policy("lenient")


def test_profiles_follow_the_levels() -> None:
    assert not profile("at-most-once").buffers and not profile("buffered").acks
    assert profile("at-least-once").sends_offset and not profile("at-least-once").unique_offset
    assert profile("exactly-once").unique_offset
    with pytest.raises(ValueError, match="level must be one of"):
        profile("twice")
