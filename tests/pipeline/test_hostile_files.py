"""Hostile or odd recordings through every command that reads one, as real files and the real
command (`python -m agent.cli` in its own process where the exit code and the message are the
point): each is refused at once with exit 2 and a message naming the file (and the line), or,
where it is a recording after all (a gap of days), read in bounded time and memory. Each process
runs under an address-space limit, so a reader that would fill the memory fails instead of
taking the machine with it; the timeouts are generous deadlines for a hang, not measurements."""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.record.log import read_log
from agent.record.session import LOG_NAME

DEMO = Path(__file__).resolve().parents[2] / "performances" / "demo"
MEMORY_BYTES = 3 << 30
LINE = 10  # the record made bad, as the error names it (the header is line 1)
Record = dict[str, Any]


def cli(*args: str, cwd: Path | None = None,
        timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """`python -m agent.cli ARGS` under MEMORY_BYTES of address space."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))

    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit, cwd=cwd, check=False)


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo rehearsal replayed once (a spatial piece, with its model): the log to spoil."""
    out = tmp_path_factory.mktemp("hostile") / "demo"
    assert main(["replay", str(DEMO / "rehearsal.mid"), "--config",
                 str(DEMO / "performance.toml"), "--out", str(out)]) == 0
    return out / LOG_NAME


def spoiled(demo_log: Path, folder: Path, line: bytes, at: int = LINE) -> Path:
    """A copy of the demo's log with line `at` replaced by `line`."""
    lines = demo_log.read_bytes().splitlines()
    lines[at - 1] = line
    folder.mkdir()
    (folder / LOG_NAME).write_bytes(b"\n".join(lines) + b"\n")
    return folder / LOG_NAME


def heard(t: Any = 5_000_000_000, player: str = "melody", data: str = "903c40") -> bytes:
    return json.dumps({"t": t, "k": "in", "player": player, "data": data}).encode()


MALFORMED = {
    "not-an-object": (b"[1, 2, 3]", "not a record (a JSON object), but a list"),
    "keys-missing": (b'{"t": 5, "k": "in"}', "'player' is missing"),
    "t-1e999": (heard().replace(b"5000000000", b"1e999"),
                "'t': not a time in ns (an integer from 0 to 9223372036854775807)"),
    "negative-t": (heard(-1), "'t': not a time in ns"),
    "5000-digits": (heard().replace(b"5000000000", b"9" * 5000),
                    "not JSON (Exceeds the limit (4300 digits) for integer string conversion"),
    "bad-hex": (heard(data="9zz"), "'data': not hex: '9zz'"),
    "not-midi": (heard(data="90ff40"), "'data': not one MIDI message: '90ff40'"),
    "unknown-player": (heard(player="nobody"),
                       "player 'nobody' is not one of the header's players (cello, melody)"),
    "invalid-utf8": (heard().replace(b"melody", b"mel\xffody"), "not UTF-8 text (byte 0xff at"),
    "nested": (b"[" * 100_000 + b"]" * 100_000, "not JSON (nested too deeply)"),
    "long-line": (b'{"t": 1, "k": "note", "text": "' + b"x" * (9 << 20) + b'"}',
                  "longer than 8 MiB"),
    "bad-control": (b'{"t": 5000000000, "k": "ctl", "what": "mode", "mode": "loud"}',
                    "a control the agent would refuse: mode: "),
    "bad-plan": (b'{"t": 5000000000, "k": "decision", "what": "solo", "plan": [[1, 300]]}',
                 "'plan': not a plan"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_record_is_refused_naming_the_file_and_line(
        case: str, demo_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line, says = MALFORMED[case]
    log = spoiled(demo_log, tmp_path / case, line)
    done = cli("replay", str(log), "--out", str(tmp_path / "replayed"))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"stage-agent: error: {log}: line {LINE}: "), done.stderr
    assert says in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "replayed").exists()  # refused before anything was written
    # The other readers, in this process: the same refusal.
    for command in (["replay", str(log), "--strict"], ["evaluate", str(log)],
                    ["report", str(log)], ["compare", str(log), "--seed", "2"]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert err.startswith(f"stage-agent: error: {log}: line {LINE}: ") and says in err
    assert not (log.parent / "report").exists() and not (log.parent / "compare").exists()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_log_that_is_not_a_regular_file_is_refused_at_once(kind: str, tmp_path: Path) -> None:
    """A FIFO blocks whoever opens it for reading until someone writes (nobody will), and
    /dev/zero never ends: both are refused before a byte is read."""
    folder = tmp_path / kind
    folder.mkdir()
    log = folder / LOG_NAME
    if kind == "fifo":
        os.mkfifo(log)
        says = "not a regular file (a FIFO): refused"
    else:
        log.symlink_to("/dev/zero")
        says = "not a regular file (a character device): refused"
    for command in (["replay"], ["replay", "--strict"], ["evaluate"], ["report"]):
        done = cli(*command[:1], str(folder), *command[1:], cwd=tmp_path, timeout=60)
        assert (done.returncode, done.stderr) == (2, f"stage-agent: error: {log}: {says}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [kind]  # nothing written anywhere


def test_a_midi_file_of_division_0_or_not_regular_is_refused(tmp_path: Path) -> None:
    track = bytes([0x00, 0x90, 60, 64, 0x60, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00])
    zero = tmp_path / "division-0.mid"
    zero.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 0) + b"MTrk"
                     + struct.pack(">I", len(track)) + track)
    done = cli("replay", str(zero), cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2, f"stage-agent: error: {zero}: not a readable MIDI file: its division (ticks per "
           "beat) is 0\n")
    fifo = tmp_path / "band.mid"
    os.mkfifo(fifo)
    done = cli("replay", str(fifo), cwd=tmp_path, timeout=60)
    assert (done.returncode, done.stderr) == (
        2, f"stage-agent: error: {fifo}: not a regular file (a FIFO): refused\n")
    big = tmp_path / "big.mid"
    with big.open("wb") as f:
        f.truncate((4 << 20) + 1)
    done = cli("replay", str(big), cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2, f"stage-agent: error: {big}: {(4 << 20) + 1} bytes, more than the 4 MiB allowed\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["band.mid", "big.mid",
                                                          "division-0.mid"]


def with_gap(demo_log: Path, folder: Path, gap_ns: int) -> Path:
    """The demo's log with one more note `gap_ns` after its last input, before the stop (the
    stop, its panic and the rest moved later by as much)."""
    header, *lines = demo_log.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    stop = next(i for i, r in enumerate(records) if r["k"] == "ctl" and r["what"] == "stop")
    last = max(r["t"] for r in records[:stop])
    gap = [{"t": last + gap_ns, "k": "in", "player": "melody", "data": "903c40"},
           *({**r, "t": r["t"] - records[stop]["t"] + last + gap_ns + 1}
             for r in records[stop:])]
    folder.mkdir()
    (folder / LOG_NAME).write_text("\n".join([header, *map(json.dumps, records[:stop]),
                                              *map(json.dumps, gap)]) + "\n")
    return folder


@pytest.mark.parametrize("days", [12, 1100])
def test_a_gap_of_days_in_a_spatial_piece_is_read_in_bounded_time(
        days: int, demo_log: Path, tmp_path: Path) -> None:
    """The demo is a spatial piece: its replay draws the voices' paths, sampled through the
    whole run, and the report and evaluate step through its time too (bars, the judge's
    frames, density windows). A gap of days (or years) must not multiply that work."""
    folder = with_gap(demo_log, tmp_path / "gap", days * 86_400 * 10**9)
    replayed = cli("replay", str(folder), "--json", "--out", str(tmp_path / "r"),
                   timeout=600)
    assert replayed.returncode == 0, replayed.stderr
    summary = json.loads(replayed.stdout)
    assert summary["trajectories"] == str(tmp_path / "r" / "trajectories.png")
    assert summary["seconds"] > days * 86_400
    strict = cli("replay", str(folder), "--strict", "--out", str(tmp_path / "s"), timeout=600)
    assert strict.returncode == 0 and strict.stdout.startswith(f"{folder}: identical: "), \
        strict.stderr
    evaluated = cli("evaluate", str(folder), "--json", timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr
    figures = json.loads(evaluated.stdout)
    assert figures["judge"] is None  # the players' notes span days: no beat grid
    assert (figures["density_correlation"] is None) == (days > 23)  # 1,000,000 windows of 2 s
    reported = cli("report", str(folder), timeout=600)
    assert (reported.returncode, reported.stdout) == (
        0, f"{folder / 'report' / 'index.html'}\n"), reported.stderr
    assert (folder / "report" / "trajectories.png").is_file()


def test_a_replay_writes_only_where_it_is_told(demo_log: Path, tmp_path: Path) -> None:
    """A log's header is not the user's: its record.dir and performance name cannot put the
    replay's folder anywhere (an absolute folder, or "../.." in the name)."""
    header, *lines = demo_log.read_text().splitlines()
    h = json.loads(header)
    h["config"]["record"]["dir"] = str(tmp_path / "a" / "b")
    h["config"]["performance"]["name"] = "../../escaped/x"
    folder = tmp_path / "from-elsewhere"
    folder.mkdir()
    (folder / LOG_NAME).write_text("\n".join([json.dumps(h), *lines]) + "\n")
    work = tmp_path / "work"
    work.mkdir()
    for command in (["replay", str(folder)], ["replay", str(folder), "--strict"]):
        done = cli(*command, cwd=work)
        assert done.returncode == 0, done.stderr
    made = sorted((work / "recordings").iterdir())
    assert [p.name.split("-", 2)[:2] for p in made] == [["escaped", "x"]] * 2
    assert sorted(p.name.rsplit("-", 1)[1] for p in made) == ["replay", "strict"]
    assert all((p / LOG_NAME).is_file() for p in made)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["from-elsewhere", "work"]


def test_files_a_header_names_are_read_only_if_regular(demo_log: Path, tmp_path: Path) -> None:
    """The header says where the model and the speaker layout were: a replay reads them (the
    model's hash, the corpus for the originality figure, the layout for the picture). Pointed
    at /dev/zero, each is refused and the replay says so; nothing fills the memory."""
    header, *lines = demo_log.read_text().splitlines()
    h = json.loads(header)
    h["model"]["path"] = "/dev/zero"
    h["layout"] = "/dev/zero"
    folder = tmp_path / "pointing"
    folder.mkdir()
    (folder / LOG_NAME).write_text("\n".join([json.dumps(h), *lines]) + "\n")
    done = cli("replay", str(folder), "--json", "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    refused = "not a regular file (a character device): refused"
    assert summary["trajectories_error"] == f"/dev/zero: -: {refused}"
    assert summary["originality_error"] == (
        f"/dev/zero: cannot read the model checkpoint: {refused}")
    replay_header, _ = read_log(tmp_path / "r" / LOG_NAME)
    assert replay_header["model"] == {"path": "/dev/zero", "sha256": None}


def test_the_bench_runs() -> None:
    """bench/hostile_files.py, on one case (a smoke run, so that it cannot rot)."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "hostile_files.py"
    done = subprocess.run([sys.executable, str(bench), "--only", "fifo", "--timeout", "60"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    rows = [(line[:16].strip(), line[17:33].strip(), line[34:39].strip())
            for line in done.stdout.splitlines()[1:-1]]  # case, command, exit code
    assert rows == [("fifo", command, "2") for command in ("replay", "replay --strict",
                                                          "evaluate", "report")]
    assert done.stdout.splitlines()[-1].endswith(": nothing")
