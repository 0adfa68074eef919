"""Make the demo rehearsal: "Frère Jacques" (traditional, public domain) traded by two players.

Run from the repository root:  python performances/demo/make_rehearsal.py
Writes performances/demo/rehearsal.mid (type 1: one track per player). Deterministic (seeded).

The two players take turns phrase by phrase, each phrase followed by two bars of rest in which the
agent can answer; the last round they play together as a canon. Human-like playing, as in the
rehearsals made from corpus pieces (agent/record/rehearsal.py, whose note humanising and file
writing this uses): onsets drift with a slow push and pull plus ±10 ms jitter, dynamics follow the
beat accents with some noise, and notes are held for 80 to 95% of their written length.
"""

from __future__ import annotations

import random
from pathlib import Path

from agent.record.rehearsal import Played, humanise_note, to_smf

TEMPO_BPM = 100
TICKS_PER_BEAT = 480
SEED = 2026

# The tune in (MIDI pitch, beats) pairs, from C4 = 60; each phrase is two bars of 4/4.
PHRASES: list[list[tuple[int, float]]] = [
    [(60, 1), (62, 1), (64, 1), (60, 1)] * 2,                                   # Frère Jacques
    [(64, 1), (65, 1), (67, 2)] * 2,                                            # Dormez-vous
    [(67, .5), (69, .5), (67, .5), (65, .5), (64, 1), (60, 1)] * 2,             # Sonnez les matines
    [(60, 1), (55, 1), (60, 2)] * 2,                                            # Din, dan, don
]
PLAYERS = [("melody", 0, 12), ("cello", 1, -12)]  # name, channel, transposition


def perform(rng: random.Random) -> dict[str, list[Played]]:
    """{player: notes as played}."""
    beat_s = 60 / TEMPO_BPM
    notes: dict[str, list[Played]] = {p[0]: [] for p in PLAYERS}
    t_beats = 1.0  # one beat of silence before the first note

    def play(player: tuple[str, int, int], phrase: list[tuple[int, float]], start: float) -> None:
        name, channel, shift = player
        b = start
        for pitch, beats in phrase:
            wander = 0.02 * beat_s * (b % 8 - 4) / 4  # a slow push and pull over two bars
            accent = 1.0 if b % 4 == 0 else (0.85 if b % 2 == 0 else 0.75)
            onset, velocity, duration = humanise_note(rng, b * beat_s + wander, beats * beat_s,
                                                      accent)
            notes[name].append(Played(max(0.0, onset), channel, pitch + shift, velocity,
                                      duration))
            b += beats

    for phrase in PHRASES:  # trading phrases, two bars of rest after each
        for player in PLAYERS:
            play(player, phrase, t_beats)
            t_beats += 16
    for i in range(len(PHRASES)):  # the canon: the cello enters two bars behind the melody
        play(PLAYERS[0], PHRASES[i], t_beats + 8 * i)
        play(PLAYERS[1], PHRASES[i], t_beats + 8 * (i + 1))
    return notes


if __name__ == "__main__":
    out = Path(__file__).with_name("rehearsal.mid")
    to_smf(perform(random.Random(SEED)), TEMPO_BPM, ticks_per_beat=TICKS_PER_BEAT).save(out)
    print(f"wrote {out}")
