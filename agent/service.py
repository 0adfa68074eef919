"""`stage-agent perform`: the live loop on real ports, until SIGTERM, SIGINT, SIGHUP or SIGQUIT.

Order of events: open every port (a missing one refuses the run with exit 2, before anything is
recorded), then the session (log), then the reset of the agent's channel on every output (what a
crashed run left sounding), before anything heard is answered. On a signal (io/stop_signals.py):
panic through the ledger (every sounding note gets its note-off at once), let the bytes leave,
close ports, write the recording, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from agent import code_digest
from agent.clock import NS_PER_MS, MonotonicClock, ms_to_ns
from agent.config import Config, check_styles
from agent.console import say
from agent.errors import ConfigError, PortError
from agent.events import Heard
from agent.io.midi_in import MidiInputs
from agent.io.midi_out import MidiOutputs
from agent.io.ports import choose_backend
from agent.io.remote import Remote, check_listen_addresses
from agent.io.stop_signals import StopSignals
from agent.io.systemd import Notifier, request_realtime
from agent.listen.feedback import FeedbackGuard
from agent.model.live import ModelFactory
from agent.model.memory_from import MemoryCorpora, load_memory
from agent.model.reload import ModelReload
from agent.model.worker import WorkerModel, ready_with_styles
from agent.record.log import EventLog
from agent.record.replay import Recording, replay_realtime
from agent.record.session import Session, model_identity, new_recording_dir
from agent.record.takes import Takes
from agent.record.telemetry import Telemetry
from agent.schedule.scheduler import Scheduler
from agent.spatial.runtime import SpatialRuntime
from agent.threads import in_daemon_thread

log = logging.getLogger(__name__)

# The final note-offs are sent at once, but they leave through JACK's next process cycle: closing
# the port before that drops them. On a loaded machine a cycle can come tens of ms late, so the
# port stays open this long after the panic (this delays only the exit, never the note-offs).
DRAIN_S = 0.25
# After a second stop signal: the drain is cut to this, still several JACK periods, so that the
# note-offs the panic sent leave all the same.
HURRIED_DRAIN_S = 0.05
# A new JACK connection carries data only from a later process cycle (measured here: up to ~3 ms
# after open_port returns, at 128 frames); messages sent before that are lost. The agent says it
# is ready only after this settle time, several periods long.
PORT_SETTLE_S = 0.05


def freeze_heap() -> None:
    """Move everything allocated so far out of the garbage collector's reach (gc.freeze).

    A collection runs in whichever thread allocates when a threshold is crossed, which can be
    rtmidi's callback on JACK's process thread. Traversing the whole start-up heap there took
    10-20 ms here: JACK missed cycles and messages were lost. After the freeze a collection only
    walks what was made since, and the listener kept every message (bench/listener.py).
    """
    gc.collect()
    gc.freeze()


async def perform(config: Config) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    # The checkpoint's sha256, for the log's header, is hashed on a thread meanwhile: 0.7-0.8 s
    # for one of the largest size allowed (1 GiB; 5 s from a cold disk cache), which on the loop
    # held up the stop signals and the input heard. Waited for before an input port opens.
    hashing = (in_daemon_thread(lambda: model_identity(config.model_path()), "model-hash")
               if config.uses_model() else None)
    # The piece's own files first: a bad one refuses the run before anything else is done.
    corpora, primed = _memory_corpora(config)
    # The agent's own sources, hashed for the log's header (agent_code, ~1.5 MB): read here,
    # before any port opens, so that no input waits on the reading (cached for the Session).
    code_digest()
    try:
        backend = choose_backend(config.midi.backend)
    except PortError as e:
        raise ConfigError(config.source, "midi.backend", str(e)) from None
    clock = MonotonicClock()
    session: Session | None = None
    notifier = Notifier()
    signals = StopSignals(loop)  # from here on a stop signal ends the run through the panic
    signals.install()

    def on_output_event(event: str, ref: str) -> None:
        if session is not None:
            session.control(f"output-{event}", clock.now_ns(), port=ref)

    outputs = MidiOutputs(config.agent.outputs, backend, config.midi.client_name,
                          on_output_event, config.source)
    # The layout is read (a bad one refuses the run, exit 2) before any port is opened.
    spatial = SpatialRuntime(config, clock) if config.spatial.layout else None

    def on_heard(ev: Heard) -> None:
        assert session is not None
        try:
            session.hear(ev)
        except Exception:  # keep playing on stage: the ledger still owns every sounding note
            session.errors += 1
            log.exception("error while handling %s", ev)
            session.log.write("note", clock.now_ns(), text=f"error handling input {ev}")

    def on_input_event(event: str, ref: str, players: list[str]) -> None:
        assert session is not None
        for name in players:
            session.control(f"port-{event}", clock.now_ns(), player=name, port=ref)

    # The agent hearing itself (listen/feedback.py): fed what is sent here, what is heard there.
    guard = FeedbackGuard() if config.midi.feedback_guard else None

    def send(port: str, data: bytes) -> bool:
        if guard is not None:
            guard.sent(clock.now_ns(), data)
        return outputs.send(port, data)

    def on_shed(ev: Heard) -> None:
        assert session is not None
        session.shed(ev)

    inputs = MidiInputs(config, backend, on_heard, on_input_event, guard, on_shed)
    check_listen_addresses(config)  # before any port: a taken address refuses the run (exit 2)
    # Every port is opened (or the run refused, exit 2) before anything is recorded. Heard
    # messages wait in the input queue until the loop runs again, by which time the session
    # exists: nothing heard goes unrecorded.
    outputs.open()
    # The reset below goes out on the new output connections, which carry data only from a
    # later JACK cycle. No input is open yet, so nothing heard is waiting to be answered first.
    await signals.unless_stopped(asyncio.sleep(PORT_SETTLE_S))
    try:
        model_id = None if hashing is None else await _model_identity(config, hashing, signals)
        inputs.open(loop)
    except Exception:
        outputs.close()
        raise
    out_dir = new_recording_dir(Path(config.source).parent / config.record.dir,
                                config.performance.name)
    session = Session(config, clock, send, out_dir,
                      {"clock": "monotonic", "backend": backend.name},
                      _worker_factory(config, loop, corpora) if config.uses_model() else None,
                      log_in_background=True, corpora=corpora, model_id=model_id)
    for ref in config.agent.outputs:  # before the loop runs again: before any answer
        session.control("reset", clock.now_ns(), port=ref)  # recorded and replayed
    driver = session.drive_realtime(loop)
    duplicate = ""  # another agent with this one's MQTT name (io/presence.py)

    def presence(text: str) -> None:  # systemctl status shows it, until READY's and after
        nonlocal duplicate
        duplicate = text
        notifier.notify(status=text or f"performing {config.performance.name}")
    remote = Remote(config, session, on_presence=presence)
    # record start/stop/mark and capture-save (live only); their outcome goes to state/take|capture
    takes = Takes(config, session, loop, remote.publish)  # MQTT state/take|capture, monitor
    session.actions.update(takes.actions())
    model_reload = ModelReload(session, loop)  # swaps session.model: look it up, never keep it
    session.actions["model-reload"] = model_reload.command
    stop = signals.stop
    spatial_task: asyncio.Task[None] | None = None
    if spatial is not None:
        spatial.follow(session.log.taps)
        publish_remote = session.agent.publish

        def publish(kind: str, payload: dict[str, Any]) -> None:
            publish_remote(kind, payload)
            spatial.state(kind, payload)
        session.agent.publish = publish
        spatial_task = asyncio.create_task(spatial.run(stop), name="spatial")
    reported = {"overflow": 0, "malformed": 0, "shed": 0}  # input drops already reported
    try:
        # The waits of the start-up end at a stop signal (a model may take a minute to load).
        if isinstance(session.model, WorkerModel):
            # Loads in its own process; heard input meanwhile is recorded and fed to it after.
            await _model_ready(config, session.model, signals)
        await remote.start()
        await signals.unless_stopped(asyncio.sleep(PORT_SETTLE_S))
        await signals.unless_stopped(_until_online(remote, config.service.online_wait_s))
        priority = (request_realtime(config.service.realtime_priority)
                    if config.service.realtime_priority else "normal")
        freeze_heap()  # after start-up, before the first note (stage-requirements 19)
        notifier.ready(duplicate or
                       f"performing {config.performance.name}; scheduler {priority}"
                       + ("" if remote.mqtt is None or remote.mqtt.online.is_set()
                          else "; MQTT broker not reachable yet"))
        _arm_watchdog(notifier, session)
        log.info("performing %s: %s backend, recording to %s", config.performance.name,
                 backend.name, out_dir)
        recording = (f"recording to {out_dir}" if session.log.on_disk else
                     f"NOT RECORDING: {session.log.status().error}")
        say(f"stage-agent: performing {config.performance.name!r} "
            f"({backend.name}){primed}; {recording}")  # stdout may be gone: plays on
        await _housekeeping(config, session, inputs, outputs, remote, stop, reported)
    finally:
        notifier.stopping()  # the signal handlers stay: a second signal only hurries the drain
        driver.stop()
        session.stop(clock.now_ns())  # ledger note-offs first, then CC64/123/120
        model_reload.close()  # after the panic: stopping a worker may take a moment
        _report_input_trouble(session, inputs, clock.now_ns(), reported)  # since the last poll
        await takes.close(clock.now_ns())  # a running take ends here (with the panic); saves end
        await remote.close()  # MQTT status offline (after the panic: nothing sounds by then)
        if spatial is not None and spatial_task is not None:
            stop.set()  # the panic above muted every object (a tap on the log's "stop")
            await spatial_task
            spatial.close()
        await _drain(signals)
        inputs.close()
        outputs.close()
        for ref in outputs.unconfirmed:  # before finish: the log is still open
            session.log.write("note", clock.now_ns(), text=f"MIDI output {ref!r}: its drain "
                              "at the stop is not confirmed (no JACK cycle within 1 s)")
        notifier.close()
    summary = session.finish()
    signals.remove()  # the recording is written: nothing is left that a signal could lose
    summary["outputs_unconfirmed"] = outputs.unconfirmed
    summary["input_overflow"] = inputs.stats.overflow
    summary["input_shed"] = inputs.stats.shed
    summary["shed_after_ms"] = config.midi.shed_after_ms
    summary["input_malformed"] = inputs.stats.malformed
    summary["input_unhandled"] = inputs.stats.unhandled
    summary["callback_us"] = {k: v if k == "n" else v * 1000
                              for k, v in inputs.stats.callback_ns.summary_ms().items()}
    summary["input_handling_us"] = {k: v if k == "n" else v * 1000
                                    for k, v in inputs.stats.handle_ns.summary_ms().items()}
    if spatial is not None:
        summary["spatial_tick_ms"] = spatial.tick_ns.summary_ms()
        summary["spatial_sent"] = spatial.sender.stats
    return summary


async def _drain(signals: StopSignals) -> None:
    """Keep the ports open while the panic's bytes leave: DRAIN_S, or at least HURRIED_DRAIN_S
    once a second stop signal came (before the drain or during it)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await signals.unless_hurried(asyncio.sleep(DRAIN_S))
    await asyncio.sleep(max(0.0, HURRIED_DRAIN_S - (loop.time() - started)))


async def _model_identity(config: Config, hashing: Future[dict[str, Any]],
                          signals: StopSignals) -> dict[str, Any]:
    """The checkpoint's identity once hashed; a stop signal meanwhile ends the wait (a model on
    a hung disk): its sha256 is then unknown (None), as for a file that cannot be read."""
    identity = await signals.unless_stopped(asyncio.wrap_future(hashing))
    # abspath, not resolve: no look at the (perhaps hung) disk on the loop.
    return identity or {"path": os.path.abspath(config.model_path()), "sha256": None}


async def _until_online(remote: Remote, wait_s: float) -> None:
    """READY waits for MQTT "online" (a director sees the agent before it plays), but never
    longer than `wait_s`: a broker outage must not keep the music from starting."""
    if remote.mqtt is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(remote.mqtt.online.wait(), wait_s)


def _arm_watchdog(notifier: Notifier, session: Session) -> None:
    """Pings at half systemd's watchdog interval, from a scheduler job: a ping proves that the
    loop runs and the scheduler's driver fires jobs on time, and it is sent only while the model
    worker (if any; after a model-reload, the new one) is alive. A hung loop or a dead driver
    sends nothing: systemd restarts."""
    if notifier.watchdog_ns is None:
        return
    half = notifier.watchdog_ns // 2

    def heartbeat(t_ns: int) -> None:
        model = session.model
        if not isinstance(model, WorkerModel) or model.alive():
            notifier.ping()
        session.scheduler.call_at(t_ns + half, heartbeat, tag="watchdog")
    session.scheduler.call_at(session.clock.now_ns() + half, heartbeat, tag="watchdog")


async def _housekeeping(config: Config, session: Session, inputs: MidiInputs,
                        outputs: MidiOutputs, remote: Remote, stop: asyncio.Event,
                        reported: dict[str, int]) -> None:
    """Until stopped: flush the log, poll ports, watch the MIDI clock, refresh the visuals,
    publish telemetry (once a second), and measure the loop's lag (how late it wakes)."""
    flush_s = config.record.flush_ms / 1000
    poll_every = max(1, config.midi.poll_ports_ms // config.record.flush_ms)
    telemetry_every = max(1, 1000 // config.record.flush_ms)
    telemetry = Telemetry()
    session.log.taps.append(telemetry.tap)
    tick = failures = 0
    while not stop.is_set():
        expected = session.clock.now_ns() + round(flush_s * 1e9)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), flush_s)
        now = session.clock.now_ns()
        telemetry.loop_lag.add(max(now - expected, 0))
        tick += 1
        try:
            session.log.flush_if_due(now)
            session.agent.check_clock(now)
            if isinstance(session.model, WorkerModel):
                session.model.check(now)
            if tick % (poll_every * 2) == 0:
                remote.refresh()
            if tick % telemetry_every == 0:  # to MQTT and the monitor, when there are
                remote.telemetry(telemetry.snapshot(
                    session.scheduler.stats, inputs.stats.overflow + inputs.stats.malformed,
                    inputs.stats.shed))
            if tick % poll_every == 0:
                inputs.poll()
                outputs.poll()
                _report_input_trouble(session, inputs, now, reported)
        except Exception as e:  # a bug here must not end the performance: the music runs on
            failures += 1  # its own timers; say so (the first time, then every 100th)
            if failures % 100 == 1:
                log.exception("housekeeping failed (%d times so far); playing on", failures)
                session.log.write("note", now, text=f"housekeeping failed: {e!r}")
    log.info("stopping at %d ms", session.clock.now_ns() // NS_PER_MS)


def _memory_corpora(config: Config) -> tuple[MemoryCorpora | None, str]:
    """respond.memory_from's corpora, loaded and checked (ConfigError, exit 2), and what to
    say of them in the line that says the agent performs ("" for none)."""
    started = time.perf_counter()
    corpora = load_memory(config)
    if corpora is None:
        return None, ""
    primed = ", ".join(f"{c['name']} ({c['notes']} notes of {c['works']} works)"
                       for c in corpora.corpora)
    return corpora, f"; live memory primed from {primed} in {time.perf_counter() - started:.1f} s"


async def _model_ready(config: Config, model: WorkerModel, signals: StopSignals) -> None:
    """The model loaded and answering, with every style the piece names (ConfigError naming
    the key of one it lacks: the worker reports its styles then). A stop signal meanwhile
    ends the wait: nothing is checked, the run stops."""
    await ready_with_styles(
        model, signals.unless_stopped(model.wait_ready(config.model.start_timeout_s)),
        lambda styles: check_styles(config, styles, config.model_path().name))


def _worker_factory(config: Config, loop: asyncio.AbstractEventLoop,
                    corpora: MemoryCorpora | None = None) -> ModelFactory:
    def make(scheduler: Scheduler, event_log: EventLog) -> WorkerModel:
        def report(what: str, fields: dict[str, Any]) -> None:
            event_log.write("model", scheduler.clock.now_ns(), what=what, **fields)
            if what in ("restart", "failed"):
                log.warning("model worker %s: %s", what, fields.get("reason"))

        return WorkerModel(config.model_path(), seed=config.performance.seed,
                           bound=config.model.originality_bound, style=config.style(),
                           scheduler=scheduler, loop=loop, report=report,
                           restart_after_ns=ms_to_ns(config.model.restart_after_ms),
                           start_timeout_ns=int(config.model.start_timeout_s * 1e9),
                           guard_lines=None if corpora is None else corpora.lines)
    return make


def _report_input_trouble(session: Session, inputs: MidiInputs, now: int,
                          reported: dict[str, int]) -> None:
    """Say so (stderr and log) when input was dropped since the last look: a full queue, bytes
    that were not MIDI, note-ons too old to answer (shed, with their note-offs). Once per poll
    at most, so a flood of garbage cannot flood the log."""
    for what, count in (("overflow", inputs.stats.overflow),
                        ("malformed", inputs.stats.malformed), ("shed", inputs.stats.shed)):
        if count > reported[what]:
            text = (f"MIDI input {what}: {count - reported[what]} dropped ({count} in all)"
                    if what != "shed" else
                    f"MIDI input shed: {count - reported[what]} messages, note-ons older than "
                    f"{session.config.midi.shed_after_ms:g} ms when their turn came and their "
                    f"note-offs, not heard ({count} in all): the agent cannot keep up")
            log.warning(text)
            session.log.write("note", now, text=text)
            reported[what] = count


async def rehearse(recording: Recording, config: Config, out_dir: Path,
                   source: str, header: dict[str, Any] | None = None) -> dict[str, Any]:
    """`replay --realtime`: the recorded players at real speed, the agent to its real outputs
    (a window or loop of them: record/scrub.py; `header`: more fields for the log's header)."""
    backend = choose_backend(config.midi.backend)
    outputs = MidiOutputs(config.agent.outputs, backend, config.midi.client_name,
                          lambda event, ref: None, config.source)
    # A stop signal ends it as `perform` ends: through the panic, the drain (cut short by a
    # second one), the recording; never the default action, with notes sounding.
    signals = StopSignals(asyncio.get_running_loop())
    signals.install()
    try:
        outputs.open()
        try:
            return await replay_realtime(recording, config, out_dir, source, outputs.send,
                                         header, signals.stop)
        finally:
            await signals.unless_hurried(asyncio.sleep(DRAIN_S))  # the final note-offs leave
            outputs.close()
    finally:
        signals.remove()
