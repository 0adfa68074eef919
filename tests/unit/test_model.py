"""The model's pieces: representation, the numpy step against torch, sampling under
constraints, the copy guard, styles and checkpoints. Real (small, randomly initialised) networks."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ModelError
from agent.model import checkpoint
from agent.model import representation as rep
from agent.model.net import HEAD_INPUTS, HEADS
from agent.model.originality import CopyGuard, join_lines, longest_shared_run
from agent.model.proposals import Constraints
from agent.model.proposer import Proposer
from tests.model_fixtures import (
    CORPUS_LINE,
    STYLES,
    TinyWork,
    random_net,
    save_random_checkpoint,
    tune,
)


def event_of(row: np.ndarray) -> rep.ModelEvent:
    """A ModelEvent whose encoding is exactly this token row."""
    dt, duration = rep.decode_time(row)
    position = None if row[5] == rep.UNKNOWN_POSITION else row[5] / rep.POSITION_STEPS_PER_BEAT
    return rep.ModelEvent(int(row[0]), int(row[1]), dt, int(rep.VELOCITY_VALUES[row[3]]),
                          duration, position)


# -- representation ---------------------------------------------------------------------------
def test_work_tokens_are_exact() -> None:
    # Two voices: soprano (voice 0) is the player, the other voice the agent.
    work = TinyWork("chorale", 60.0, 4.0, onset=np.array([0.0, 0.0, 1.0, 1.5]),
                    duration=np.array([1.0, 2.0, 0.5, 0.5]),
                    pitch=np.array([72, 60, 71, 62], dtype=np.int16),
                    velocity=np.array([80, 64, 100, 20], dtype=np.int16),
                    voice=np.array([0, 1, 0, 1], dtype=np.int16))
    tokens = rep.work_tokens(work, rep.eval_roles(work))
    # Sorted by (onset, pitch): the agent's 60 comes before the player's 72 at beat 0.
    assert tokens[:, 0].tolist() == [rep.AGENT, rep.PLAYER, rep.PLAYER, rep.AGENT]
    assert tokens[:, 1].tolist() == [60, 72, 71, 62]
    assert tokens[:, 2].tolist() == [0, 0, rep.dt_token(1.0), rep.dt_token(0.5)]
    assert tokens[:, 3].tolist() == [4, 5, 6, 1]
    assert tokens[:, 4].tolist() == [rep.duration_token(2.0), rep.UNKNOWN_DURATION,
                                     rep.UNKNOWN_DURATION, rep.duration_token(0.5)]
    assert tokens[:, 5].tolist() == [0, 0, 12, 18]


def test_augmentation_transposes_stretches_and_hides_position() -> None:
    work = tune([60, 62, 64, 65])
    aug = rep.Augment(transpose=3, tempo_scale=2.0, velocity_offset=-70, hide_position=True)
    tokens = rep.work_tokens(work, rep.eval_roles(work), aug)
    assert tokens[:, 1].tolist() == [63, 65, 67, 68]
    assert tokens[1, 2] == rep.dt_token(0.125)  # half a beat at 240 BPM
    assert tokens[:, 3].tolist() == [0, 0, 0, 0]  # velocity 80 - 70 = 10
    assert set(tokens[:, 5].tolist()) == {rep.UNKNOWN_POSITION}


def test_tune_roles_alternate_two_bar_phrases() -> None:
    work = tune(list(range(60, 80)), beats=1.0)  # 20 beats = 5 bars of 4/4
    assert rep.eval_roles(work).tolist() == [0] * 8 + [1] * 8 + [0] * 4


def test_decoded_values_fall_in_their_own_bins() -> None:
    assert [rep.dt_token(v) for v in rep.DT_VALUES] == list(range(rep.N_DT))
    assert [rep.duration_token(float(v)) for v in rep.DUR_VALUES] == \
        list(range(rep.UNKNOWN_DURATION))


# -- numpy inference against the torch network --------------------------------------------------
def test_a_velocity_falls_anywhere_in_its_bin_never_zero() -> None:
    assert [rep.velocity_in_bin(0, 0.0), rep.velocity_in_bin(0, 0.999), rep.velocity_in_bin(5, 0.5),
            rep.velocity_in_bin(7, 0.9999)] == [1, 15, 88, 127]
    assert all(rep.velocity_token(rep.velocity_in_bin(t, w)) == t
               for t in range(1, rep.N_VELOCITY) for w in np.linspace(0, 0.9999, 50))


def test_proposed_velocities_are_not_only_the_bins_centres() -> None:
    """The touch has its own random stream: the same seed gives the same notes, and their
    velocities spread over each bin (the centres alone were three loudness steps a solo)."""
    phrase = Proposer(random_net(), STYLES, seed=3).propose_phrase(64)
    assert len({p.velocity % 16 for p in phrase}) > 4
    assert [(p.pitch, p.dt_s) for p in phrase] == [
        (p.pitch, p.dt_s) for p in Proposer(random_net(), STYLES, seed=3).propose_phrase(64)]


def test_numpy_step_gives_the_torch_networks_logits() -> None:
    net = random_net()
    work = tune([60, 62, 64, 65, 67, 65, 64, 62, 60, 67, 72, 71])
    tokens = rep.work_tokens(work, rep.eval_roles(work))
    with torch.no_grad():
        expected = net(torch.from_numpy(tokens)[None], torch.tensor([[0.0, 1.0]]))
    proposer = Proposer(net, STYLES)
    proposer.set_style({"tune": 1.0})
    for t, row in enumerate(tokens):
        chosen = {"role": int(row[0])}
        for i, head in enumerate(HEADS, start=1):
            chosen.update({f: int(row[1 + HEADS.index(f)]) for f in HEAD_INPUTS[head]})
            np.testing.assert_allclose(proposer.logits(head, chosen),
                                       expected[head][0, t].numpy(), rtol=1e-4, atol=1e-4,
                                       err_msg=f"event {t}, head {head} (field {i})")
        proposer.feed(event_of(row))


def test_propose_leaves_the_state_alone_and_feed_moves_it() -> None:
    proposer = Proposer(random_net(), STYLES)
    proposer.feed(rep.ModelEvent(rep.PLAYER, 60, 0.0, 80, None, None))
    before = proposer.hidden
    proposer.propose()
    proposer.propose_phrase(8)
    np.testing.assert_array_equal(proposer.hidden, before)
    proposer.feed(rep.ModelEvent(rep.PLAYER, 64, 0.25, 80, None, None))
    assert not np.array_equal(proposer.hidden, before)
    proposer.reset()
    fresh = Proposer(random_net(), STYLES)
    np.testing.assert_array_equal(proposer.hidden, fresh.hidden)


def test_same_seed_same_phrase() -> None:
    a, b = Proposer(random_net(), STYLES, seed=7), Proposer(random_net(), STYLES, seed=7)
    assert a.propose_phrase(16) == b.propose_phrase(16)
    assert a.propose_phrase(16) != Proposer(random_net(), STYLES, seed=8).propose_phrase(16)


@settings(max_examples=60, deadline=None)
@given(low=st.integers(0, 120), span=st.integers(0, 30),
       classes=st.sets(st.integers(0, 11), min_size=1, max_size=12),
       dt=st.tuples(st.floats(0.0, 3.0), st.floats(0.0, 3.0)),
       vel=st.tuples(st.integers(1, 127), st.integers(1, 127)),
       temperature=st.floats(0.1, 3.0), top_p=st.floats(0.1, 1.0))
def test_proposals_keep_to_the_constraints(low: int, span: int, classes: set[int],
                                           dt: tuple[float, float], vel: tuple[int, int],
                                           temperature: float, top_p: float) -> None:
    c = Constraints(low=low, high=min(low + span, 127), pitch_classes=frozenset(classes),
                    dt_min_s=min(dt), dt_max_s=max(dt), velocity_min=min(vel),
                    velocity_max=max(vel), temperature=temperature, top_p=top_p)
    allowed = [p for p in range(c.low, c.high + 1) if p % 12 in classes]
    proposals = PROPOSER.propose_phrase(6, c)
    if not allowed:
        assert proposals == []
        return
    assert len(proposals) == 6
    for p in proposals:
        assert p.pitch in allowed
        assert c.dt_min_s <= p.dt_s <= c.dt_max_s
        assert c.velocity_min <= p.velocity <= c.velocity_max
        assert p.duration_s > 0


PROPOSER = Proposer(random_net(1), STYLES, seed=3)


def test_style_mixture_is_the_mean_of_the_style_vectors() -> None:
    net = random_net()
    mixed = Proposer(net, STYLES)
    mixed.set_style({"chorale": 1.0, "tune": 3.0})
    expected = 0.25 * net.style.weight[0] + 0.75 * net.style.weight[1]
    np.testing.assert_allclose(mixed.style_vector, expected.detach().numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="unknown style"):
        mixed.set_style({"jazz": 1.0})
    with pytest.raises(ValueError, match="zero"):
        mixed.set_style({"tune": 0.0})


# -- originality ------------------------------------------------------------------------------
def test_longest_shared_run_counts_notes_and_ignores_transposition() -> None:
    corpus = join_lines([np.array(CORPUS_LINE), np.array([50, 40, 50])])
    copied = [p + 5 for p in CORPUS_LINE[2:9]]  # 7 notes, transposed up a fourth
    assert longest_shared_run([30, 31, *copied, 99], corpus) == 7
    assert longest_shared_run([10, 10, 10], corpus) == 1  # a repeated note is not in the corpus
    assert longest_shared_run([], corpus) == 0
    # A run across the boundary between two lines is not a copy of either.
    assert longest_shared_run([84, 86, 50, 40], corpus) == 2


def test_copy_guard_forbids_exactly_the_note_that_would_exceed_the_bound() -> None:
    guard = CopyGuard(join_lines([np.array(CORPUS_LINE)]), bound=5)
    candidates = np.arange(128)
    assert guard.forbidden(CORPUS_LINE[:4], candidates) is None  # too short to copy 6 notes
    forbidden = guard.forbidden(CORPUS_LINE[:5], candidates)
    assert forbidden is not None
    assert np.flatnonzero(forbidden).tolist() == [CORPUS_LINE[5]]
    transposed = [p - 12 for p in CORPUS_LINE[3:8]]
    assert np.flatnonzero(guard.forbidden(transposed, candidates)).tolist() == \
        [CORPUS_LINE[8] - 12]
    assert guard.forbidden([40, 41, 42, 43, 44], candidates) is None


def test_sampler_never_copies_more_than_the_bound() -> None:
    """The corpus is what this model itself plays with this seed, so unguarded it hands the
    corpus back verbatim; guarded, the same model and seed stay within the bound."""
    bound = 6
    net = random_net(2)
    c = Constraints(low=55, high=79, temperature=0.3)
    played = [n.pitch for n in Proposer(net, STYLES, None, seed=4).propose_phrase(60, c)]
    corpus = join_lines([np.array(played)])
    again = [n.pitch for n in Proposer(net, STYLES, None, seed=4).propose_phrase(60, c)]
    assert longest_shared_run(again, corpus) == 60
    guarded = Proposer(net, STYLES, CopyGuard(corpus, bound), seed=4).propose_phrase(60, c)
    assert len(guarded) == 60
    assert longest_shared_run([n.pitch for n in guarded], corpus) == bound


# -- checkpoints ------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path: Path) -> None:
    path = save_random_checkpoint(tmp_path / "m.pt")
    ckpt = checkpoint.load(path)
    assert ckpt.styles == STYLES
    assert [c["name"] for c in ckpt.corpora] == list(STYLES)
    assert len(ckpt.sha256) == 64
    np.testing.assert_array_equal(ckpt.corpus_lines, join_lines([np.array(CORPUS_LINE)]))
    a, b = ckpt.proposer(seed=5), Proposer(random_net(0), STYLES, seed=5)
    assert a.propose_phrase(12) == b.propose_phrase(12)


def test_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"missing\.pt: cannot read"):
        checkpoint.load(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=r"junk\.pt: not a stage-agent model checkpoint"):
        checkpoint.load(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ModelError, match=r"other\.pt: not a stage-agent model checkpoint"):
        checkpoint.load(other)
    old = tmp_path / "old.pt"
    data = torch.load(save_random_checkpoint(tmp_path / "m.pt"), weights_only=True)
    torch.save({**data, "representation": 0}, old)
    with pytest.raises(ModelError, match="representation 0; this agent reads"):
        checkpoint.load(old)


class Payload:
    """Unpickling this would run code: a checkpoint must never be able to."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran",))


def test_checkpoint_with_code_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    data = torch.load(save_random_checkpoint(tmp_path / "m.pt"), weights_only=True)
    torch.save({**data, "extra": {"x": Payload()}}, evil, pickle_module=pickle)
    with pytest.raises(ModelError, match=r"evil\.pt: not a stage-agent model checkpoint"):
        checkpoint.load(evil)


def brute_force_run(line: list[int], lines: list[list[int]]) -> int:
    """The definition, directly: the longest stretch of the line's intervals found in a line."""
    mine = [b - a for a, b in itertools.pairwise(line)]
    theirs = [[b - a for a, b in itertools.pairwise(x)] for x in lines]
    best = 0
    for i in range(len(mine)):
        for j in range(i + 1, len(mine) + 1):
            window = mine[i:j]
            if any(window == t[k:k + len(window)] for t in theirs for k in range(len(t))):
                best = max(best, len(window))
    return best + 1 if line else 0


@settings(max_examples=80, deadline=None)
@given(lines=st.lists(st.lists(st.integers(60, 64), min_size=1, max_size=12), min_size=1,
                      max_size=4),
       line=st.lists(st.integers(60, 64), max_size=12))
def test_longest_shared_run_matches_the_definition(lines: list[list[int]],
                                                   line: list[int]) -> None:
    corpus = join_lines([np.array(x) for x in lines])
    assert longest_shared_run(line, corpus) == brute_force_run(line, lines)
