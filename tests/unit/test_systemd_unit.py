"""The shipped systemd unit and mosquitto example (systemd/): the settings the stage requirements
ask for (Lifecycle, Security), checked by parsing the files, and by `systemd-analyze verify` when
the machine has it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.errors import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    ConfigError,
    CorpusError,
    LayoutError,
    ModelError,
)

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNIT = SYSTEMD_DIR / "stage-agent@.service"
ACL = SYSTEMD_DIR / "mosquitto-stage.acl"
BROKER_CONF = SYSTEMD_DIR / "mosquitto-stage.conf"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections → key → every value, in order. configparser (even with strict=False) keeps only
    the last of a repeated key, and systemd units repeat keys on purpose (Environment=,
    DeviceAllow=, ...), so this reads the unit syntax directly: comments start with # or ;,
    a trailing backslash continues the line, an empty value resets the list (as in systemd)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"a setting before any section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        values = section.setdefault(key.strip(), [])
        if value.strip():
            values.append(value.strip())
        else:
            values.clear()
    return unit


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text())


def one(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert values, f"[{section}] {key}= is not set"
    return values[-1]


def words(unit: Unit, section: str, key: str) -> list[str]:
    return [w for v in unit.get(section, {}).get(key, []) for w in v.split()]


def is_true(value: str) -> bool:
    return value.lower() in ("1", "yes", "true", "on")


def test_parse_unit_keeps_repeated_keys_and_resets_on_empty() -> None:
    parsed = parse_unit("[Service]\n# c\nEnvironment=A=1\nEnvironment=B=2 \\\n  C=3\n"
                        "ReadWritePaths=/x\nReadWritePaths=\nReadWritePaths=/y\n")
    assert parsed["Service"]["Environment"] == ["A=1", "B=2 C=3"]
    assert parsed["Service"]["ReadWritePaths"] == ["/y"]


def test_notify_watchdog_and_timeouts(unit: Unit) -> None:
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    assert one(unit, "Service", "WatchdogSec") == "5s"
    assert one(unit, "Service", "TimeoutStartSec") == "120"
    assert one(unit, "Service", "TimeoutStopSec") == "30"


def test_restart_policy_never_loops_on_a_config_error(unit: Unit) -> None:
    assert one(unit, "Service", "Restart") == "on-failure"
    assert one(unit, "Service", "RestartSec") == "2"
    # Every error a person must fix (a config, a port, a layout, a model file) exits with a
    # status the unit never restarts on; a failure (exit 1) is restarted.
    prevented = words(unit, "Service", "RestartPreventExitStatus")
    for error in (ConfigError, LayoutError, ModelError, CorpusError):
        assert str(error.exit_code) in prevented, error
    assert str(EXIT_CONFIG) in prevented and str(EXIT_FAILURE) not in prevented
    # The start limit belongs in [Unit]: in [Service] systemd ignores it (with a warning).
    assert one(unit, "Unit", "StartLimitIntervalSec") == "60"
    assert one(unit, "Unit", "StartLimitBurst") == "5"
    assert "StartLimitBurst" not in unit["Service"]


def test_exec_start_performs_the_instance_piece(unit: Unit) -> None:
    argv = one(unit, "Service", "ExecStart").split()
    assert argv[:2] == ["/opt/stage-agent/.venv/bin/stage-agent", "perform"]
    config = Path(argv[2])
    assert config.name == "performance.toml" and "%i" in config.parts
    # The piece's folder (where recordings go) is the writable one.
    assert str(config.parent) in words(unit, "Service", "ReadWritePaths")
    assert "PYTHONUNBUFFERED=1" in words(unit, "Service", "Environment")


def test_service_user_with_audio_and_realtime_limits(unit: Unit) -> None:
    assert one(unit, "Service", "User") == "stage-agent"
    assert one(unit, "Service", "Group") == "stage-agent"
    assert "audio" in words(unit, "Service", "SupplementaryGroups")
    assert one(unit, "Service", "LimitRTPRIO") == "95"
    assert one(unit, "Service", "LimitMEMLOCK") == "infinity"


def test_hardening_keeps_alsa_and_jack_reachable(unit: Unit) -> None:
    s = unit["Service"]
    assert one(unit, "Service", "ProtectSystem") == "strict"
    assert is_true(one(unit, "Service", "NoNewPrivileges"))
    assert is_true(one(unit, "Service", "ProtectHome"))
    assert "char-alsa rw" in s["DeviceAllow"]
    assert one(unit, "Service", "DevicePolicy") in ("closed", "auto")
    # Each of these would break MIDI or realtime scheduling (stage-requirements 6).
    assert not any(is_true(v) for v in s.get("PrivateDevices", [])), "hides /dev/snd"
    assert not any(is_true(v) for v in s.get("RestrictRealtime", [])), "refuses SCHED_FIFO"
    assert not any(is_true(v) for v in s.get("PrivateIPC", [])), "hides JACK1's SysV shm"
    for rule in s.get("SystemCallFilter", []):
        denied = rule.startswith("~")
        assert not (denied and "@resources" in rule), "denies sched_setscheduler"
        assert "sched_setscheduler" not in rule or not denied


# --- systemd-analyze verify ---------------------------------------------------------------

def _verify(path: Path) -> tuple[int, list[str]]:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None
    proc = subprocess.run([analyze, "verify", "--man=no", str(path)], capture_output=True,
                          text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).splitlines()
    # Only complaints about our unit count: verify also loads the units ours is ordered after
    # (mosquitto.service, ...), which are the host's business.
    return proc.returncode, [ln for ln in lines if "stage-agent" in ln]


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed (no systemd here)")


def _runnable_copy(tmp_path: Path, extra: str = "") -> Path:
    """The unit with ExecStart=/bin/true: verify refuses an ExecStart whose program does not
    exist, and the agent is installed in /opt/stage-agent only on a stage machine. Nothing else
    is changed."""
    text = re.sub(r"(?m)^ExecStart=.*$", "ExecStart=/bin/true", UNIT.read_text())
    copy = tmp_path / UNIT.name
    copy.write_text(text + extra)
    return copy


@needs_analyze
def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    rc, problems = _verify(_runnable_copy(tmp_path))
    assert problems == []
    assert rc == 0


@needs_analyze
def test_systemd_analyze_verify_only_misses_the_uninstalled_program() -> None:
    program = UNIT.read_text().split("ExecStart=", 1)[1].split()[0]
    _rc, problems = _verify(UNIT)
    if Path(program).exists():
        assert problems == []
    else:
        assert problems and all(program in p and "not executable" in p for p in problems)


@needs_analyze
def test_systemd_analyze_verify_would_catch_a_bad_key(tmp_path: Path) -> None:
    """The check above is not vacuous: a misspelt key in our unit is reported."""
    _rc, problems = _verify(_runnable_copy(tmp_path, "NoNewPrivilege=yes\n"))
    assert any("NoNewPrivilege" in p for p in problems)


# --- the mosquitto example ----------------------------------------------------------------

def parse_acl(text: str) -> tuple[list[tuple[str, str]], dict[str | None, list[tuple[str, str]]]]:
    """(patterns, user → topic rules) of a mosquitto acl_file; rules as (access, topic).
    Topic lines before any `user` line belong to anonymous clients (key None)."""
    patterns: list[tuple[str, str]] = []
    users: dict[str | None, list[tuple[str, str]]] = {}
    user: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        kind, _, rest = line.partition(" ")
        parts = rest.split(None, 1)
        if kind == "user":
            user = rest.strip()
            users.setdefault(user, [])
            continue
        assert kind in ("topic", "pattern"), f"unexpected ACL line {line!r}"
        access, topic = (parts[0], parts[1]) if parts[0] in ("read", "write", "readwrite",
                                                            "deny") else ("readwrite", rest)
        (patterns if kind == "pattern" else users.setdefault(user, [])).append(
            (access, topic.strip()))
    return patterns, users


def _matches(rule: str, topic: str) -> bool:
    r, t = rule.split("/"), topic.split("/")
    for i, level in enumerate(r):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(r) == len(t)


def allowed(acl: str, username: str, access: str, topic: str) -> bool:
    """Whether mosquitto's default ACL check would grant `access` (read or write) on `topic`."""
    patterns, users = parse_acl(acl)
    rules = [(a, t.replace("%u", username)) for a, t in patterns] + users.get(username, [])
    if any(a == "deny" and _matches(t, topic) for a, t in rules):
        return False
    return any(a in (access, "readwrite") and _matches(t, topic) for a, t in rules)


def test_acl_patterns_let_an_agent_write_only_under_its_own_name() -> None:
    patterns, users = parse_acl(ACL.read_text())
    assert patterns
    for access, topic in patterns:
        # %u is the authenticated username; %c (the client id) is whatever the client says.
        assert "%c" not in topic
        if access in ("write", "readwrite"):
            assert topic.startswith("stage/+/%u/"), topic
            assert "/cmd" not in topic, "an agent must not write commands"
        else:  # its own commands, or the other ensemble members' presence and ensemble state
            assert topic.startswith("stage/+/%u/") or topic in (
                "stage/+/+/status", "stage/+/+/state/ensemble"), topic
    assert None not in users, "topic lines before the first user apply to anonymous clients"
    writers = {u for u, rules in users.items()
               if any(a in ("write", "readwrite") for a, _ in rules)}
    assert writers == {"director"}
    assert all(t == "stage/+/+/cmd/#" for a, t in users["director"] if a != "read")


def test_acl_grants_and_refusals() -> None:
    acl = ACL.read_text()
    for own in ("status", "state/plan", "evt/ack", "evt/error"):
        assert allowed(acl, "agent-a", "write", f"stage/duo/agent-a/{own}")
        assert not allowed(acl, "agent-a", "write", f"stage/duo/agent-b/{own}")
    assert allowed(acl, "agent-a", "read", "stage/duo/agent-a/cmd/mode")
    assert not allowed(acl, "agent-a", "read", "stage/duo/agent-b/cmd/mode")
    assert not allowed(acl, "agent-a", "write", "stage/duo/agent-a/cmd/mode")
    assert not allowed(acl, "agent-a", "write", "stage/duo/agent-b/cmd/panic")
    assert allowed(acl, "director", "write", "stage/duo/agent-b/cmd/panic")
    assert allowed(acl, "director", "read", "stage/duo/agent-b/status")
    assert not allowed(acl, "director", "write", "stage/duo/agent-b/status")
    assert not allowed(acl, "monitor", "write", "stage/duo/agent-b/cmd/panic")


def test_broker_example_requires_logins_and_keeps_retained_state() -> None:
    settings: dict[str, list[str]] = {}
    for raw in BROKER_CONF.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            settings.setdefault(key, []).append(value.strip())
    assert settings["allow_anonymous"] == ["false"]
    assert settings["password_file"] and settings["acl_file"]
    assert settings["persistence"] == ["true"]
    # Every listener names its address (or an interface): never every address of the machine.
    assert settings["listener"]
    assert all(len(v.split()) == 2 for v in settings["listener"]) or "bind_interface" in settings
    # The TLS listener is there to enable, commented.
    text = BROKER_CONF.read_text()
    for key in ("cafile", "certfile", "keyfile"):
        assert re.search(rf"(?m)^#{key} ", text)
