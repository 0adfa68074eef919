"""Replay: feed recorded human input through the agent.

A recording is either our own event log (`log.jsonl`, or the folder holding it) or a plain Standard
MIDI File whose tracks are the players. Fast replay runs on a manual clock, as fast as the machine
goes: the clock jumps from one event or deadline to the next, so the same recording and seed give
byte-identical output. Real-time replay plays the same input at real speed to real ports.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import config as config_mod
from agent.clock import ManualClock, MonotonicClock
from agent.config import Config, RecordSection
from agent.errors import RecordingError
from agent.events import Heard
from agent.model.live import ModelFactory, inline_factory, recorded_factory
from agent.model.memory_from import MemoryCorpora, load_memory
from agent.policy.commands import PLAY_VERBS
from agent.record import smf
from agent.record.log import read_log
from agent.record.session import Session, log_path, new_recording_dir
from agent.schedule.realtime import EARLY_NS, sleep_until, until_event
from agent.schedule.scheduler import Sink

REPLAYED_CONTROLS = ("port-lost", "port-feedback", "port-feedback-over", "output-lost",
                     "output-back", "reset", "peer", *PLAY_VERBS)
LEAD_IN_NS = 500_000_000  # real-time replay starts this long after it is launched
# The model shipped beside the package in the project's tree (as performances/ is found by the
# CLI's demo); absent from an installed wheel, where a MIDI file falls back to the Markov memory.
SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "models" / "demo.pt"
MIDI_FILE_DEFAULT = "<default for a MIDI file>"  # the default config's source


@dataclass(frozen=True)
class Control:
    time_ns: int
    what: str
    fields: dict[str, Any]


Input = Heard | Control


@dataclass(frozen=True)
class Recording:
    config: Config | None  # the config it was made with (None for a plain MIDI file)
    inputs: list[Input]
    player_names: list[str]
    end_ns: int | None  # when the recorded run stopped, if it says
    model_answers: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    slice: dict[str, Any] | None = None  # a take's or capture's window (takes.py), if it is one
    time_signature: tuple[int, int] | None = None  # a plain MIDI file's first, if it has one
    memory_from: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # as recorded


def load_recording(path: Path) -> Recording:
    path = log_path(path)
    if not path.exists():
        raise RecordingError(f"{path}: no such recording")
    if path.suffix.lower() in (".mid", ".midi", ".smf"):
        heard = smf.read_players(path)
        if not heard:
            raise RecordingError(f"{path}: no track plays any note")
        names = list(dict.fromkeys(h.player for h in heard))
        return Recording(None, list(heard), names, None, time_signature=smf.time_signature(path))
    header, records = read_log(path)
    try:
        cfg = config_mod.from_dict(header["config"], f"{path} (recorded config)",
                                   check_files=False)
    except KeyError:
        raise RecordingError(f"{path}: the header has no config") from None
    if "model" in header:  # where the model was when recorded (the config's path is relative)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(
            cfg.model, checkpoint=header["model"]["path"]))
    if "layout" in header:  # likewise the speaker layout
        cfg = dataclasses.replace(cfg, spatial=dataclasses.replace(
            cfg.spatial, layout=header["layout"]))
    if "memory_from" in header:  # and the corpora that primed the memory
        cfg = dataclasses.replace(cfg, respond=dataclasses.replace(
            cfg.respond, memory_from=tuple(c["path"] for c in header["memory_from"])))
    inputs: list[Input] = []
    answers = []
    end = None
    for r in records:
        if r["k"] == "model" and r.get("what") == "answer":
            answers.append(r)
        elif r["k"] == "in" and not r.get("shed"):  # a shed one was never heard live
            inputs.append(Heard(r["t"], r["player"], bytes.fromhex(r["data"])))
        elif r["k"] == "ctl" and r["what"] in REPLAYED_CONTROLS:
            fields = {k: v for k, v in r.items() if k not in ("t", "k", "what")}
            inputs.append(Control(r["t"], r["what"], fields))
        elif r["k"] == "ctl" and r["what"] == "stop":
            end = r["t"]
            break  # heard while the ports drained after the stop: never answered live either
    return Recording(cfg, inputs, [p.name for p in cfg.players], end, answers,
                     header.get("slice"), memory_from=header.get("memory_from", []))


def fit_config(recording: Recording, config: Config | None) -> Config:
    """The config to replay with: given, else recorded, else a default one for the file's tracks.

    A plain MIDI file's tracks become the players, in order, under the names the config gives.
    """
    chosen = config or recording.config
    if chosen is None:
        return midi_file_config(recording.player_names, recording.time_signature)
    return chosen


def midi_file_config(player_names: list[str],
                     time_signature: tuple[int, int] | None = None) -> Config:
    """A band member for a plain MIDI file dropped in without a config: auto mode (it comps under
    a tune that never rests, answers when the players stop, solos when they rest), with the
    shipped model in all its styles blended evenly: an unknown file's style is unknown, so no
    corpus is favoured for sorting first (`--styles` picks one). Without the shipped model (an
    installed wheel does not carry it) the live Markov memory answers; default_note says so.
    The bar is counted as the file's time signature says (4/4 without one)."""
    beats_per_bar, division = config_mod.metre_of(*(time_signature or (4, 4)))
    table: dict[str, Any] = {
        "performance": {"beats_per_bar": beats_per_bar, "beat_division": division},
        "players": [{"name": n, "port": f"virtual:{n}"} for n in player_names],
        "agent": {"mode": "auto"},
    }
    if SHIPPED_MODEL.is_file():
        from agent.model import checkpoint  # torch only where a model will run anyway

        styles = checkpoint.load(SHIPPED_MODEL).styles
        table["model"] = {"checkpoint": str(SHIPPED_MODEL), "styles": list(styles),
                          "style_weights": [round(1 / len(styles), 6)] * len(styles)}
    return config_mod.from_dict(table, MIDI_FILE_DEFAULT)


def default_note(cfg: Config) -> str | None:
    """One line for the user when `cfg` is a MIDI file's default (None otherwise), as finally
    played (after --mode/--styles): what plays, and the Markov fallback never silent (a user
    must not wonder why it sounds simpler than the demo)."""
    if cfg.source != MIDI_FILE_DEFAULT:
        return None
    if not cfg.model.checkpoint:
        return (f"no config and no shipped model ({SHIPPED_MODEL.name} is not installed "
                f"beside the package): {cfg.agent.mode} mode with the live Markov memory alone")
    blend = ", ".join(f"{s} {w:g}" for s, w in cfg.style().items())
    return (f"no config: {cfg.agent.mode} mode with the shipped model "
            f"{Path(cfg.model.checkpoint).name} (styles {blend}; --mode and --styles change them)")


def replay_dir(cfg: Config, config_file: Path | None, suffix: str) -> Path:
    """Where a replay writes without --out: a new folder under the record.dir of the config
    file given (relative to its folder, as `perform` has it). A config recorded in a log's
    header (or a MIDI file's default) is no file of the user's: its record.dir could say
    anything (an absolute path, "../.."), so that replay goes under the working folder's
    recordings/ instead. Either way the folder's name is the performance's made plain
    (new_recording_dir)."""
    base = (config_file.parent / cfg.record.dir if config_file is not None
            else Path.cwd() / RecordSection().dir)
    return new_recording_dir(base, cfg.performance.name, suffix)


def _renamed(recording: Recording, cfg: Config) -> list[Input]:
    known = {p.name for p in cfg.players}
    if set(recording.player_names) <= known:
        return recording.inputs
    if len(recording.player_names) > len(cfg.players):
        raise RecordingError(
            f"the recording has {len(recording.player_names)} players "
            f"({', '.join(recording.player_names)}) but {cfg.source} names "
            f"{len(cfg.players)}")
    names = dict(zip(recording.player_names, [p.name for p in cfg.players], strict=False))
    return [dataclasses.replace(i, player=names[i.player]) if isinstance(i, Heard) else i
            for i in recording.inputs]


def replay_corpora(recording: Recording, cfg: Config) -> MemoryCorpora | None:
    """The corpora that prime the memory (respond.memory_from), loaded again. Replaying a log
    as it was recorded needs them as they were: one changed since (its hash differs) would
    make the memory answer otherwise, so the replay is refused, saying so (RecordingError);
    with another config (--config) it re-improvises with them as they are."""
    corpora = load_memory(cfg)
    if corpora is None or cfg != recording.config:
        return corpora
    recorded = {c["path"]: c["hash"] for c in recording.memory_from}
    for now in corpora.corpora:
        if recorded.get(now["path"], now["hash"]) != now["hash"]:
            raise RecordingError(
                f"{now['path']}: the corpus has changed since the recording (its hash is "
                f"{now['hash'][:12]}, recorded {recorded[now['path']][:12]}): the live memory "
                "would answer otherwise; replay with --config to re-improvise with it as it is")
    return corpora


def replay_model(recording: Recording, cfg: Config,
                 corpora: MemoryCorpora | None = None) -> ModelFactory | None:
    """Which model a replay uses: none if the config has none; the recorded answers when
    replaying a whole log with its own config (byte-identical output); else the model itself,
    in this process (a MIDI file, another config, or a slice of a log: a re-improvisation). A
    slice (a take, a capture) starts mid-performance: the recorded answers followed what the
    model had heard before it, which a fresh agent has not, so they would not match."""
    if not cfg.uses_model():
        return None
    if cfg == recording.config and recording.model_answers and recording.slice is None:
        return recorded_factory(recording.model_answers)
    return inline_factory(cfg, None if corpora is None else corpora.lines)


def _feed(session: Session, item: Input) -> None:
    if isinstance(item, Heard):
        session.hear(item)
    else:
        session.control(item.what, item.time_ns, **item.fields)


def replay_fast(recording: Recording, cfg: Config, out_dir: Path, source: str,
                sink: Sink | None = None, header: dict[str, Any] | None = None,
                watch: Callable[[dict[str, Any]], bool] | None = None,
                corpora: MemoryCorpora | None = None) -> dict[str, Any]:
    """`header`: more fields for the log's header. `watch` sees every record written; once it
    returns True the replay feeds nothing more and stops (scrub.py's strict replay).
    `corpora`: respond.memory_from's, already loaded (replaying many pieces, say); by default
    loaded here (replay_corpora)."""
    inputs = _renamed(recording, cfg)
    start = inputs[0].time_ns if inputs else 0
    clock = ManualClock(start)
    if corpora is None:
        corpora = replay_corpora(recording, cfg)
    session = Session(cfg, clock, sink or (lambda port, data: True), out_dir,
                      {"clock": "manual", "replay_of": source, **(header or {})},
                      replay_model(recording, cfg, corpora), corpora=corpora)
    halted = False
    if watch is not None:
        def tap(record: dict[str, Any]) -> None:
            nonlocal halted
            halted = watch(record) or halted
        session.log.taps.append(tap)

    def advance(t_ns: int) -> None:
        while not halted and (d := session.scheduler.next_deadline()) is not None and d <= t_ns:
            clock.advance_to(d)
            session.run_due(d, lambda: halted)
        if not halted:
            clock.advance_to(t_ns)

    for item in inputs:
        advance(item.time_ns)
        if halted:
            break
        _feed(session, item)
    if recording.end_ns is not None:
        advance(recording.end_ns)
    else:  # play out everything planned (answers, note-offs), then stop
        while not halted and (d := session.scheduler.next_deadline()) is not None:
            advance(d)
    session.stop(clock.now_ns())
    return session.finish()


async def replay_realtime(recording: Recording, cfg: Config, out_dir: Path, source: str,
                          sink: Sink, header: dict[str, Any] | None = None,
                          stop: asyncio.Event | None = None) -> dict[str, Any]:
    """The recorded input at real speed, the agent's answer to real ports. `stop` set (a stop
    signal): the rest is not played; the run ends as at its end, through the panic, and its
    recording is written."""
    stop = stop or asyncio.Event()
    inputs = _renamed(recording, cfg)
    clock = MonotonicClock()
    loop = asyncio.get_running_loop()
    corpora = replay_corpora(recording, cfg)
    session = Session(cfg, clock, sink, out_dir,
                      {"clock": "monotonic", "replay_of": source, **(header or {})},
                      replay_model(recording, cfg, corpora), log_in_background=True,
                      corpora=corpora)
    driver = session.drive_realtime(loop)
    first = inputs[0].time_ns if inputs else 0
    offset = clock.now_ns() + LEAD_IN_NS - first
    try:
        for item in inputs:
            t = item.time_ns + offset
            # Recorded players arrive on time, not ~1 ms late: the sleep ends early, at a stop
            # too, and the last stretch is spun.
            await until_event(stop, sleep_until(clock, t - EARLY_NS, 0))
            if stop.is_set():
                break
            await sleep_until(clock, t)
            _feed(session, dataclasses.replace(item, time_ns=t))
            session.log.flush_if_due(clock.now_ns())
        while not stop.is_set() and (d := session.scheduler.next_deadline()) is not None:
            await until_event(stop, asyncio.sleep(max(0.0, (d - clock.now_ns()) / 1e9) + 0.005))
    finally:
        driver.stop()
        session.stop(clock.now_ns())
    return session.finish()
