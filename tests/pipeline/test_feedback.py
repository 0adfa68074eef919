"""A player whose port plays the agent back (listen/feedback.py's trip, a recorded control):
heard and recorded, not answered; what the loop made sound released; the others play on."""

from __future__ import annotations

from pathlib import Path

from agent import midi

from .test_agent import MS, Run


def test_an_echoing_player_is_recorded_not_answered_and_the_others_play_on(
        tmp_path: Path) -> None:
    run = Run(tmp_path, mode="harmony")
    run.at(0, "a", 0x90, 60, 80)  # harmony a fifth down: 55
    run.at(10, "b", 0x90, 64, 80)  # 59
    run.until(100)
    sent = len(run.out)
    run.session.control("port-feedback", 100 * MS, player="a", port="virtual:a")
    assert run.out[sent:] == [(100 * MS, bytes([0x80, 55, 0]))]  # a's harmony only
    run.at(150, "a", 0x90, 62, 80)  # heard, not answered
    run.at(160, "b", 0x90, 67, 80)
    assert run.out[sent + 1:] == [(160 * MS, bytes([0x90, 62, 80]))]
    run.session.control("port-feedback-over", 300 * MS, player="a", port="virtual:a")
    run.at(310, "a", 0x90, 65, 80)  # answered again
    assert run.out[-1] == (310 * MS, bytes([0x90, 60, 80]))
    records = run.records()
    assert [r["data"] for r in records if r["k"] == "in" and r["player"] == "a"] == [
        "903c50", "903e50", "904150"]
    assert [r["players"] for r in records if r["k"] == "state" and r["what"] == "feedback"] == [
        ["a"], []]


def test_the_phrase_an_echo_made_is_not_answered(tmp_path: Path) -> None:
    run = Run(tmp_path, mode="call-response")
    for i, pitch in enumerate((60, 62, 64)):
        run.at(i * 100, "a", 0x90, pitch, 80)
        run.at(i * 100 + 90, "a", 0x80, pitch, 0)
    run.session.control("port-feedback", 300 * MS, player="a", port="virtual:a")
    run.until(3000)
    assert run.decisions("answer") == [] and not any(midi.is_note_on(d) for _, d in run.out)
