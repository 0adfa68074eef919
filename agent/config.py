"""One validated config per performance (TOML).

Every table maps onto a frozen dataclass below; the loader walks the dataclass fields, so the
schema is written once. Unknown keys, wrong types, missing required keys and out-of-range values
raise ConfigError naming the file and the dotted key. The service never starts half-configured.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import ssl
import tomllib
import types
import typing
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.chart import ChartError, parse_chart
from agent.errors import ConfigError
from agent.files import FileRefused, read_regular
from agent.policy.controls import MODES, Controls, ControlValueError, check_changes
from agent.spatial.choreography import STYLES as GESTURE_STYLES

# "respond" is the first name of call-and-response; recordings made with it still load.
MODE_ALIASES = {"respond": "call-response"}
BACKENDS = ("auto", "jack", "alsa")
MAX_CONFIG_BYTES = 4 << 20  # a performance.toml is a few KiB; its chord charts a few more


def metre_of(numerator: int, denominator: int) -> tuple[int, int]:
    """(beats_per_bar, beat_division) of a time signature, as a player counts it: a compound
    metre (6/8, 9/8, 12/8) in dotted beats of three eighths, any other in its own beats."""
    if denominator == 8 and numerator % 3 == 0 and numerator > 3:
        return min(numerator // 3, 16), 3
    return min(max(numerator, 1), 16), 2


@dataclass(frozen=True)
class PerformanceSection:
    name: str = "untitled"
    seed: int = 1
    beats_per_bar: int = 4  # for bar-counted sections and the beat position fed to the model
    # eighths per beat: 2 in simple metres (2/4, 3/4, 4/4), 3 in compound ones (6/8, 9/8, 12/8,
    # whose beat is a dotted quarter): where the comp strikes and answers lock between beats
    beat_division: int = 2


@dataclass(frozen=True)
class MidiSection:
    backend: str = "auto"  # which rtmidi API: auto (env STAGE_AGENT_MIDI_API, else the default)
    client_name: str = "stage-agent"
    poll_ports_ms: int = 500  # how often vanished ports are looked for (reopen within 2 s)
    sysex_limit: int = 256  # bytes; longer SysEx is dropped and counted
    queue_size: int = 4096  # input queue bound; overflow is counted
    feedback_guard: bool = True  # stop answering a player whose port plays the agent's notes back
    # A note-on this old when its turn comes is shed (0: never, the default: a shed note is
    # not in the log yet, so a replay cannot know it was not heard; 50 keeps a flood's answers
    # within 50 ms on a loaded machine: README "On stage").
    shed_after_ms: float = 0.0


@dataclass(frozen=True)
class Player:
    name: str
    port: str  # "substring", "re:<regex>" or "virtual:<name>" (a port the agent creates)
    channels: tuple[int, ...] = ()  # 1-16; empty = every channel
    follow_clock: bool = False  # take MIDI clock (tempo, start/stop) from this player's port


@dataclass(frozen=True)
class AgentSection:
    mode: str = "call-response"  # the starting mode (policy/controls.MODES)
    outputs: tuple[str, ...] = ("virtual:stage-agent-out",)
    channel: int = 1  # 1-16
    output_latency_ms: float = 100.0  # planned events play at decision time + this
    max_note_ms: float = 4000.0  # no agent note sounds longer
    plan_horizon_ms: float = 500.0  # planned notes are committed this far ahead (a comp: a beat)


@dataclass(frozen=True)
class RespondSection:
    phrase_gap_ms: float = 600.0  # silence with no held notes that ends a phrase
    phrase_gap_beats: float = 0.0  # if > 0 and a steady beat is heard: the gap in beats instead
    max_order: int = 4  # longest context of the live Markov memory
    max_notes: int = 24  # longest answer
    yield_to_players: bool = True  # a player coming in cancels the rest of the answer
    solo_after_ms: float = 0.0  # players resting this long after the agent stops: it plays on
    beat_lock: float = 1.0  # how far onsets move onto the eighths of the heard beat (0 = off)
    # corpus folders (relative to this file) whose train and valid works prime the live memory
    # at start (agent/model/memory_from.py); empty = it learns from the players only
    memory_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class ControlsSection:
    """The controls' starting values (policy/controls.py); sections and commands change them."""

    density: float = 1.0
    register: int = 0
    dynamics: float = 0.0
    valence: float = 0.0
    arousal: float = 0.0
    memory_weight: float = 0.0
    mute: bool = False


@dataclass(frozen=True)
class Section:
    """A part of the piece: its mode and controls, left by a cue or after `bars` bars."""

    name: str
    mode: str = ""  # "" = the piece's starting mode ([agent] mode)
    bars: int = 0  # go on to the next section after this many bars; 0 = only on a cue
    # as [controls], plus temperature and styles
    controls: dict[str, Any] = field(default_factory=dict)
    spatial: str = ""  # the voices' gesture style in this section; "" = [spatial] style
    chords: str = ""  # a chord chart, as a lead sheet writes it (agent/chart.py); "" = listen


@dataclass(frozen=True)
class MqttSection:
    host: str = ""  # the broker; "" = no control plane
    port: int = 1883
    agent: str = "agent"  # this agent's name: topics are stage/<performance.name>/<agent>/...
    username: str = ""
    password: str = ""
    tls: bool = False
    ca_file: str = ""  # with tls: the CA bundle (relative to this file); "" = the system's
    keepalive_s: int = 10
    # a command "sent" further than this from the agent's clock, either way, is refused
    # (never panic and mute: policy/commands.check_sent)
    max_command_age_s: float = 10.0


@dataclass(frozen=True)
class EnsembleSection:
    # every agent of the piece (their mqtt.agent names, this one included), in turn order;
    # empty = this agent plays alone
    members: tuple[str, ...] = ()
    tempo_leader: str = ""  # the member whose beat the others play to; "" = each its own


@dataclass(frozen=True)
class OscSection:
    visuals: tuple[str, ...] = ()  # "host:port" destinations of the plan and state stream
    control: str = ""  # "host:port" to take commands and cues on; "" = none
    allow: tuple[str, ...] = ("127.0.0.1",)  # sender addresses whose commands are taken


SPATIAL_PROTOCOLS = ("adm", "spatgris", "satie", "gains", "visuals", "visuals-floats")


@dataclass(frozen=True)
class SpatialDestination:
    host: str = "127.0.0.1"
    port: int = 4001
    protocol: str = "adm"  # SPATIAL_PROTOCOLS
    max_rate_hz: float = 50.0  # at most this many updates a second to this destination
    refresh_hz: float = 1.0  # the full state this often (UDP loses packets; renderers restart)
    aed: bool = False  # adm: also send /adm/obj/n/aed
    coords: str = "car"  # spatgris: "car" (x y z) or "deg" (azimuth clockwise, elevation)


@dataclass(frozen=True)
class SpatialSection:
    layout: str = ""  # a speaker layout file (relative to this file); "" = no spatialization
    tick_hz: float = 50.0
    style: str = "orbit"  # how the voices move with each phrase (GESTURE_STYLES)
    players: dict[str, Any] = field(default_factory=dict)  # name -> [azimuth, elevation] deg
    subwoofers: tuple[int, ...] = ()  # channels of the layout that are subwoofers (SpatGRIS)
    panning: str = "vbap"  # for "gains" destinations: vbap (directions) or dbap (positions)
    destinations: tuple[SpatialDestination, ...] = ()

    def player_positions(self) -> dict[str, tuple[float, float]]:
        return {name: (float(v[0]), float(v[1])) for name, v in self.players.items()}


@dataclass(frozen=True)
class HarmonySection:
    intervals: tuple[int, ...] = (-5,)  # semitones added to each heard note, played at once


@dataclass(frozen=True)
class ModelSection:
    checkpoint: str = ""  # a trained model (relative to this file); "" = live Markov memory only
    deadline_ms: float = 50.0  # a phrase not proposed within this is dropped: Markov answers
    styles: tuple[str, ...] = ()  # corpus styles to blend; empty = the model's first style
    style_weights: tuple[float, ...] = ()  # one weight per style (normalised); empty = equal
    temperature: float = 0.9
    top_p: float = 0.95
    range_semitones: int = 7  # answers stay within the call's range widened by this
    keep_to_key: bool = True  # answers use only the scale of the key heard so far
    originality_bound: int = 12  # notes: never complete a longer run copied from the corpus
    restart_after_ms: float = 1000.0  # a worker owing an answer this long is restarted
    start_timeout_s: float = 60.0  # loading the model at start-up
    # Where `model-reload` may load checkpoints from, besides this file's own folder (relative
    # to it); "" = the folder of `checkpoint`.
    models_dir: str = ""


@dataclass(frozen=True)
class ServiceSection:
    # SCHED_FIFO priority asked for at start (1-99; needs LimitRTPRIO or CAP_SYS_NICE, and is
    # refused gracefully without); 0 = the normal scheduler
    realtime_priority: int = 0
    online_wait_s: float = 5.0  # at start, wait this long for MQTT "online" before READY


@dataclass(frozen=True)
class MonitorSection:
    """The live monitor web page for the stage technician (agent/io/monitor.py)."""

    listen: str = ""  # "127.0.0.1:8088", or a port alone (= 127.0.0.1); "" = no monitor
    allow_remote: bool = False  # a non-loopback listen address (anyone there sees the page)
    max_clients: int = 8  # pages open at once (event streams); the next one gets 503


@dataclass(frozen=True)
class RecordSection:
    dir: str = "recordings"  # relative to the config file's folder
    flush_ms: int = 100
    capture_s: float = 300.0  # the always-on ring buffer keeps this much for capture-save


@dataclass(frozen=True)
class Config:
    players: tuple[Player, ...]
    performance: PerformanceSection = field(default_factory=PerformanceSection)
    midi: MidiSection = field(default_factory=MidiSection)
    agent: AgentSection = field(default_factory=AgentSection)
    respond: RespondSection = field(default_factory=RespondSection)
    harmony: HarmonySection = field(default_factory=HarmonySection)
    model: ModelSection = field(default_factory=ModelSection)
    record: RecordSection = field(default_factory=RecordSection)
    controls: ControlsSection = field(default_factory=ControlsSection)
    sections: tuple[Section, ...] = ()
    mqtt: MqttSection = field(default_factory=MqttSection)
    ensemble: EnsembleSection = field(default_factory=EnsembleSection)
    osc: OscSection = field(default_factory=OscSection)
    spatial: SpatialSection = field(default_factory=SpatialSection)
    service: ServiceSection = field(default_factory=ServiceSection)
    monitor: MonitorSection = field(default_factory=MonitorSection)
    source: str = field(default="<built-in>", compare=False)

    def uses_model(self) -> bool:
        """A checkpoint is configured and some mode of the piece asks it anything (every mode
        but harmony does)."""
        return bool(self.model.checkpoint) and bool(self.modes() - {"harmony"})

    def modes(self) -> set[str]:
        """Every mode the piece starts in or a section names (commands may add others)."""
        return {self.agent.mode, *(s.mode for s in self.sections if s.mode)}

    def uses_listening_beat(self) -> bool:
        """The beat is tracked from onsets unless the piece only harmonises (the tracker's
        ~0.3 ms per onset stays off the immediate reaction's path)."""
        return self.modes() != {"harmony"}

    def initial_controls(self) -> Controls:
        c = self.controls
        return Controls(mode=self.agent.mode, temperature=self.model.temperature,
                        density=c.density, register=c.register, dynamics=c.dynamics,
                        valence=c.valence, arousal=c.arousal,
                        styles=tuple(sorted(self.style().items())),
                        memory_weight=c.memory_weight, mute=c.mute)

    def model_path(self) -> Path:
        """The checkpoint, relative to the config file's folder."""
        return Path(self.source).parent / self.model.checkpoint

    def models_path(self) -> Path:
        """The folder model-reload may load from besides this file's (model.models_dir)."""
        if self.model.models_dir:
            return Path(self.source).parent / self.model.models_dir
        return self.model_path().parent

    def memory_paths(self) -> list[Path]:
        """The corpora that prime the live memory (respond.memory_from), relative to the
        config file's folder."""
        return [Path(self.source).parent / p for p in self.respond.memory_from]

    def layout_path(self) -> Path:
        """The speaker layout, relative to the config file's folder."""
        return Path(self.source).parent / self.spatial.layout

    def style(self) -> dict[str, float]:
        """The blend model.styles and model.style_weights name; styles alone weigh the same."""
        weights = self.model.style_weights or (1.0,) * len(self.model.styles)
        return dict(zip(self.model.styles, weights, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """The resolved config, as recorded in every log."""
        out = dataclasses.asdict(self)
        out.pop("source")
        return out


def load(path: str | Path) -> Config:
    """A performance.toml: a regular file of at most MAX_CONFIG_BYTES (a FIFO would hang the
    start, a device fill the memory), valid UTF-8 TOML, then checked (from_dict)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(str(path), "-", "file not found")
    try:
        text = read_regular(path, MAX_CONFIG_BYTES).decode("utf-8")
        table = tomllib.loads(text)
    except FileRefused as e:
        raise ConfigError(str(path), "-", str(e)) from None
    except UnicodeDecodeError as e:
        raise ConfigError(str(path), "-", f"not valid TOML: not UTF-8 ({e.reason})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), "-", f"not valid TOML: {e}") from None
    return from_dict(table, str(path))


def from_dict(table: dict[str, Any], source: str = "<built-in>",
              check_files: bool = True) -> Config:
    """check_files=False for a recorded config: the files it named may have moved since."""
    table = dict(table)
    table.pop("source", None)
    agent = table.get("agent")
    if isinstance(agent, dict) and agent.get("mode") in MODE_ALIASES:
        table["agent"] = {**agent, "mode": MODE_ALIASES[agent["mode"]]}
    config: Config = dataclasses.replace(_build(Config, table, source, ""), source=source)
    _check(config, check_files)
    return config


def _build(cls: type, table: Any, source: str, prefix: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(source, prefix or "-", f"expected a table, got {_kind(table)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    for key in table:
        if key not in fields:
            raise ConfigError(source, prefix + key, f"unknown key (known: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        key = prefix + name
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(source, key, "missing (required)")
            continue
        values[name] = _coerce(hints[name], table[name], source, key)
    return cls(**values)


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, key + ".")  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(source, key, f"expected a list, got {_kind(value)}")
        item = typing.get_args(hint)[0]
        return tuple(_coerce(item, v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"expected a table, got {_kind(value)}")
        return dict(value)  # checked by _check, which knows what the table holds
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported config type {hint}")  # keep the schema simple
    ok = {
        str: isinstance(value, str),
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
    }[hint]
    if not ok:
        raise ConfigError(source, key, f"expected {hint.__name__}, got {_kind(value)}")
    return float(value) if hint is float else value


def _kind(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _check(c: Config, check_files: bool = True) -> None:
    """Ranges and cross-field rules the types alone cannot say."""
    s = c.source
    if not c.players:
        raise ConfigError(s, "players", "at least one player is needed")
    seen: set[str] = set()
    for i, p in enumerate(c.players):
        if p.name in seen:
            raise ConfigError(s, f"players[{i}].name", f"duplicate player name {p.name!r}")
        seen.add(p.name)
        _check_port(s, f"players[{i}].port", p.port)
        for j, ch in enumerate(p.channels):
            _range(s, f"players[{i}].channels[{j}]", ch, 1, 16)
    if c.midi.backend not in BACKENDS:
        raise ConfigError(s, "midi.backend", f"must be one of {', '.join(BACKENDS)}")
    _range(s, "midi.poll_ports_ms", c.midi.poll_ports_ms, 50, 2000)
    _range(s, "midi.sysex_limit", c.midi.sysex_limit, 3, 1 << 20)
    _range(s, "midi.queue_size", c.midi.queue_size, 16, 1 << 20)
    _range(s, "midi.shed_after_ms", c.midi.shed_after_ms, 0.0, 10_000.0)
    if c.agent.mode not in MODES:
        raise ConfigError(s, "agent.mode", f"must be one of {', '.join(MODES)}")
    if not c.agent.outputs:
        raise ConfigError(s, "agent.outputs", "at least one output port is needed")
    for i, port in enumerate(c.agent.outputs):
        _check_port(s, f"agent.outputs[{i}]", port)
    _range(s, "agent.channel", c.agent.channel, 1, 16)
    _range(s, "agent.output_latency_ms", c.agent.output_latency_ms, 0.0, 2000.0)
    _range(s, "agent.max_note_ms", c.agent.max_note_ms, 10.0, 60_000.0)
    _range(s, "agent.plan_horizon_ms", c.agent.plan_horizon_ms, 0.0, 10_000.0)
    _range(s, "respond.phrase_gap_ms", c.respond.phrase_gap_ms, 50.0, 10_000.0)
    _range(s, "respond.max_order", c.respond.max_order, 1, 16)
    _range(s, "respond.max_notes", c.respond.max_notes, 1, 256)
    _range(s, "respond.beat_lock", c.respond.beat_lock, 0.0, 1.0)
    _check_memory_from(c, check_files)
    if c.respond.solo_after_ms:
        _range(s, "respond.solo_after_ms", c.respond.solo_after_ms, 100.0, 60_000.0)
    _range(s, "respond.phrase_gap_beats", c.respond.phrase_gap_beats, 0.0, 16.0)
    for i, iv in enumerate(c.harmony.intervals):
        _range(s, f"harmony.intervals[{i}]", iv, -48, 48)
    _range(s, "record.flush_ms", c.record.flush_ms, 1, 100)
    _range(s, "record.capture_s", c.record.capture_s, 10.0, 3600.0)
    _range(s, "performance.beats_per_bar", c.performance.beats_per_bar, 1, 16)
    _range(s, "performance.beat_division", c.performance.beat_division, 2, 3)
    _range(s, "service.realtime_priority", c.service.realtime_priority, 0, 99)
    _range(s, "service.online_wait_s", c.service.online_wait_s, 0.0, 60.0)
    _check_model(c, check_files)
    _check_controls(c)
    _check_remote(c, check_files)
    _check_spatial(c, check_files)
    if c.monitor.listen:
        monitor_address(c)
        _range(s, "monitor.max_clients", c.monitor.max_clients, 1, 64)


def _check_spatial(c: Config, check_files: bool) -> None:
    s, sp = c.source, c.spatial
    if sp.layout and check_files and not c.layout_path().is_file():
        raise ConfigError(s, "spatial.layout", f"no such file: {c.layout_path()}")
    _range(s, "spatial.tick_hz", sp.tick_hz, 1.0, 200.0)
    if sp.panning not in ("vbap", "dbap"):
        raise ConfigError(s, "spatial.panning", "must be vbap or dbap")
    styles = [("spatial.style", sp.style)] + [
        (f"sections[{i}].spatial", sec.spatial) for i, sec in enumerate(c.sections) if sec.spatial]
    for key, style in styles:
        if style not in GESTURE_STYLES:
            raise ConfigError(s, key, f"must be one of {', '.join(GESTURE_STYLES)}")
    names = {p.name for p in c.players}
    for name, value in sp.players.items():
        key = f"spatial.players.{name}"
        if name not in names:
            raise ConfigError(s, key, f"no player {name!r} (players: {', '.join(sorted(names))})")
        if not (isinstance(value, list) and len(value) == 2 and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
            raise ConfigError(s, key, "expected [azimuth, elevation] in degrees")
        _range(s, key + "[0]", value[0], -180.0, 180.0)
        _range(s, key + "[1]", value[1], -90.0, 90.0)
    for i, d in enumerate(sp.destinations):
        key = f"spatial.destinations[{i}]"
        if d.protocol not in SPATIAL_PROTOCOLS:
            raise ConfigError(s, key + ".protocol",
                              f"must be one of {', '.join(SPATIAL_PROTOCOLS)}")
        _range(s, key + ".port", d.port, 1, 65535)
        _range(s, key + ".max_rate_hz", d.max_rate_hz, 0.1, 1000.0)
        _range(s, key + ".refresh_hz", d.refresh_hz, 0.0, 10.0)
        if not d.host:
            raise ConfigError(s, key + ".host", "empty host")
        if d.coords not in ("car", "deg"):
            raise ConfigError(s, key + ".coords", "must be car or deg")


def _check_controls(c: Config) -> None:
    s = c.source
    for name, value in dataclasses.asdict(c.controls).items():
        try:
            check_changes({name: value})
        except ControlValueError as e:
            raise ConfigError(s, f"controls.{name}", str(e).split(": ", 1)[1]) from None
    names: set[str] = set()
    for i, sec in enumerate(c.sections):
        key = f"sections[{i}]"
        if sec.name in names or sec.name == "next":
            raise ConfigError(s, f"{key}.name", f"{sec.name!r} is taken (names are unique, "
                              "and 'next' means the next section in cues)")
        names.add(sec.name)
        if sec.mode and sec.mode not in MODES:
            raise ConfigError(s, f"{key}.mode", f"must be one of {', '.join(MODES)}")
        _range(s, f"{key}.bars", sec.bars, 0, 10_000)
        try:
            parse_chart(sec.chords)
        except ChartError as e:
            raise ConfigError(s, f"{key}.chords", str(e)) from None
        for name, value in sec.controls.items():
            if name == "mode":
                raise ConfigError(s, f"{key}.controls.mode", f"set the mode as {key}.mode")
            try:
                check_changes({name: value})
            except ControlValueError as e:
                raise ConfigError(s, f"{key}.controls.{name}",
                                  str(e).split(": ", 1)[1]) from None


def _check_remote(c: Config, check_files: bool) -> None:
    s = c.source
    if c.mqtt.host:
        # Checked here, not only when the control plane starts: by then the ports are open and
        # the recording has begun, and a bad config must refuse the run before either.
        if c.mqtt.tls and check_files:
            tls_context(c)
        _range(s, "mqtt.port", c.mqtt.port, 1, 65535)
        _range(s, "mqtt.keepalive_s", c.mqtt.keepalive_s, 1, 3600)
        _range(s, "mqtt.max_command_age_s", c.mqtt.max_command_age_s, 0.5, 3600.0)
        _check_topic_name(s, "mqtt.agent", c.mqtt.agent)
        _check_topic_name(s, "performance.name", c.performance.name)
    _check_ensemble(c)
    for i, dest in enumerate(c.osc.visuals):
        host_port(s, f"osc.visuals[{i}]", dest)
    if c.osc.control:
        host_port(s, "osc.control", c.osc.control)


def _check_topic_name(source: str, key: str, name: str) -> None:
    if not name or any(ch in name for ch in "/+#"):
        raise ConfigError(source, key, f"{name!r} cannot be part of an MQTT topic "
                          "(empty, or has / + #)")


def _check_ensemble(c: Config) -> None:
    s, e = c.source, c.ensemble
    if not e.members:
        if e.tempo_leader:
            raise ConfigError(s, "ensemble.tempo_leader", "set ensemble.members first")
        return
    if not c.mqtt.host:
        raise ConfigError(s, "ensemble.members", "the members meet on the MQTT broker: "
                          "set mqtt.host")
    for i, name in enumerate(e.members):
        _check_topic_name(s, f"ensemble.members[{i}]", name)
    if len(set(e.members)) != len(e.members):
        raise ConfigError(s, "ensemble.members", "a member is named twice")
    if c.mqtt.agent not in e.members:
        raise ConfigError(s, "ensemble.members", f"this agent ({c.mqtt.agent!r}, mqtt.agent) "
                          "is not a member")
    if e.tempo_leader and e.tempo_leader not in e.members:
        raise ConfigError(s, "ensemble.tempo_leader", f"{e.tempo_leader!r} is not a member")


def monitor_address(c: Config) -> tuple[str, int]:
    """[monitor] listen as (host, port). A port alone means 127.0.0.1; an address other than
    loopback (127.0.0.0/8, ::1, "localhost") needs monitor.allow_remote: the page shows the
    performance, read-only, to anyone who can reach it."""
    value = c.monitor.listen.strip()
    host, port = host_port(c.source, "monitor.listen",
                           f"127.0.0.1:{value}" if value.isdigit() else value)
    host = host.removeprefix("[").removesuffix("]")  # "[::1]:8088"
    if not is_loopback(host) and not c.monitor.allow_remote:
        raise ConfigError(c.source, "monitor.listen", f"{c.monitor.listen!r} is not a loopback "
                          "address: anyone on that network could watch the monitor; set "
                          "monitor.allow_remote = true to serve it there")
    return host, port


def is_loopback(host: str) -> bool:
    """"localhost" or a loopback address (127.0.0.0/8, ::1); any other name may resolve to
    anything."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_port(source: str, key: str, value: str) -> tuple[str, int]:
    """"host:port" split and checked (ConfigError naming the key)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(source, key, f"{value!r} is not host:port (port 1-65535)")
    return host, int(port)


def tls_context(c: Config) -> ssl.SSLContext:
    """The TLS context for the broker: the system's CA bundle, or mqtt.ca_file's."""
    path = Path(c.source).parent / c.mqtt.ca_file if c.mqtt.ca_file else None
    if path is not None and not path.is_file():
        raise ConfigError(c.source, "mqtt.ca_file", f"no such file: {path}")
    try:
        return ssl.create_default_context(cafile=path)
    except ssl.SSLError as e:
        raise ConfigError(c.source, "mqtt.ca_file", f"not a CA bundle: {e}") from None


def _check_model(c: Config, check_files: bool) -> None:
    s, m = c.source, c.model
    if check_files and m.checkpoint:
        if not c.model_path().is_file():
            raise ConfigError(s, "model.checkpoint", f"no such file: {c.model_path()}")
        # torch.save writes a zip archive: anything else cannot be a checkpoint. Found here,
        # before any port opens; a zip that is not ours is found when the worker loads it.
        if not zipfile.is_zipfile(c.model_path()):
            raise ConfigError(s, "model.checkpoint",
                              f"{c.model_path()}: not a stage-agent model checkpoint")
    if check_files and m.models_dir and not c.models_path().is_dir():
        raise ConfigError(s, "model.models_dir", f"no such folder: {c.models_path()}")
    _range(s, "model.deadline_ms", m.deadline_ms, 1.0, 2000.0)
    if m.deadline_ms > c.agent.output_latency_ms:
        raise ConfigError(s, "model.deadline_ms", f"{m.deadline_ms} exceeds "
                          f"agent.output_latency_ms ({c.agent.output_latency_ms}): a proposal "
                          "must arrive before the answer's first note is due")
    for i, style in enumerate(m.styles):
        if style in m.styles[:i]:
            raise ConfigError(s, f"model.styles[{i}]", f"{style!r} is named twice")
    if m.style_weights and len(m.style_weights) != len(m.styles):
        raise ConfigError(s, "model.style_weights", f"{len(m.style_weights)} weights for "
                          f"{len(m.styles)} styles: give one weight per style, or none "
                          "(the styles then weigh the same)")
    for i, w in enumerate(m.style_weights):
        _range(s, f"model.style_weights[{i}]", w, 0.0, 1000.0)
    if m.style_weights and sum(m.style_weights) <= 0:
        raise ConfigError(s, "model.style_weights", "must not all be zero")
    _range(s, "model.temperature", m.temperature, 0.05, 5.0)
    _range(s, "model.top_p", m.top_p, 0.05, 1.0)
    _range(s, "model.range_semitones", m.range_semitones, 0, 48)
    _range(s, "model.originality_bound", m.originality_bound, 2, 255)
    _range(s, "model.restart_after_ms", m.restart_after_ms, 50.0, 60_000.0)
    _range(s, "model.start_timeout_s", m.start_timeout_s, 1.0, 600.0)


def _check_memory_from(c: Config, check_files: bool) -> None:
    """Each corpus folder named once and there (its manifest and MIDI files are read, and
    checked, by agent/model/memory_from.py, before any port opens)."""
    seen: set[Path] = set()
    for i, path in enumerate(c.memory_paths()):
        key = f"respond.memory_from[{i}]"
        if not c.respond.memory_from[i].strip():
            raise ConfigError(c.source, key, "empty path")
        if check_files and not path.is_dir():
            raise ConfigError(c.source, key, f"no such corpus folder: {path}")
        if path.resolve() in seen:
            raise ConfigError(c.source, key, f"{path} is named twice")
        seen.add(path.resolve())


def style_problem(c: Config, known: Sequence[str], model: str) -> tuple[str, str] | None:
    """(key, problem) for the first style the piece names (model.styles, a section's
    controls) that the model `model` lacks, with its styles `known`; None if it has them all.
    A section's blend is put back each time the section starts: a style missing there would
    be refused in the middle of the performance."""
    named = [(f"model.styles[{i}]", s) for i, s in enumerate(c.model.styles)]
    for i, sec in enumerate(c.sections):
        styles = sec.controls.get("styles")
        if isinstance(styles, dict):
            named += [(f"sections[{i}].controls.styles", s) for s in styles]
    for key, style in named:
        if style not in known:
            return key, (f"no style {style!r} in the model {model} (its styles: "
                         f"{', '.join(known)})")
    return None


def check_styles(c: Config, known: Sequence[str], model: str) -> None:
    """ConfigError naming the key of a style the piece names that the model lacks."""
    problem = style_problem(c, known, model)
    if problem is not None:
        raise ConfigError(c.source, *problem)


def _range(source: str, key: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ConfigError(source, key, f"{value} is out of range {lo}..{hi}")


def _check_port(source: str, key: str, ref: str) -> None:
    if ref.startswith("re:"):
        try:
            re.compile(ref[3:])
        except re.error as e:
            raise ConfigError(source, key, f"bad regular expression: {e}") from None
    elif not ref.removeprefix("virtual:").strip():
        raise ConfigError(source, key, "empty port name")
