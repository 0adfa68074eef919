"""One run of the agent (live or replay): its log, scheduler and agent, and how it ends.

Live and replay both go through `Session.hear` / `Session.control` / `Session.run_due`, so the same
event times give the same decisions. What differs is only who moves the clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.clock import Clock, ms_to_ns
from agent.config import Config
from agent.errors import ModelError, StageAgentError
from agent.events import Emitted, Heard
from agent.files import FileRefused, safe_name, sha256_file
from agent.model.live import MAX_CHECKPOINT_BYTES, ModelFactory
from agent.model.originality import longest_shared_run
from agent.pipeline import Agent
from agent.policy.commands import ACTION_VERBS, PLAY_VERBS, Command, CommandError
from agent.record import smf
from agent.record.log import EventLog, read_log
from agent.record.summary import notes_of, summarise
from agent.schedule.realtime import RealtimeDriver, drive
from agent.schedule.scheduler import Scheduler, Sink

LOG_NAME = "log.jsonl"
MIDI_NAME = "performance.mid"


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
    keeps one chunk in memory (model-reload runs it in a thread)."""
    try:
        digest: str | None = sha256_file(path, MAX_CHECKPOINT_BYTES)
    except (FileRefused, OSError):
        digest = None
    return {"path": str(path.resolve()), "sha256": digest}


class Session:
    def __init__(self, config: Config, clock: Clock, sink: Sink, out_dir: Path,
                 header: dict[str, Any], model: ModelFactory | None = None) -> None:
        self.config = config
        self.clock = clock
        self.out_dir = out_dir
        if config.uses_model():
            header = {**header, "model": model_identity(config.model_path())}
        if config.spatial.layout:  # where the layout was (the config's path is relative)
            header = {**header, "layout": str(config.layout_path().resolve())}
        self.log = EventLog(out_dir / LOG_NAME, {
            "config": config.to_dict(), "seed": config.performance.seed, **header,
        }, flush_ms=config.record.flush_ms)
        self.scheduler = Scheduler(clock, sink, ms_to_ns(config.agent.max_note_ms),
                                   self._on_emit)
        self.model = model(self.scheduler, self.log) if model is not None else None
        self.agent = Agent(config, self.scheduler, self.log, self.model)
        self.errors = 0
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

    def drive_realtime(self, loop: asyncio.AbstractEventLoop) -> RealtimeDriver:
        """Run the scheduler's jobs at their deadlines on this loop (live and --realtime)."""
        return drive(loop, self.scheduler)

    def hear(self, ev: Heard) -> None:
        self.scheduler.run_due(ev.time_ns)  # what was due before this event happens first
        self.agent.hear(ev)
        self.scheduler.run_due(self.clock.now_ns())  # immediate reactions leave now

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
        elif what == "output-lost":
            self.scheduler.release_port(fields["port"], "output-lost")
        elif what == "output-back":
            # A note-off lost while the port was gone could leave the synth holding a note:
            # reset the channels the agent used there (sustain off, all notes/sound off).
            self.scheduler.panic_port(fields["port"], "output-back")
        self.scheduler.run_due(self.clock.now_ns())

    def run_due(self, now_ns: int, halted: Callable[[], bool] | None = None) -> None:
        self.scheduler.run_due(now_ns, halted)

    def stop(self, t_ns: int) -> None:
        """End of the run: panic (ledger note-offs first), so nothing is left sounding."""
        self.log.write("ctl", t_ns, what="stop")
        self.scheduler.close("stop")  # a panic, and nothing sounds after it
        if self.model is not None:
            self.model.close()
        self.log.flush()

    def finish(self) -> dict[str, Any]:
        """Close the log; write the Standard MIDI File and the summary; return the summary."""
        self.log.close()
        header, records = read_log(self.log.path)
        smf.export(header, records, self.out_dir / MIDI_NAME)
        summary = summarise(header, records)
        summary["recording"] = str(self.out_dir)
        if self.config.spatial.layout:
            from agent.spatial.runtime import picture  # matplotlib only for spatial pieces

            try:
                summary["trajectories"] = str(picture(self.config, records, self.out_dir))
            except StageAgentError as e:  # e.g. a replay whose layout file has moved since
                summary["trajectories_error"] = str(e)
        if self.config.uses_model():
            try:
                summary["originality_notes"] = self._originality(records)
            except ModelError as e:  # a replay of recorded answers can run without the model
                summary["originality_notes"] = None
                summary["originality_error"] = str(e)
        return summary

    def _originality(self, records: list[dict[str, Any]]) -> int:
        """The longest run of the agent's notes copied from the model's corpus (in notes)."""
        from agent.model.checkpoint import load  # torch, only for runs that have a model

        _players, agent = notes_of(records, self.config.agent.outputs[0])
        return longest_shared_run([n.pitch for n in agent],
                                  load(self.config.model_path()).corpus_lines)
