"""The byte-stream parser: running status, real-time bytes anywhere, and garbage survival."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.midi import MidiByteParser

LENGTH = {0x80: 3, 0x90: 3, 0xA0: 3, 0xB0: 3, 0xC0: 2, 0xD0: 2, 0xE0: 3}


def parse(data: bytes, **kw: int) -> tuple[list[bytes], MidiByteParser]:
    p = MidiByteParser(**kw)
    return list(p.feed(data)), p


def test_running_status_is_expanded() -> None:
    out, p = parse(bytes([0x90, 60, 100, 62, 90, 64, 0]))
    assert out == [bytes([0x90, 60, 100]), bytes([0x90, 62, 90]), bytes([0x90, 64, 0])]
    assert p.stats.dropped == 0


def test_realtime_inside_a_message_comes_out_first_and_leaves_it_whole() -> None:
    out, _ = parse(bytes([0x90, 60, 0xF8, 100, 0xFA, 62, 0xFE, 90]))
    assert out == [b"\xf8", bytes([0x90, 60, 100]), b"\xfa", b"\xfe", bytes([0x90, 62, 90])]


def test_truncated_message_is_dropped_and_counted() -> None:
    out, p = parse(bytes([0x90, 60, 0x80, 60, 0]))
    assert out == [bytes([0x80, 60, 0])]
    assert p.stats.truncated == 1


def test_stray_data_without_running_status_is_dropped() -> None:
    out, p = parse(bytes([1, 2, 3, 0xC0, 5]))
    assert out == [bytes([0xC0, 5])]
    assert p.stats.stray_data_bytes == 3


def test_system_common_cancels_running_status() -> None:
    out, p = parse(bytes([0x90, 60, 100, 0xF6, 62, 90]))
    assert out == [bytes([0x90, 60, 100]), b"\xf6"]
    assert p.stats.stray_data_bytes == 2


def test_sysex_is_capped() -> None:
    short, _ = parse(bytes([0xF0, 1, 2, 3, 0xF7]), sysex_limit=8)
    assert short == [bytes([0xF0, 1, 2, 3, 0xF7])]
    long, p = parse(bytes([0xF0, *range(20), 0xF7, 0x90, 1, 2]), sysex_limit=8)
    assert long == [bytes([0x90, 1, 2])]
    assert p.stats.sysex_too_long == 1


def test_unterminated_sysex_ends_at_the_next_status() -> None:
    out, p = parse(bytes([0xF0, 1, 2, 0x90, 60, 100]))
    assert out == [bytes([0x90, 60, 100])]
    assert p.stats.truncated == 1


def test_a_message_split_across_feeds_is_joined() -> None:
    p = MidiByteParser()
    assert list(p.feed(bytes([0x90, 60]))) == []
    assert list(p.feed(bytes([100]))) == [bytes([0x90, 60, 100])]


channel_message = st.builds(
    lambda status, ch, d: bytes([status | ch, *d[: LENGTH[status] - 1]]),
    st.sampled_from(sorted(LENGTH)), st.integers(0, 15),
    st.lists(st.integers(0, 127), min_size=2, max_size=2))


@settings(max_examples=300)
@given(st.lists(channel_message, max_size=40), st.data())
def test_compressed_stream_with_realtime_noise_round_trips(messages: list[bytes],
                                                           data: st.DataObject) -> None:
    """Any valid stream, sent with running status and real-time bytes sprinkled in, comes back."""
    wire = bytearray()
    running = None
    realtime_sent = []
    for m in messages:
        body = m[1:] if m[0] == running else m
        running = m[0]
        for b in body:
            if data.draw(st.booleans()):
                rt = data.draw(st.sampled_from([0xF8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF]))
                realtime_sent.append(bytes([rt]))
                wire.append(rt)
            wire.append(b)
    out, p = parse(bytes(wire))
    assert [m for m in out if m[0] < 0xF8] == messages
    assert [m for m in out if m[0] >= 0xF8] == realtime_sent
    assert p.stats.dropped == 0


@settings(max_examples=500)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_any_bytes_never_raise_and_yield_only_well_formed_messages(chunks: list[bytes]) -> None:
    p = MidiByteParser(sysex_limit=16)
    for chunk in chunks:
        for m in p.feed(chunk):
            assert m[0] >= 0x80
            assert all(b < 0x80 for b in m[1:-1])
            if m[0] < 0xF0:
                assert len(m) == LENGTH[m[0] & 0xF0]
            elif m[0] == 0xF0:
                assert m[-1] == 0xF7 and len(m) <= 18
            else:
                assert len(m) == {0xF1: 2, 0xF2: 3, 0xF3: 2}.get(m[0], 1)
