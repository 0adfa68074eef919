"""The agent's core: heard events in, planned notes out. No I/O, no waiting.

listen (held notes, phrases, MIDI clock) -> policy (respond / harmony) -> scheduler. Both the live
service and replay drive this same object with the same calls, which is why a replay reproduces a
performance: `hear` and the scheduler's timers see only event times, never the wall clock.

With a model (model/live.py), every note heard and played is fed to it, and an answer is asked
of it under a deadline; what it answers, or that it was late, is logged, so a replay can give the
same answer. Without one, or when it is late, the live Markov memory answers.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from agent import midi
from agent.clock import ms_to_ns
from agent.config import Config
from agent.events import Heard, NoteId, PhraseNote
from agent.listen.beat import BeatTracker
from agent.listen.harmony import PitchClassProfile, estimate_key
from agent.listen.midi_clock import ClockFollower
from agent.listen.players import Listening
from agent.model import representation as rep
from agent.model.continuator import Continuator
from agent.model.live import ModelClient, ModelNote, PhraseRequest
from agent.model.proposals import Constraints
from agent.policy.beat_lock import lock_to_grid
from agent.policy.respond import PlannedNote, harmony_pitches, plan_answer, plan_from_model
from agent.record.log import EventLog
from agent.schedule.scheduler import Scheduler

MIN_PHRASE_GAP_NS = 150_000_000  # shorter silences are articulation, never a phrase end
BEAT_LOCK_CONFIDENCE = 0.5  # below this the tracker's grid is a guess: leave the timing alone
KEY_HALF_LIFE_S = 30.0  # the key changes slowly: what was played half a minute ago counts half
NS_PER_S = 1_000_000_000
ANSWER = "answer"  # scheduler tag of the notes of a response (cancelled when a player comes in)


class Agent:
    def __init__(self, config: Config, scheduler: Scheduler, log: EventLog,
                 model: ModelClient | None = None) -> None:
        self.config = config
        self.scheduler = scheduler
        self.log = log
        self.model = model
        self._model_deadline_ns = ms_to_ns(config.model.deadline_ms)
        self.listening = Listening.for_players([p.name for p in config.players])
        self.memory = Continuator(max_order=config.respond.max_order)
        self.rng = random.Random(config.performance.seed)
        self.clock = ClockFollower() if any(p.follow_clock for p in config.players) else None
        self._clock_player = next((p.name for p in config.players if p.follow_clock), None)
        self._ports = config.agent.outputs
        self._channel = config.agent.channel - 1
        self._latency_ns = ms_to_ns(config.agent.output_latency_ms)
        self._gap_ns = ms_to_ns(config.respond.phrase_gap_ms)
        self._max_note_ns = ms_to_ns(config.agent.max_note_ms)
        self._silence_serial = 0  # bumped by every onset: a pending phrase-end check is stale
        self._harmony: dict[tuple[str, int, int], list[NoteId]] = {}
        self._last_bpm: float | None = None
        self.key_profile = PitchClassProfile(half_life=KEY_HALF_LIFE_S)
        # Tempo from the players' onsets, for beat lock and tempo-scaled phrase ends: ~0.3 ms
        # per onset on the loop, so only where answers use it (never before a harmony note).
        uses_beat = config.respond.beat_lock > 0 or config.respond.phrase_gap_beats > 0
        self.beat = BeatTracker() if uses_beat and config.agent.mode == "call-response" else None

    # -- input ------------------------------------------------------------------------------
    def hear(self, ev: Heard) -> None:
        self.log.write("in", ev.time_ns, player=ev.player, data=ev.data.hex())
        if ev.data[0] >= 0xF0:
            if ev.player == self._clock_player:
                self._follow_clock(ev)
            return
        finished = self.listening.hear(ev)
        if finished is not None:  # the key hears whole notes: duration-weighted, as measured
            self.key_profile.add(finished.pitch, finished.onset_ns / NS_PER_S,
                                 finished.duration_ns / NS_PER_S)
        if midi.is_note_on(ev.data):
            self._silence_serial += 1
            if self.beat is not None:
                self.beat.on_onset(ev.time_ns)
            if self.model is not None:
                self.model.feed(ev.time_ns, rep.PLAYER, ev.data[1], ev.data[2], None,
                                self._beat_in_bar())
            if self.config.respond.yield_to_players and self.scheduler.cancel(ANSWER):
                self.log.write("decision", ev.time_ns, what="yield", player=ev.player)
            if self.config.agent.mode == "harmony":
                self._harmonise(ev)
        elif midi.is_note_off(ev.data):
            self._release_harmony(ev.player, ev.data[0] & 0x0F, ev.data[1], ev.time_ns)
            self._arm_phrase_end(ev.time_ns)

    def player_lost(self, name: str, t_ns: int) -> None:
        """A player's port vanished: release what they held, in listening and in harmony."""
        for note in self.listening.release_player(name, t_ns):
            self._release_harmony(name, note.channel, note.pitch, t_ns)
        self._arm_phrase_end(t_ns)

    # -- modes ------------------------------------------------------------------------------
    def _harmonise(self, ev: Heard) -> None:
        """Immediate reaction: harmony notes now (deadline = the heard note's own time)."""
        ch, pitch, velocity = ev.data[0] & 0x0F, ev.data[1], ev.data[2]
        key = (ev.player, ch, pitch)
        self._release_harmony(*key, ev.time_ns)  # a re-struck key: its old harmony ends first
        self._harmony[key] = [
            self.scheduler.note_on(ev.time_ns, port, self._channel, p, velocity,
                                   cause_ns=ev.time_ns)
            for p in harmony_pitches(pitch, self.config.harmony.intervals)
            for port in self._ports
        ]

    def _release_harmony(self, player: str, channel: int, pitch: int, t_ns: int) -> None:
        for note in self._harmony.pop((player, channel, pitch), []):
            self.scheduler.note_off(t_ns, note)

    def _arm_phrase_end(self, t_ns: int) -> None:
        if self.listening.anyone_holding():
            return
        serial = self._silence_serial
        self.scheduler.call_at(t_ns + self._phrase_gap_ns(t_ns),
                               lambda t: self._phrase_end(t, serial, t_ns),
                               tag="phrase-end")

    def _phrase_end(self, t_ns: int, serial: int, call_end_ns: int) -> None:
        if serial != self._silence_serial or self.listening.anyone_holding():
            return  # someone played since: the phrase goes on
        call = self.listening.take_phrase()
        if not call:
            return
        self.memory.learn(call)
        if self.config.agent.mode != "call-response":
            return
        self._answer(call, t_ns, call_end_ns)

    def _answer(self, call: list[PhraseNote], t_ns: int, call_end_ns: int | None) -> None:
        """Answer a call (call_end_ns: when it ended), or play on alone (None: a solo)."""
        if self.model is None:
            self._play_answer(call, t_ns, call_end_ns, None, "no-model")
            return
        serial = self._silence_serial
        req = self._phrase_request(call)
        scale = req.constraints.pitch_classes
        self.log.write("model", t_ns, what="request", notes=req.notes,
                       scale=None if scale is None else sorted(scale))

        def done(notes: list[ModelNote] | None, why: str) -> None:
            self.log.write("model", self.scheduler.clock.now_ns(), what="answer", why=why,
                           asked=t_ns, notes=None if notes is None else
                           [n.to_log() for n in notes])
            if serial == self._silence_serial:  # else a player came in: the moment has gone
                self._play_answer(call, t_ns, call_end_ns, notes, why)

        self.model.request(t_ns, req, t_ns + self._model_deadline_ns, done)

    def _phrase_request(self, call: list[PhraseNote]) -> PhraseRequest:
        """The model's constraints, from the call: its range (widened) and its dynamics."""
        m = self.config.model
        pitches = [n.pitch for n in call]
        velocities = [n.velocity for n in call]
        bpm = self.clock.bpm() if self.clock is not None else None
        key = estimate_key(self.key_profile) if m.keep_to_key else None
        return PhraseRequest(
            notes=min(self.config.respond.max_notes, len(call)),
            constraints=Constraints(
                low=max(min(pitches) - m.range_semitones, 0),
                high=min(max(pitches) + m.range_semitones, 127),
                velocity_min=max(min(velocities) - 16, 1),
                velocity_max=min(max(velocities) + 16, 127),
                pitch_classes=key.scale if key is not None else None,
                temperature=m.temperature, top_p=m.top_p),
            beat_s=60.0 / bpm if bpm else None, start_beat=self._beat_in_bar())

    def _play_answer(self, call: list[PhraseNote], t_ns: int, call_end_ns: int | None,
                     notes: list[ModelNote] | None, why: str) -> None:
        start = t_ns + self._latency_ns
        plan: list[PlannedNote]
        if notes:
            plan, source = plan_from_model(notes, start, self._max_note_ns), "model"
        else:
            plan = plan_answer(call, self.memory, self.rng, start,
                               self.config.respond.max_notes, self._max_note_ns)
            source = "markov"
        plan = self._beat_locked(plan, t_ns)
        # The plan as scheduled: [start ns, pitch, velocity, duration ns] per note. Notes a
        # player's entry later cancels are in here, and not among the emitted messages.
        self.log.write("decision", self.scheduler.clock.now_ns(),
                       what="respond" if call_end_ns is not None else "solo",
                       call_notes=len(call), source=source, why=why,
                       plan=[[n.start_ns, n.pitch, n.velocity, n.duration_ns] for n in plan])
        for i, note in enumerate(plan):
            for port in self._ports:
                self.scheduler.play(note.start_ns, note.duration_ns, port, self._channel,
                                    note.pitch, note.velocity, tag=ANSWER,
                                    cause_ns=call_end_ns if i == 0 else None)
            if self.model is not None:  # the model hears the agent's notes as they start
                self.scheduler.call_at(note.start_ns, self._feeder(note), tag=ANSWER)
        if plan:
            self._arm_solo(plan[-1].start_ns + plan[-1].duration_ns, call)

    def _arm_solo(self, after_ns: int, call: list[PhraseNote]) -> None:
        """If the players still rest respond.solo_after_ms after the agent stops, it plays on:
        a phrase of its own, then another, until someone comes in (which cancels this timer,
        tagged as the answer is)."""
        wait_ns = ms_to_ns(self.config.respond.solo_after_ms)
        if wait_ns <= 0:
            return
        serial = self._silence_serial

        def solo(t_ns: int) -> None:
            if serial == self._silence_serial and not self.listening.anyone_holding():
                self._answer(call, t_ns, None)
        self.scheduler.call_at(after_ns + wait_ns, solo, tag=ANSWER)

    def _phrase_gap_ns(self, t_ns: int) -> int:
        """The silence that ends a phrase: respond.phrase_gap_beats of the heard beat when one
        is heard steadily (a phrase's breath scales with the tempo), else phrase_gap_ms."""
        beats = self.config.respond.phrase_gap_beats
        if beats > 0 and self.beat is not None:
            beat = self.beat.estimate(t_ns)
            if beat is not None and beat.confidence >= BEAT_LOCK_CONFIDENCE:
                return max(round(beats * beat.period_ns), MIN_PHRASE_GAP_NS)
        return self._gap_ns

    def _beat_locked(self, plan: list[PlannedNote], t_ns: int) -> list[PlannedNote]:
        """With a steady beat heard (confident enough), the answer locks softly to it."""
        if self.beat is None:
            return plan
        beat = self.beat.estimate(t_ns)
        if beat is None or beat.confidence < BEAT_LOCK_CONFIDENCE:
            return plan
        return lock_to_grid(plan, beat.phase_ns, beat.period_ns, self.config.respond.beat_lock)

    def _feeder(self, note: PlannedNote) -> Callable[[int], None]:
        def feed(t_ns: int) -> None:
            assert self.model is not None
            self.model.feed(note.start_ns, rep.AGENT, note.pitch, note.velocity,
                            note.duration_ns / 1e9, self._beat_in_bar())
        return feed

    def _beat_in_bar(self) -> float | None:
        """Where the MIDI clock says we are in a 4/4 bar, in beats, if it is running."""
        if self.clock is None or not self.clock.running or self.clock.bpm() is None:
            return None
        return (self.clock.ticks / 24) % 4

    # -- MIDI clock -------------------------------------------------------------------------
    def _follow_clock(self, ev: Heard) -> None:
        assert self.clock is not None
        change = self.clock.on_message(ev.time_ns, ev.data)
        if change == "stop":
            self.log.write("ctl", ev.time_ns, what="clock-stop")
            self.scheduler.silence("clock-stop")  # Stop silences the agent's notes
        elif change is not None:
            self.log.write("ctl", ev.time_ns, what=f"clock-{change}")
        elif self.clock.ticks % 24 == 0:  # once a beat is often enough for the log
            bpm = self.clock.bpm()
            if bpm is not None and (self._last_bpm is None or abs(bpm - self._last_bpm) >= 0.1):
                self._last_bpm = bpm
                self.log.write("tempo", ev.time_ns, bpm=round(bpm, 2))

    def check_clock(self, now_ns: int) -> None:
        if self.clock is not None and self.clock.check_loss(now_ns):
            self.log.write("ctl", now_ns, what="clock-lost", bpm=self._last_bpm)
