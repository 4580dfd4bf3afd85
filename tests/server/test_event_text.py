"""The broadcast's hand-built event text is exactly what python-socketio's packets encode."""

from __future__ import annotations

from engineio import packet as eio_packet
from hypothesis import given
from hypothesis import strategies as st
from socketio import packet

from faultlab.server.emitter import EVENT, event_text


def socketio_text(args: tuple[object, ...]) -> str:
    inner = packet.Packet(packet.EVENT, namespace="/", data=[EVENT, *args]).encode()
    return eio_packet.Packet(eio_packet.MESSAGE, inner).encode()


@given(st.text(), st.integers(min_value=1, max_value=2**62), st.booleans())
def test_event_text_matches_socketio_encoding(content: str, row_id: int, csr: bool) -> None:
    args: tuple[object, ...] = (content, row_id, str(row_id)) if csr else (content, row_id)
    assert event_text(args) == socketio_text(args)


def test_event_text_is_a_message_packet_for_the_queue_path() -> None:
    text = event_text(("hi", 7, "7"))
    assert eio_packet.Packet(eio_packet.MESSAGE, text[1:]).encode() == text
    assert text == '42["chat message","hi",7,"7"]'
