"""One run of the agent (live or replay): its log, scheduler and agent, and how it ends.

Live and replay both go through `Session.hear` / `Session.control` / `Session.run_due`, so the same
event times give the same decisions. What differs is only who moves the clock.

The recording is best effort (record/log.py): a run whose disk is full, read-only or gone plays
on, says so (stderr, and the retained MQTT state `recording` and the monitor through the agent's
publish), and its summary says what the recording lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent import __version__, code_digest, midi
from agent.clock import Clock, ms_to_ns
from agent.config import Config
from agent.errors import ModelError, RecordingError, StageAgentError
from agent.events import Emitted, Heard
from agent.files import FileRefused, safe_name, sha256_file
from agent.model.live import MAX_CHECKPOINT_BYTES, ModelFactory
from agent.model.memory_from import MemoryCorpora
from agent.model.originality import longest_shared_run
from agent.pipeline import Agent
from agent.policy.commands import ACTION_VERBS, PLAY_VERBS, Command, CommandError
from agent.record import smf
from agent.record.log import FAILING, OFF, RECORDING, EventLog, LogStatus, describe, read_log
from agent.record.summary import Tally
from agent.schedule.realtime import RealtimeDriver, drive
from agent.schedule.scheduler import Scheduler, Sink
from agent.spatial.engine import PathRecords

LOG_NAME = "log.jsonl"
MIDI_NAME = "performance.mid"

log = logging.getLogger(__name__)


def log_path(recording: Path) -> Path:
    """A recording folder, or its log file itself -> the log file."""
    return recording / LOG_NAME if recording.is_dir() else recording


def new_recording_dir(base: Path, name: str, suffix: str = "") -> Path:
    """A new folder in `base` named after the performance and the UTC time. The name becomes
    one plain folder name (safe_name): a performance name can come from a log's header, and
    "../x" must not put the folder anywhere else."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-%f")
    return base / f"{safe_name(name, 'recording')}-{stamp}{suffix}"


def model_identity(path: Path) -> dict[str, Any]:
    """Which model a run used: its file and the file's sha256 (None if it cannot be read: not
    a regular file, or larger than a checkpoint may be). Read in chunks: a blocking call that
    keeps one chunk in memory (perform and model-reload run it in a thread)."""
    try:
        digest: str | None = sha256_file(path, MAX_CHECKPOINT_BYTES)
    except (FileRefused, OSError):
        digest = None
    return {"path": str(path.resolve()), "sha256": digest}


class Session:
    """`log_in_background`: a live run's log (record/log.py): written by a thread, and a disk
    that cannot take it leaves the run without a recording rather than stop it. Otherwise (a
    replay on the manual clock) written inline, and a log that cannot be created is an error."""

    def __init__(self, config: Config, clock: Clock, sink: Sink, out_dir: Path,
                 header: dict[str, Any], model: ModelFactory | None = None,
                 log_in_background: bool = False, corpora: MemoryCorpora | None = None,
                 model_id: dict[str, Any] | None = None) -> None:
        """`corpora`: respond.memory_from's, loaded (model/memory_from.load_memory): given
        exactly when the config names some. `model_id`: the checkpoint's model_identity, when
        the caller worked it out off the loop (perform); otherwise it is, here."""
        if bool(config.respond.memory_from) != (corpora is not None):
            raise ValueError("respond.memory_from's corpora are loaded by the caller: "
                             "given when, and only when, the config names some")
        self.config = config
        self.clock = clock
        self.out_dir = out_dir
        self.corpora = corpora
        if config.uses_model():
            header = {**header, "model": model_id or model_identity(config.model_path())}
        if corpora is not None:  # which corpora, where, as they were (a replay checks them)
            header = {**header, "memory_from": list(corpora.corpora)}
        if config.spatial.layout:  # where the layout was (the config's path is relative)
            header = {**header, "layout": str(config.layout_path().resolve())}
        self.log = EventLog(out_dir / LOG_NAME, {
            "agent_version": __version__, "agent_code": code_digest(),
            "config": config.to_dict(),
            "seed": config.performance.seed,
            **header,
        }, flush_ms=config.record.flush_ms, background=log_in_background,
            on_status=self._recording_changed)
        self.kept = Kept(self.log.header, config)  # first: it must see every record
        self.log.taps.append(self.kept.tap)
        if not self.log.on_disk:
            log.error("NOT RECORDING: %s; the performance plays on without a recording",
                      self.log.status().error)
        self.scheduler = Scheduler(clock, sink, ms_to_ns(config.agent.max_note_ms),
                                   self._on_emit)
        self.model = model(self.scheduler, self.log) if model is not None else None
        self.agent = Agent(config, self.scheduler, self.log, self.model, corpora)
        self.errors = 0
        self._recording_said = RECORDING  # the log's state last said on stderr
        # Live actions (policy/commands.ACTION_VERBS) by verb: called with the command's fields
        # and time; raising CommandError refuses the command. A run registers what it offers
        # (a replay offers none, so they are refused there and never replayed).
        self.actions: dict[str, Callable[[dict[str, Any], int], None]] = {}

    def _on_emit(self, e: Emitted, why: str) -> None:
        fields: dict[str, Any] = {"deadline": e.deadline_ns, "port": e.port,
                                  "data": e.data.hex(), "why": why, "ok": e.delivered}
        if e.cause_ns is not None:
            fields["cause"] = e.cause_ns
        self.log.write("emit", e.sent_ns, **fields)

    def recording_state(self) -> dict[str, Any]:
        """The retained MQTT state `recording`: "recording", "failing" (records are being lost
        now) or "off" (no recording); `lost` records so far, the last `error`."""
        status = self.log.status()
        return {"state": status.state, "folder": str(self.out_dir), "lost": status.lost,
                "error": status.error}

    def _recording_changed(self, status: LogStatus) -> None:
        """From the log's flush_if_due, on the loop: first at the start, then at every change
        (a growing loss at most once a second)."""
        self.agent.publish("recording", self.recording_state())
        if status.state == FAILING and self._recording_said != FAILING:
            log.error("RECORDING FAILING: %s; %d records lost so far (the performance plays on)",
                      status.error, status.lost)
        elif status.state == RECORDING and self._recording_said == FAILING:
            log.warning("recording again, after %d records lost (%s)", status.lost,
                        status.error)
        self._recording_said = status.state

    def drive_realtime(self, loop: asyncio.AbstractEventLoop) -> RealtimeDriver:
        """Run the scheduler's jobs at their deadlines on this loop (live and --realtime)."""
        return drive(loop, self.scheduler)

    def shed(self, ev: Heard) -> None:
        """A message the input shed (too old when its turn came: io/midi_in.py): recorded, as
        the player played it, and marked, so that a replay does not answer it either."""
        self.log.write("in", ev.time_ns, player=ev.player, data=ev.data.hex(), shed=True)

    def hear(self, ev: Heard) -> None:
        self.scheduler.run_due(ev.time_ns)  # what was due before this event happens first
        self.scheduler.hold_wakeups()  # the driver re-arms once, for what is left
        try:
            self.agent.hear(ev)
            self.scheduler.run_due(self.clock.now_ns())  # immediate reactions leave now
        finally:
            self.scheduler.release_wakeups()

    def command(self, cmd: Command, t_ns: int) -> None:
        """A checked command from the control plane or a cue: recorded, then applied.
        Raises CommandError (nothing recorded, nothing changed) for styles the model lacks
        and for a live action this run does not offer or that refuses."""
        if cmd.verb in ACTION_VERBS:
            action = self.actions.get(cmd.verb)
            if action is None:
                raise CommandError(f"{cmd.verb}: not available in this run")
            self.scheduler.run_due(t_ns)
            action(cmd.fields, t_ns)  # may refuse (CommandError): then nothing is logged
            self.log.write("ctl", t_ns, what=cmd.verb, **cmd.fields)
            return
        styles = cmd.fields.get("styles") if cmd.verb == "controls" else None
        known = self.model.styles if self.model is not None else ()
        if styles and known and set(styles) - set(known):
            raise CommandError(f"controls: styles {sorted(set(styles) - set(known))} are not "
                               f"in the model (it has {', '.join(known)})")
        self.control(cmd.verb, t_ns, **cmd.fields)

    def control(self, what: str, t_ns: int, **fields: Any) -> None:
        """A control that changes what plays (recorded, and replayed at the same time)."""
        self.scheduler.run_due(t_ns)
        self.log.write("ctl", t_ns, what=what, **fields)
        if what in PLAY_VERBS:
            self.agent.apply(Command(what, fields), t_ns)
        elif what == "peer":
            self.agent.peer(fields["agent"], t_ns,
                            {k: v for k, v in fields.items() if k != "agent"})
        elif what == "port-lost" and "player" in fields:
            self.agent.player_lost(fields["player"], t_ns)
        elif what in ("port-feedback", "port-feedback-over"):
            self.agent.hears_itself(fields["player"], what == "port-feedback", t_ns)
        elif what == "output-lost":
            self.scheduler.release_port(fields["port"], "output-lost")
        elif what == "output-back":
            # A note-off lost while the port was gone could leave the synth holding a note:
            # reset the channels the agent used there (sustain off, all notes/sound off).
            self.scheduler.panic_port(fields["port"], "output-back")
        elif what == "reset":
            # At the start of a live run, before it plays: a run that died (SIGKILL, OOM, the
            # watchdog) left its notes and sustain on the synth; this run's ledger knows none.
            self.scheduler.reset_channel(t_ns, fields["port"], self.config.agent.channel - 1,
                                         "reset")
        self.scheduler.run_due(self.clock.now_ns())

    def run_due(self, now_ns: int, halted: Callable[[], bool] | None = None) -> None:
        self.scheduler.run_due(now_ns, halted)

    def stop(self, t_ns: int) -> None:
        """End of the run: panic (ledger note-offs first), so nothing is left sounding. The
        `stop` record comes first in the log, but the panic happens whatever writing it does."""
        try:
            self.log.write("ctl", t_ns, what="stop")
        finally:
            try:
                self.scheduler.close("stop")  # a panic, and nothing sounds after it
            finally:
                if self.model is not None:
                    self.model.close()
                self.log.flush()

    def finish(self) -> dict[str, Any]:
        """Close the log; write the Standard MIDI File and the summary; return the summary.
        Made from what the log file holds: when the file took every record, from what the
        session kept of them as they were written (Kept), so that the end of a long show does
        not read its log back (seconds for 200,000 records: bench/finish.py); otherwise (records
        lost, no file, or the keeping failed) from the file, read back, so that the summary and
        performance.mid never hold more than the recording. What the disk did not take is said
        (`recorded`, `recording_lost`, `recording_error`, `midi_error`), on stderr too, never
        raised."""
        self.log.close()
        status = self.log.status()
        header, kept, error = self.log.header, self.kept, status.error
        if status.lost or not self.log.on_disk or kept.failed is not None:
            if kept.failed is not None:
                log.warning("the run's records were not all kept (%s): read back from %s",
                            kept.failed, self.log.path)
            records: list[dict[str, Any]] = []
            if self.log.on_disk:
                try:
                    header, records = read_log(self.log.path)
                except RecordingError as e:  # the folder went away, say
                    error = str(e)
            kept = Kept.of(header, records, self.config)
        summary = kept.tally.summary(header)
        summary.update(recording=str(self.out_dir), recorded=self.log.created,
                       recording_lost=status.lost, recording_error=error)
        if status.state == OFF and not kept.records:
            summary["midi_error"] = "no log to make it from"
        else:
            try:
                kept.tracks.write(self.out_dir / MIDI_NAME)
            except OSError as e:
                summary["midi_error"] = f"cannot write {self.out_dir / MIDI_NAME}: {describe(e)}"
        if not self.log.created:
            log.error("nothing of this run was recorded: %s", error)
        elif status.lost or summary.get("midi_error"):
            log.error("the recording in %s is incomplete: %d records lost (%s)%s", self.out_dir,
                      status.lost, error, f"; {MIDI_NAME} not written: {summary['midi_error']}"
                      if summary.get("midi_error") else "")
        if kept.paths is not None:  # a spatial piece
            from agent.spatial.runtime import picture_of  # matplotlib only for spatial pieces

            try:
                summary["trajectories"] = str(picture_of(self.config, kept.paths, self.out_dir))
            except StageAgentError as e:  # e.g. a replay whose layout file has moved since
                summary["trajectories_error"] = str(e)
            except OSError as e:  # the disk full or read-only
                summary["trajectories_error"] = describe(e)
        if self.config.uses_model() or self.corpora is not None:
            try:
                summary["originality_notes"] = self._originality(kept.pitches)
            except ModelError as e:  # a replay of recorded answers can run without the model
                summary["originality_notes"] = None
                summary["originality_error"] = str(e)
        return summary

    def _originality(self, pitches: Sequence[int]) -> int:
        """The longest run of the agent's notes (`pitches`, on its first port) copied from the
        model's corpora and the memory's (respond.memory_from), in notes."""
        lines = [] if self.corpora is None else [self.corpora.lines]
        if self.config.uses_model():
            from agent.model.checkpoint import load  # torch, only for runs that have a model

            lines.append(load(self.config.model_path()).corpus_lines)
        # Joined lines end with a separator: one after the other they stay apart.
        return longest_shared_run(pitches, np.concatenate(lines))


class Kept:
    """What the end of a run makes its files and summary from, gathered from each record as the
    log is written (the session's first tap on it): the summary's figures (summary.Tally), the
    MIDI file's tracks (smf.Tracks), the agent's pitches on its first port (the originality
    figure) and, for a spatial piece, the records that move the voices (PathRecords). Compact:
    ~20 bytes a MIDI message and no object for it, the voices' few decisions as their text.
    The same as reading the log file back gives, as long as the file took every record."""

    def __init__(self, header: dict[str, Any], config: Config) -> None:
        self.tally = Tally()
        self.tracks = smf.Tracks([p["name"] for p in header["config"]["players"]])
        self.pitches = array("B")
        self.paths = PathRecords() if config.spatial.layout else None
        self.records = 0
        self.failed: str | None = None  # why the tap stopped keeping (finish reads the file)
        self._first_port = config.agent.outputs[0]

    @classmethod
    def of(cls, header: dict[str, Any], records: list[dict[str, Any]], config: Config) -> Kept:
        kept = cls(header, config)
        for r in records:
            kept.add(r)
        return kept

    def tap(self, record: dict[str, Any]) -> None:
        if self.failed is None:
            try:
                self.add(record)
            except Exception as e:  # never into the note path: the end reads the file instead
                self.failed = f"{type(e).__name__}: {e}"

    def add(self, r: dict[str, Any]) -> None:
        self.records += 1
        kind = r["k"]
        # Each message decoded once (this runs on the loop, for every record written).
        data = bytes.fromhex(r["data"]) if kind == "in" or kind == "emit" else None
        self.tally.add(r, data)
        self.tracks.add(r, data)
        if kind == "emit" and r["port"] == self._first_port and data is not None \
                and midi.is_note_on(data):
            self.pitches.append(data[1])
        if self.paths is not None:
            self.paths.add(r)
