"""`[respond] memory_from`: corpus lines primed into the live Markov memory, and the copy guard
that keeps the memory from handing a corpus piece back longer than the originality bound."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from agent import config as config_mod
from agent.errors import ConfigError
from agent.events import PhraseNote
from agent.model import checkpoint
from agent.model.continuator import Continuator, NoteLine, PrimedIndex
from agent.model.memory_from import load_memory
from agent.model.originality import CopyGuard, join_lines, longest_shared_run
from tests.corpus_fixtures import Piece, melody, write_corpus
from tests.model_fixtures import CORPUS_LINE, save_random_checkpoint

MS = 1_000_000
# A piece whose every context of two pitches is unique: a walk of the memory follows it.
PIECE = [60, 62, 64, 65, 67, 69, 71, 72, 74, 72, 71, 67, 64, 62, 60, 59, 57, 55, 57, 59, 62,
         66, 69, 68, 73, 76, 75, 70, 63, 58, 61, 54]


def line(pitches: list[int], ioi_ms: int = 250, velocity: int = 70) -> NoteLine:
    n = len(pitches)
    return NoteLine(np.array(pitches, dtype=np.int64), np.arange(n, dtype=np.int64) * ioi_ms * MS,
                    np.full(n, 200 * MS, dtype=np.int64), np.full(n, velocity, dtype=np.int64))


def call(pitches: list[int]) -> list[PhraseNote]:
    return [PhraseNote(i * 300 * MS, p, 90, 250 * MS) for i, p in enumerate(pitches)]


def test_a_primed_line_is_continued_with_its_own_rhythm_length_and_dynamics() -> None:
    memory = Continuator(max_order=3, primed=PrimedIndex([line([60, 62, 64, 65, 67], 125)], 3))
    steps = memory.generate(call([60, 62]), 3, random.Random(1))
    assert [(s.pitch, s.ioi_ns, s.duration_ns, s.velocity) for s in steps] == \
        [(p, 125 * MS, 200 * MS, 70) for p in (64, 65, 67)]


def test_a_context_never_runs_from_one_line_into_the_next() -> None:
    primed = PrimedIndex([line([60, 62]), line([64, 66])], 2)
    lo, hi = primed.places((60,))
    assert [primed.step(int(at)).pitch for at in primed.continuations(1, lo, hi)] == [62]
    assert primed.places((62,))[0] == primed.places((62,))[1]  # 62 ends its line: nothing
    assert primed.places((62, 64))[0] == primed.places((62, 64))[1]
    assert primed.places((64, 66))[0] == primed.places((64, 66))[1]


def test_the_corpus_and_the_players_phrases_are_remembered_side_by_side() -> None:
    memory = Continuator(max_order=2, primed=PrimedIndex([line([60, 62, 64])], 2))
    memory.learn(call([60, 62, 67]))
    nexts = {memory.generate(call([60, 62]), 1, random.Random(seed))[0].pitch
             for seed in range(40)}
    assert nexts == {64, 67}
    again = [memory.generate(call([61]), 8, random.Random(7)) for _ in range(2)]
    assert again[0] == again[1]  # seeded; 61 is remembered nowhere: any note (order 0)
    assert {s.pitch for s in again[0]} <= {60, 62, 64, 67}


def test_a_corpus_piece_played_as_the_call_comes_back_at_most_bound_notes() -> None:
    corpus = join_lines([np.array(PIECE)])
    memory = Continuator(max_order=2, primed=PrimedIndex([line(PIECE)], 2))
    # Unguarded, the memory walks the piece on from the call: 24 notes copied.
    free = memory.generate(call(PIECE[:6]), 24, random.Random(3))
    assert [s.pitch for s in free] == PIECE[6:30]
    assert longest_shared_run([s.pitch for s in free], corpus) == 24
    guard = CopyGuard(corpus, bound=8)
    for seed in range(10):
        guarded = memory.generate(call(PIECE[:6]), 24, random.Random(seed), guard)
        pitches = [s.pitch for s in guarded]
        assert len(pitches) == 24 and longest_shared_run(pitches, corpus) == 8
        assert pitches[:8] == PIECE[6:14]  # up to the bound the piece is the memory's to play
    # What the agent played just before counts: 5 notes of the piece already played leave 3.
    before = PIECE[6:11]
    after = memory.generate(call(PIECE[:11]), 10, random.Random(1), guard, before)
    assert [s.pitch for s in after][:3] == PIECE[11:14]
    assert longest_shared_run([*before, *(s.pitch for s in after)], corpus) == 8


def test_the_walk_ends_early_when_every_remembered_note_would_copy() -> None:
    """A memory of one repeated note and nothing else: past the bound nothing is left."""
    drone = [60] * 8
    memory = Continuator(max_order=4, primed=PrimedIndex([line(drone)], 4))
    guard = CopyGuard(join_lines([np.array(drone)]), bound=3)
    assert [s.pitch for s in memory.generate(call([60]), 7, random.Random(2), guard)] == [60] * 3
    assert len(memory.generate(call([60]), 7, random.Random(2))) == 7


def piece_config(folder: Path, memory_from: list[str], **respond: object) -> config_mod.Config:
    return config_mod.from_dict({
        "players": [{"name": "keys", "port": "virtual:keys"}],
        "respond": {"memory_from": memory_from, **respond},
        "model": {"originality_bound": 6}}, str(folder / "performance.toml"))


def test_train_and_valid_works_are_remembered_and_every_work_is_guarded(tmp_path: Path) -> None:
    test_piece = [50, 57, 55, 62, 61, 66, 71, 69, 76]
    write_corpus(tmp_path / "mine", [
        Piece("a", "train", (melody([60, 62, 64, 65]), melody([48, 50, 52], beats=1.0))),
        Piece("b", "valid", (melody([67, 65, 64], 1.0, velocity=100),), bpm=60.0),
        Piece("c", "test", (melody(test_piece),))])
    memory = load_memory(piece_config(tmp_path, ["mine"]))
    assert memory is not None
    assert memory.corpora == ({"path": str((tmp_path / "mine").resolve()), "name": "mine",
                               "hash": memory.corpora[0]["hash"], "works": 2, "notes": 10},)
    primed = memory.primed
    assert sorted(int(primed.pitch[at]) for at in primed.notes) == sorted(
        [60, 62, 64, 65, 48, 50, 52, 67, 65, 64])  # not the test work's
    # Times at each work's tempo: eighths at 120 bpm, quarters at 60 (1 s), as played.
    lo, hi = primed.places((67,))
    [after] = [primed.step(int(at)) for at in primed.continuations(1, lo, hi)]
    assert (after.pitch, after.ioi_ns, after.duration_ns, after.velocity) == \
        (65, 1000 * MS, 1000 * MS, 100)
    lo, hi = primed.places((48,))
    [after] = [primed.step(int(at)) for at in primed.continuations(1, lo, hi)]
    assert (after.pitch, after.ioi_ns, after.duration_ns) == (50, 500 * MS, 500 * MS)
    assert memory.guard is not None and memory.guard.bound == 6
    forbidden = memory.guard.forbidden(test_piece[:6], np.arange(128))
    assert forbidden is not None and np.flatnonzero(forbidden).tolist() == [test_piece[6]]


def test_a_corpus_folder_that_cannot_prime_the_memory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"respond\.memory_from\[0\]: no such corpus folder: "):
        piece_config(tmp_path, ["nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"respond\.memory_from\[0\]: .*empty: corpus not "
                                          r"built \(no manifest\.json\)"):
        load_memory(piece_config(tmp_path, ["empty"]))
    write_corpus(tmp_path / "held", [Piece("x", "test", (melody([60, 62]),))])
    with pytest.raises(ConfigError, match=r"respond\.memory_from\[0\]: .*held: no note in a "
                                          r"train or valid work to remember \(1 works"):
        load_memory(piece_config(tmp_path, ["held"]))
    mine = write_corpus(tmp_path / "mine", [Piece("a", "train", (melody([60, 62]),))])
    with pytest.raises(ConfigError, match=r"respond\.memory_from\[1\]: .*mine is named twice"):
        piece_config(tmp_path, ["mine", "./mine"])
    (mine / "midi" / "a.mid").write_bytes(b"MThd broken")
    with pytest.raises(ConfigError, match=r"respond\.memory_from\[0\]: .*a\.mid: sha256 "
                                          "differs from"):
        load_memory(piece_config(tmp_path, ["mine"]))
    assert load_memory(piece_config(tmp_path, [])) is None


def test_the_models_copy_guard_covers_the_memorys_corpora_too(tmp_path: Path) -> None:
    """The worker and the inline model get the corpora's lines: the model cannot hand the
    musician's piece back either, though it was never trained on it."""
    ckpt = checkpoint.load(save_random_checkpoint(tmp_path / "m.pt"))
    piece = join_lines([np.array(PIECE)])
    alone = ckpt.proposer(bound=6).guard
    assert alone is not None and alone.forbidden(PIECE[20:26], np.arange(128)) is None
    guard = ckpt.proposer(bound=6, also=piece).guard
    assert guard is not None
    forbidden = guard.forbidden(PIECE[20:26], np.arange(128))
    assert forbidden is not None and np.flatnonzero(forbidden).tolist() == [PIECE[26]]
    own = guard.forbidden(CORPUS_LINE[:6], np.arange(128))  # and still its own corpus
    assert own is not None and own[CORPUS_LINE[6]]
