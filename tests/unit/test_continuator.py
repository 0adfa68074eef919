"""The live Markov memory: learns phrases, continues calls with remembered material only."""

from __future__ import annotations

import random

from agent.events import PhraseNote
from agent.model.continuator import MIN_IOI_NS, Continuator

MS = 1_000_000


def phrase(pitches: list[int], ioi_ms: int = 250, start: int = 0) -> list[PhraseNote]:
    return [PhraseNote(start + i * ioi_ms * MS, p, 80 + i, 200 * MS) for i, p in enumerate(pitches)]


def test_nothing_remembered_gives_no_answer() -> None:
    assert Continuator().generate(phrase([60, 62]), 4, random.Random(1)) == []


def test_a_single_phrase_is_continued_along_its_only_path() -> None:
    memory = Continuator(max_order=3)
    memory.learn(phrase([60, 62, 64, 65, 67]))
    steps = memory.generate(phrase([60, 62]), 3, random.Random(1))
    assert [s.pitch for s in steps] == [64, 65, 67]
    assert [s.ioi_ns for s in steps] == [250 * MS] * 3
    assert [s.velocity for s in steps] == [82, 83, 84]  # the remembered notes' own dynamics


def test_longest_context_wins_over_shorter_ones() -> None:
    memory = Continuator(max_order=2)
    memory.learn(phrase([50, 62, 70]))  # after 62 alone: 70 or 64
    memory.learn(phrase([60, 62, 64]))  # after 60, 62: only 64
    for seed in range(20):
        assert memory.generate(phrase([60, 62]), 1, random.Random(seed))[0].pitch == 64


def test_output_uses_only_remembered_pitches_and_is_seeded() -> None:
    memory = Continuator()
    memory.learn(phrase([60, 64, 67, 72, 67, 64]))
    memory.learn(phrase([62, 65, 69, 65]))
    a = memory.generate(phrase([61, 63]), 30, random.Random(5))  # no context matches: order 0
    b = memory.generate(phrase([61, 63]), 30, random.Random(5))
    assert a == b
    assert {s.pitch for s in a} <= {60, 62, 64, 65, 67, 69, 72}
    assert all(s.ioi_ns >= MIN_IOI_NS for s in a)


def test_memory_limit_forgets_the_oldest_phrase() -> None:
    memory = Continuator(memory_limit=6)
    memory.learn(phrase([40, 41, 42, 43]))
    memory.learn(phrase([70, 71, 72, 73]))
    steps = memory.generate(phrase([10]), 20, random.Random(3))
    assert {s.pitch for s in steps} <= {70, 71, 72, 73}
