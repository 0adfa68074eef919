"""How the players strike their chords: together and changing at nearly every beat (a chorale,
a hymn, a pianist's bass and tune moving together) or not (one line, or a band holding one chord
under a melody). Pure.

A comp that strikes on the beat strikes a guess: the chord it expects there. Where the players
change harmony at every beat and strike the change together, that guess is wrong often enough to
be heard: on the chorale piece, every comp note that clashed with a player struck with the
players' new notes. There a band member plays just after the beat, on what was just struck.
This module says when that is so; policy/accompanist.py acts on it.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from agent.listen.beat import MERGE_NS

TOGETHER_NS = MERGE_NS  # onsets this close to a cluster's first are struck together (one chord)
CLUSTERS = 8  # the recent clusters judged: two bars of a chorale's beats
CHANGING = 0.5  # a share of changing, struck-together clusters at least this is chordal
# A silence this long ends the texture heard: the next tune (or the chorale's last chord held
# and let go) starts afresh rather than being comped after the beat for two bars.
FORGET_NS = 3_000_000_000


@dataclass
class _Cluster:
    t_ns: int
    pitch_classes: set[int]


@dataclass
class Strikes:
    """The recent onset clusters, fed note-on by note-on."""

    _clusters: deque[_Cluster] = field(default_factory=lambda: deque(maxlen=CLUSTERS + 1))

    def note_on(self, pitch: int, t_ns: int) -> None:
        last = self._clusters[-1] if self._clusters else None
        if last is not None and 0 <= t_ns - last.t_ns <= TOGETHER_NS:
            last.pitch_classes.add(pitch % 12)
            return
        if last is not None and t_ns - last.t_ns > FORGET_NS:
            self._clusters.clear()
        self._clusters.append(_Cluster(t_ns, {pitch % 12}))

    def changing_together(self) -> float:
        """The share of the last CLUSTERS clusters (each against the one before) of two pitch
        classes or more (by one player or several: unison and octaves are one line, not a
        chord) with pitch classes the one before did not hold: a new chord, struck together.
        0 until CLUSTERS + 1 clusters are heard."""
        clusters = list(self._clusters)
        if len(clusters) <= CLUSTERS:
            return 0.0
        changing = sum(1 for before, now in itertools.pairwise(clusters)
                       if len(now.pitch_classes) >= 2
                       and not now.pitch_classes <= before.pitch_classes)
        return changing / CLUSTERS

    def chordal(self) -> bool:
        """The players strike a new chord together at most onsets (changing_together)."""
        return self.changing_together() >= CHANGING

    def last_chord(self, now_ns: int, within_ns: int) -> frozenset[int] | None:
        """The pitch classes of the newest cluster of two or more, if it began within
        `within_ns` of now: what was struck on the beat, though its keys may be up again."""
        for cluster in reversed(self._clusters):
            if now_ns - cluster.t_ns > within_ns:
                return None
            if len(cluster.pitch_classes) >= 2:
                return frozenset(cluster.pitch_classes)
        return None
