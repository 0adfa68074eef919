"""The comp part: which chord a comp plays in each half bar, and its strokes, on the bars heard.

What the pipeline asks the moment before a stroke sounds: the chord expected there
(listen/progression.py: what usually follows, what is heard so far, the form, the section's
chord chart) and the notes of the rest of this half bar and the next bar (policy/comping.py's
patterns and voicings). The chart's bars are counted from the bar the section began in.
No scheduling, no logging: the pipeline commits what it gets and records why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.chart import chord_at, parse_chart
from agent.config import Config
from agent.events import PlannedNote
from agent.listen.bars import Bars
from agent.listen.harmony import ChordEstimate, estimate_chord
from agent.listen.hearing import Hearing
from agent.listen.progression import Expectation, HalfBar, Progression
from agent.policy.comping import (
    after_the_beat,
    bass_note,
    clear_of,
    comp_range,
    pattern,
    stroke_velocity,
    voicing,
)
from agent.policy.controls import Mood

# A comp stroke is decided this long before it sounds: late enough to have heard what the players
# played up to it (the beat's melody note, for the off-beat's chord), early enough that the
# loop's jitter (p99 of a few ms, bench/soak.py) never makes it late.
COMP_LEAD_NS = 40_000_000
# And committed (sent to the scheduler) this long before it sounds, after that decision: a
# plan made earlier on the grid heard then places the stroke up to a few ms away from where the
# decision's timer (armed on that grid) falls, and must not be committed before it runs.
COMP_COMMIT_NS = 25_000_000
SURE_TONE = 0.5  # a chord tone less likely than this to be in the players' chord is left out


@dataclass(frozen=True)
class _Struck:
    struck: frozenset[int]  # the pitch classes struck together on the beat
    chord: ChordEstimate  # the chord they make


@dataclass(frozen=True)
class CompStrokes:
    """What Accompanist.strokes decided: the notes, the beat's length, and the chord they
    voice with what decided it (an Expectation's source, or "struck": the chord the players
    struck on the beat just gone, see Accompanist.strokes)."""

    notes: list[PlannedNote]
    beat_ns: int
    chord: str
    source: str


class Accompanist:
    def __init__(self, config: Config, bars: Bars, progression: Progression,
                 hearing: Hearing) -> None:
        self.bars = bars
        self.progression = progression
        self.hearing = hearing
        self._division = config.performance.beat_division
        self._charts = tuple(parse_chart(s.chords) for s in config.sections)
        self._voicing: list[int] = []  # the last chord voiced (the next moves from it)
        self._section_began_ns: int | None = None  # None: the piece's first section
        self._section_beat: float | None = None  # its beat number, once a grid placed it
        self._first_onset_ns: int | None = None

    def heard_onset(self, t_ns: int) -> None:
        if self._first_onset_ns is None:
            self._first_onset_ns = t_ns

    def section_began(self, t_ns: int) -> None:
        self._section_began_ns = t_ns
        self._section_beat = None

    def expect(self, t_ns: int, section: int) -> Expectation | None:
        """The chord expected in the half bar that sounds COMP_LEAD_NS from now (`section`:
        the index of the section playing, -1 without sections)."""
        at = self.bars.half_bar(t_ns + COMP_LEAD_NS)
        if at is None:
            return None
        key = self.hearing.key()
        return self.progression.expect(
            at, t_ns, (key.tonic, key.mode) if key is not None else None,
            [(pitch, onset) for (_p, _c, pitch), onset in self.hearing.held.items()],
            self.bars.halves, self.chart_triad(at, section))

    def chart_triad(self, at: HalfBar, section: int) -> int | None:
        """The triad the section's chord chart has for a half bar (None: no chart, or N.C.).
        Its bars are counted, as a player reading it counts them, from the bar the section
        began in (a cue's, or the players' first: a pickup belongs to the bar it leads into),
        on the bar lines heard."""
        chart = self._charts[section] if section >= 0 else ()
        if not chart:
            return None
        if self._section_beat is None:
            # The beat the section began on, placed once, as soon as a grid is heard: placed
            # again later, the tempo's drift since would move it by bars.
            began = self._section_began_ns if self._section_began_ns is not None \
                else self._first_onset_ns
            self._section_beat = None if began is None else self.bars.beat_at(began)
        if self._section_beat is None:
            return None
        origin = self.bars.bar_of(self._section_beat)  # on the bar lines heard now
        halves = self.bars.halves
        chord = chord_at(chart, at.index // halves - origin,
                         (at.index % halves + 0.5) / halves)
        return None if chord is None else chord.triad

    def strokes(self, t_ns: int, expected: Expectation | None, m: Mood,
                soloist_low: int | None) -> CompStrokes | None:
        """The comp from now to the end of the next bar in the expected chord, under the
        soloist, on the grid heard now; None when there is nothing to play (no grid, no chord,
        no room under the soloist). Where the players strike a new chord together at nearly
        every beat (Hearing.strikes), a chord foreseen for the beat would be struck with their
        change and often clash with it: the comp then plays just after each beat, the chord of
        the notes held then (what they struck), and lets go before the next beat."""
        at = self.bars.half_bar(t_ns + COMP_LEAD_NS)
        if expected is None or at is None:
            return None
        low, high = comp_range(soloist_low, m.register)
        velocity = min(max(round(self.hearing.recent_velocity() - 18 + m.velocity_shift), 1),
                       127)
        held = [pitch for (_p, _c, pitch) in self.hearing.held]
        halves = self.bars.halves
        chordal = self.hearing.strikes.chordal()
        tones, name, source = expected.likely_tones(SURE_TONE), expected.name, expected.source
        struck = self._struck(t_ns, held, at.beat_ns) if chordal else None
        # The chart, when the players keep to it, still says the chord; so does the expected
        # chord when it holds every pitch class struck (two voices leave the triad open: E and
        # G are C as often as E minor). Otherwise the chord of what was struck.
        if struck is not None and source != "chart" \
                and not struck.struck <= expected.pitch_classes:
            tones, name, source = struck.chord.pitch_classes, struck.chord.name, "struck"
        strokes = (after_the_beat if chordal else pattern)(
            self.bars.beats_per_bar // halves, m.density, self._division)
        chord = clear_of(tones, held)
        voiced = voicing(chord, low, high, self._voicing)
        if not voiced:
            return None
        self._voicing = voiced
        surest = expected.tones[0][0] if expected.tones else expected.triad % 12
        bass = bass_note(surest, voiced) if surest in chord else voiced[0]
        notes: list[PlannedNote] = []
        for h in range(halves + 1):  # this half bar and a bar more
            start = at.start_ns + h * at.length_ns
            for i, stroke in enumerate(strokes):
                onset = start + round(stroke.at * at.beat_ns)
                if onset < t_ns:
                    continue
                vel = stroke_velocity(stroke, i == 0, velocity)
                notes += [PlannedNote(onset, p, vel, round(stroke.length * at.beat_ns))
                          for p in ([bass] if stroke.bass else voiced)]
        return CompStrokes(notes, at.beat_ns, name, source)

    def _struck(self, t_ns: int, held: list[int], beat_ns: int) -> _Struck | None:
        """What the players struck on the beat: the keys down now if they hold two pitch
        classes or more, else the last chord struck within a beat (detached playing lets go
        before the stroke after the beat is decided); None without one."""
        down = frozenset(p % 12 for p in held)
        struck = down if len(down) >= 2 else self.hearing.strikes.last_chord(t_ns, beat_ns)
        if struck is None:
            return None
        profile = np.zeros(12)
        profile[list(struck)] = 1.0
        chord = estimate_chord(profile, min(held) if len(down) >= 2 else None)
        return None if chord is None else _Struck(struck, chord)
