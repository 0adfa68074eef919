"""Make the demo rehearsal: "Frère Jacques" (traditional, public domain) traded by two players.

Run from the repository root:  python performances/demo/make_rehearsal.py
Writes performances/demo/rehearsal.mid (type 1: one track per player). Deterministic (seeded).

The two players take turns phrase by phrase, each phrase followed by two bars of rest in which the
agent can answer; the last round they play together as a canon. Human-like playing: onsets drift
with a slow tempo wander plus ±10 ms jitter, dynamics follow the beat accents with some noise, and
notes are held for 80 to 95% of their written length.
"""

from __future__ import annotations

import random
from pathlib import Path

import mido

TEMPO_BPM = 100
TICKS_PER_BEAT = 480
SEED = 2026

# The tune in (MIDI pitch, beats) pairs, from C4 = 60; each phrase is two bars of 4/4.
PHRASES = [
    [(60, 1), (62, 1), (64, 1), (60, 1)] * 2,                                   # Frère Jacques
    [(64, 1), (65, 1), (67, 2)] * 2,                                            # Dormez-vous
    [(67, .5), (69, .5), (67, .5), (65, .5), (64, 1), (60, 1)] * 2,             # Sonnez les matines
    [(60, 1), (55, 1), (60, 2)] * 2,                                            # Din, dan, don
]
PLAYERS = [("melody", 0, 12), ("cello", 1, -12)]  # name, channel, transposition


def perform(rng: random.Random) -> dict[str, list[tuple[float, int, int, int, float]]]:
    """{player: [(onset_s, channel, pitch, velocity, duration_s)]}."""
    beat_s = 60 / TEMPO_BPM
    notes: dict[str, list[tuple[float, int, int, int, float]]] = {p[0]: [] for p in PLAYERS}
    t_beats = 1.0  # one beat of silence before the first note

    def play(player: tuple[str, int, int], phrase: list[tuple[int, float]], start: float) -> None:
        name, channel, shift = player
        b = start
        for pitch, beats in phrase:
            wander = 0.02 * beat_s * (b % 8 - 4) / 4  # a slow push and pull over two bars
            onset = b * beat_s + wander + rng.gauss(0, 0.010)
            accent = 1.0 if b % 4 == 0 else (0.85 if b % 2 == 0 else 0.75)
            velocity = max(20, min(120, round(92 * accent + rng.gauss(0, 6))))
            duration = beats * beat_s * rng.uniform(0.80, 0.95)
            notes[name].append((max(0.0, onset), channel, pitch + shift, velocity, duration))
            b += beats

    for phrase in PHRASES:  # trading phrases, two bars of rest after each
        for player in PLAYERS:
            play(player, phrase, t_beats)
            t_beats += 16
    for i in range(len(PHRASES)):  # the canon: the cello enters two bars behind the melody
        play(PLAYERS[0], PHRASES[i], t_beats + 8 * i)
        play(PLAYERS[1], PHRASES[i], t_beats + 8 * (i + 1))
    return notes


def to_midi(notes: dict[str, list[tuple[float, int, int, int, float]]]) -> mido.MidiFile:
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    tempo = mido.bpm2tempo(TEMPO_BPM)
    mid.tracks.append(mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=tempo, time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
    ]))
    for name, played in notes.items():
        events = []
        for onset, ch, pitch, vel, dur in played:
            events.append((mido.second2tick(onset, TICKS_PER_BEAT, tempo), 1,
                           mido.Message("note_on", channel=ch, note=pitch, velocity=vel)))
            events.append((mido.second2tick(onset + dur, TICKS_PER_BEAT, tempo), 0,
                           mido.Message("note_off", channel=ch, note=pitch, velocity=0)))
        events.sort(key=lambda e: (e[0], e[1]))  # at equal ticks a note-off goes first
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        last = 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - last))
            last = tick
        mid.tracks.append(track)
    return mid


if __name__ == "__main__":
    out = Path(__file__).with_name("rehearsal.mid")
    to_midi(perform(random.Random(SEED))).save(out)
    print(f"wrote {out}")
