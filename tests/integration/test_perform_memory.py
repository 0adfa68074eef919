"""`stage-agent perform` with `[respond] memory_from` over real JACK ports: the corpus read
before the ports open, the live memory primed with it answering a musician who plays their own
tune, within the originality bound."""

from __future__ import annotations

from pathlib import Path

from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME
from tests.corpus_fixtures import Piece, melody, write_corpus
from tests.pipeline.test_memory_from import TUNE

from .jackpeer import agent_piece, on_stage, running_agent
from .test_perform_model_jack import answer_pitches, call

BOUND = 5
PIECE = agent_piece("continue") + f"""[respond]
phrase_gap_ms = 300.0
max_order = 2
memory_from = ["corpora/mine"]
[model]
originality_bound = {BOUND}
"""


def test_perform_answers_from_the_corpus_its_memory_was_primed_with(
        jack_server: JackServer, jack: dict[str, str], tmp_path: Path) -> None:
    mine = write_corpus(tmp_path / "corpora" / "mine", [Piece("tune", "train", (melody(TUNE),))])
    with on_stage("primed", jack_server.xruns, tmp_path, PIECE) as (peer, config), \
            running_agent(config, jack, peer) as agent:
        call(peer, TUNE[:8])
        played = answer_pitches(peer, 8)
        peer.drain()
        assert agent.wait() == 0, agent.err
    # The tune carried on from where the musician stopped, for the bound, then elsewhere.
    assert played[:BOUND] == TUNE[8:8 + BOUND] and played[BOUND:] != TUNE[8 + BOUND:16]
    header, records = read_log(config.parent / agent.recording / LOG_NAME)
    assert [(c["path"], c["works"], c["notes"]) for c in header["memory_from"]] == \
        [(str(mine.resolve()), 1, len(TUNE))]
    [answer] = [r for r in records if r["k"] == "decision" and r["what"] == "continue"]
    assert answer["source"] == "markov" and [row[1] for row in answer["plan"]] == played
    assert agent.ready_line.startswith("stage-agent: performing 'primed' (jack); live memory "
                                       "primed from mine (40 notes of 1 works) in ")
