"""`stage-agent perform` on real parts, taking takes, markers and captures: a director's commands
over a real mosquitto broker, notes through real JACK ports, and the folders it writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mido
import pytest

from agent import midi
from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME, MIDI_NAME

from .broker import Broker, needs_mosquitto
from .director import Director
from .jackpeer import FIFTH_UP, Peer, running_agent, write_piece

pytestmark = [pytest.mark.jack, needs_mosquitto]

PIECE = FIFTH_UP + """[record]
capture_s = 60.0
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
agent = "keys-agent"
"""


@pytest.fixture
def stage(jack_server: JackServer, tmp_path: Path) -> Iterator[tuple[Peer, Path, Broker]]:
    name = "takes"
    peer = Peer(name, f"{name}-keys", f"{name}-synth", jack_server.xruns)
    broker = Broker(tmp_path)
    broker.start()
    config = write_piece(tmp_path, PIECE, name, mqtt_port=broker.port)
    yield peer, config, broker
    broker.stop()
    peer.close()


def play(peer: Peer, pitch: int) -> None:
    """A note and its release, each heard (its harmony a fifth up came back) before going on."""
    peer.send(0x90, pitch, 90)
    assert peer.expect(1)[0][1] == [0x91, pitch + 7, 90]
    peer.send(0x80, pitch, 0)
    assert midi.is_note_off(bytes(peer.expect(1)[0][1]))


def notes_in(records: list[dict[str, Any]]) -> list[str]:
    return [r["data"] for r in records if r["k"] == "in"]


def played(*pitches: int) -> list[str]:
    return [bytes(m).hex() for p in pitches for m in ([0x90, p, 90], [0x80, p, 0])]


def hanging(path: Path) -> list[int]:
    mid = mido.MidiFile(path)
    on: dict[tuple[str, int, int], int] = {}
    for track in mid.tracks:
        for m in track:
            key = (track.name, getattr(m, "channel", 0), getattr(m, "note", 0))
            if m.type == "note_on" and m.velocity:
                on[key] = on.get(key, 0) + 1
            elif m.type in ("note_on", "note_off") and on.get(key):
                on[key] -= 1
    return [k[2] for k, n in on.items() if n]


def test_takes_markers_and_captures_are_saved_while_the_agent_plays(
        stage: tuple[Peer, Path, Broker], jack: dict[str, str]) -> None:
    peer, config, broker = stage
    director = Director(broker.port, "stage/takes/keys-agent/")
    try:
        with running_agent(config, jack, peer) as agent:
            director.wait_until("status", lambda p: p == {"state": "online"})
            play(peer, 60)
            assert director.ask("record", "s1", action="start", name="verse one") == {
                "reply": "evt/ack", "id": "s1", "verb": "record"}
            play(peer, 62)
            assert director.ask("record", "m1", action="mark", label="the drop")["reply"] == \
                "evt/ack"
            play(peer, 64)
            assert director.ask("record", "s2", action="stop")["reply"] == "evt/ack"
            take = director.wait_until("state/take", lambda p: p["state"] != "saving")
            assert sorted(take) == ["folder", "name", "records", "seconds", "state"]
            assert (take["state"], take["folder"], take["name"]) == (
                "saved", "takes/01-verse-one", "verse one")
            play(peer, 65)
            assert director.ask("capture-save", "c1", seconds=3600)["reply"] == "evt/ack"
            capture = director.wait_until("state/capture", lambda p: p["state"] != "saving")
            assert capture["state"] == "saved" and capture["folder"] == "captures/01-capture"
            assert director.ask("record", "bad", action="stop") == {
                "reply": "evt/error", "id": "bad", "verb": "record",
                "error": "record stop: no take is running (record start first)"}
            assert agent.wait() == 0, agent.err
    finally:
        director.close()
    recording = config.parent / agent.recording
    assert "stage-agent: take saved to takes/01-verse-one" in agent.out
    assert "  take takes/01-verse-one: " in agent.out  # and in the summary, with the marker
    assert " s the drop" in agent.out.split("  markers: ")[1].splitlines()[0]
    _header, records = read_log(recording / LOG_NAME)
    assert notes_in(records) == played(60, 62, 64, 65)
    for folder, notes in (("takes/01-verse-one", played(62, 64)),
                          ("captures/01-capture", played(60, 62, 64, 65))):
        header, sliced = read_log(recording / folder / LOG_NAME)
        window = header["slice"]
        assert window["of"] == recording.name
        assert sliced == [r for r in records if window["from_ns"] <= r["t"] <= window["to_ns"]]
        assert notes_in(sliced) == notes, folder
        assert hanging(recording / folder / MIDI_NAME) == [], folder
    marks = [m.text for m in mido.MidiFile(recording / MIDI_NAME).tracks[0] if m.type == "marker"]
    assert marks == ["take start: verse one", "the drop", "take stop"]
    assert hanging(recording / MIDI_NAME) == []
