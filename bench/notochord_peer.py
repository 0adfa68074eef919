"""Notochord as a peer for our event model: latency, training on our corpora, pitch bits.

Notochord (PyPI `notochord` 0.8.0, MIT, Intelligent Instruments Lab) is an optional peer:
install it with `bash bench/setup_notochord.sh`. This module uses only Notochord's own model
(`notochord.Notochord`), its own data preparation (`python -m notochord.lakh_prep`) and its own
trainer (`python -m notochord.train`); it never imports Notochord's command line (which needs
PortAudio).

What this module relies on (read from notochord 0.8.0's source):
- An event is (instrument, pitch, time, velocity): instrument 1-128 are General MIDI programs + 1,
  time is seconds since the previous event, velocity 0 is a note-off. `reset()` feeds a start
  token (instrument 0, pitch 128); `feed(inst, pitch, time, vel)` advances the GRU;
  `query(...)` samples the next event, sub-event by sub-event: fixed ones (`next_inst=...`) first,
  then constrained ones, then the rest in the order instrument, pitch, time, velocity. Each
  sub-event's distribution is `projection(tanh(h_proj(h) + sum of the embeddings of the
  sub-events already fixed))`.
- Training draws a random conditioning mask per event and sub-event (`Notochord.forward`), so the
  model learns every order; P(pitch | history, instrument) is the pitch head on
  `tanh(h_proj(h) + instrument_emb(inst))`, exactly what `query(next_inst=inst)` samples pitch from.
- `lakh_prep` writes one `.pkl` per MIDI file (torch.save of a dict: `time` float32 absolute
  seconds, `pitch` int16, `velocity` int16 with 0 for note-off, `program` int32 = instrument),
  events sorted by (time, velocity, pitch, instrument), so note-offs come before note-ons at the
  same time; files with fewer than 64 events are skipped. Its dataset turns times into deltas
  and prepends the start token.
- `notochord.train` (python-fire) saves `<model_dir>/<experiment>/<epoch:04d>.ckpt` (epoch 0 before
  training, then one per epoch after validating) and logs `valid/loss` (the sum of the mean
  per-event negative log-likelihoods, in nats, of instrument, pitch, time, velocity and end;
  time and velocity are densities) to TensorBoard in `<log_dir>/<experiment>`, at step =
  exposure (events trained on). It runs until stopped.

Roles: `agent.model.representation.eval_roles` (the mapping our own model is evaluated with):
the player is Notochord instrument 1, the agent instrument 2. Chorales: soprano = player, the
other voices = agent; tunes: alternate two-bar phrases, player first. Every note has velocity 80
in our corpora, so notes that start together are fed bottom-up (lakh_prep's sort), the order our
own representation uses; in training Notochord's dequantisation jitter shuffles such notes.

Usage (from the repository root):
    .venv/bin/python bench/notochord_peer.py latency [--events 1000]
    .venv/bin/python bench/notochord_peer.py smoke [--minutes 1]
    .venv/bin/python bench/notochord_peer.py train --corpus corpora/bach-chorales \
        --minutes 10 --config small --out OUT
    .venv/bin/python bench/notochord_peer.py bits --checkpoint CKPT --corpus corpora/bach-chorales
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import mido
import numpy as np
import torch

from agent.model.representation import PLAYER, NoteArrays, eval_roles

if TYPE_CHECKING:
    from notochord import Notochord

PLAYER_INST = 1  # Notochord instrument = General MIDI program + 1: 1 is Acoustic Grand Piano
AGENT_INST = 2  # Bright Acoustic Piano
START_INST, START_PITCH = 0, 128  # Notochord's start token (what reset() feeds)
TICKS_PER_BEAT = 960
MIN_EVENTS = 64  # lakh_prep skips files with fewer events (note-ons + note-offs)
LATENCY_PITCHES = range(40, 91)
LATENCY_WARMUP = 50

# "default": Notochord's constructor defaults (17.7M parameters). "small": the smaller model its
# README gives as an example (`--model '{rnn_hidden:512, rnn_layers:1, mlp_layers:1}'`, 5.1M)
# with emb_size halved to 256, which brings it to 2.4M parameters (2,375,652).
CONFIGS: dict[str, dict[str, int]] = {
    "default": {},
    "small": {"emb_size": 256, "rnn_hidden": 512, "rnn_layers": 1, "mlp_layers": 1},
}

Event = tuple[float, int, int, int]  # (absolute seconds, velocity, pitch, instrument)


class WorkLike(NoteArrays, Protocol):
    """What a corpus work offers (agent.model.corpus.Work satisfies it)."""

    @property
    def id(self) -> str: ...


def installed() -> bool:
    """Whether Notochord can be imported (`bash bench/setup_notochord.sh` installs it)."""
    return importlib.util.find_spec("notochord") is not None


def _notochord_class() -> type[Notochord]:
    try:
        from notochord import Notochord
    except ImportError as e:
        raise SystemExit(f"notochord is not installed ({e}): run bash bench/setup_notochord.sh"
                         ) from None
    return cast("type[Notochord]", Notochord)


# ---------------------------------------------------------------------------------------------
# Models and latency


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_notochord(config: str) -> Notochord:
    """An untrained Notochord from its own constructor (CONFIGS), in eval mode and reset."""
    kw = CONFIGS[config]
    with warnings.catch_warnings():
        # one GRU layer with Notochord's default dropout 0.1: torch warns that it has no effect
        warnings.filterwarnings("ignore", message="dropout option adds dropout")
        model = _notochord_class()(**kw)
    model.eval()
    model.reset()
    return model


def load_notochord(checkpoint: Path) -> Notochord:
    """A trained Notochord from a checkpoint of notochord.train (its from_checkpoint)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dropout option adds dropout")
        return _notochord_class().from_checkpoint(str(checkpoint))


def _latency_events(rng: np.random.Generator, n: int, inst: int) -> list[tuple[int, int, float,
                                                                               float]]:
    """A monophonic line: note-on, its note-off, next note-on...; dt 0-1 s, pitches 40-90."""
    events: list[tuple[int, int, float, float]] = []
    pitch = int(rng.integers(55, 76))
    while len(events) < n:
        pitch = int(np.clip(pitch + rng.integers(-7, 8), LATENCY_PITCHES[0], LATENCY_PITCHES[-1]))
        events.append((inst, pitch, float(rng.uniform(0.0, 1.0)), float(rng.integers(40, 111))))
        events.append((inst, pitch, float(rng.uniform(0.0, 1.0)), 0.0))
    return events[:n]


def feed_query_latency(model: Notochord, n_events: int, seed: int,
                       query_kw: Mapping[str, Any] | None = None) -> list[float]:
    """Per event, ns for one feed of the previous event plus one query proposing the next.

    One CPU thread. The events are one fixed instrument's line (PLAYER_INST); the query asks for
    that instrument's next note-on within pitches 40-90 (`next_inst`, `include_pitch`,
    `min_vel=1`) unless `query_kw` says otherwise. The first LATENCY_WARMUP events are run and
    not timed.
    """
    torch.set_num_threads(1)
    kw = dict(query_kw) if query_kw is not None else {
        "next_inst": PLAYER_INST, "include_pitch": set(LATENCY_PITCHES), "min_vel": 1}
    rng = np.random.default_rng(seed)
    events = _latency_events(rng, n_events + LATENCY_WARMUP, PLAYER_INST)
    model.eval()
    model.reset()
    times: list[float] = []
    for k, (inst, pitch, dt, vel) in enumerate(events):
        t0 = time.perf_counter_ns()
        model.feed(inst, pitch, dt, vel)
        model.query(**kw)
        t1 = time.perf_counter_ns()
        if k >= LATENCY_WARMUP:
            times.append(float(t1 - t0))
    return times


# ---------------------------------------------------------------------------------------------
# Works as Notochord sees them


def work_instruments(work: WorkLike) -> np.ndarray:
    """Notochord instrument per note: PLAYER_INST or AGENT_INST (eval_roles, our own mapping)."""

    return np.where(eval_roles(work) == PLAYER, PLAYER_INST, AGENT_INST).astype(np.int64)


def _tempo(work: WorkLike) -> int:
    return int(mido.bpm2tempo(work.bpm))  # microseconds per beat, as written to the MIDI file


def _part_messages(work: WorkLike, insts: np.ndarray, inst: int) -> list[tuple[int, int, int]]:
    """One role's notes as (tick, velocity, pitch) in the order its MIDI track holds them."""
    mask = insts == inst
    on = np.rint(work.onset[mask] * TICKS_PER_BEAT).astype(np.int64)
    off = np.maximum(on + 1, np.rint((work.onset[mask] + work.duration[mask])
                                     * TICKS_PER_BEAT).astype(np.int64))
    vel = np.clip(work.velocity[mask].astype(np.int64), 1, 127)
    pitch = work.pitch[mask].astype(np.int64)
    msgs = [(int(t), int(v), int(p)) for t, v, p in zip(on, vel, pitch, strict=True)]
    msgs += [(int(t), 0, int(p)) for t, p in zip(off, pitch, strict=True)]
    msgs.sort(key=lambda m: (m[0], m[1] > 0, m[2]))  # at one tick: note-offs first
    return msgs


def work_midi(work: WorkLike) -> mido.MidiFile:
    """The work as a type-1 MIDI file: a tempo track, then one track per role (player on
    channel 0, program 0 -> instrument 1; agent on channel 1, program 1 -> instrument 2)."""
    insts = work_instruments(work)
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=_tempo(work), time=0)]))
    for channel, inst in enumerate((PLAYER_INST, AGENT_INST)):
        msgs = _part_messages(work, insts, inst)
        if not msgs:
            continue
        track = mido.MidiTrack([mido.Message("program_change", channel=channel,
                                             program=inst - 1, time=0)])
        last = 0
        for tick, vel, pitch in msgs:
            kind = "note_on" if vel > 0 else "note_off"
            track.append(mido.Message(kind, channel=channel, note=pitch, velocity=vel,
                                      time=tick - last))
            last = tick
        mid.tracks.append(track)
    return mid


def work_events(work: WorkLike) -> list[Event]:
    """The events lakh_prep makes of work_midi(work), computed the same way without a file:
    per role, its repair_events (drops doubled note-offs, ends a note before a doubled note-on),
    then all sorted by (time, velocity, pitch, instrument). No 64-event minimum."""
    from notochord.lakh_prep import repair_events

    insts = work_instruments(work)
    tempo = _tempo(work)
    events: list[Event] = []
    for inst in (PLAYER_INST, AGENT_INST):
        msgs = _part_messages(work, insts, inst)
        if not msgs:
            continue
        part = {"inst": inst, "events": {
            "time": [mido.tick2second(t, TICKS_PER_BEAT, tempo) if t else 0 for t, _, _ in msgs],
            "vel": [v for _, v, _ in msgs],
            "pitch": [p for _, _, p in msgs]}}
        events.extend(repair_events(part))
    events.sort()
    return events


def _event_tensors(events: Sequence[Event]) -> dict[str, torch.Tensor]:
    """A work's events as one Notochord sequence: start token, then (inst, pitch, dt, vel), with
    times as lakh_prep stores them (float32 absolute seconds) and deltas as its dataset takes."""
    t = torch.tensor([e[0] for e in events], dtype=torch.float32)
    dt = torch.cat((t.new_zeros((1,)), t)).diff(1)
    return {
        "inst": torch.tensor([START_INST] + [e[3] for e in events], dtype=torch.long),
        "pitch": torch.tensor([START_PITCH] + [e[2] for e in events], dtype=torch.long),
        "time": torch.cat((dt.new_zeros((1,)), dt)),
        "vel": torch.tensor([0] + [e[1] for e in events], dtype=torch.float32),
    }


def _safe_name(work_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", work_id)


def prepare_training_data(works: Iterable[WorkLike], out_dir: Path, n_jobs: int = 2) -> Path:
    """Write each work as MIDI (work_midi) to out_dir/midi and run Notochord's own prep
    (`python -m notochord.lakh_prep`) into out_dir/data; return out_dir/data.

    Both folders are emptied first. Checks that every prepared file holds exactly
    work_events(work) (what pitch bits feed). Works under 64 events are skipped by lakh_prep
    (counted in the printed summary).
    """
    midi_dir, data_dir = out_dir / "midi", out_dir / "data"
    for d in (midi_dir, data_dir):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    by_name: dict[str, WorkLike] = {}
    for w in works:
        name = _safe_name(w.id)
        if name in by_name:
            raise ValueError(f"two works named {name!r}")
        by_name[name] = w
        work_midi(w).save(midi_dir / f"{name}.mid")
    cmd = [sys.executable, "-m", "notochord.lakh_prep", f"--data_path={midi_dir}",
           f"--dest_path={data_dir}", f"--n_jobs={n_jobs}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    prepared = sorted(data_dir.glob("*.pkl"))
    for f in prepared:
        item = torch.load(f)
        events = work_events(by_name[f.stem])
        if (item["pitch"].tolist() != [e[2] for e in events]
                or item["velocity"].tolist() != [e[1] for e in events]
                or item["program"].tolist() != [e[3] for e in events]
                or not torch.allclose(item["time"], torch.tensor([e[0] for e in events],
                                                                 dtype=torch.float32))):
            raise RuntimeError(f"{f}: lakh_prep's events differ from work_events()")
    print(f"notochord prep: {len(by_name)} works, {len(prepared)} prepared, "
          f"{len(by_name) - len(prepared)} skipped (< {MIN_EVENTS} events)", flush=True)
    return data_dir


# ---------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class Validation:
    epoch: int
    exposure: int  # events trained on when validated
    loss: float  # valid/loss (nats per event, all sub-events summed)


def validation_losses(log_dir: Path) -> list[Validation]:
    """valid/loss as notochord.train logged it, in order: the k-th is checkpoint k's."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    if "valid/loss" not in acc.Tags().get("scalars", []):
        return []
    return [Validation(k, int(s.step), float(s.value))
            for k, s in enumerate(acc.Scalars("valid/loss"))]


def _checkpoints(model_dir: Path) -> dict[int, Path]:
    return {int(p.stem): p for p in model_dir.glob("[0-9][0-9][0-9][0-9].ckpt")}


def _prune(model_dir: Path, log_dir: Path) -> None:
    """Keep the best validated checkpoint and the two newest (one may be being written)."""
    ckpts = _checkpoints(model_dir)
    vals = [v for v in validation_losses(log_dir) if v.epoch in ckpts]
    keep = set(sorted(ckpts)[-2:])
    if vals:
        keep.add(min(vals, key=lambda v: v.loss).epoch)
    for epoch, path in ckpts.items():
        if epoch not in keep:
            path.unlink(missing_ok=True)


def _loadable(path: Path) -> int | None:
    """The checkpoint's exposure, or None if it cannot be read (cut while being written)."""
    try:
        d = torch.load(path, map_location="cpu", weights_only=False)
        return int(d["step"][0])
    except Exception:
        return None


def train_notochord(data_dir: Path, out_dir: Path, minutes: float, config: str, *,
                    experiment: str = "peer", options: Mapping[str, Any] | None = None,
                    threads: int | None = None) -> Path:
    """Run Notochord's own trainer (`python -m notochord.train ... train`) for `minutes` of wall
    clock, stop it with SIGINT (its documented ctrl-C), and return the checkpoint with the lowest
    logged valid/loss (or, with none logged, the last readable one).

    Its defaults throughout (batch 128 x 64 events, AdamW 3e-4, augmentation, one dataloader
    worker) except `options` (Trainer keywords, e.g. {"epoch_size": 20}). `threads` sets
    OMP_NUM_THREADS (default: the cores this process may use). The trainer's output goes to
    out_dir/train.log; checkpoints to out_dir/models/<experiment>, TensorBoard logs to
    out_dir/logs/<experiment>; stale ones from an earlier run are removed first. While it runs,
    all checkpoints but the best and the two newest are deleted (a default-size one is 213 MB).
    Writes out_dir/train_summary.json.
    """
    model_dir = out_dir / "models" / experiment
    log_dir = out_dir / "logs" / experiment
    for d in (model_dir, log_dir, out_dir / "results" / experiment):
        if d.exists():
            shutil.rmtree(d)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "notochord.train", f"--experiment={experiment}",
           f"--model_dir={out_dir / 'models'}", f"--log_dir={out_dir / 'logs'}",
           f"--results_dir={out_dir / 'results'}", f"--data_dir={data_dir}"]
    if CONFIGS[config]:
        cmd.append(f"--model={CONFIGS[config]!r}")
    for k, v in (options or {}).items():
        cmd.append(f"--{k}={v!r}")
    cmd.append("train")
    n_threads = threads or len(os.sched_getaffinity(0))
    env = os.environ | {"OMP_NUM_THREADS": str(n_threads), "MKL_NUM_THREADS": str(n_threads),
                        "PYTHONWARNINGS": "ignore"}
    log_path = out_dir / "train.log"
    started = time.monotonic()
    deadline = started + minutes * 60.0
    with log_path.open("w") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            next_prune = started + 10.0
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                if time.monotonic() >= next_prune:
                    _prune(model_dir, log_dir)
                    next_prune = time.monotonic() + 10.0
            ended_by_itself = proc.poll() is not None
        finally:
            _stop(proc)
    wall = time.monotonic() - started
    if ended_by_itself:  # it trains until stopped: ending early is a failure
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"notochord.train ended by itself (exit {proc.returncode}):\n{tail}")
    _prune(model_dir, log_dir)
    ckpts = _checkpoints(model_dir)
    vals = {v.epoch: v for v in validation_losses(log_dir)}
    # best validated first, then the unvalidated ones, newest first
    order = sorted((e for e in ckpts if e in vals), key=lambda e: vals[e].loss)
    order += sorted((e for e in ckpts if e not in vals), reverse=True)
    chosen: Path | None = None
    for epoch in order:
        exposure = _loadable(ckpts[epoch])
        if exposure is None:
            ckpts[epoch].unlink()
            continue
        if epoch in vals and vals[epoch].exposure != exposure:
            raise RuntimeError(f"{ckpts[epoch]}: exposure {exposure} is not its validation's "
                               f"{vals[epoch].exposure}")
        chosen = ckpts[epoch]
        break
    if chosen is None:
        raise RuntimeError(f"notochord.train left no readable checkpoint in {model_dir}")
    if chosen.stem == "0000":
        print(f"notochord train: warning: {chosen.name} is the untrained model (no epoch was "
              f"trained and validated within {minutes} min: see {log_path})", file=sys.stderr)
    summary = {
        "command": cmd[1:], "config": config, "minutes": minutes, "wall_s": round(wall, 1),
        "exit": proc.returncode, "checkpoint": chosen.name,
        "valid_loss": [{"epoch": v.epoch, "exposure": v.exposure, "loss": v.loss}
                       for v in vals.values()],
    }
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return chosen


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT to the trainer's process group (its dataloader workers too), then harder."""
    for sig, grace in ((signal.SIGINT, 60.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            continue


# ---------------------------------------------------------------------------------------------
# Pitch bits


def _pitch_log_probs(model: Notochord, seqs: Sequence[Mapping[str, torch.Tensor]]
                     ) -> list[torch.Tensor]:
    """log P(pitch_k | events < k, inst_k) for every event k of each sequence (start excluded),
    over MIDI pitches 0-127 (the start token's logit excluded, as query() samples).

    One pass of the GRU over a batch of sequences (padded at the end, which cannot change
    earlier steps) instead of feed() per event: the same arithmetic as reset(), feed() and
    query(next_inst=inst) (checked in the smoke run)."""
    lengths = [len(q["inst"]) for q in seqs]
    batch = {k: torch.nn.utils.rnn.pad_sequence([q[k] for q in seqs], batch_first=True)
             for k in ("inst", "pitch", "time", "vel")}
    inst, pitch = batch["inst"], batch["pitch"]
    x = (model.instrument_emb(inst) + model.pitch_emb(pitch)
         + model.time_emb(batch["time"]) + model.vel_emb(batch["vel"]))
    state = tuple(t.expand(model.rnn.num_layers, len(seqs), -1).contiguous()
                  for t in model.initial_state)
    h, _ = model.rnn(x, state)
    hidden = (model.h_proj(h[:, :-1]) + model.instrument_emb(inst[:, 1:])).tanh()
    logits = model.projections[1](hidden)[..., :START_PITCH]
    logp = torch.log_softmax(logits, -1).gather(-1, pitch[:, 1:, None])[..., 0]
    return [logp[i, :n - 1] for i, n in enumerate(lengths)]


def notochord_pitch_bits(model: Notochord, works: Iterable[WorkLike],
                         batch_size: int = 16) -> tuple[float, int]:
    """Sum over every note-on of every work of -log2 P(pitch | all previous events, this event's
    instrument), and the number of notes. All events are fed (note-offs too, not scored).
    Each work is its own sequence from reset(); `batch_size` works go through the GRU at once
    (sorted by length; this only changes the speed). Uses torch's current thread count."""
    model.eval()
    seqs = [_event_tensors(ev) for ev in (work_events(w) for w in works) if ev]
    seqs.sort(key=lambda q: len(q["inst"]))
    total, count = 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(seqs), batch_size):
            chunk = seqs[i:i + batch_size]
            for seq, logp in zip(chunk, _pitch_log_probs(model, chunk), strict=True):
                on = seq["vel"][1:] > 0
                total += float(-logp[on].sum()) / math.log(2)
                count += int(on.sum())
    return total, count


def _sequential_pitch_log_probs(model: Notochord, events: Sequence[Event]) -> list[float]:
    """The same as _pitch_log_probs, through Notochord's own reset/feed/query API (slow)."""
    model.eval()
    model.reset()
    out: list[float] = []
    seq = _event_tensors(events)
    for k in range(len(events)):
        inst, pitch = int(seq["inst"][k + 1]), int(seq["pitch"][k + 1])
        r = model.query(next_inst=inst, return_params=True)
        logits = r["pitch_params"][..., :START_PITCH].reshape(-1)
        out.append(float(torch.log_softmax(logits, -1)[pitch]))
        model.feed(inst, pitch, float(seq["time"][k + 1]), float(seq["vel"][k + 1]))
    return out


# ---------------------------------------------------------------------------------------------
# Command line


@dataclass(frozen=True)
class FakeWork:
    """A hand-made work for smoke runs (the fields of agent.model.corpus.Work)."""

    id: str
    collection: str
    split: str
    bpm: float
    bar_beats: float
    key: str | None
    onset: np.ndarray
    duration: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    voice: np.ndarray


def fake_works(n: int, seed: int = 0) -> list[FakeWork]:
    """Chorale-like (four voices, random walks) and tune-like (one line of eighths) works."""
    rng = np.random.default_rng(seed)
    works: list[FakeWork] = []
    for i in range(n):
        split = "test" if i % 5 == 0 else "train"
        if i % 2 == 0:
            beats = 32
            onset = np.tile(np.arange(beats, dtype=np.float64), 4)
            voice = np.repeat(np.arange(4), beats).astype(np.int16)
            pitch = np.concatenate([c + np.cumsum(rng.integers(-2, 3, beats))
                                    for c in (67, 62, 55, 48)]).astype(np.int16)
            order = np.lexsort((voice, pitch, onset))
            works.append(FakeWork(f"fake-chorale-{i:03d}", "bach-chorales", split, 96.0, 4.0,
                                  None, onset[order], np.ones(4 * beats)[order], pitch[order],
                                  np.full(4 * beats, 80, np.int16), voice[order]))
        else:
            notes = 64
            eighths = np.arange(notes, dtype=np.float64) * 0.5
            pitch = (62 + np.cumsum(rng.integers(-3, 4, notes))).astype(np.int16)
            works.append(FakeWork(f"fake-tune-{i:03d}", "oneill-1850", split, 120.0, 3.0, None,
                                  eighths, np.full(notes, 0.5), pitch,
                                  np.full(notes, 80, np.int16), np.zeros(notes, np.int16)))
    return works


def _load_works(paths: Sequence[Path], split: str) -> list[WorkLike]:
    from agent.model.corpus import load_corpus

    works: list[WorkLike] = []
    for p in paths:
        works.extend(load_corpus(p).split(split))
    return works


def _show_latency(config: str, events: int, seed: int) -> None:
    model = build_notochord(config)
    ns = np.asarray(feed_query_latency(model, events, seed))
    p50, p99 = np.percentile(ns, [50, 99]) / 1e6
    print(f"  {config:<8} {param_count(model):>11,} params   feed+query p50 {p50:6.3f} ms  "
          f"p99 {p99:6.3f} ms  max {ns.max() / 1e6:6.3f} ms  n={ns.size}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    torch.set_num_threads(1)  # before any torch op: latency is measured on one thread
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    lat = sub.add_parser("latency", help="feed+query latency of the untrained models")
    lat.add_argument("--events", type=int, default=1000)
    lat.add_argument("--seed", type=int, default=0)
    lat.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    smoke = sub.add_parser("smoke", help="prep -> train -> load -> pitch bits, on tiny data")
    smoke.add_argument("--minutes", type=float, default=1.0)
    smoke.add_argument("--config", default="small", choices=list(CONFIGS))
    smoke.add_argument("--corpus", type=Path, nargs="*", default=[],
                       help="built corpora to use instead of hand-made works")
    smoke.add_argument("--out", type=Path, help="folder for the run (default: a temporary one)")
    train = sub.add_parser("train", help="prep a corpus's train split and train Notochord")
    train.add_argument("--corpus", type=Path, nargs="+", required=True)
    train.add_argument("--minutes", type=float, default=10.0)
    train.add_argument("--config", default="small", choices=list(CONFIGS))
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="a Trainer keyword, e.g. epoch_size=20 (repeatable)")
    bits = sub.add_parser("bits", help="pitch bits per note of a checkpoint on a split")
    bits.add_argument("--checkpoint", type=Path, required=True)
    bits.add_argument("--corpus", type=Path, nargs="+", required=True)
    bits.add_argument("--split", default="test")
    args = parser.parse_args(argv)

    if args.cmd == "latency":
        print(f"Notochord feed+query latency, 1 thread, {args.events} events "
              f"(+{LATENCY_WARMUP} warm-up), untrained", flush=True)
        for config in args.configs:
            _show_latency(config, args.events, args.seed)
    elif args.cmd == "train":
        options = {k: _literal(v) for k, v in (o.split("=", 1) for o in args.option)}
        data = prepare_training_data(_load_works(args.corpus, "train"), args.out)
        ckpt = train_notochord(data, args.out, args.minutes, args.config, options=options)
        print(f"checkpoint: {ckpt}")
    elif args.cmd == "bits":
        total, n = notochord_pitch_bits(load_notochord(args.checkpoint),
                                        _load_works(args.corpus, args.split))
        print(f"pitch bits: {total:.1f} over {n} notes = {total / max(n, 1):.3f} bits/note")
    else:
        _smoke(args)
    return 0


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _smoke(args: argparse.Namespace) -> None:
    works: list[WorkLike]
    if args.corpus:
        works = [*_load_works(args.corpus, "train"), *_load_works(args.corpus, "test")]
    else:
        works = list(fake_works(40))
    train_works = [w for w in works if getattr(w, "split", "train") == "train"]
    test_works = [w for w in works if getattr(w, "split", "train") == "test"]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        t0 = time.monotonic()
        data = prepare_training_data(train_works, out / "prep")
        print(f"  prep {time.monotonic() - t0:.1f} s", flush=True)
        # tiny data: Notochord's minimum of 8 validation and 8 test files would take most of it
        ckpt = train_notochord(data, out / "train", args.minutes, args.config,
                               options={"min_valid": 2, "min_test": 2})
        summary = json.loads((out / "train" / "train_summary.json").read_text())
        print(f"  trained {summary['wall_s']} s, exit {summary['exit']}, checkpoint {ckpt.name}; "
              f"valid/loss by epoch: "
              + ", ".join(f"{v['epoch']}:{v['loss']:.3f}" for v in summary["valid_loss"]))
        model = load_notochord(ckpt)
        print(f"  loaded {param_count(model):,} params", flush=True)
        # the one-pass pitch log-probs against Notochord's own reset/feed/query
        events = work_events(test_works[0])
        # in a batch with a longer work, as notochord_pitch_bits runs it
        longest = max(test_works, key=lambda w: len(w.pitch))
        fast = _pitch_log_probs(model, [_event_tensors(events),
                                        _event_tensors(work_events(longest))])[0].tolist()
        slow = _sequential_pitch_log_probs(model, events)
        diff = max(abs(a - b) for a, b in zip(fast, slow, strict=True))
        print(f"  one-pass vs feed/query log-probs: max difference {diff:.2e} "
              f"over {len(events)} events", flush=True)
        if diff > 1e-3:
            raise SystemExit("pitch log-probs differ from Notochord's own query")
        t0 = time.monotonic()
        total, n = notochord_pitch_bits(model, test_works)
        print(f"  pitch bits on {len(test_works)} held-out works: {total:.1f} over {n} notes = "
              f"{total / n:.3f} bits/note ({time.monotonic() - t0:.1f} s; uniform over 128 "
              f"pitches would be 7.000)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
