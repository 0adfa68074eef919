"""Every bench in bench/ run briefly, so that none rots unnoticed: each as a user runs it
(`python bench/NAME.py ...` from the repository root, in a subprocess; learn_progressions.py and
develop_lift.py in this process), with a few works of each corpus built here where it needs
corpora. It must exit 0 and print its headline figure; no figure is asserted (they are the
benches' to print, and the machine is shared). Benches that need JACK or a broker start their
own; the CPU-contention mode (--load, --realtime) runs in reaction.py's and scheduler.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from agent.model.corpus import build_corpus

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
CORPORA = "{corpora}"  # replaced by the fixture's folder
JSON_OUT = "{json}"  # replaced by a file the bench writes its figures to: strict JSON

# bench -> (arguments for a short run, a line its output must hold)
SMOKE: dict[str, tuple[list[str], str]] = {
    "band_judge.py": (["--pieces", "1", "--chorales", "1", "--quick", "--corpora", CORPORA],
                      "hindsight beat tracker"),
    "beat_tracking.py": (["--limit", "2", "--corpora", CORPORA], "quarter-level share"),
    "corpus_import.py": (["--files", "20"], "import files/s"),
    # A stuck controller into a harmony agent, idle and beside a busy loop (each run 2 s).
    # Its --json once wrote NaN (not JSON) for a figure with no samples.
    # Issue "the show goes on": the end of a run, now and as the log read back.
    "finish.py": (["--records", "3000", "--repeat", "1"], "(finish / read back)"),
    "flood.py": (["--seconds", "2", "--load", "1", "--shed-ms", "50", "--json", JSON_OUT],
                 "side by side"),
    "improv_targets.py": (["--pieces", "1", "--modes", "accompany", "--corpora", CORPORA],
                          "grid p50"),
    # Issue "the show goes on": which JACK MIDI input the agent should use (each kind 1 s).
    "jack_input.py": (["--seconds", "1", "--chunks-ms", "2"], "side by side"),
    "key_accuracy.py": (["--corpora", CORPORA], "music21"),
    "learn_key_profiles.py": (["--corpora", CORPORA], "the constants for agent/listen/harmony.py"),
    "listener.py": (["--seconds", "1", "--rate", "1000"], "callback p99 ratio"),
    "memory_from.py": (["--corpora", CORPORA, "--repeat", "1", "--pieces", "1", "--small", "3",
                        "--modes", "continue"], "copy figure"),
    "model_vs_notochord.py": (["--events", "50", "--corpora", CORPORA],
                              "held-out pitch bits per note"),
    "model_worker.py": (["--seconds", "1"], "ratios (p99 loop lag, peer / worker)"),
    # Issue 15's bench: the folder, the measure's check, and (once `corpus import` and `train
    # --init` are there) the import, the fine-tunes, the bits and the new style heard, tiny.
    "own_style.py": (["--quick", "--corpora", CORPORA], "5a. the measure's check"),
    "panning.py": (["--seconds", "1", "--voices", "8", "--speakers", "32", "--naive-ticks", "1"],
                   "peer: naive 3x3 solve"),
    # 512 frames, and --realtime (here and for scheduler.py): jackd and the bench's agent at
    # SCHED_FIFO. The bench's own process used to die of SIGSEGV in 4 of 11 such runs here: it
    # deleted its rtmidi inputs with their callbacks set while JACK's thread waited for the GIL
    # (agent/io/midi_in.py's delete_inputs is the fix; 11 of 11 reaction and 6 of 6 scheduler
    # runs at 128 frames passed after it).
    "reaction.py": (["--notes", "20", "--rate", "20", "--load", "1", "--period", "512",
                     "--realtime", "40"],
                    "side by side: idle and loaded, normal priority and realtime"),
    "reopen.py": (["--runs", "1"], "port back -> first answer"),
    "replay_speed.py": (["--repeat", "1"], "replay_fast wall"),
    "scheduler.py": (["--seconds", "3", "--load", "1", "--realtime", "40"],
                     "side by side: lateness, idle and loaded, normal priority and realtime"),
    "shutdown.py": (["--runs", "1", "--notes", "4"], "signal -> last note-off"),
    # 512 frames, as the tests' JACK: at 128 a shared machine's xruns lose MIDI, and a lost
    # note-off is a stuck note at the synth, which fails the soak (exit 1).
    # Ended as a closed terminal ends it (SIGHUP): through the same panic as SIGTERM. The
    # recordings' disk fills once (as root; elsewhere the phase says it is not run).
    "soak.py": (["--minutes", "0.5", "--broker-every", "10", "--port-every", "12",
                 "--period", "512", "--stop-signal", "SIGHUP", "--disk-full-every", "10"],
                "stuck notes at the synth after SIGHUP: 0"),
    "spatial_tick.py": (["--seconds", "1", "--voices", "8", "--speakers", "32"], "tick p99"),
    "trajectories.py": (["--hours", "0.05"], "picture() at the end of the run"),
}
IN_PROCESS = ("learn_progressions.py", "develop_lift.py")  # tested below, in this process
PEER_ONLY = ("notochord_peer.py",)  # an optional peer's own tool (test below)
# Smoke-run beside the tests of what they measure: disk.py makes its failing disks as root
# (tests/integration/test_perform_disk.py::test_bench_disk_runs); hostile_files.py in
# tests/pipeline/test_hostile_files.py; style_folder.py (bench material, no figures) in
# tests/pipeline/test_style_folder.py.
ELSEWHERE = ("disk.py", "hostile_files.py", "style_folder.py")


def bench(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH))


def run_bench(name: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    """`python bench/NAME ARGS` from the repository root, this checkout's code first."""
    path = os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))
    return subprocess.run([sys.executable, str(BENCH / name), *args], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": path}, capture_output=True,
                          text=True, timeout=280, check=False)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpora")
    build_corpus("oneill-1850", root, limit=10)
    build_corpus("bach-chorales", root, limit=10)
    return root


def test_every_bench_has_a_smoke_run() -> None:
    benches = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    assert benches == {*SMOKE, *IN_PROCESS, *PEER_ONLY, *ELSEWHERE}


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_the_bench_runs(name: str, corpora: Path, tmp_path: Path) -> None:
    args, headline = SMOKE[name]
    figures = tmp_path / "figures.json"
    done = run_bench(name, [str(corpora) if a == CORPORA else str(figures) if a == JSON_OUT
                            else a for a in args])
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert headline in done.stdout, done.stdout[-4000:]
    assert "Traceback" not in done.stderr, done.stderr[-4000:]
    if JSON_OUT in args:
        json.loads(figures.read_text(), parse_constant=_no_constant)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def test_notochord_peer_runs_or_says_how_to_install_it() -> None:
    """Notochord is an optional peer: with it, its smoke run; without it, a clear message."""
    if bench("notochord_peer").installed():
        done = run_bench("notochord_peer.py", ["smoke", "--minutes", "0.2"])
        assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        assert "pitch bits on" in done.stdout
    else:
        done = run_bench("notochord_peer.py", ["latency", "--events", "10"])
        assert done.returncode == 1
        assert "notochord is not installed" in done.stderr
        assert "bash bench/setup_notochord.sh" in done.stderr


@pytest.mark.parametrize("piece", sorted((REPO / "performances").glob("*/performance.toml")),
                         ids=lambda p: p.parent.name)
def test_the_benches_toml_writer_writes_every_shipped_piece_back(piece: Path,
                                                                 tmp_path: Path) -> None:
    """Sections gained inline tables (`controls = {dynamics = -0.3}`): scheduler.py failed at
    start with "cannot write {'dynamics': -0.3} as TOML"."""
    table = tomllib.loads(piece.read_text(encoding="utf-8"))
    bench("_common").write_toml(tmp_path / "performance.toml", table)
    assert tomllib.loads((tmp_path / "performance.toml").read_text(encoding="utf-8")) == table


def test_learn_progressions_writes_a_table_the_comp_loads(corpora: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    from agent.listen.progression import load_transitions
    out = tmp_path / "progressions.json"
    assert bench("learn_progressions").main(["--root", str(corpora), "--out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert set(table["counts"]) == {"major", "minor"} and "training splits" in table["source"]
    assert load_transitions(out).logp["major"][0].shape == (37, 36)
    assert bench("learn_progressions").main(["--root", str(corpora), "--out", str(out),
                                             "--check"]) == 0
    assert "is up to date" in capsys.readouterr().out


def test_develop_lift_runs(corpora: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench("develop_lift").main(["--root", str(corpora), "--split", "train"])
    out = capsys.readouterr().out
    assert "lift" in out and "oneill-1850" in out and "bach-chorales" in out


def test_flood_writes_a_run_that_answered_nothing_as_json() -> None:
    """Every note shed, or the agent gone: no lateness sample. Its NaN was written as is."""
    flood, common = bench("flood"), bench("_common")
    empty = flood.Figures(common.Summary.of([]), 0, 5000, 0, 0, 5000, 0, 0, None, 0, 0, None,
                          0.5, 0.4, 0.0)
    figures = json.loads(flood.figures_json({"shed all": empty}), parse_constant=_no_constant)
    assert figures["shed all"]["lateness_ms"] == {"n": 0, "p50": None, "p99": None, "max": None}


def test_a_note_is_left_sounding_by_the_agent_unless_its_own_note_off_ends_it() -> None:
    """A synth silences a channel at CC123 (all notes off), so the notes stuck at the synth
    count it; what the agent sent must end each note with its own note-off (a synth in omni
    mode ignores CC123): the CC tail does not hide a note its ledger forgot."""
    common = bench("_common")
    sent = [(0, bytes([0x91, 60, 80])), (1, bytes([0x91, 64, 80])), (2, bytes([0x81, 64, 0])),
            (3, bytes([0xB1, 123, 0])), (4, bytes([0xB0, 120, 0]))]
    assert common.sounding_notes(sent) == []
    assert common.sounding_notes(sent, all_notes_off=False) == [(1, 60)]
    assert common.sounding_notes(sent[:1] + sent[4:]) == [(1, 60)]  # another channel's CC120
