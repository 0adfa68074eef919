"""The agent's voices in space: fed the recording's records, asked for a frame per tick.

The engine listens to the same records the log gets (a tap on the event log), so live and a
replay of the log move the voices the same way, and the replay summary can draw them:

- a phrase decision (answer, continue, mirror, solo) starts a new gesture for the "lead" voice,
  a comp decision for the "comp" voice (choreography.py);
- a section decision switches the gesture style ([spatial] style, or the section's own);
- each note-on the agent sends becomes an onset event for the visuals, at its voice's place.

Pure apart from its own state; no I/O. `frame(t)` costs a few microseconds per voice.
"""

from __future__ import annotations

import json
import math
import random
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent import midi
from agent.spatial.choreography import direction, elevation_for, new_gesture
from agent.spatial.frame import Frame, Voice
from agent.spatial.trajectory import Gesture, Point, position

LEAD, COMP = "lead", "comp"
VOICES = (LEAD, COMP)
PHRASES = ("answer", "continue", "mirror", "solo")
# The decisions that move the voices (a new gesture, or another style); nothing else does: a
# note-on only marks an onset at a voice's place, a mute only silences the voices.
MOVES = (*PHRASES, "comp", "section")
@dataclass(frozen=True, slots=True)
class Onset:
    voice: int  # voice number, from 1
    pitch: int
    velocity: int
    time_ns: int
    where: Point


class SpatialEngine:
    def __init__(self, *, floor_z: float, players: Mapping[str, Point], style: str,
                 section_styles: Mapping[str, str], seed: int, output: str,
                 voices: Sequence[str] = VOICES) -> None:
        self.voices = tuple(voices)
        self.floor_z = floor_z
        self.floor_deg = math.degrees(math.asin(max(min(floor_z, 1.0), -1.0)))
        self.players = dict(players)
        self.default_style = style
        self.style = style
        self.section_styles = dict(section_styles)
        self.output = output  # the agent's first output port: its note-ons are the onsets
        self.rng = random.Random(seed)
        start = direction(0.0, elevation_for(60, self.floor_deg), 0.9)
        self.gestures = {v: Gesture("static", 0, start, target=start) for v in self.voices}
        self._planned: dict[tuple[int, int], str] = {}  # (start ns, pitch) -> voice
        self.onsets: list[Onset] = []  # since the last drain
        self.scenes: list[str] = []
        self.counter = 0
        self.muted = False

    # -- records in ---------------------------------------------------------------------------
    def record(self, r: Mapping[str, Any]) -> None:
        kind, t = r["k"], r["t"]
        if kind == "decision":
            what = r.get("what")
            if what in PHRASES or what == "comp":  # (MOVES: what moves the voices)
                self._phrase(LEAD if what in PHRASES else COMP, what, t, r.get("plan") or [],
                             r.get("caller"))
            elif what == "section":
                self.style = self.section_styles.get(r.get("name") or "", self.default_style)
                self.scenes.append(str(r.get("name")))
        elif kind == "emit" and r.get("port") == self.output:
            data = bytes.fromhex(r["data"])
            if midi.is_note_on(data):
                voice = self._planned.pop((r["deadline"], data[1]), LEAD)
                if voice in self.gestures:
                    self.onsets.append(Onset(self.voices.index(voice) + 1, data[1], data[2], t,
                                             self.where(voice, t)))
        elif kind == "ctl" and r.get("what") in ("panic", "mute", "unmute", "stop"):
            self.muted = r["what"] in ("panic", "mute", "stop")

    def _phrase(self, voice: str, part: str, t: int, plan: Sequence[Sequence[int]],
                caller: str | None) -> None:
        if voice not in self.gestures or not plan:
            return
        for start, pitch, *_ in plan:
            self._planned[(start, pitch)] = voice
        if len(self._planned) > 4096:  # notes cancelled before they played: forget the oldest
            for key in list(self._planned)[:2048]:
                del self._planned[key]
        g = self.gestures[voice]
        if part == "comp" and g.start_ns and g.kind != "static" and t - g.start_ns < 8e9:
            return  # a comp replans every beat: its gesture changes at most every 8 s
        origin = self.where(voice, t)
        first, last = plan[0][0], plan[-1][0]
        self.gestures[voice] = new_gesture(
            self.style, part, t, first, origin, [row[1] for row in plan], last - first,
            self.players.get(caller) if caller else None, self.floor_deg, self.rng,
            caller or "")

    # -- frames out -------------------------------------------------------------------------
    def where(self, voice: str, t_ns: int) -> Point:
        g = self.gestures[voice]
        return position(g, t_ns, self.floor_z, self.players.get(g.player))

    def frame(self, t_ns: int) -> Frame:
        self.counter += 1
        floor, players, muted, gestures = self.floor_z, self.players, self.muted, self.gestures
        voices = []
        for i, name in enumerate(self.voices):  # a plain loop: 64 voices at 50 Hz (bench)
            g = gestures[name]
            x, y, z = position(g, t_ns, floor, players.get(g.player) if g.player else None)
            voices.append(Voice(i + 1, name, x, y, z, 1.0, muted))
        return Frame(self.counter, t_ns, tuple(voices))

    def drain(self) -> tuple[list[Onset], list[str]]:
        onsets, scenes = self.onsets, self.scenes
        self.onsets, self.scenes = [], []
        return onsets, scenes


# A picture of the voices' paths shows at most this many samples per voice: its time axis is
# about 700 px wide, its top view 550 px across. A run longer than MAX_SAMPLES ticks is sampled
# more sparsely: 4 hours at 50 Hz would be 720,000 frames per voice, ~10 s to compute and draw
# when the run stops (systemd's stop timeout is near), and a long time gap in a log would make
# the samples unbounded.
MAX_SAMPLES = 10_000


def sample_step_ns(span_ns: int, tick_hz: float, max_samples: int = MAX_SAMPLES) -> int:
    """The tick period, or longer so that a run of `span_ns` takes at most `max_samples`."""
    return max(round(1e9 / tick_hz), -(-span_ns // max(max_samples - 1, 1)))


def moves(r: Mapping[str, Any]) -> bool:
    """Whether the record moves the voices (SpatialEngine.record of a MOVES decision)."""
    return r["k"] == "decision" and r.get("what") in MOVES


class PathRecords:
    """What `trajectories` needs of a run, gathered record by record (a Session keeps one as a
    tap on its log, so that the end of a run need not read the log back): the records that move
    the voices (`moves`: a few in a hundred), each with the latest time of any record up to it,
    and the span of all the records."""

    def __init__(self) -> None:
        # Each as its JSON text: a str is one object the garbage collector never walks, where
        # the record's dict and its plan's lists are a dozen it walks at every full collection
        # (a 3-hour show's 65,000 decisions made one take ~130 ms: on stage, JACK's thread can
        # wait that long for the GIL).
        self.records: list[str] = []
        # Going through every record, the paths are sampled up to each record's time before it
        # goes to the engine: up to the latest time so far, for the records kept here.
        self.upto = array("q")
        self.start_ns: int | None = None  # the first record's time
        self.end_ns = 0  # the latest

    def add(self, r: Mapping[str, Any]) -> None:
        t = r["t"]
        if self.start_ns is None:
            self.start_ns = self.end_ns = t
        elif t > self.end_ns:
            self.end_ns = t
        if moves(r):
            self.records.append(json.dumps(r, separators=(",", ":")))
            self.upto.append(self.end_ns)

    def sample(self, engine: SpatialEngine, tick_hz: float, max_samples: int = MAX_SAMPLES
               ) -> dict[str, list[tuple[int, Point]]]:
        """trajectories, of the records gathered here."""
        out: dict[str, list[tuple[int, Point]]] = {v: [] for v in engine.voices}
        if self.start_ns is None:
            return out
        t = self.start_ns
        step = sample_step_ns(self.end_ns - t, tick_hz, max_samples)

        def until(end_ns: int) -> None:
            nonlocal t
            while t <= end_ns:
                for name, voice in zip(engine.voices, engine.frame(t).voices, strict=True):
                    out[name].append((t, (voice.x, voice.y, voice.z)))
                t += step

        for text, upto in zip(self.records, self.upto, strict=True):
            until(upto)
            engine.record(json.loads(text))
        until(self.end_ns)
        return out


def trajectories(engine: SpatialEngine, records: Iterable[Mapping[str, Any]],
                 tick_hz: float, max_samples: int = MAX_SAMPLES
                 ) -> dict[str, list[tuple[int, Point]]]:
    """Every voice's path over a recorded run, sampled at `tick_hz` as live, or evenly at most
    `max_samples` times when the run is longer (the same records in the same order move the
    engine as they did on stage)."""
    paths = PathRecords()
    for r in records:
        paths.add(r)
    return paths.sample(engine, tick_hz, max_samples)
