"""performance.mid, written by agent/record/smf.py itself (no mido object a message): the same
bytes as mido wrote for the same records (tests/midi_files.mido_export, the code as it was),
for any mix of messages, times out of order, markers, slices and notes left sounding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.record import smf
from tests.midi_files import mido_export

HEADER = {"config": {"players": [{"name": "melody"}, {"name": "cello"}]}}
CHANNEL = st.integers(0, 15)
BYTE = st.integers(0, 127)
MESSAGES = st.one_of(
    st.builds(lambda c, n, v: bytes((0x90 | c, n, v)), st.integers(0, 2), st.integers(60, 63),
              BYTE),  # few pitches: notes overlap, are re-struck, are left sounding
    st.builds(lambda c, n, v: bytes((0x80 | c, n, v)), st.integers(0, 2), st.integers(60, 63),
              BYTE),
    st.builds(lambda c, k, v: bytes((0xB0 | c, k, v)), CHANNEL, st.sampled_from([1, 64, 7]),
              BYTE),  # the sustain pedal among them
    st.builds(lambda c, p: bytes((0xC0 | c, p)), CHANNEL, BYTE),
    st.builds(lambda c, v: bytes((0xD0 | c, v)), CHANNEL, BYTE),
    st.builds(lambda c, a, b: bytes((0xE0 | c, a, b)), CHANNEL, BYTE, BYTE),
    st.builds(lambda d: bytes((0xF0, *d, 0xF7)), st.lists(BYTE, max_size=200)),
    st.sampled_from([b"\xf8", b"\xfa", b"\xf2\x10\x00", b"\xf6"]),  # the log's only
)
MIDI = st.builds(lambda k, t, who, data: {"t": t, "k": k, **(
    {"player": who} if k == "in" else {"port": "out", "deadline": t, "why": "x", "ok": True}),
    "data": data.hex()}, st.sampled_from(["in", "emit"]),
    st.integers(10**9, 10**9 + 4 * 10**9), st.sampled_from(["melody", "cello"]), MESSAGES)
MARKS = st.builds(lambda t, action, label: {"t": t, "k": "ctl", "what": "record",
                                            "action": action, "label": label, "name": label},
                  st.integers(10**9, 10**9 + 4 * 10**9),
                  st.sampled_from(["mark", "start", "stop", "discard"]),
                  st.one_of(st.none(), st.text(max_size=6)))  # beyond Latin-1 too
OTHERS = st.builds(lambda t: {"t": t, "k": "state", "what": "tempo", "bpm": 120},
                   st.integers(0, 10**10))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(MIDI, MIDI, MIDI, MARKS, OTHERS), max_size=60),
       st.one_of(st.none(), st.integers(0, 3 * 10**9)),
       st.one_of(st.none(), st.integers(10**9, 6 * 10**9)))
def test_the_file_is_the_one_mido_wrote(tmp_path_factory: pytest.TempPathFactory,
                                        records: list[dict[str, Any]], start: int | None,
                                        end: int | None) -> None:
    path = tmp_path_factory.mktemp("smf") / "performance.mid"
    smf.export(HEADER, records, path, start, end)
    assert path.read_bytes() == mido_export(HEADER, records, start, end)


def test_a_long_sysex_and_long_gaps_take_multi_byte_lengths(tmp_path: Path) -> None:
    records = [{"t": 0, "k": "in", "player": "melody", "data": "90407f"},
               {"t": 3 * 10**12, "k": "in", "player": "melody", "data": "804000"},
               {"t": 3 * 10**12 + 1, "k": "emit", "port": "out", "deadline": 0, "why": "x",
                "ok": True, "data": "f0" + "01" * 20_000 + "f7"}]
    smf.export(HEADER, records, tmp_path / "a.mid")
    assert (tmp_path / "a.mid").read_bytes() == mido_export(HEADER, records)


def test_no_records_make_a_file_of_empty_tracks(tmp_path: Path) -> None:
    smf.export(HEADER, [], tmp_path / "a.mid")
    assert (tmp_path / "a.mid").read_bytes() == mido_export(HEADER, [])
