"""Chord charts (agent/chart.py) and their place in the config."""

from __future__ import annotations

import pytest

from agent import config as config_mod
from agent.chart import ChartError, chord_at, parse_chart, parse_symbol
from agent.errors import ConfigError


@pytest.mark.parametrize(("symbol", "root", "quality"), [
    ("G", 7, "maj"), ("Em", 4, "min"), ("D7", 2, "maj"), ("F#m7b5", 6, "dim"),
    ("D/F#", 2, "maj"), ("Bb", 10, "maj"), ("Cmaj7", 0, "maj"), ("Am7", 9, "min"),
    ("Ebmin", 3, "min"), ("C-", 0, "min"), ("Bdim", 11, "dim"), ("Bo7", 11, "dim"),
    ("Gsus4", 7, "maj"), ("Caug", 0, "maj"), ("Cb", 11, "maj"), ("E#m", 5, "min"),
])
def test_symbols(symbol: str, root: int, quality: str) -> None:
    chord = parse_symbol(symbol)
    assert chord is not None and (chord.root, chord.quality) == (root, quality)


def test_triad_index_follows_the_progression_tables() -> None:
    from agent.listen.progression import TRIADS
    for symbol, tones in (("G", {7, 11, 2}), ("Em", {4, 7, 11}), ("F#m7b5", {6, 9, 0})):
        chord = parse_symbol(symbol)
        assert chord is not None and TRIADS[chord.triad] == tones


def test_a_chart_shares_each_bar_among_its_chords() -> None:
    chart = parse_chart("G | D/F# | Em | C D | % | N.C.")
    assert len(chart) == 6
    names = [[c.symbol if c else None for c in bar] for bar in chart]
    assert names == [["G"], ["D/F#"], ["Em"], ["C", "D"], ["C", "D"], [None]]
    c_then_d = [chord_at(chart, 3, x) for x in (0.0, 0.49, 0.5, 0.99)]
    assert [c.symbol if c else None for c in c_then_d] == ["C", "C", "D", "D"]
    first = chord_at(chart, 6, 0.0)  # it goes round
    assert first is not None and first.symbol == "G"
    assert chord_at(chart, 5, 0.3) is None
    assert parse_chart("") == () and parse_chart("   ") == ()


@pytest.mark.parametrize(("text", "says"), [
    ("G | H", "'H' is not a chord symbol"), ("% | G", "'%' repeats the bar before"),
    ("G || D", "bar 2 is empty"), ("G | Dx/Q", "'Dx/Q' is not a chord symbol"),
])
def test_bad_charts_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ChartError, match=says.replace("(", r"\(")):
        parse_chart(text)


def test_a_bad_chart_is_a_config_error_naming_the_key() -> None:
    table = {"players": [{"name": "a", "port": "virtual:a"}],
             "agent": {"outputs": ["virtual:out"]},
             "sections": [{"name": "A", "chords": "G | D"}, {"name": "B", "chords": "G | X7"}]}
    with pytest.raises(ConfigError) as e:
        config_mod.from_dict(table, "piece.toml")
    assert "sections[1].chords" in str(e.value) and "'X7' is not a chord symbol" in str(e.value)
    table["sections"] = [{"name": "A", "chords": "G | D"}]
    assert config_mod.from_dict(table, "piece.toml").sections[0].chords == "G | D"
