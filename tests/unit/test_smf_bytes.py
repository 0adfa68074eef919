"""The lean SMF reader and writer (agent/model/smf_bytes.py) against mido, on files mido wrote
(mido writes running status) and on bytes written by hand for what mido cannot write."""

from __future__ import annotations

import io

import mido
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model.smf_bytes import SmfError, read_smf, write_smf

CHANNEL_MESSAGES = st.one_of(
    st.builds(lambda c, n, v: mido.Message("note_on", channel=c, note=n, velocity=v),
              st.integers(0, 15), st.integers(0, 127), st.integers(0, 127)),
    st.builds(lambda c, n, v: mido.Message("note_off", channel=c, note=n, velocity=v),
              st.integers(0, 15), st.integers(0, 127), st.integers(0, 127)),
    st.builds(lambda c, k, v: mido.Message("control_change", channel=c, control=k, value=v),
              st.integers(0, 15), st.integers(0, 127), st.integers(0, 127)),
    st.builds(lambda c, p: mido.Message("program_change", channel=c, program=p),
              st.integers(0, 15), st.integers(0, 127)),
    st.builds(lambda c, v: mido.Message("pitchwheel", channel=c, pitch=v),
              st.integers(0, 15), st.integers(-8192, 8191)),
    st.builds(lambda c, v: mido.Message("aftertouch", channel=c, value=v),
              st.integers(0, 15), st.integers(0, 127)),
    st.builds(lambda d: mido.Message("sysex", data=d),
              st.lists(st.integers(0, 127), max_size=8)),
    st.builds(lambda t: mido.MetaMessage("set_tempo", tempo=t), st.integers(1, 0xFFFFFF)),
    st.builds(lambda n: mido.MetaMessage("track_name", name=n),
              st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=12)),
)
TRACKS = st.lists(st.lists(st.tuples(st.integers(0, 300_000), CHANNEL_MESSAGES), max_size=40),
                  min_size=1, max_size=4)


def mido_bytes(tracks: list[list[tuple[int, mido.Message]]], tpb: int, fmt: int = 1) -> bytes:
    mid = mido.MidiFile(type=fmt, ticks_per_beat=tpb)
    for events in tracks:
        mid.tracks.append(mido.MidiTrack(m.copy(time=t) for t, m in events))
    buffer = io.BytesIO()
    mid.save(file=buffer)
    return buffer.getvalue()


def as_mido_reads(data: bytes) -> list[tuple[list[tuple[int, bytes]], list[tuple[int, str]]]]:
    """Per track: (tick, channel message bytes), (tick, meta type) as mido parses them."""
    out = []
    for track in mido.MidiFile(file=io.BytesIO(data)).tracks:
        tick, messages, metas = 0, [], []
        for msg in track:
            tick += msg.time
            if msg.is_meta:
                if msg.type != "end_of_track":
                    metas.append((tick, msg.type))
            elif msg.type != "sysex":
                messages.append((tick, bytes(msg.bytes())))
        out.append((messages, metas))
    return out


META_NAMES = {0x03: "track_name", 0x51: "set_tempo"}


@settings(max_examples=60, deadline=None)
@given(TRACKS, st.sampled_from([1, 96, 480, 1000, 0x7FFF]))
def test_reads_every_message_as_mido_does(tracks: list[list[tuple[int, mido.Message]]],
                                          tpb: int) -> None:
    data = mido_bytes(tracks, tpb)
    smf = read_smf(data)
    assert smf.format == 1 and smf.ticks_per_beat == tpb and smf.ticks_per_second is None
    ours = [(t.messages, [(tick, META_NAMES[kind]) for tick, kind, _ in t.metas])
            for t in smf.tracks]
    assert ours == as_mido_reads(data)
    for track, events in zip(smf.tracks, tracks, strict=True):
        names = [m.name for _, m in events if m.type == "track_name"]
        assert track.name == (names[0] if names else None)
        assert len(track.sysex) == sum(1 for _, m in events if m.type == "sysex")


@settings(max_examples=40, deadline=None)
@given(TRACKS)
def test_mido_reads_back_what_the_writer_writes(
        tracks: list[list[tuple[int, mido.Message]]]) -> None:
    timed = [[(t, bytes(m.bytes())) for t, m in sorted(events, key=lambda e: e[0])
              if not m.is_meta and m.type != "sysex"] for events in tracks]
    data = write_smf(timed, 480)
    mid = mido.MidiFile(file=io.BytesIO(data))
    assert mid.type == 1 and mid.ticks_per_beat == 480
    assert [messages for messages, _ in as_mido_reads(data)] == timed
    assert read_smf(data).tracks[0].messages == timed[0]


def test_running_status_is_kept_across_meta_events_and_sysex() -> None:
    """Written by hand: note-ons sharing one status byte, around a meta and a SysEx (mido
    refuses the data byte after the SysEx; players' files have them)."""
    body = bytes([0x00, 0x90, 60, 100,       # note on C4
                  0x10, 62, 90,              # running status: note on D4
                  0x00, 0xFF, 0x01, 0x01, 0x41,  # a text meta event
                  0x10, 60, 0,               # still running: note on C4 velocity 0
                  0x00, 0xF0, 0x02, 0x7E, 0xF7,  # SysEx
                  0x10, 62, 0,               # still running
                  0x00, 0xFF, 0x2F, 0x00])
    data = b"MThd" + bytes([0, 0, 0, 6, 0, 0, 0, 1, 0x01, 0xE0]) + \
        b"MTrk" + len(body).to_bytes(4, "big") + body
    [track] = read_smf(data).tracks
    assert track.messages == [(0, bytes([0x90, 60, 100])), (16, bytes([0x90, 62, 90])),
                              (32, bytes([0x90, 60, 0])), (48, bytes([0x90, 62, 0]))]
    assert track.sysex == [(32, b"\x7e\xf7")]
    assert track.end == 48


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty file"),
    (b"RIFF\x04\x00\x00\x00WAVE", "not a MIDI file (no MThd header)"),
    (b"MThd\x00\x00\x00\x06\x00\x01", "truncated: the header is cut short"),
    (b"MThd\x00\x00\x00\x06\x00\x02\x00\x01\x01\xe0", "SMF type 2"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x00\x00\x00", "its division (ticks per beat) is 0"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x00\x04\x00\xff\x2f\x00",
     "truncated: 1 of its 2 tracks are there"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x08\x00\x90\x3c",
     "truncated: track 1 of 1 has 3 of its 8 bytes"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x03\x00\x90\x3c",
     "truncated: track 1 ends in the middle of a message"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x04\x00\x90\x3c\xc8",
     "corrupt: track 1: data byte 0xc8 above 127"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x03\x00\x3c\x40",
     "corrupt: track 1: a data byte 0x3c with no status before it"),
])
def test_broken_files_are_named_with_what_is_wrong(data: bytes, reason: str) -> None:
    with pytest.raises(SmfError) as e:
        read_smf(data)
    assert str(e.value).startswith(reason)


def test_unknown_chunks_and_a_riff_wrapper_are_read_past() -> None:
    smf = mido_bytes([[(0, mido.Message("note_on", note=60, velocity=9))]], 480)
    header, tracks = smf[:14], smf[14:]
    with_xf = header + b"XFIH\x00\x00\x00\x02ab" + tracks  # a Yamaha XF info chunk
    rmid = b"RIFF" + (len(smf) + 12).to_bytes(4, "little") + b"RMIDdata" + \
        len(smf).to_bytes(4, "little") + smf
    for data in (with_xf, rmid):
        [track] = read_smf(data).tracks
        assert track.messages == [(0, bytes([0x90, 60, 9]))]


def test_smpte_time_is_read_as_ticks_a_second() -> None:
    data = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01" + bytes([0xE7, 40]) + \
        b"MTrk\x00\x00\x00\x04\x00\xff\x2f\x00"  # -25 fps, 40 ticks a frame
    smf = read_smf(data)
    assert smf.ticks_per_beat is None and smf.ticks_per_second == 1000.0
