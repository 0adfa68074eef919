"""The fault matrix on real parts: `stage-agent perform` as a process on real JACK ports (and a
real mosquitto where commands come in), a fault in the middle of playing, and the same three
checks after each:

- no stuck notes, checked at the real synth port: every agent note-on is followed by its
  note-off (same channel and pitch) before that key sounds again, and nothing is left sounding;
- no lost log events: the recording's `in` records are exactly what the player sent, and what
  the synth received is exactly the log's `emit` records (JACK's re-deliveries in a missed cycle
  forgiven as jackpeer.Peer forgives them);
- the agent keeps playing (a note after the fault is answered), or exits cleanly (exit code,
  the message on stderr).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agent import midi
from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME
from tests.model_fixtures import save_random_checkpoint

from .broker import Broker, needs_mosquitto
from .jackpeer import (
    STALE_WINDOW_NS,
    Peer,
    RunningAgent,
    agent_piece,
    model_piece,
    running_agent,
    write_piece,
)

pytestmark = pytest.mark.jack

Record = dict[str, Any]
# The agent plays on MIDI channel 2 (status nibble 1) in every piece here.
PANIC_TAIL = [[0xB1, 64, 0], [0xB1, 123, 0], [0xB1, 120, 0]]  # sustain off, all notes/sound off
BASS = 36
CHORDS = [(60, 64, 67), (65, 69, 72), (67, 71, 74), (64, 67, 71), (62, 65, 69)]
CHORD_EVERY_S = 0.15  # three notes a chord: 20 notes a second
# A JACK cycle (10.7 ms here) holds at most a chord's messages and harmony, or the release of
# every harmony note a pedal held (10 keys x 3 intervals, when a port is pulled out).
LOST_PER_XRUN = 32

# With harmony intervals -5, +4, +9 no two notes of a chord (intervals 3, 4, 7) nor the bass two
# octaves below share a harmony pitch: a message repeated within a JACK period is only ever
# JACK's re-delivery, which the checks may then forgive.
HARMONY = agent_piece("harmony") + """[harmony]
intervals = [-5, 4, 9]
"""
# Model-free and busy: an answer at every phrase end, never cut short by the players.
AUTO = agent_piece("auto") + """[respond]
phrase_gap_ms = 200.0
yield_to_players = false
solo_after_ms = 300.0
max_notes = 8
"""


class RecordingPeer(Peer):
    """The player and the synth, keeping everything sent and received for the checks."""

    def __init__(self, name: str, xruns: Callable[[], int]) -> None:
        super().__init__(name, f"{name}-keys", f"{name}-synth", xruns)
        self.sent: list[tuple[int, list[int]]] = []
        self.got: list[tuple[int, list[int]]] = []
        self.sounding: set[tuple[int, int]] = set()  # (channel, pitch) at the synth port now

    def send(self, *data: int) -> int:
        t = super().send(*data)
        self.sent.append((t, list(data)))
        return t

    def _next(self, timeout: float) -> tuple[int, list[int]]:
        t, message = super()._next(timeout)
        self.got.append((t, message))
        data = bytes(message)
        if midi.is_note_on(data):
            self.sounding.add((data[0] & 0x0F, data[1]))
        elif midi.is_note_off(data):
            self.sounding.discard((data[0] & 0x0F, data[1]))
        return t, message

    def listen(self, seconds: float) -> None:
        """Take in what arrives at the synth port for `seconds`."""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(queue.Empty):
            while (left := deadline - time.monotonic()) > 0:
                self._next(left)

    def xruns(self) -> int:
        """Cycles some JACK client missed since this peer started."""
        return self._xruns() - self._xruns_at_start

    def agent_ons(self) -> int:
        return sum(1 for _, m in self.got if midi.is_note_on(bytes(m)))


@pytest.fixture
def peer(jack_server: JackServer, request: pytest.FixtureRequest) -> Iterator[RecordingPeer]:
    name = "f" + request.node.name.replace("_", "").replace("[", "").replace("]", "")[-18:]
    seen = len(jack_server.log.read_text(errors="replace"))
    p = RecordingPeer(name, jack_server.xruns)
    yield p
    p.close()
    # Shown with a failure: what the JACK server said meanwhile (missed cycles, clients it
    # dropped).
    print("jackd:", jack_server.log.read_text(errors="replace")[seen:][-3000:])


@contextlib.contextmanager
def performing(config: Path, env: dict[str, str], synth: Peer) -> Iterator[RunningAgent]:
    """running_agent (playing to `synth`), and with a failure, what the agent said on stderr."""
    with running_agent(config, env, synth) as agent:
        try:
            yield agent
        except BaseException:
            if agent.proc.returncode is None:
                agent.wait()
            print(f"the agent (exit {agent.proc.returncode}) said:", agent.err[-3000:])
            raise


def piece(peer: RecordingPeer, folder: Path, template: str, **extra: Any) -> Path:
    return write_piece(folder, template, peer.name, **extra)


def without_repeats(timed: list[tuple[int, bytes]]) -> list[bytes]:
    """Messages less those equal to one kept within STALE_WINDOW_NS before: what a buffer JACK
    delivered twice in a missed cycle may add to the agent's input, told apart without the
    arrival times of its batches (jackpeer.StaleRepeats has them at the synth port)."""
    kept: list[tuple[int, bytes]] = []
    out: list[bytes] = []
    for t, data in timed:
        kept = [(u, d) for u, d in kept if t - u < STALE_WINDOW_NS]
        if any(d == data for _, d in kept):
            continue
        kept.append((t, data))
        out.append(data)
    return out


def unpaired(messages: list[bytes]) -> list[str]:
    """What breaks "every note-on gets its note-off before the key sounds again, and nothing
    is left sounding" in a stream of MIDI messages."""
    sounding: set[tuple[int, int]] = set()
    wrong = []
    for data in messages:
        if len(data) != 3:
            continue  # not a note
        key = (data[0] & 0x0F, data[1])
        if midi.is_note_on(data):
            if key in sounding:
                wrong.append(f"a second note-on {data.hex()} before its note-off")
            sounding.add(key)
        elif midi.is_note_off(data):
            if key not in sounding:
                wrong.append(f"a note-off {data.hex()} for a key not sounding")
            sounding.discard(key)
    return wrong + [f"left sounding: {k}" for k in sorted(sounding)]


def missing(part: list[bytes], whole: list[bytes]) -> int | None:
    """How many messages of `whole` are not in `part`, if `part` is `whole` with some left out
    (its order kept); None if it is not."""
    i = 0
    for data in whole:
        if i < len(part) and part[i] == data:
            i += 1
    return len(whole) - len(part) if i == len(part) else None


def check_recording(peer: RecordingPeer, records: list[Record]) -> None:
    """No lost log events, and nothing left sounding at the synth port.

    Without a missed JACK cycle the lists compare exactly: the player's messages with the log's
    `in` records, the log's `emit` records with what the synth received. In a cycle a client
    misses, JACK delivers the previous buffer again, or loses what was due then: when the server
    saw missed cycles, re-delivered buffers are forgiven (at the synth port by jackpeer.Peer,
    at the agent's input by without_repeats) and so is a loss of at most LOST_PER_XRUN messages
    a missed cycle. Forgiving repeats also drops a message really sent twice close together (at
    the synth port: twice in one cycle), which then counts as lost: the pairing is checked on
    what the agent sent, which the synth received but for JACK's doing.
    """
    peer.drain(settle=0.2)  # the agent has exited: whatever was still on its way
    assert all(r["ok"] and r["port"] == f"{peer.name}-synth"
               for r in records if r["k"] == "emit")
    heard = [(r["t"], bytes.fromhex(r["data"])) for r in records if r["k"] == "in"]
    emitted = [(r["t"], bytes.fromhex(r["data"])) for r in records if r["k"] == "emit"]
    sent = [(t, bytes(m)) for t, m in peer.sent]
    got = [bytes(m) for _, m in peer.got]
    xruns = peer.xruns()
    if not xruns:
        assert unpaired(got) == [], "at the synth port"
        same([d for _, d in heard], [d for _, d in sent], "the log's `in` records", "sent")
        same([d for _, d in emitted], got, "the log's `emit`s", "received at the synth")
        return
    assert unpaired([d for _, d in emitted]) == [], "sent by the agent"
    allowed = LOST_PER_XRUN * xruns
    for part, whole, what in ((without_repeats(heard), without_repeats(sent), "heard"),
                              (got, [d for _, d in emitted], "received at the synth")):
        lost = missing(part, whole)
        if lost is None or lost > allowed:
            same(part, whole, f"messages {what}", f"sent, in {xruns} missed JACK cycles")


def same(logged: list[bytes], real: list[bytes], these: str, those: str) -> None:
    """The two message lists are equal; else where they part."""
    if logged != real:
        i = next((i for i, (a, b) in enumerate(zip(logged, real, strict=False)) if a != b),
                 min(len(logged), len(real)))
        raise AssertionError(f"{these} ({len(logged)}) are not what was {those} ({len(real)}): "
                             f"from #{i}: {[d.hex() for d in logged[i:i + 6]]} vs "
                             f"{[d.hex() for d in real[i:i + 6]]}")


def records_of(config: Path, agent: RunningAgent) -> list[Record]:
    return read_log(config.parent / agent.recording / LOG_NAME)[1]


def live_records(config: Path, agent: RunningAgent) -> list[Record]:
    """What the running agent's log holds so far (flushed every 100 ms: the last line may be
    cut short, and is then left out)."""
    lines = (config.parent / agent.recording / LOG_NAME).read_text().splitlines()[1:]
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise
    return out


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               peer: RecordingPeer | None = None) -> None:
    """Poll `condition` (taking in the synth port meanwhile) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        if peer is not None:
            peer.listen(0.05)
        else:
            time.sleep(0.05)


def chord_on(peer: RecordingPeer, index: int, velocity: int = 80) -> tuple[int, ...]:
    chord = CHORDS[index % len(CHORDS)]
    for pitch in chord:
        peer.send(0x90, pitch, velocity)
    return chord


def chord_off(peer: RecordingPeer, chord: tuple[int, ...]) -> None:
    for pitch in chord:
        peer.send(0x80, pitch, 0)


def play_dense(peer: RecordingPeer, enough: Callable[[], bool], timeout: float = 10.0,
               rest_every: int = 0) -> int:
    """Chords every CHORD_EVERY_S, each released just before the next (a rest of two chords
    after every `rest_every` chords, if set), until `enough()`; returns the chords played.
    Ends right after a chord's note-ons: that chord is held."""
    start = time.monotonic()
    i = 0
    while True:
        chord = chord_on(peer, i)
        i += 1
        if enough():
            return i
        assert time.monotonic() - start < timeout, "the agent never got busy enough"
        peer.listen(CHORD_EVERY_S * 0.8)
        chord_off(peer, chord)
        peer.listen(CHORD_EVERY_S * 0.2)
        if rest_every and i % rest_every == 0:
            peer.listen(2 * CHORD_EVERY_S)


# -- 1. SIGTERM and SIGINT during dense playing ---------------------------------------------

@pytest.mark.parametrize(("mode", "sig"), [("harmony", signal.SIGTERM), ("auto", signal.SIGINT)],
                         ids=["harmony-term", "auto-int"])
def test_a_stop_signal_during_dense_playing_leaves_nothing_sounding(
        peer: RecordingPeer, tmp_path: Path, jack: dict[str, str], sig: signal.Signals,
        mode: str) -> None:
    config = piece(peer, tmp_path, HARMONY if mode == "harmony" else AUTO)
    with performing(config, jack, peer) as agent:
        if mode == "harmony":
            # The pedal down, and never up: the harmony of every chord rings on with the
            # player's (listen/keys.py), and all of it must end at the stop.
            peer.send(0xB0, 64, 127)
            peer.send(0x90, BASS, 70)  # held throughout
            play_dense(peer, lambda: peer.agent_ons() >= 60)
            wait_until(lambda: len(peer.sounding) >= 12, 5, "the held chord's harmony", peer)
        else:  # no pedal: one never lifted holds every note, so no phrase would ever end
            play_dense(peer, lambda: peer.agent_ons() >= 12 and bool(peer.sounding),
                       rest_every=4)
        agent.signal(sig)  # the agent sounds now: the held chord's harmony, or its own line
        for i in range(3):  # the player plays on into the stop, and holds it all
            peer.listen(0.02)
            chord_on(peer, i + 1, velocity=60 + i)
        assert agent.wait() == 0, agent.err
    assert "Traceback" not in agent.err, agent.err
    assert "notes played" in agent.out
    records = records_of(config, agent)
    check_recording(peer, records)
    assert [m for _, m in peer.got[-3:]] == PANIC_TAIL
    # The log ends with the stop and its panic: after the stop the agent sends only the panic
    # (a note heard while the ports drain is recorded, never answered).
    stop = next(i for i, r in enumerate(records) if r["k"] == "ctl" and r["what"] == "stop")
    after = [r for r in records[stop + 1:] if r["k"] == "emit"]
    assert after and all(r["why"] == "stop" for r in after), after
    assert [bytes.fromhex(r["data"]) for r in after[-3:]] == [bytes(m) for m in PANIC_TAIL]
    assert {r["k"] for r in records[stop + 1:]} <= {"emit", "in"}
    assert [r["what"] for r in records if r["k"] == "ctl"] == ["reset", "stop"]


# -- 2. The model worker stalled ------------------------------------------------------------

WITH_MODEL = model_piece("m.pt") + "restart_after_ms = 300.0\n"
CALLS = [[60, 62, 64, 65], [67, 65, 64], [62, 64, 60], [64, 65, 67], [65, 64, 62]]


def call_and_answer(peer: RecordingPeer, pitches: list[int],
                    meanwhile: Callable[[], None] = lambda: None) -> None:
    """A short call, then (after `meanwhile`, in the silence that ends the call) its answer
    at the synth port: the first note of it, and the rest until the port is quiet."""
    before = peer.agent_ons()
    for pitch in pitches:
        peer.send(0x90, pitch, 80)
        peer.listen(0.08)
        peer.send(0x80, pitch, 0)
    peer.listen(0.15)  # half the phrase gap: the worker has heard the call, not been asked yet
    meanwhile()
    wait_until(lambda: peer.agent_ons() > before, 10, f"an answer to {pitches}", peer)
    peer.drain(settle=0.4)


def ready_pids(config: Path, agent: RunningAgent) -> list[int]:
    return [r["pid"] for r in live_records(config, agent)
            if r["k"] == "model" and r["what"] == "ready"]


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_stalled_model_worker_is_replaced_and_the_answers_go_on(
        peer: RecordingPeer, tmp_path: Path, jack: dict[str, str]) -> None:
    save_random_checkpoint(tmp_path / "m.pt")
    config = piece(peer, tmp_path, WITH_MODEL)
    stalled: int | None = None

    def model_answers() -> int:
        return sum(r["k"] == "decision" and r.get("source") == "model"
                   for r in live_records(config, agent))

    def until_the_model_answers(count: int) -> None:
        for pitches in CALLS:  # a first answer from a fresh worker may miss its deadline
            call_and_answer(peer, pitches)
            if model_answers() == count:
                return
        raise AssertionError(f"the model answered {model_answers()} calls, not {count}")

    try:
        with performing(config, jack, peer) as agent:
            until_the_model_answers(1)
            stalled = ready_pids(config, agent)[0]
            # Stopped just before it is asked: alive, holding its pipe, answering nothing.
            # Answered all the same, from the live memory.
            call_and_answer(peer, CALLS[1], lambda: os.kill(stalled, signal.SIGSTOP))
            wait_until(lambda: len(ready_pids(config, agent)) == 2, 60, "a new worker")
            assert ready_pids(config, agent)[1] != stalled
            assert not running(stalled)  # killed, not left stopped
            until_the_model_answers(2)
            assert agent.wait() == 0, agent.err
    finally:
        if stalled is not None and running(stalled):
            os.kill(stalled, signal.SIGCONT)
    records = records_of(config, agent)
    check_recording(peer, records)
    answers = [(r["source"], r["why"]) for r in records
               if r["k"] == "decision" and r["what"] == "answer"]
    first = answers.index(("model", "model"))
    assert answers[first + 1][0] == "markov", answers  # the stalled worker's turn
    assert answers[first + 1][1] in ("late", "starting", "restart"), answers
    assert answers[-1] == ("model", "model"), answers
    restarts = [r["reason"] for r in records if r["k"] == "model" and r["what"] == "restart"]
    assert restarts == ["worker stalled"]
    assert "model worker restart: worker stalled" in agent.err
    pids = [r["pid"] for r in records if r["k"] == "model" and r["what"] == "ready"]
    wait_until(lambda: not any(running(p) for p in pids), 5, "the workers gone")


# -- 3. The player's port vanishing and coming back ------------------------------------------

def test_a_vanished_player_port_during_dense_playing_leaves_nothing_sounding(
        peer: RecordingPeer, tmp_path: Path, jack: dict[str, str]) -> None:
    config = piece(peer, tmp_path, HARMONY)
    with performing(config, jack, peer) as agent:
        peer.send(0xB0, 64, 127)
        peer.send(0x90, BASS, 70)
        chords = play_dense(peer, lambda: peer.agent_ons() >= 45)
        # Every message so far has arrived: with the pedal down, the harmony of every key
        # played rings (listen/keys.py), and nothing else sounds.
        keys = {BASS} | {p for i in range(chords) for p in CHORDS[i % len(CHORDS)]}
        ringing = {(1, k + iv) for k in keys for iv in (-5, 4, 9)}
        wait_until(lambda: set(peer.sounding) == ringing, 5, "the pedalled harmony", peer)
        held = set(peer.sounding)
        peer.unplug()  # pulled out with the pedal down and four keys held
        wait_until(lambda: not peer.sounding, 5, "the held notes released", peer)
        peer.replug()
        # Played on only once the agent has reopened the port (the log says so; what is sent
        # before that is lost on the way, and would be missing from the log).
        wait_until(lambda: any(r["k"] == "ctl" and r["what"] == "port-back"
                               for r in live_records(config, agent)), 5, "port-back")
        peer.listen(0.1)  # a new connection carries data from a later JACK cycle
        peer.send(0x90, BASS, 70)
        play_dense(peer, lambda: peer.agent_ons() >= 90)
        wait_until(lambda: len(peer.sounding) == 12, 5, "the harmony after the return", peer)
        assert agent.wait() == 0, agent.err
    records = records_of(config, agent)
    check_recording(peer, records)
    assert [r["what"] for r in records if r["k"] == "ctl"] == [
        "reset", "port-lost", "port-back", "stop"]
    lost = next(i for i, r in enumerate(records) if r["k"] == "ctl" and r["what"] == "port-lost")
    count = len(held)  # every pedalled harmony note, released at once
    released = [bytes.fromhex(r["data"]) for r in records[lost + 1:lost + 1 + count]]
    assert all(records[i]["k"] == "emit" for i in range(lost + 1, lost + 1 + count))
    assert {(d[0] & 0x0F, d[1]) for d in released if midi.is_note_off(d)} == held
    assert records[lost]["player"] == "keys" and "vanished" in agent.err


# -- 3b. Other clients' ports coming and going -----------------------------------------------

def churn_ports(server: str, stop: threading.Event) -> int:
    """Another JACK client registering and unregistering MIDI ports as fast as it can (a
    patchbay, a hub re-enumerating its devices), until `stop`; returns how many rounds."""
    import jack  # JACK-Client, a dev dependency (bench/listener.py)

    client = jack.Client("churn", no_start_server=True, servername=server)
    client.activate()
    rounds = 0
    try:
        while not stop.is_set():
            ports = [kind.register(f"churn-{name}-{i}") for i in range(20)
                     for name, kind in (("in", client.midi_inports),
                                        ("out", client.midi_outports))]
            for port in ports:
                port.unregister()
            rounds += 1
    finally:
        client.deactivate()
        client.close()
    return rounds


def test_ports_coming_and_going_around_the_agent_change_nothing(
        peer: RecordingPeer, tmp_path: Path, jack: dict[str, str]) -> None:
    """The agent lists the ports every 50 ms while another client's ports come and go: a port
    that vanishes while the list is being read is no reason to stop playing."""
    config = piece(peer, tmp_path, HARMONY.replace("poll_ports_ms = 100", "poll_ports_ms = 50"))
    stop = threading.Event()
    rounds: list[int] = []
    churn = threading.Thread(target=lambda: rounds.append(
        churn_ports(jack["JACK_DEFAULT_SERVER"], stop)))
    with performing(config, jack, peer) as agent:
        churn.start()
        try:
            started = time.monotonic()
            play_dense(peer, lambda: time.monotonic() - started > 4)
        finally:
            stop.set()
            churn.join()
        wait_until(lambda: len(peer.sounding) == 9, 5, "the held chord's harmony", peer)
        assert agent.proc.poll() is None, "the agent stopped"
        assert agent.wait() == 0, agent.err
    assert rounds[0] > 20  # the ports really came and went meanwhile
    records = records_of(config, agent)
    check_recording(peer, records)
    assert [r["what"] for r in records if r["k"] == "ctl"] == ["reset", "stop"]


# -- 4. Malformed and hostile commands over MQTT ---------------------------------------------

WITH_MQTT = HARMONY + """
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
agent = "keys-agent"
"""
REPLY_TIMEOUT = 15.0


class Director:
    """Someone at the desk with an MQTT client (paho), sending whatever bytes they like."""

    def __init__(self, port: int, prefix: str) -> None:
        self.prefix = prefix
        self.replies: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

        def on_message(_c: Any, _u: Any, m: Any) -> None:
            topic = m.topic.removeprefix(prefix)
            if topic.startswith(("evt/", "status")):
                self.replies.put((topic, json.loads(m.payload)))
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(prefix + "#", qos=1)
        self.client.loop_start()

    def send(self, verb: str, payload: bytes | dict[str, Any], retain: bool = False) -> Any:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.client.publish(self.prefix + verb, body, qos=1, retain=retain)

    def expect(self, topic: str, **fields: Any) -> dict[str, Any]:
        """The next reply on `topic` with these fields (others, e.g. the rest of a burst's
        replies, are passed over)."""
        deadline = time.monotonic() + REPLY_TIMEOUT
        while True:
            try:
                t, p = self.replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {topic} {fields}") from None
            if t == topic and all(p.get(k) == v for k, v in fields.items()):
                return p

    def refused(self, verb: str, payload: bytes | dict[str, Any], **fields: Any) -> str:
        """Send one command; its evt/error text (the reply must come, and be an error)."""
        self.send("cmd/" + verb, payload)
        t, reply = self.replies.get(timeout=REPLY_TIMEOUT)
        assert t == "evt/error", (verb, payload if len(payload) < 200 else "...", t, reply)
        assert reply["verb"] == verb and all(reply[k] == v for k, v in fields.items()), reply
        return str(reply["error"])

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@contextlib.contextmanager
def stderr_read_meanwhile(agent: RunningAgent) -> Iterator[None]:
    """Read the agent's stderr while it runs (a flood of refusals would fill the pipe and
    block the agent), and stop it at the end of the block, keeping what it said."""
    lines: list[str] = []
    assert agent.proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(agent.proc.stderr or []))
    reader.start()
    try:
        yield
    finally:
        if agent.proc.returncode is None:
            agent.signal()
            agent.proc.wait(timeout=10)
        reader.join(10)
        assert agent.proc.stdout is not None
        agent.out, agent.err = agent.proc.stdout.read(), "".join(lines)


def harmony_of(peer: RecordingPeer, pitch: int, velocity: int = 90) -> list[list[int]]:
    """Play a note (and release it): what the agent answered at the synth port."""
    peer.send(0x90, pitch, velocity)
    answer = [m for _, m in peer.expect(3)]
    peer.send(0x80, pitch, 0)
    answer += [m for _, m in peer.expect(3)]
    return answer


def hostile_commands(now_s: float) -> list[tuple[str, bytes | dict[str, Any], str]]:
    """(verb, payload, the error or the start of it) for each kind of bad command."""
    big = b"x" * 1_000_000
    return [
        ("mode", b"\xff\xfe\xfd", "invalid JSON: "),
        ("mode", b"\x80abc", "invalid JSON: 'utf-8' codec can't decode byte 0x80 in position "
                             "0: invalid start byte"),
        ("mode", b"{mode: solo", "invalid JSON: Expecting property name enclosed in double "
                                 "quotes: line 1 column 2 (char 1)"),
        ("mode", b"", "invalid JSON: Expecting value: line 1 column 1 (char 0)"),
        ("mode", b'["solo"]', 'expected a JSON object with an "id", got list'),
        ("mode", b'"solo"', 'expected a JSON object with an "id", got str'),
        ("mode", b"42", 'expected a JSON object with an "id", got int'),
        ("mode", b"null", 'expected a JSON object with an "id", got NoneType'),
        ("mute", big, "invalid JSON: Expecting value: line 1 column 1 (char 0)"),
        ("mute", b"[" * 100_000, "invalid JSON: nested too deeply"),
        ("mute", b'{"id": "deep", "x": ' + b"{\"a\": " * 100_000, "invalid JSON: nested too "
                                                                 "deeply"),
        ("mute", {"mode": "solo"}, 'missing "id" (a non-empty string)'),
        ("mute", {"id": 7}, 'missing "id" (a non-empty string)'),
        ("mute", {"id": ""}, 'missing "id" (a non-empty string)'),
        ("mute", {"id": ["m"]}, 'missing "id" (a non-empty string)'),
        ("mute", {"id": None}, 'missing "id" (a non-empty string)'),
        ("dance", {"id": "v1"}, "unknown command 'dance' (known: "),
        ("mode/x", {"id": "v2", "mode": "solo"}, "unknown command 'mode/x' (known: "),
        ("", {"id": "v3"}, "unknown command '' (known: "),
        ("mute", {"id": "f1", "now": True}, "mute: unknown field 'now' (allowed: none)"),
        ("unmute", {"id": "s1", "sent": now_s - 3600}, "stale command ignored: sent 36"),
        ("mute", {"id": "s2", "sent": "now"}, '"sent" must be a unix time in seconds, got '
                                              "'now'"),
        ("mute", b'{"id": "s3", "sent": Infinity}', '"sent" must be a unix time in seconds, '
                                                    "got inf"),
        ("mute", b'{"id": "s4", "sent": NaN}', '"sent" must be a unix time in seconds, got nan'),
        ("controls", b'{"id": "c1", "density": NaN}', "controls: density: nan is out of range "
                                                      "0.25..4.0"),
        ("controls", b'{"id": "c2", "dynamics": -Infinity}', "controls: dynamics: -inf is out "
                                                            "of range -1.0..1.0"),
        ("controls", b'{"id": "c6", "register": 1e400}', "controls: register: expected int, "
                                                         "got inf"),
        ("controls", {"id": "c3", "density": 99}, "controls: density: 99 is out of range "
                                                  "0.25..4.0"),
        ("controls", {"id": "c4", "mute": "yes"}, "controls: mute: expected true or false, "
                                                  "got 'yes'"),
        ("controls", {"id": "c5"}, "controls: no control given"),
        ("mode", {"id": "m1", "mode": "polka"}, "mode: 'polka' is not one of "),
        ("mode", {"id": "m2", "mode": "solo", "then": "mute"}, "mode: unknown field 'then' "
                                                               "(allowed: mode)"),
        ("cue", {"id": "q1", "section": "coda"}, "cue: no section 'coda' (sections: none "
                                                 "configured)"),
    ]


@pytest.fixture
def directed(peer: RecordingPeer, tmp_path: Path) -> Iterator[tuple[Path, Director]]:
    """A broker, the piece taking commands from it, and a director at the desk."""
    broker = Broker(tmp_path)
    broker.start()
    try:
        director = Director(broker.port, f"stage/{peer.name}/keys-agent/")
        try:
            yield piece(peer, tmp_path, WITH_MQTT, mqtt_port=broker.port), director
        finally:
            director.close()
    finally:
        broker.stop()


@needs_mosquitto
def test_malformed_and_hostile_commands_change_nothing(
        peer: RecordingPeer, directed: tuple[Path, Director], jack: dict[str, str]) -> None:
    config, director = directed
    # A command left retained on the broker reaches the agent as it subscribes: refused.
    director.send("cmd/mute", {"id": "r1"}, retain=True).wait_for_publish(5)
    with running_agent(config, jack, peer) as agent, stderr_read_meanwhile(agent):
        director.expect("status", state="online")  # said once subscribed, before reading
        director.expect("evt/error", id="r1", error="retained command ignored (commands "
                        "are never retained)")
        before = harmony_of(peer, 60)
        assert before == [[0x91, p, 90] for p in (55, 64, 69)] + \
            [[0x81, p, 0] for p in (55, 64, 69)]
        for verb, payload, error in hostile_commands(time.time()):
            assert director.refused(verb, payload).startswith(error), (verb, error)
        # The parent level of cmd/ (its subscription cmd/# matches it too): no verb at all.
        director.send("cmd", {"id": "p1"})
        assert director.expect("evt/error", id="p1")["error"].startswith(
            f"unknown command '{director.prefix}cmd' (known: ")
        # A repeated id is a retry: acked, never applied twice (so this mute is not).
        director.send("cmd/controls", {"id": "d1", "density": 1.0})
        director.expect("evt/ack", id="d1", verb="controls")
        director.send("cmd/mute", {"id": "d1"})
        director.expect("evt/ack", id="d1", verb="mute")
        assert harmony_of(peer, 60) == before
        # A burst of refused commands, then a good one: taken, and acting.
        for i in range(3000):
            director.send("cmd/" + ("controls", "dance", "mode")[i % 3],
                          {"id": f"b{i}", "density": 9, "mode": "polka"}
                          if i % 3 else b"{" * (i % 50))
        director.send("cmd/mute", {"id": "ok1"})
        director.expect("evt/ack", id="ok1", verb="mute")
        peer.send(0x90, 62, 90)  # muted: heard, not answered
        peer.send(0x80, 62, 0)
        wait_until(lambda: any(r["k"] == "in" and r["data"] == "803e00"
                               for r in live_records(config, agent)), 5, "62 heard", peer)
        director.send("cmd/unmute", {"id": "ok2"})
        director.expect("evt/ack", id="ok2", verb="unmute")
        assert harmony_of(peer, 60) == before
    assert agent.proc.returncode == 0, agent.err[-2000:]
    assert "Traceback" not in agent.err and "internal error" not in agent.err, agent.err[-3000:]
    records = records_of(config, agent)
    check_recording(peer, records)
    # Only the good commands reached the music.
    assert [r["what"] for r in records if r["k"] == "ctl"] == [
        "reset", "controls", "mute", "unmute", "stop"]


@needs_mosquitto
def test_hostile_commands_are_not_amplified(
        peer: RecordingPeer, directed: tuple[Path, Director], jack: dict[str, str]) -> None:
    config, director = directed
    with running_agent(config, jack, peer) as agent, stderr_read_meanwhile(agent):
        director.expect("status", state="online")
        error = director.refused("mode", {"id": "big", "mode": "x" * 1_000_000})
        for i in range(500):
            director.send("cmd/dance", {"id": f"b{i}"})
        director.send("cmd/unmute", {"id": "ok"})
        director.expect("evt/ack", id="ok", verb="unmute")
    assert len(error) < 1000, f"a {len(error)}-character reply to a 1 MB command"
    assert len(agent.err) < 100_000, f"{len(agent.err)} characters on stderr"
