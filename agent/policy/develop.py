"""Working with a heard phrase: its motif developed (call and response), or imitated (mirror).

Pure: a phrase in, planned notes out (times relative to the answer's start, in ns). Pitches move
within the key's scale ("diatonically"), the way a player sequences a motif up a step: the
intervals change with the scale, so the answer is related to the call, not a copy of it.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import replace

from agent.events import PhraseNote, PlannedNote

MOTIF_NOTES = 4  # the head of the call that an answer develops
VARY_EVERY = 6  # a mirror changes at least every this many notes: it never copies a long run
MIN_SPLIT_NS = 120_000_000  # only notes at least this long are split into two in a mirror


def scale_pitches(scale: Collection[int] | None) -> list[int]:
    """Every MIDI pitch in the scale (all 128 without one)."""
    if not scale:
        return list(range(128))
    return [p for p in range(128) if p % 12 in scale]


def diatonic_shift(pitch: int, steps: int, ladder: Sequence[int]) -> int:
    """`pitch` moved `steps` scale steps along `ladder` (sorted scale pitches); a pitch off the
    scale first snaps to the nearest scale pitch (the lower on a tie). Clamped to the ladder."""
    i = min(range(len(ladder)), key=lambda j: (abs(ladder[j] - pitch), ladder[j]))
    return ladder[min(max(i + steps, 0), len(ladder) - 1)]


def relative(call: Sequence[PhraseNote]) -> list[PlannedNote]:
    """The call as planned notes starting at 0."""
    t0 = call[0].onset_ns if call else 0
    return [PlannedNote(n.onset_ns - t0, n.pitch, n.velocity, n.duration_ns) for n in call]


def develop_motif(call: Sequence[PhraseNote], scale: Collection[int] | None,
                  rng: random.Random) -> list[PlannedNote]:
    """The call's head (up to MOTIF_NOTES notes, a monophonic line: the top note of each chord)
    sequenced one or two scale steps up or down, its rhythm and dynamics kept."""
    head = relative(top_line(call))[:MOTIF_NOTES]
    ladder = scale_pitches(scale)
    steps = rng.choice((-2, -1, 1, 2))
    return [replace(n, pitch=diatonic_shift(n.pitch, steps, ladder)) for n in head]


def mirror(call: Sequence[PhraseNote], scale: Collection[int] | None, rng: random.Random,
           variation: float = 0.3, alternatives: Sequence[int] = (),
           head: int = 0) -> list[PlannedNote]:
    """An imitation of the call with variation.

    The line (top notes) moves a third up or down in the scale. Its first `head` notes stay so
    (the motif a listener recognises the call by: the pipeline keeps MOTIF_NOTES); of the rest,
    a share `variation` (and at least one in every VARY_EVERY notes of the line) changes: a
    long note may be split into two (a passing note on the way to its neighbour), or a pitch
    becomes a neighbour in the scale, or the model's pitch for that note when `alternatives`
    (one per note) offers one nearby.
    """
    line = relative(top_line(call))
    ladder = scale_pitches(scale)
    steps = rng.choice((-2, 2))
    out: list[PlannedNote] = []
    since_change = 0
    for i, note in enumerate(line):
        moved = replace(note, pitch=diatonic_shift(note.pitch, steps, ladder))
        since_change += 1
        if i < head and since_change < VARY_EVERY:
            out.append(moved)  # the head: no draw
            continue
        if rng.random() >= variation and since_change < VARY_EVERY:
            out.append(moved)
            continue
        since_change = 0
        alt = alternatives[i] if i < len(alternatives) else None
        if note.duration_ns >= MIN_SPLIT_NS and rng.random() < 0.5:
            half = note.duration_ns // 2
            passing = diatonic_shift(moved.pitch, rng.choice((-1, 1)), ladder)
            out.append(replace(moved, duration_ns=half))
            out.append(replace(moved, start_ns=moved.start_ns + half, pitch=passing,
                               duration_ns=note.duration_ns - half))
        elif alt is not None and 0 < abs(alt - moved.pitch) <= 4:
            out.append(replace(moved, pitch=alt))
        else:
            out.append(replace(moved, pitch=diatonic_shift(moved.pitch, rng.choice((-1, 1)),
                                                           ladder)))
    # A split note's second half can start after the next notes when it overlaps them (a note
    # held under the line): the plan is kept in time order (stable: ties keep the line's order).
    out.sort(key=lambda n: n.start_ns)
    return out


def relative_to(notes: Sequence[PlannedNote], start_ns: int) -> list[PlannedNote]:
    """Notes planned from 0, moved to start at start_ns."""
    return [replace(n, start_ns=n.start_ns + start_ns) for n in notes]


def top_line(call: Sequence[PhraseNote]) -> list[PhraseNote]:
    """One note per attack (the highest of notes starting within 40 ms): the melody a listener
    follows in a phrase that has chords in it."""
    out: list[PhraseNote] = []
    for n in sorted(call, key=lambda n: (n.onset_ns, -n.pitch)):
        if out and n.onset_ns - out[-1].onset_ns < 40_000_000:
            if n.pitch > out[-1].pitch:
                out[-1] = n
            continue
        out.append(n)
    return out


LANDING_MOVE = 2  # semitones a structural note may move to reach a chord tone
ON_BEAT_SHARE = 0.05  # of a beat: an onset this near a beat is struck on it


def land_on_chords(line: Sequence[PlannedNote], chords: Sequence[Collection[int]], start_ns: int,
                   beat_ns: int) -> list[PlannedNote]:
    """A line's structural notes on the tones of the chords expected under them, as a player
    aims at chord tones: a note struck on a beat, or held a beat or more, that is no tone of
    the chord expected in its beat (`chords`: one per beat from `start_ns`) moves to the
    nearest one within LANDING_MOVE semitones (the lower on a tie). Notes between the beats
    stay as they are (passing and neighbour tones), and so does every note beyond the chords
    given or with no tone near."""
    out = []
    for n in line:
        position = (n.start_ns - start_ns) / beat_ns
        beat = round(position)
        struck_on_beat = abs(position - beat) <= ON_BEAT_SHARE
        if not (struck_on_beat or n.duration_ns >= beat_ns * (1 - ON_BEAT_SHARE)):
            out.append(n)
            continue
        index = beat if struck_on_beat else int(position)
        chord = chords[index] if 0 <= index < len(chords) else None
        if not chord or n.pitch % 12 in chord:
            out.append(n)
            continue
        near = [p for p in range(n.pitch - LANDING_MOVE, n.pitch + LANDING_MOVE + 1)
                if 0 <= p <= 127 and p % 12 in chord]
        out.append(replace(n, pitch=min(near, key=lambda p: (abs(p - n.pitch), p)))
                   if near else n)
    return out
