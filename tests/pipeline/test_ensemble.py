"""Two agents in one piece, on one manual clock, their ensemble states passed between them with a
network delay (what the broker does live, tested in tests/integration/test_perform_ensemble.py):
turns, a member away, crossing leads, a shared beat, and replay of what one of them heard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent import config as config_mod
from agent import midi
from agent.clock import ManualClock
from agent.events import Heard
from agent.policy.commands import parse_command
from agent.record.log import read_log
from agent.record.replay import load_recording, replay_fast
from agent.record.session import LOG_NAME, Session
from tests.pipeline.test_replay import emitted

MS = 1_000_000
MEMBERS = ("keys", "bass")
NET_MS = 5  # one hop through the broker


class Duo:
    def __init__(self, tmp_path: Path, mode: str = "call-response", leader: str = "",
                 present: tuple[str, ...] = MEMBERS) -> None:
        self.clock = ManualClock()
        self.out: dict[str, list[tuple[int, bytes]]] = {}
        self.sessions: dict[str, Session] = {}
        self.mail: list[tuple[int, str, str, dict[str, Any]]] = []  # at, to, from, payload
        for me in MEMBERS:
            table: dict[str, Any] = {
                "performance": {"name": "duo", "seed": 3},
                "players": [{"name": "a", "port": "virtual:a"}],
                "agent": {"mode": mode, "outputs": [f"{me}-out"], "channel": 1,
                          "output_latency_ms": 100.0},
                "respond": {"phrase_gap_ms": 400.0, "beat_lock": 0.0, "phrase_gap_beats": 0.0},
                "mqtt": {"host": "127.0.0.1", "agent": me},
                "ensemble": {"members": list(MEMBERS), "tempo_leader": leader},
            }
            self.out[me] = []
            session = Session(config_mod.from_dict(table), self.clock, self._sink(me),
                              tmp_path / me, {"clock": "manual"})
            session.agent.publish = self._publisher(me)
            self.sessions[me] = session
        for me, session in self.sessions.items():  # presence, as the broker's retained status
            for other in present:
                if other != me:
                    session.control("peer", 0, agent=other, status="online")

    def _sink(self, me: str) -> Any:
        def sink(port: str, data: bytes) -> bool:
            self.out[me].append((self.clock.now_ns(), data))
            return True
        return sink

    def _publisher(self, me: str) -> Any:
        def publish(kind: str, payload: dict[str, Any]) -> None:
            if kind == "ensemble":
                for other in MEMBERS:
                    if other != me:
                        self.mail.append((self.clock.now_ns() + NET_MS * MS, other, me,
                                          dict(payload)))
        return publish

    def until(self, t_ms: float) -> None:
        t = round(t_ms * MS)
        while True:
            due = [(d, name) for name, s in self.sessions.items()
                   if (d := s.scheduler.next_deadline()) is not None]
            first_job = min(due, default=None)
            first_mail = min(self.mail, default=None, key=lambda m: m[0])
            if first_mail is not None and first_mail[0] <= t and (
                    first_job is None or first_mail[0] <= first_job[0]):
                self.mail.remove(first_mail)
                at, to, sender, payload = first_mail
                self.clock.advance_to(at)
                self.sessions[to].control("peer", at, agent=sender, **payload)
            elif first_job is not None and first_job[0] <= t:
                self.clock.advance_to(first_job[0])
                self.sessions[first_job[1]].run_due(first_job[0])
            else:
                break
        self.clock.advance_to(t)

    def phrase(self, pitches: list[int], start_ms: float, ioi_ms: float = 200) -> float:
        """The player plays to both agents; returns the time of the last note-off."""
        t = start_ms
        for p in pitches:
            for at, data in ((t, (0x90, p, 80)), (t + ioi_ms * 0.8, (0x80, p, 0))):
                self.until(at)
                for s in self.sessions.values():
                    s.hear(Heard(round(at * MS), "a", bytes(data)))
            t += ioi_ms
        return t - ioi_ms * 0.2

    def onsets(self, me: str) -> list[float]:
        return [t / MS for t, d in self.out[me] if midi.is_note_on(d)]

    def decisions(self, me: str, what: str) -> list[dict[str, Any]]:
        self.sessions[me].log.flush()
        return [r for r in read_log(self.sessions[me].log.path)[1]
                if r["k"] == "decision" and r["what"] == what]

    def finish(self) -> None:
        for s in self.sessions.values():
            s.stop(self.clock.now_ns())
            assert s.scheduler.ledger.sounding() == []
            s.finish()


CALL = [60, 62, 64, 65, 67]


def test_the_members_take_turns_answering_the_player(tmp_path: Path) -> None:
    duo = Duo(tmp_path)
    first = duo.phrase(CALL, 0)
    second = duo.phrase(CALL, first + 3000)
    third = duo.phrase(CALL, second + 3000)
    duo.until(third + 3000)
    keys, bass = duo.onsets("keys"), duo.onsets("bass")
    # keys answers the first and third calls, bass the second: never both at once
    assert keys and all(first < t < second - 200 or t > third for t in keys)
    assert bass and all(second < t < third - 200 for t in bass)
    assert [d["why"] for d in duo.decisions("bass", "wait")] == ["keys's turn", "keys's turn"]
    assert [d["why"] for d in duo.decisions("keys", "wait")] == ["bass's turn"]
    duo.finish()


def test_a_member_that_is_not_there_leaves_every_turn_to_the_other(tmp_path: Path) -> None:
    duo = Duo(tmp_path, present=("keys",))  # bass never came online for keys
    duo.sessions["keys"].control("peer", 0, agent="bass", status="lost")
    first = duo.phrase(CALL, 0)
    second = duo.phrase(CALL, first + 3000)
    duo.until(second + 3000)
    keys = duo.onsets("keys")
    assert any(first < t < second for t in keys) and any(t > second for t in keys)
    assert duo.decisions("keys", "wait") == []
    duo.finish()


def test_crossing_leads_the_later_member_yields_and_nothing_hangs(tmp_path: Path) -> None:
    # keys sees bass, bass has not seen keys yet: both think the first call is theirs
    duo = Duo(tmp_path, present=())
    duo.sessions["keys"].control("peer", 0, agent="bass", status="online")
    end = duo.phrase(CALL, 0)
    duo.until(end + 3000)
    (yielded,) = duo.decisions("bass", "yield")
    assert yielded["peer"] == "keys"
    assert duo.decisions("keys", "yield") == []
    keys, bass = duo.onsets("keys"), duo.onsets("bass")
    assert len(keys) == len(duo.decisions("keys", "answer")[0]["plan"])  # played it all
    assert all(t <= yielded["t"] / MS for t in bass)  # bass stopped when it heard keys
    duo.finish()


def test_followers_play_to_the_tempo_leaders_beat(tmp_path: Path) -> None:
    duo = Duo(tmp_path, mode="accompany", leader="keys")
    end = duo.phrase([60, 64, 67, 72] * 6, 1000, ioi_ms=500)  # 120 BPM quarter notes
    duo.until(end)
    keys, bass = duo.sessions["keys"].agent, duo.sessions["bass"].agent
    t = round(end * MS)
    shared = keys.pulse.grid(t)
    assert shared is not None and abs(shared[1] - 500 * MS) < 10 * MS
    assert bass.ensemble is not None and bass.ensemble.shared_grid(t) is not None
    assert bass.pulse.grid(t) == bass.ensemble.shared_grid(t)
    duo.sessions["keys"].log.flush()
    announced = [r for r in read_log(duo.sessions["keys"].log.path)[1]
                 if r["k"] == "state" and r["what"] == "ensemble" and r["grid"]]
    assert announced and tuple(announced[-1]["grid"]) == bass.pulse.grid(t)
    duo.finish()


def test_a_members_log_replays_to_the_same_output(tmp_path: Path) -> None:
    duo = Duo(tmp_path)
    first = duo.phrase(CALL, 0)
    second = duo.phrase(CALL, first + 3000)
    duo.until(second + 3000)
    duo.finish()
    for me in MEMBERS:
        live = tmp_path / me
        again = replay_fast(load_recording(live / LOG_NAME), load_recording(live).config
                            or config_mod.from_dict({}), tmp_path / f"{me}-again", "test")
        assert again["notes_played"] > 0
        assert emitted(tmp_path / f"{me}-again") == emitted(live)


def test_a_muted_member_leaves_every_turn_to_the_others(tmp_path: Path) -> None:
    duo = Duo(tmp_path)
    duo.sessions["keys"].command(parse_command("mute", {}), 0)  # first in the order, muted
    first = duo.phrase(CALL, 100)
    second = duo.phrase(CALL, first + 3000)
    duo.until(second + 3000)
    bass = duo.onsets("bass")
    assert any(first < t < second for t in bass) and any(t > second for t in bass)
    assert duo.onsets("keys") == []
    assert duo.decisions("bass", "yield") == []
    assert {d["why"] for d in duo.decisions("keys", "wait")} == {
        "cannot lead (muted, or a mode without lead parts)"}
    duo.finish()
