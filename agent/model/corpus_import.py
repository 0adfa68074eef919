"""Any MIDI a musician has -> a corpus piece: notes by part, in quarter-note beats at 480 ticks.

Pure: bytes (or a recording's messages) in, a `Piece` out, or `Skip` saying why nothing usable
is there. No music21 (agent/model/corpus_build.py builds the recipe corpora), no files: the
walk over folders is agent/model/corpus_sources.py, the corpus folder agent/model/corpus_write.py.

Notes are paired by agent/listen/keys.py, the rules the agent hears live input by: note-on at
velocity 0 is a note-off, a key struck again while down ends its old note there (the note-off
owed to the old note is skipped), a note held by the sustain (CC64) or sostenuto (CC66) pedal
sounds until the pedal lifts, a note still sounding at the end of its track ends there. One
`Keys` follows one source track (a pedal acts on its own track's notes on its channel), and a
track's channels are its parts. Times are counted in the source's ticks while pairing and
converted to 480 ticks a quarter note after, so pairing sees the source's own "same moment".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from agent import midi
from agent.events import PhraseNote
from agent.listen.keys import Keys, file_keys
from agent.model.corpus import TICKS_PER_BEAT
from agent.model.smf_bytes import (
    META_KEY_SIGNATURE,
    META_TEMPO,
    META_TIME_SIGNATURE,
    META_TRACK_NAME,
    Smf,
    SmfError,
    meta,
    read_smf,
    write_smf,
)

DEFAULT_TEMPO_US = 500_000  # 120 quarter notes a minute: MIDI's tempo until a file sets one
DRUM_CHANNEL = 9  # General MIDI's channel 10 (0-based 9) is always the drum kit
# Bank select MSB values that switch a channel to a drum kit: GM2's rhythm bank, XG's drum
# bank. Roland GS does it by SysEx instead (see _gs_drum_channel).
DRUM_BANKS = (120, 127)
CC_BANK_SELECT = 0
PROGRAM_CHANGE = 0xC0
_MAJOR = ("Cb", "Gb", "Db", "Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#")
_MINOR = ("Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#", "G#", "D#", "A#")

# Source times (int64 array, the source's unit) -> ticks at 480 a quarter note (int64 array).
ToTicks = Callable[[np.ndarray], np.ndarray]


class Skip(Exception):
    """A source (or part of one) left out of the corpus; the message is the reason."""


@dataclass(frozen=True, eq=False)
class Part:
    name: str  # the source track's name (and channel when a track holds several parts)
    channel: int  # 0-based MIDI channel it was played on
    program: int | None  # its first program change, None without one
    # int64 (notes, 4): start tick, end tick (> start), pitch, velocity at 480 ticks a quarter
    # note, sorted by row; notes of one pitch never overlap.
    notes: np.ndarray


@dataclass(frozen=True, eq=False)
class Piece:
    """One work as the corpus stores it, before it has an id."""

    title: str
    source: str  # the path as the user gave it
    source_sha256: str
    tempos: tuple[tuple[int, int], ...]  # (tick, microseconds a quarter note), the tempo map
    time_signatures: tuple[tuple[int, int, int], ...]  # (tick, numerator, denominator)
    key_signatures: tuple[tuple[int, int, bool], ...]  # (tick, sharps (< 0: flats), minor)
    parts: tuple[Part, ...]
    left_out: tuple[tuple[str, str], ...] = ()  # (part, reason): drums, the agent's own part
    grace: int = 0  # notes of no length (grace notes written as 0 ticks), left out
    drums: tuple[int, int] = (0, 0)  # (parts, notes) left out as drums
    bars: tuple[int, int] | None = None  # a segment of a work: its first and last bar (from 1)

    @property
    def notes(self) -> int:
        return sum(len(p.notes) for p in self.parts)

    @property
    def bpm(self) -> float:
        """The first tempo the source sets (120 without one), as quarter notes a minute."""
        return round(60_000_000 / (self.tempos[0][1] if self.tempos else DEFAULT_TEMPO_US), 3)

    @property
    def time_signature(self) -> tuple[int, int]:
        return self.time_signatures[0][1:] if self.time_signatures else (4, 4)

    @property
    def bar_beats(self) -> float:
        num, den = self.time_signature
        return num * 4 / den

    @property
    def key(self) -> str | None:
        """The first key signature as "F major" or "D minor" (MIDI knows no other modes)."""
        if not self.key_signatures or not -7 <= self.key_signatures[0][1] <= 7:
            return None
        _, sharps, minor = self.key_signatures[0]
        return f"{(_MINOR if minor else _MAJOR)[sharps + 7]} {'minor' if minor else 'major'}"

    def velocity_range(self) -> tuple[int, int]:
        velocities = np.concatenate([p.notes[:, 3] for p in self.parts])
        return int(velocities.min()), int(velocities.max())

    def content_hash(self) -> str:
        """sha256 of the notes alone (by part), the same for one piece saved in two ways."""
        h = hashlib.sha256()
        for p in self.parts:
            h.update(p.notes.tobytes() + b"\0")
        return h.hexdigest()


@dataclass(frozen=True)
class SourceTrack:
    """What one track (or one player) played, in the source's time unit."""

    name: str
    messages: Sequence[tuple[int, bytes]]  # (time, MIDI message bytes), in order
    end: int  # when the track ends: notes still sounding end here
    left_out_because: str | None = None  # e.g. the agent's own part: read, never kept


@dataclass(frozen=True)
class _Heard:
    """One track's notes as paired, in source time, before they are sorted into parts."""

    track: SourceTrack
    notes: np.ndarray  # int64 (notes, 5): onset, duration, pitch, velocity, channel
    programs: dict[int, int]  # channel -> its first program change
    kits: frozenset[int]  # channels a bank select switched to a drum kit


@dataclass
class _Parts:
    parts: list[tuple[tuple[int, int], Part]] = field(default_factory=list)  # (order, part)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    grace: int = 0
    drum_parts: int = 0
    drum_notes: int = 0


def piece_from_smf(data: bytes, source: str, *, title: str,
                   leave_out: Callable[[str | None], str | None] = lambda _: None) -> Piece:
    """A MIDI file's piece. `leave_out(track name)` gives the reason a track is not kept (a
    recording's agent track), None to keep it. Skip with the reason when nothing is usable."""
    try:
        smf = read_smf(data)
    except SmfError as e:
        raise Skip(str(e)) from None
    to_ticks = _converter(smf)
    metas = [m for track in smf.tracks for m in track.metas]
    ticks = to_ticks(np.array([t for t, _, _ in metas], dtype=np.int64)).tolist()
    conductor = [(tick, kind, body) for tick, (_, kind, body) in zip(ticks, metas, strict=True)]
    tracks = [SourceTrack(t.name or f"track {i + 1}", t.messages, t.end, leave_out(t.name))
              for i, t in enumerate(smf.tracks)]
    kits = frozenset(c for t in smf.tracks for _, body in t.sysex
                     if (c := _gs_drum_channel(body)) is not None)
    names = [t.name for t in smf.tracks[:1] if t.name and t.name.strip()]
    return _piece(tracks, to_ticks, kits, source, hashlib.sha256(data).hexdigest(),
                  names[0].strip() if names else title, conductor, file_keys)


def piece_from_players(players: Sequence[SourceTrack], source: str, source_sha256: str, *,
                       title: str, bpm: float, time_signature: tuple[int, int]) -> Piece:
    """A recording's piece: its players' messages, times in ns, beats at `bpm`. Time 0 is the
    first note any player struck (the silence before it is left out)."""
    starts = [t for p in players for t, data in p.messages if midi.is_note_on(data)]
    t0 = min(starts, default=0)
    ns_per_tick = 60e9 / (bpm * TICKS_PER_BEAT)

    def to_ticks(t_ns: np.ndarray) -> np.ndarray:
        return np.maximum(np.rint((t_ns - t0) / ns_per_tick), 0).astype(np.int64)

    tempo_us = round(60_000_000 / bpm)
    conductor = [(0, META_TEMPO, tempo_us.to_bytes(3, "big")),
                 (0, META_TIME_SIGNATURE, _time_signature_body(*time_signature))]
    # Paired with the live rules (Keys' defaults): the notes the agent heard as they were played.
    return _piece(players, to_ticks, frozenset(), source, source_sha256, title, conductor, Keys)


def _converter(smf: Smf) -> ToTicks:
    """Source ticks -> 480 ticks a quarter note (rounded half up)."""
    if smf.ticks_per_beat is not None:
        tpb = smf.ticks_per_beat
        if tpb == TICKS_PER_BEAT:
            return lambda t: t
        return lambda t: (t * 2 * TICKS_PER_BEAT + tpb) // (2 * tpb)
    # SMPTE time counts seconds, not beats: beats at the file's first tempo (120 without one).
    tempos = [int.from_bytes(body, "big") for track in smf.tracks
              for _, kind, body in sorted(track.metas, key=lambda m: m[0])
              if kind == META_TEMPO and len(body) == 3]
    per_tick = (1e6 / (tempos[0] if tempos else DEFAULT_TEMPO_US) * TICKS_PER_BEAT
                / (smf.ticks_per_second or 1.0))
    return lambda t: np.rint(t * per_tick).astype(np.int64)


def _gs_drum_channel(body: bytes) -> int | None:
    """The channel a Roland GS "use for rhythm part" SysEx makes a drum kit, if it is one:
    41 dev 42 12 40 1p 15 vv (vv 1 or 2: drum map); block p is part 10 for 0, 1-9 for 1-9,
    11-16 for A-F."""
    if len(body) < 8 or body[0] != 0x41 or body[2:4] != b"\x42\x12":
        return None
    if body[4] != 0x40 or body[5] & 0xF0 != 0x10 or body[6] != 0x15 or body[7] not in (1, 2):
        return None
    block = body[5] & 0x0F
    return DRUM_CHANNEL if block == 0 else block - 1 if block <= 9 else block


def _piece(tracks: Sequence[SourceTrack], to_ticks: ToTicks, kits: frozenset[int],
           source: str, sha256: str, title: str, conductor: Iterable[tuple[int, int, bytes]],
           new_keys: Callable[[], Keys]) -> Piece:
    heard = [_hear(track, new_keys()) for track in tracks]
    # A drum kit is a channel's, whichever track switched it.
    drums = kits | {DRUM_CHANNEL}.union(*(h.kits for h in heard))
    found = _Parts()
    for index, h in enumerate(heard):
        _sort_into_parts(index, h, to_ticks, drums, found)
    if not found.parts:
        if found.drum_parts == len(found.left_out) > 0:
            raise Skip(f"drums only ({found.drum_notes} notes)")
        if found.left_out:
            raise Skip("no part left: " + "; ".join(f"{part}: {reason}"
                                                      for part, reason in found.left_out))
        raise Skip("no notes" + (f" ({found.grace} of no length)" if found.grace else ""))
    tempos, signatures, keys = _conductor(conductor)
    return Piece(title=title, source=source, source_sha256=sha256, tempos=tempos,
                 time_signatures=signatures, key_signatures=keys,
                 parts=tuple(p for _, p in sorted(found.parts, key=lambda x: x[0])),
                 left_out=tuple(found.left_out), grace=found.grace,
                 drums=(found.drum_parts, found.drum_notes))


def _hear(track: SourceTrack, keys: Keys) -> _Heard:
    ended: list[PhraseNote] = []
    programs: dict[int, int] = {}
    kits: set[int] = set()
    for t, data in track.messages:
        if len(data) == 3:
            sound = keys.hear(t, data)
            if sound.ended or sound.grace:
                ended += sound.ended
                ended += sound.grace
            elif (data[0] & 0xF0 == midi.CONTROL_CHANGE and data[1] == CC_BANK_SELECT
                  and data[2] in DRUM_BANKS):
                kits.add(data[0] & 0x0F)
        elif len(data) == 2 and data[0] & 0xF0 == PROGRAM_CHANGE:
            programs.setdefault(data[0] & 0x0F, data[1])
    ended += keys.release_all(track.end)
    notes = np.array([(n.onset_ns, n.duration_ns, n.pitch, n.velocity, n.channel)
                      for n in ended], dtype=np.int64).reshape(-1, 5)
    return _Heard(track, notes, programs, frozenset(kits))


def _sort_into_parts(index: int, heard: _Heard, to_ticks: ToTicks, drums: frozenset[int],
                     found: _Parts) -> None:
    track, rows = heard.track, heard.notes
    channels = rows[:, 4]
    used = np.unique(channels).tolist()
    several = len(set(used) - drums) > 1
    start = to_ticks(rows[:, 0])
    end = np.maximum(to_ticks(rows[:, 0] + rows[:, 1]), start + 1)
    for channel in used:
        mine = channels == channel
        count = int(mine.sum())
        label = f"{track.name} (channel {channel + 1})" if several or channel in drums \
            else track.name
        if track.left_out_because is not None:
            found.left_out.append((label, f"{track.left_out_because} ({count} notes)"))
        elif channel in drums:
            found.left_out.append((label, f"drums ({count} notes)"))
            found.drum_parts += 1
            found.drum_notes += count
        else:
            sounding = mine & (rows[:, 1] > 0)  # a note of no length cannot be kept
            notes = _unoverlap(np.column_stack((start[sounding], end[sounding],
                                                rows[sounding, 2], rows[sounding, 3])))
            found.grace += count - len(notes)
            if len(notes):
                found.parts.append(((index, channel), Part(label, channel,
                                                           heard.programs.get(channel), notes)))


def _unoverlap(notes: np.ndarray) -> np.ndarray:
    """Notes of one key cut where the next starts (the pairing never overlaps them, but two
    source ticks can round to one 480th), those left of no length dropped; sorted by row."""
    by_key = notes[np.lexsort((notes[:, 1], notes[:, 0], notes[:, 2]))]
    same_key = by_key[1:, 2] == by_key[:-1, 2]
    by_key[:-1, 1] = np.where(same_key, np.minimum(by_key[:-1, 1], by_key[1:, 0]),
                              by_key[:-1, 1])
    kept = by_key[by_key[:, 1] > by_key[:, 0]]
    return kept[np.lexsort((kept[:, 3], kept[:, 2], kept[:, 1], kept[:, 0]))]


def _conductor(events: Iterable[tuple[int, int, bytes]]) -> tuple[
        tuple[tuple[int, int], ...], tuple[tuple[int, int, int], ...],
        tuple[tuple[int, int, bool], ...]]:
    """The tempo map, time signatures and key signatures of every track (a type-1 file's
    conductor events apply to all), by tick; of two at one tick, the later in the file."""
    tempos: dict[int, int] = {}
    signatures: dict[int, tuple[int, int]] = {}
    keys: dict[int, tuple[int, bool]] = {}
    for tick, kind, body in sorted(events, key=lambda e: e[0]):
        if kind == META_TEMPO and len(body) == 3 and int.from_bytes(body, "big") > 0:
            tempos[tick] = int.from_bytes(body, "big")
        elif kind == META_TIME_SIGNATURE and len(body) >= 2 and body[0] > 0 and body[1] < 8:
            signatures[tick] = (body[0], 1 << body[1])
        elif kind == META_KEY_SIGNATURE and len(body) == 2:
            keys[tick] = (body[0] - 256 if body[0] > 127 else body[0], body[1] == 1)
    return (tuple(sorted(tempos.items())),
            tuple((t, *s) for t, s in sorted(signatures.items())),
            tuple((t, *k) for t, k in sorted(keys.items())))


def _time_signature_body(numerator: int, denominator: int) -> bytes:
    # 24 MIDI clocks a metronome click, 8 32nd notes a quarter: the values every DAW writes.
    return bytes((numerator, denominator.bit_length() - 1, 24, 8))


# --- writing ---------------------------------------------------------------------------------

def piece_bytes(piece: Piece, work_id: str) -> bytes:
    """The piece as the corpus's MIDI file (corpora/README.md): type 1, 480 ticks a quarter
    note, track 0 the conductor (its id, the tempo map, time and key signatures), then one
    track per part on its own channel, note-offs as note_off, offs before ons at one tick."""
    conductor: list[tuple[int, bytes]] = [(0, meta(META_TRACK_NAME, _latin1(work_id)))]
    timed: list[tuple[int, int, bytes]] = [
        *((t, 0, meta(META_TEMPO, us.to_bytes(3, "big"))) for t, us in piece.tempos),
        *((t, 1, meta(META_TIME_SIGNATURE, _time_signature_body(n, d)))
          for t, n, d in piece.time_signatures),
        *((t, 2, meta(META_KEY_SIGNATURE, bytes((s & 0xFF, int(m)))))
          for t, s, m in piece.key_signatures)]
    if not piece.tempos:
        timed.append((0, 0, meta(META_TEMPO, DEFAULT_TEMPO_US.to_bytes(3, "big"))))
    if not piece.time_signatures:
        timed.append((0, 1, meta(META_TIME_SIGNATURE, _time_signature_body(4, 4))))
    conductor += [(t, body) for t, _, body in sorted(timed)]
    tracks = [conductor]
    for part in piece.parts:
        track: list[tuple[int, bytes]] = [(0, meta(META_TRACK_NAME, _latin1(part.name)))]
        if part.program is not None:
            track.append((0, bytes((0xC0 | part.channel, part.program))))
        notes = part.notes
        ticks = np.concatenate((notes[:, 1], notes[:, 0]))
        is_on = np.repeat([0, 1], len(notes))
        pitch = np.concatenate((notes[:, 2], notes[:, 2]))
        order = np.lexsort((pitch, is_on, ticks))  # offs before ons at one tick
        on, off = midi.NOTE_ON | part.channel, midi.NOTE_OFF | part.channel
        velocity = np.concatenate((np.zeros(len(notes), np.int64), notes[:, 3]))
        track += [(t, bytes((on, p, v) if o else (off, p, 0))) for t, o, p, v in zip(
            *(a[order].tolist() for a in (ticks, is_on, pitch, velocity)), strict=True)]
        tracks.append(track)
    return write_smf(tracks, TICKS_PER_BEAT)


def _latin1(text: str) -> bytes:
    """A name as MIDI files carry it (mido reads meta text as latin-1)."""
    return text.encode("latin-1", "replace")
