"""`stage-agent corpus import` speed: files/s and notes/s over a folder of varied MIDI files.

Makes a folder of --files MIDI files with mido (seeded): SMF type 0 and 1, 96 to 1024 ticks a
beat, 1 to 6 parts (some sharing a track on two channels), tempo and time-signature changes,
sustain pedal, drums on channel 10, re-struck overlapping notes, note-on velocity 0 as note-off,
about 1,100 notes a file; plus the junk a real folder holds (empty, text named .mid, truncated,
type 2, drums only, too short, a copy). Then imports it (agent.model.corpus_write.import_corpus,
as the command does, in one process and in --jobs reading processes) and prints files/s and
notes/s, and the per-file time of reading one file into a piece and writing its corpus MIDI,
p50/p99. Peer in the same run, on the same files, interleaved: mido.MidiFile parsing each file
(parsing only: no pairing, no writing). `--folder DIR` imports an existing folder instead (e.g. a
built corpus's midi/).

    .venv/bin/python bench/corpus_import.py [--files 300] [--seed 1] [--folder DIR] [--jobs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import tempfile
import time
from pathlib import Path

import mido
from _common import heading, show, show_ratio

from agent.model.corpus_import import Skip, piece_bytes
from agent.model.corpus_sources import find_sources, read_source
from agent.model.corpus_write import ImportSettings, import_corpus
from agent.record.corpus_recording import read_recording

SUFFIXES = (".mid", ".mid", ".mid", ".MID", ".midi", ".smf")
TPBS = (96, 120, 192, 240, 384, 480, 960, 1024)
SIGNATURES = ((4, 4), (3, 4), (6, 8), (2, 4))
JUNK = ("empty", "text", "truncated", "type2", "drums", "short", "copy")


def varied_file(rng: random.Random) -> mido.MidiFile:
    """One piece: parts, tempo map, metre, pedal, drums and overlaps drawn from `rng`."""
    tpb = rng.choice(TPBS)
    single = rng.random() < 0.25  # type 0: every part on its channel in one track
    mid = mido.MidiFile(type=0 if single else 1, ticks_per_beat=tpb)
    bars = rng.randint(8, 64)
    num, den = rng.choice(SIGNATURES)
    bar = num * tpb * 4 // den
    conductor: list[tuple[int, mido.MetaMessage | mido.Message]] = [
        (0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(rng.uniform(60, 180)))),
        (0, mido.MetaMessage("time_signature", numerator=num, denominator=den))]
    for _ in range(rng.randint(0, 3)):
        tempo = mido.bpm2tempo(rng.uniform(60, 180))
        conductor.append((rng.randrange(bars) * bar, mido.MetaMessage("set_tempo", tempo=tempo)))
    if rng.random() < 0.2:
        conductor.append((bars // 2 * bar, mido.MetaMessage("time_signature", numerator=3,
                                                            denominator=4)))
    parts = [(ch, rng.randint(1, 60)) for ch in range(rng.randint(1, 6))]
    if rng.random() < 0.2:
        parts.append((9, 0))  # drums
    tracks: list[list[tuple[int, mido.MetaMessage | mido.Message]]] = [conductor]
    for i, (ch, density) in enumerate(parts):
        events = _part(rng, ch, bars * bar, tpb, density, pedal=i == 0 and rng.random() < 0.3)
        if single or (i and rng.random() < 0.2):  # some tracks carry two channels
            tracks[-1] += events
        else:
            tracks.append([(0, mido.MetaMessage("track_name", name=f"part {i + 1}")), *events])
    for events in tracks:
        mid.tracks.append(_track(events))
    return mid


def _part(rng: random.Random, ch: int, length: int, tpb: int, density: int,
          pedal: bool) -> list[tuple[int, mido.MetaMessage | mido.Message]]:
    out: list[tuple[int, mido.MetaMessage | mido.Message]] = [
        (0, mido.Message("program_change", channel=ch, program=rng.randrange(128)))]
    t = 0
    low = rng.randint(36, 64)
    step = max(tpb // max(density // 8, 1), 1)
    while t < length:
        pitch = 36 if ch == 9 else low + rng.randrange(24)
        dur = rng.choice((step, step * 2, step // 2 + 1))
        vel = rng.randint(20, 127)
        out.append((t, mido.Message("note_on", channel=ch, note=pitch, velocity=vel)))
        off = mido.Message("note_on", channel=ch, note=pitch, velocity=0) \
            if rng.random() < 0.5 else mido.Message("note_off", channel=ch, note=pitch)
        # Sometimes the note-off comes after the key is struck again (overlapping notes).
        out.append((t + dur * (3 if rng.random() < 0.05 else 1), off))
        t += rng.choice((step, step, step * 2, 0 if rng.random() < 0.3 else step))
    if pedal:
        for k in range(0, length, 4 * tpb):
            out.append((k, mido.Message("control_change", channel=ch, control=64, value=127)))
            out.append((k + 3 * tpb, mido.Message("control_change", channel=ch, control=64,
                                                   value=0)))
    return out


def _track(events: list[tuple[int, mido.MetaMessage | mido.Message]]) -> mido.MidiTrack:
    track = mido.MidiTrack()
    last = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=tick - last))
        last = tick
    return track


def junk(kind: str, good: bytes) -> bytes:
    if kind == "empty":
        return b""
    if kind == "text":
        return b"This is not a MIDI file, just notes to self.\n"
    if kind == "truncated":
        return good[:len(good) * 2 // 3]
    if kind == "copy":
        return good
    mid = mido.MidiFile(type=2 if kind == "type2" else 1, ticks_per_beat=480)
    channel, notes = (9, 64) if kind == "drums" else (0, 5)
    track = mido.MidiTrack()
    for _ in range(notes):
        track += [mido.Message("note_on", channel=channel, note=40, velocity=90, time=240),
                  mido.Message("note_off", channel=channel, note=40, time=240)]
    mid.tracks += [track, track.copy()] if kind == "type2" else [track]
    buffer = io.BytesIO()
    mid.save(file=buffer)
    return buffer.getvalue()


def make_folder(folder: Path, files: int, seed: int) -> list[str]:
    """--files varied MIDI files under `folder` (in a few subfolders), and the junk. Returns
    the junk files' paths."""
    rng = random.Random(seed)
    junk_paths = []
    last = b""
    for i in range(files):
        sub = folder / f"set-{i % 5}"
        sub.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        varied_file(rng).save(file=buffer)
        last = buffer.getvalue()
        (sub / f"piece-{i:04d}{rng.choice(SUFFIXES)}").write_bytes(last)
    for kind in JUNK:
        path = folder / "x-junk" / f"{kind}.mid"  # after set-*: the copy is the duplicate
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(junk(kind, last))
        junk_paths.append(str(path))
    (folder / "x-junk" / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    return junk_paths


def per_file(folder: Path) -> tuple[list[float], list[float]]:
    """Per-file ns: (read into a piece and write its corpus MIDI, mido.MidiFile parsing)."""
    ours: list[float] = []
    peer: list[float] = []
    for source in find_sources([str(folder)]).sources:
        data = Path(source.path).read_bytes()
        started = time.perf_counter_ns()
        with contextlib.suppress(Skip):
            piece_bytes(read_source(source, read_recording), "work")
        ours.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        with contextlib.suppress(Exception):  # mido raises many kinds for junk
            mido.MidiFile(file=io.BytesIO(data))
        peer.append(time.perf_counter_ns() - started)
    return ours, peer


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--files", type=int, default=300, help="varied MIDI files (default 300)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--folder", type=Path, help="import this folder instead of a generated one")
    p.add_argument("--jobs", type=int, default=2,
                   help="also import with this many reading processes (default 2)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        folder = args.folder or Path(tmp) / "midi"
        junk_paths: list[str] = []
        if args.folder is None:
            junk_paths = make_folder(folder, args.files, args.seed)
        what = (f"a folder of {args.files} generated files and {len(JUNK)} junk"
                if args.folder is None else str(args.folder))
        heading(f"corpus import: {what}")
        lines: list[str] = []
        for jobs in sorted({1, args.jobs}):
            lines.clear()
            started, cpu = time.perf_counter(), time.process_time()
            done = import_corpus([str(folder)], ImportSettings(
                name="bench", root=Path(tmp) / "c", force=True, jobs=jobs), read_recording,
                say=lines.append)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            notes = sum(int(w["notes"]) for w in done.manifest["works"])
            print(f"  {jobs} process{'es' * (jobs > 1)}: {done.sources} files -> "
                  f"{len(done.manifest['works'])} works, {notes} notes "
                  f"({notes / max(len(done.manifest['works']), 1):.0f} a work), "
                  f"{len(lines)} left-out lines, in {wall:.2f} s")
            print(f"    import files/s {done.sources / wall:9.1f}   (target >= 100)")
            print(f"    import notes/s {notes / wall:9.0f}")
            if jobs == 1:  # on a shared machine the wall time is whatever the others leave
                print(f"    per CPU second: {done.sources / cpu:.1f} files, {notes / cpu:.0f} "
                      f"notes ({cpu:.2f} s of CPU)")
        named = {s["source"] for s in done.manifest["skipped"] if s["part"] is None}
        if junk_paths:
            print(f"  junk named with a reason: {len(named & set(junk_paths))} of "
                  f"{len(junk_paths)}")
            for s in done.manifest["skipped"]:
                if s["source"] in junk_paths:
                    print(f"    {Path(s['source']).name}: {s['reason']}")
        ours, peer = per_file(folder)
        mine = show("read + write a file", ours, "ms")
        plain = show("peer: mido.MidiFile parse", peer, "ms")
        show_ratio("p50 per-file ratio", mine.p50, plain.p50, "import / mido parse")
        show_ratio("p99 per-file ratio", mine.p99, plain.p99, "import / mido parse")


if __name__ == "__main__":
    main()
