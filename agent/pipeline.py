"""The agent's core: heard events in, planned notes out. No I/O, no waiting.

listen (held notes, phrases, roles, tempo, key, chord) -> policy (modes, controls, sections) ->
plan-ahead -> scheduler. Both the live service and replay drive this same object with the same
calls, which is why a replay reproduces a performance: `hear`, `apply` and the scheduler's timers
see only event times, never the wall clock.

With a model (model/live.py), every note heard and every answer note played is fed to it, and a
phrase is asked of it under a deadline; what it answers, or that it was late, is logged, so a
replay can give the same answer. Without one, when it is late, or when the controls' memory weight
says so, the live Markov memory answers.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from agent import midi
from agent.clock import ms_to_ns
from agent.config import Config
from agent.events import Heard, PhraseNote, PlannedNote
from agent.listen.activity import Activity, PlayerActivity, roles, soloist_low
from agent.listen.bars import Bars
from agent.listen.hearing import Hearing
from agent.listen.players import Listening
from agent.listen.progression import TRIADS, Expectation, HalfBar, Progression
from agent.listen.pulse import Pulse
from agent.model import representation as rep
from agent.model.continuator import Continuator
from agent.model.live import ModelClient, ModelNote
from agent.model.memory_from import MemoryCorpora
from agent.model.originality import MAX_BOUND
from agent.policy import ensemble as ens
from agent.policy import modes, sections
from agent.policy.accompanist import COMP_COMMIT_NS, COMP_LEAD_NS, Accompanist
from agent.policy.beat_lock import (
    FORM_CALLS,
    call_goes_on,
    closes_there,
    entry_point,
    grid_point_at_or_after,
    lock_to_grid,
    nearest_grid_point,
    next_closing,
    phrase_boundary_check,
)
from agent.policy.commands import Command
from agent.policy.controls import mood
from agent.policy.develop import (
    MOTIF_NOTES,
    diatonic_shift,
    land_on_chords,
    mirror,
    relative_to,
    scale_pitches,
    top_line,
)
from agent.policy.respond import plan_answer, plan_from_model
from agent.policy.skeleton import develop
from agent.record.log import EventLog
from agent.schedule.harmony_voice import HarmonyVoice
from agent.schedule.plan_ahead import PlanAhead
from agent.schedule.scheduler import Scheduler

MIN_PHRASE_GAP_NS = 150_000_000  # shorter silences are articulation, never a phrase end
SOLO_AFTER_MS = 1500.0  # solo and auto modes: rest this long before the agent plays alone
SOLO_MAX_PHRASES = 4  # then the agent waits for the players
NS_PER_S = 1_000_000_000
PEDAL_PHRASE_BARS = 2  # keys up this long, only a pedal ringing: the phrase has ended
PEDAL_PHRASE_NS = 3_000_000_000  # the same without a tempo heard
ENTRY_MARGIN_NS = 20_000_000  # after the model's deadline, before an answer's first note
ANSWER, COMP = "answer", "comp"  # plan-ahead parts (scheduler tags)
Publish = Callable[[str, dict[str, Any]], None]


class Agent:
    def __init__(self, config: Config, scheduler: Scheduler, log: EventLog,
                 model: ModelClient | None = None, corpora: MemoryCorpora | None = None
                 ) -> None:
        """`corpora`: those `respond.memory_from` names, loaded (model/memory_from.py): they
        prime the live memory, and their copy guard bounds what it answers."""
        self.config = config
        self.scheduler = scheduler
        self.log = log
        self.model = model
        self.publish: Publish = lambda kind, payload: None  # the service sets where state goes
        self._model_deadline_ns = ms_to_ns(config.model.deadline_ms)
        names = [p.name for p in config.players]
        self.listening = Listening.for_players(names)
        self.activity = {name: PlayerActivity() for name in names}
        self.hearing = Hearing()
        self.memory = Continuator(max_order=config.respond.max_order,
                                  primed=None if corpora is None else corpora.primed)
        self._copy_guard = None if corpora is None else corpora.guard
        # The agent's answer notes as they start, newest last: the run the guard counts on.
        self._agent_line: deque[int] = deque(maxlen=MAX_BOUND + 1)
        self.rng = random.Random(config.performance.seed)
        self._clock_player = next((p.name for p in config.players if p.follow_clock), None)
        self.pulse = Pulse(config.uses_listening_beat(), self._clock_player is not None,
                           config.performance.beat_division == 3)
        self._latency_ns = ms_to_ns(config.agent.output_latency_ms)
        self._gap_ns = ms_to_ns(config.respond.phrase_gap_ms)
        self._max_note_ns = ms_to_ns(config.agent.max_note_ms)
        self._silence_serial = 0  # bumped by every onset: a pending phrase-end check is stale
        self.harmony = HarmonyVoice(scheduler, config.agent.outputs, config.agent.channel - 1,
                                    config.harmony.intervals)
        self._last_bpm: float | None = None
        self._last_call: list[PhraseNote] = []
        # The beats (bars.beat_at) the last answered calls ended on: the form of a game of
        # call and response (beat_lock.next_closing).
        self._closings: deque[float] = deque(maxlen=FORM_CALLS)
        self._anticipated: tuple[int, int] | None = None  # (entry, beat) of the last one
        self._caller: str | None = None  # who played most of the last call
        self._solo_phrases = 0
        self._prefed = 0  # answer notes already fed to the model (a developed motif)
        self._tick_armed = False
        self._beat_count = 0  # beats since the section began
        self.bars = Bars(self.pulse, config.performance.beats_per_bar)
        self.progression = Progression()
        self.comp = Accompanist(config, self.bars, self.progression, self.hearing)
        self._comp_soloist_low: int | None = None
        self._comp_held = False  # after a panic, until a player plays again
        self._echoing: set[str] = set()  # players heard, not answered: they play the agent back
        self.base_controls = config.initial_controls()
        self.place = sections.start(config.sections)
        self.controls = (sections.controls_for(self.base_controls, config.sections[0])
                         if config.sections else self.base_controls)
        self.plan = PlanAhead(scheduler, config.agent.outputs, config.agent.channel - 1,
                              ms_to_ns(config.agent.plan_horizon_ms), self._note_starts,
                              self.publish_plan)
        self.plan.muted = self.controls.mute
        e = config.ensemble
        self.ensemble = ens.Ensemble(e.members, config.mqtt.agent, e.tempo_leader) \
            if e.members else None

    # -- input ------------------------------------------------------------------------------
    def hear(self, ev: Heard) -> None:
        self.log.write("in", ev.time_ns, player=ev.player, data=ev.data.hex())
        if ev.data[0] >= 0xF0:
            if ev.player == self._clock_player:
                self._follow_clock(ev)
            return
        if ev.player in self._echoing:
            return  # recorded, nothing more: it is the agent's own playing coming back
        sound = self.listening.sound(ev)
        for note in sound.ended:  # first: a re-struck key's old note ends before the new one
            self._note_ended(ev.player, note, ev.time_ns)
        ch = ev.data[0] & 0x0F
        if midi.is_note_on(ev.data):
            self._silence_serial += 1
            self._comp_held = False
            self._solo_phrases = 0
            if self.controls.mode == "harmony" and not self.controls.mute:
                self.harmony.strike(ev)  # first: the immediate reaction leaves before analysis
            self.activity[ev.player].note_on(ev.time_ns, ch, ev.data[1], ev.data[2])
            self.hearing.note_on(ev.player, ch, ev.data[1], ev.data[2], ev.time_ns)
            self.pulse.on_onset(ev.time_ns, ev.data[2])
            self.bars.onset(ev.time_ns, ev.data[2], ev.data[1])
            self.comp.heard_onset(ev.time_ns)
            if self.model is not None:
                self.model.feed(ev.time_ns, rep.PLAYER, ev.data[1], ev.data[2], None,
                                self._beat_in_bar())
            if self.config.respond.yield_to_players and self.plan.drop(ANSWER, ev.time_ns):
                self.log.write("decision", ev.time_ns, what="yield", player=ev.player)
                self._stop_leading(ev.time_ns)
                if self._anticipated is not None and \
                        ev.time_ns - self._anticipated[0] < self._anticipated[1]:
                    self._closings.clear()  # the call went on: not the game it seemed
            self._arm_tick(ev.time_ns)
            for note in sound.grace:  # a zero-length grace note (listen/keys.py)
                self._note_ended(ev.player, note, ev.time_ns)
                self._arm_phrase_end(ev.time_ns)
        elif midi.is_note_off(ev.data) or sound.ended:  # a key let go, a pedal lifted
            self._arm_phrase_end(ev.time_ns)

    def _note_ended(self, player: str, note: PhraseNote, t_ns: int) -> None:
        """A note stopped sounding: its key let go with no pedal holding it, a pedal lifted,
        its key struck again. The harmony note ends with it (harmony_voice.py says why)."""
        self.activity[player].note_off(t_ns, note.channel, note.pitch)
        self.hearing.note_off(player, note.channel, note.pitch)
        self.harmony.release(player, note.channel, note.pitch, t_ns)
        self.hearing.note_ended(note)
        self.progression.note(note.pitch, note.onset_ns, note.onset_ns + note.duration_ns)
        self.bars.ended(note.onset_ns, note.duration_ns)

    def player_lost(self, name: str, t_ns: int) -> None:
        """A player's port vanished: release what they held, in listening and in harmony."""
        for note in self.listening.release_player(name, t_ns):
            self._note_ended(name, note, t_ns)
        self._arm_phrase_end(t_ns)

    def hears_itself(self, name: str, echoing: bool, t_ns: int) -> None:
        """The player's port plays the agent's own notes back (listen/feedback.py): stop
        answering them, and undo what the loop did (release their held notes and the harmony
        of those; their phrase so far is not answered); or, `echoing` False, answer again."""
        if echoing:
            self.player_lost(name, t_ns)
            self.listening.forget_phrase(name)
            self.harmony.release_player(name, t_ns)
            self._echoing.add(name)
        else:
            self._echoing.discard(name)
        self._state("feedback", {"players": sorted(self._echoing)}, t_ns)

    # -- the ensemble: other agents in the piece (policy/ensemble.py) -----------------------
    def peer(self, name: str, t_ns: int, fields: dict[str, Any]) -> None:
        """A checked message from another member (presence or its ensemble state)."""
        if self.ensemble is None or name not in self.ensemble.peers:
            return
        if self.ensemble.hear_peer(name, t_ns, fields):  # we both started: it goes first
            self.plan.drop(ANSWER, t_ns)
            self.log.write("decision", t_ns, what="yield", peer=name)
            self.announce_ensemble(t_ns)
        self.pulse.share(self.ensemble.shared_grid(t_ns))
        if fields.get("role") == ens.LEAD:
            self._arm_tick(t_ns)  # auto mode comps under a leading member

    def announce_ensemble(self, t_ns: int) -> None:
        if self.ensemble is None:
            return
        can_lead = self._can_lead()
        role = ens.LEAD if self.ensemble.is_leading(t_ns) else ens.REST if can_lead else ens.COMP
        self._state("ensemble", self.ensemble.announce(role, can_lead,
                                                       self.pulse.grid(t_ns)), t_ns)

    def _lead_over(self, t_ns: int) -> None:
        if self.ensemble is not None and not self.ensemble.is_leading(t_ns):
            self.announce_ensemble(t_ns)

    def _stop_leading(self, t_ns: int) -> None:
        """The agent's phrase is gone (a player came in, a panic): the others may lead."""
        if self.ensemble is not None and self.ensemble.is_leading(t_ns):
            self.ensemble.stop_leading()
            self.announce_ensemble(t_ns)

    # -- controls, cues, sections -----------------------------------------------------------
    def apply(self, cmd: Command, t_ns: int) -> None:
        """A checked command (policy/commands.py), already logged by the session."""
        before = self.controls
        if cmd.verb == "panic":
            self.plan.drop_all(t_ns)
            self.scheduler.panic("panic")
            self._stop_leading(t_ns)
            self._comp_held = True  # silence means silence: the comp waits for a player
            return
        if cmd.verb == "cue":
            index = sections.find(self.config.sections, self.place, cmd.fields["section"])
            if index is not None:
                self._enter_section(index, t_ns, "cue")
            return
        if cmd.verb == "mode":
            self.controls = self.controls.with_changes({"mode": cmd.fields["mode"]})
        elif cmd.verb == "controls":
            self.controls = self.controls.with_changes(cmd.fields)
        elif cmd.verb in ("mute", "unmute"):
            self.controls = self.controls.with_changes({"mute": cmd.verb == "mute"})
        self._controls_changed(before, t_ns)

    def _enter_section(self, index: int, t_ns: int, why: str) -> None:
        before = self.controls
        self.place = sections.Place(index, 0)
        self._beat_count = 0
        self.comp.section_began(t_ns)
        self.controls = sections.controls_for(self.base_controls, self.config.sections[index])
        self.log.write("decision", t_ns, what="section", why=why,
                       **self.place.to_dict(self.config.sections))
        self._state("section", self.place.to_dict(self.config.sections), t_ns)
        self._controls_changed(before, t_ns)

    def _controls_changed(self, before: Any, t_ns: int) -> None:
        now = self.controls
        if now == before:
            return
        if now.mute and not before.mute:
            self.plan.drop_all(t_ns)
            self.scheduler.silence("mute")
            self.harmony.forget()
        self.plan.muted = now.mute
        if now.mode != before.mode:
            self.plan.drop(COMP, t_ns)
            self._state("mode", {"mode": now.mode, "section": self.section_name()}, t_ns)
        if (now.mode, now.mute) != (before.mode, before.mute):
            if self.ensemble is not None and not self._can_lead():
                self.ensemble.stop_leading()  # muted or comping now: its phrase is not heard
            self.announce_ensemble(t_ns)  # whether it can lead may have changed
        if now.styles != before.styles and self.model is not None and now.styles:
            self.model.set_style(dict(now.styles))
        old, new = mood(before), mood(now)
        if (old.velocity_shift, old.register) != (new.velocity_shift, new.register):
            ladder = scale_pitches(self.hearing.key_scale())
            dv, dr = new.velocity_shift - old.velocity_shift, new.register - old.register
            self.plan.revise(lambda n: replace(
                n, velocity=min(max(n.velocity + dv, 1), 127),
                pitch=diatonic_shift(min(max(n.pitch + dr, 0), 127), 0, ladder)), t_ns)
        self._state("controls", now.to_dict(), t_ns)

    def section_name(self) -> str | None:
        return self.config.sections[self.place.index].name if self.place.index >= 0 else None

    # -- phrases: answer, continue, mirror, solo ---------------------------------------------
    def _arm_phrase_end(self, t_ns: int) -> None:
        """Silence from t_ns: the phrase has ended if nobody plays for the phrase gap, or,
        with a bar heard, soon after the strong beat that closes it (policy/beat_lock.py)."""
        serial = self._silence_serial
        if self.listening.anyone_holding():
            if not self.listening.keys_down():  # only a pedal rings: the phrase may be over
                self.scheduler.call_at(t_ns + self._pedal_phrase_ns(t_ns),
                                       lambda t: self._phrase_end(t, serial, t_ns, True),
                                       tag="phrase-end")
            return
        at = t_ns + self._phrase_gap_ns(t_ns)
        strong = self.bars.next_strong(t_ns)
        if strong is not None:
            expected = phrase_boundary_check(t_ns, *strong, self.listening.phrase_start(),
                                             MIN_PHRASE_GAP_NS)
            at = min(at, expected) if expected is not None else at
        self.scheduler.call_at(at, lambda t: self._phrase_end(t, serial, t_ns),
                               tag="phrase-end")

    def _phrase_end(self, t_ns: int, serial: int | None, call_end_ns: int,
                    ringing: bool = False, waited: bool = False) -> None:
        """`ringing`: the phrase ends although a pedal still holds notes (the keys have been
        up for PEDAL_PHRASE_BARS: a pianist lets a phrase's end ring in the pedal, and a
        pedal that never lifts, wired the wrong way round, must not silence the agent).
        `serial` None: the phrase is expected to end on the beat at `call_end_ns`
        (_anticipate_call_end), whatever sounds now; the answer comes in on that beat.
        `waited`: the form's end of the call was waited for, and has gone by unanswered."""
        anticipated = serial is None
        sounding = self.listening.keys_down() if ringing else self.listening.anyone_holding()
        if not anticipated and (serial != self._silence_serial or sounding):
            return  # someone played since: the phrase goes on
        wait_ns = None if anticipated or waited else self._call_goes_on(call_end_ns)
        if wait_ns is not None:
            # A rest within a call of the form heard: its end is answered on. Should that not
            # come (the beat lost in the silence, say), the phrase ends half a beat after it.
            self.log.write("decision", t_ns, what="wait", why="form")
            self.scheduler.call_at(max(t_ns, call_end_ns + wait_ns), lambda t: self._phrase_end(
                t, serial, call_end_ns, ringing, waited=True), tag="phrase-end")
            return
        role_of = self._band(t_ns)[1]
        part = self._choose(modes.PHRASE_END, role_of, t_ns) if anticipated else None
        if anticipated and part is None:
            return  # the agent would not answer it: the call goes on being heard
        self._caller = self.listening.caller()
        call = self.listening.take_phrase(t_ns if ringing or anticipated else None,
                                          keys_down=anticipated)
        if not call:
            return
        self.memory.learn(call)
        self._last_call = call
        self._publish_hearing(t_ns, role_of)  # at each phrase end (and at each beat)
        if not anticipated:
            part = self._choose(modes.PHRASE_END, role_of, t_ns)
        if part is not None:
            self._learn_form(call_end_ns)
            self.plan.drop(COMP, t_ns)  # the comp gives way to the agent's own line
            self._respond(part, call, t_ns, call_end_ns,
                          self._anticipated_entry(t_ns, call_end_ns) if anticipated else None)

    def _learn_form(self, end_ns: int) -> None:
        """An answered call's ending: the beat nearest where it stopped. Not in an ensemble:
        its members take turns at phrase ends (policy/ensemble.py), and a turn decided early,
        then again at the phrase end, would be passed twice."""
        if self.ensemble is not None:
            return
        beat = self.bars.beat_at(end_ns)
        if beat is not None:
            self._closings.append(float(round(beat)))

    def _call_goes_on(self, end_ns: int) -> int | None:
        """If a phrase stopping at `end_ns` is a rest within the call (beat_lock.call_goes_on),
        how long from `end_ns` until half a beat after the beat the call is expected to end
        on; else None."""
        bar_beats = self.config.performance.beats_per_bar
        expected, end = next_closing(self._closings, bar_beats), self.bars.beat_at(end_ns)
        period = self.pulse.period_guess(end_ns)
        if expected is None or end is None or period is None or \
                not call_goes_on(expected, end, bar_beats):
            return None
        return round((expected - end + 0.5) * period)

    def _anticipated_entry(self, t_ns: int, expected_ns: int) -> int | None:
        """Where an anticipated answer comes in: the beat the call was expected to end on, as
        the grid heard now places it (the grid moves a little with every onset since); None
        (an entry placed as after any call) when it moved by more than a quarter beat or too
        near to be played on."""
        grid = self.pulse.grid(t_ns)
        if grid is None:
            return None
        at = nearest_grid_point(expected_ns, *grid)
        if abs(at - expected_ns) > grid[1] // 4 or at - t_ns < self._answer_lead_ns() // 2:
            return None
        return at

    def _anticipate_call_end(self, t_ns: int) -> None:
        """With the form of a game of call and response heard (beat_lock.next_closing), the
        call playing is taken as over the answer's lead before the beat it is expected to end
        on, its last note sounding or not, so that the answer comes in on that beat. A player
        who plays on within a beat of it cancels the answer (respond.yield_to_players) and
        the form."""
        expected = next_closing(self._closings, self.config.performance.beats_per_bar)
        grid = self.pulse.grid(t_ns)
        if expected is None or grid is None or self.listening.phrase_start() is None or \
                self.config.respond.beat_lock <= 0:
            return  # (without the beat lock, answers come in when they can, off the grid)
        lead = self._answer_lead_ns()
        # The first beat that can still be answered on: a tick falls a hair before or after
        # a beat, so the beat just after the tick itself is usually too near.
        beat_ns = grid_point_at_or_after(t_ns + lead, *grid)
        decide = beat_ns - lead
        beat = self.bars.beat_at(beat_ns)
        if t_ns <= decide < t_ns + grid[1] and beat is not None and closes_there(expected, beat):
            self._anticipated = (beat_ns, grid[1])
            self.scheduler.call_at(decide, lambda t: self._phrase_end(t, None, beat_ns),
                                   tag="phrase-end")

    def _choose(self, trigger: str, role_of: dict[str, str], t_ns: int) -> str | None:
        if self.ensemble is not None:  # a leading member counts as a soloist
            role_of = {**role_of, **self.ensemble.peer_roles(t_ns)}
        part = modes.choose(self.controls.mode, trigger, role_of, mood(self.controls),
                            self.config.respond.solo_after_ms > 0)
        if part in modes.LEAD_PARTS and self.ensemble is not None:
            can_lead = self._can_lead()
            may, why = self.ensemble.may_lead(t_ns, can_lead)
            if not may:
                self.log.write("decision", t_ns, what="wait", part=part, why=why)
                if can_lead and self.ensemble.leading_peer(t_ns) is None:
                    self.ensemble.pass_turn(can_lead)  # that member's turn is used up
                return None
        return part

    def _can_lead(self) -> bool:
        return self.controls.mode in modes.LEADING_MODES and not self.controls.mute

    def _respond(self, part: str, call: list[PhraseNote], t_ns: int, cause: int | None,
                 start_ns: int | None = None) -> None:
        """Play a phrase of `part` after `call`: from the model if it answers in time, else
        from the live memory. A mirror is the call itself, varied (with the model's pitches
        for the varied notes when it answers). `start_ns`: where it comes in (else _entry)."""
        m = mood(self.controls)
        scale = self.hearing.key_scale() if self.config.model.keep_to_key else None
        notes = modes.answer_length(len(call), m, self.config.respond.max_notes)
        start = self._entry(t_ns, cause) if start_ns is None else start_ns
        if self.ensemble is not None:  # the floor is taken now, at the decision's logged time,
            # not when the model answers: live and replay then agree on who yields to whom
            self.ensemble.lead(start + call[-1].onset_ns + call[-1].duration_ns
                               - call[0].onset_ns)  # about as long as the call (revised in _play)
            self.announce_ensemble(t_ns)
        use_model = self.model is not None and not (
            self.controls.memory_weight > 0 and self.rng.random() < self.controls.memory_weight)
        if part == modes.MIRROR and not use_model:
            self._play(part, relative_to(mirror(call, scale, self.rng, head=MOTIF_NOTES),
                                         start), t_ns, cause,
                       "call", "no-model" if self.model is None else "memory-weight")
            return
        motif, development = (self._developed(call, scale, notes, start)
                              if part == modes.ANSWER else ([], ""))
        head = relative_to(motif, start)
        if not use_model:
            why = "no-model" if self.model is None else "memory-weight"
            self._play(part, head + self._from_memory(call, notes - len(head), head, start,
                                                     m.register), t_ns, cause, "markov", why,
                       len(head), development=development)
            return
        assert self.model is not None
        for n in head:  # the model develops the motif: it hears it as the agent's, first
            self.model.feed(n.start_ns, rep.AGENT, n.pitch, n.velocity, n.duration_ns / 1e9,
                            None)
        asked = len(top_line(call)) if part == modes.MIRROR else notes - len(head)
        req = modes.phrase_request(part, call, asked, scale, m, self.config.model,
                                   self.pulse.beat_s(t_ns), self._beat_in_bar())
        self.log.write("model", t_ns, what="request", notes=req.notes, part=part,
                       scale=None if scale is None else sorted(scale))
        serial = self._silence_serial

        def done(answer: list[ModelNote] | None, why: str) -> None:
            self.log.write("model", self.scheduler.clock.now_ns(), what="answer", why=why,
                           asked=t_ns, notes=None if answer is None else
                           [n.to_log() for n in answer])
            if serial != self._silence_serial:
                return  # a player came in: the moment has gone
            if self.ensemble is not None and not self.ensemble.is_leading(
                    self.scheduler.clock.now_ns()):
                return  # another member took the floor meanwhile (a "yield" decision)
            if part == modes.MIRROR:
                varied = mirror(call, scale, self.rng, head=MOTIF_NOTES, alternatives=[
                    n.pitch for n in answer or []])
                self._play(part, relative_to(varied, start), t_ns, cause,
                           "call+model" if answer else "call", why)
            elif answer:
                after = head[-1].start_ns if head else start
                tail = plan_from_model(answer, after + (answer[0].dt_ns if head else 0),
                                       self._max_note_ns)
                self._play(part, head + tail, t_ns, cause, "model", why, len(head), True,
                           development=development)
            else:
                self._play(part, head + self._from_memory(call, notes - len(head), head, start,
                                                         m.register), t_ns, cause, "markov", why,
                           len(head), True, development)

        self.model.request(t_ns, req, t_ns + self._model_deadline_ns, done)

    def _from_memory(self, call: list[PhraseNote], n: int, head: list[PlannedNote],
                     start: int, register: int) -> list[PlannedNote]:
        """The live Markov memory's continuation, after the head if there is one."""
        begin = head[-1].start_ns + max(head[-1].duration_ns, 1) if head else start
        octave = 12 * round(register / 12)  # whole octaves: the memory's notes keep their key
        # What the agent played just before, where the memory's notes will be (an octave
        # apart from there would change the interval into them): the guard counts it in.
        before = [p - octave for p in (*self._agent_line, *(h.pitch for h in head))] \
            if self._copy_guard is not None else []
        out = plan_answer(call, self.memory, self.rng, begin, n, self._max_note_ns,
                          self._copy_guard, before)
        return [replace(x, pitch=min(max(x.pitch + octave, 0), 127)) for x in out]

    def _play(self, part: str, plan: list[PlannedNote], t_ns: int, cause: int | None,
              source: str, why: str, motif: int = 0, prefed: bool = False,
              development: str = "") -> None:
        """Schedule a phrase; its first `motif` notes develop the call (fed to the model
        already if `prefed`) by `development` (a plan of policy/skeleton.py)."""
        shift = mood(self.controls).velocity_shift if source != "model" else 0
        plan = [replace(n, velocity=min(max(n.velocity + shift, 1), 127)) for n in plan]
        plan = self._beat_locked(plan, t_ns, cause)
        if source == "model" and part != modes.MIRROR:
            # The model's own notes are aimed at the chords; a mirror's are the call's, and the
            # live memory's the players' own (a tune a musician taught it keeps its shape).
            plan = plan[:motif] + self._landed(plan[motif:], plan[0].start_ns if plan else 0,
                                               t_ns)
        self._prefed = motif if prefed else 0
        # The plan as made: [start ns, pitch, velocity, duration ns] per note. Notes a player's
        # entry later cancels are in here, and not among the emitted messages.
        self.log.write("decision", self.scheduler.clock.now_ns(), what=part,
                       call_notes=len(self._last_call), caller=self._caller, source=source,
                       why=why, motif=motif, development=development,
                       plan=[[n.start_ns, n.pitch, n.velocity, n.duration_ns] for n in plan])
        self.plan.set(ANSWER, plan, self.scheduler.clock.now_ns(), cause)
        if plan:
            end = plan[-1].start_ns + plan[-1].duration_ns
            self._arm_rest(end)
            if self.ensemble is not None:  # the other members hold back until it ends
                self.ensemble.lead(end)
                self.announce_ensemble(t_ns)
                self.scheduler.call_at(end, self._lead_over, tag="ensemble")

    def _arm_rest(self, after_ns: int) -> None:
        """If the players still rest a while after the agent stops, the rest trigger fires:
        in solo and auto modes (and with respond.solo_after_ms set) the agent plays on, phrase
        after phrase, until someone comes in (which cancels this timer, tagged as answers are)
        or SOLO_MAX_PHRASES have been played."""
        wait_ms = self.config.respond.solo_after_ms or SOLO_AFTER_MS
        serial = self._silence_serial

        def rest(t_ns: int) -> None:
            if serial != self._silence_serial or self.listening.anyone_holding():
                return
            if self._solo_phrases >= SOLO_MAX_PHRASES or not self._last_call:
                return
            if self._choose(modes.REST, self._band(t_ns)[1], t_ns) == modes.SOLO:
                self._solo_phrases += 1
                self._respond(modes.SOLO, self._last_call, t_ns, None)
        self.scheduler.call_at(after_ns + ms_to_ns(wait_ms), rest, tag=ANSWER)

    def _note_starts(self, tag: str, note: PlannedNote) -> None:
        """The model hears the agent's answer notes as they start (a motif it was fed, once);
        the memory's copy guard counts them."""
        if tag == ANSWER:
            self._agent_line.append(note.pitch)
        if self.model is None or tag != ANSWER:
            return
        if self._prefed > 0:
            self._prefed -= 1
            return
        self.model.feed(note.start_ns, rep.AGENT, note.pitch, note.velocity,
                        note.duration_ns / 1e9, self._beat_in_bar())

    # -- the beat: comping, bars, sections, state --------------------------------------------
    def _arm_tick(self, t_ns: int) -> None:
        if self._tick_armed:
            return
        beat = self.pulse.grid(t_ns)
        if beat is None:
            return
        phase, period = beat
        self._tick_armed = True
        # The next beat of the grid heard now, but never within half a beat of the last tick:
        # a grid that moved back a few ms since then must not make the same beat tick twice.
        last = self.bars.last_tick_ns()
        after = t_ns if last is None else max(t_ns, last + period // 2)
        steps = (after - phase) // period + 1
        self.scheduler.call_at(phase + steps * period, self._tick, tag="beat")

    def _tick(self, t_ns: int) -> None:
        """A beat: count it, publish what is heard, comp the next beat, and go on while there
        is anything to follow (someone played in the last two bars, or the agent plays)."""
        self._tick_armed = False
        bar_beats = self.config.performance.beats_per_bar
        self.bars.tick(t_ns)
        self._beat_count += 1
        if self._beat_count % bar_beats == 0:
            place, new = sections.after_bar(self.config.sections, self.place)
            if new:
                self._enter_section(place.index, t_ns, "bars")
            else:
                self.place = place
        band, role_of = self._band(t_ns)  # once per beat: publishing, choosing and comping
        self._publish_hearing(t_ns, role_of)
        if self.ensemble is not None:
            self.pulse.share(self.ensemble.shared_grid(t_ns))  # the leader's, while fresh
            if self.ensemble.me == self.ensemble.tempo_leader and \
                    self._beat_count % bar_beats == 0:
                self.announce_ensemble(t_ns)  # the shared beat, once a bar
        beat = self.pulse.grid(t_ns)
        if beat is None:
            return
        self._anticipate_call_end(t_ns)
        period = beat[1]
        expected = self._expect(t_ns)  # the form is learned whether the agent comps or not
        if not self._comp_held and self._choose(modes.BEAT, role_of, t_ns) == modes.COMP:
            self._comp_soloist_low = soloist_low(role_of, band)
            # The strokes on the eighths to come (the off-beat and the next beat; in a compound
            # metre the beat's two later eighths and the next beat) are decided just before
            # they sound, with what is heard by then (a timer tagged as the comp: dropped
            # with it).
            # A plan commits a stroke only COMP_COMMIT_NS before it sounds, after the decision
            # COMP_LEAD_NS before it: the stroke plays what was decided with the most heard,
            # not the plan made a half beat earlier (even when the grid heard moved since by
            # up to the difference).
            division = self.config.performance.beat_division
            for eighth in range(1, division + 1):
                self.scheduler.call_at(t_ns + round(eighth * period / division) - COMP_LEAD_NS,
                                       lambda t: self._comp(t, self._expect(t)), tag=COMP)
            self._comp(t_ns, expected)
        else:
            self.plan.drop(COMP, t_ns)
        last = self.hearing.last_onset_ns
        busy = self.plan.busy_until(ANSWER) or 0
        if (last is not None and t_ns - last < 2 * bar_beats * period) or busy > t_ns or \
                self.listening.anyone_holding() or \
                (self.ensemble is not None and self.ensemble.leading_peer(t_ns)):
            self._arm_tick(t_ns + 1)

    def _comp(self, t_ns: int, expected: Expectation | None) -> None:
        """Comp the rest of this half bar and the next bar (policy/accompanist.py); only
        what sounds within COMP_COMMIT_NS is committed (the rest is decided again just before
        it sounds, with what is heard by then)."""
        planned = self.comp.strokes(t_ns, expected, mood(self.controls), self._comp_soloist_low)
        if planned is None:
            return
        self.log.write("decision", t_ns, what=modes.COMP, chord=planned.chord,
                       source=planned.source,
                       plan=[[n.start_ns, n.pitch, n.velocity, n.duration_ns]
                             for n in planned.notes if n.start_ns < t_ns + planned.beat_ns])
        self.plan.set(COMP, planned.notes, t_ns, horizon_ns=COMP_COMMIT_NS,
                      guard_ns=planned.beat_ns // 8)

    def _expect(self, t_ns: int) -> Expectation | None:
        return self.comp.expect(t_ns, self.place.index)

    def _publish_hearing(self, t_ns: int, role_of: dict[str, str]) -> None:
        for kind, payload in self.hearing.changes(t_ns, role_of, self.pulse.clock_bpm(),
                                                  self.pulse.estimate(t_ns)).items():
            self._state(kind, payload, t_ns)

    def _state(self, kind: str, payload: dict[str, Any], t_ns: int) -> None:
        if kind != "plan":  # the plan is in the decision records already
            self.log.write("state", t_ns, what=kind, **payload)
        self.publish(kind, payload)

    def publish_plan(self, t_ns: int) -> None:
        notes = [[round((n.start_ns - t_ns) / 1e6), n.pitch, n.velocity,
                  round(n.duration_ns / 1e6), int(committed)]
                 for n, committed in self.plan.view(t_ns)]
        self._state("plan", {"mode": self.controls.mode, "t": t_ns, "notes": notes}, t_ns)

    def _band(self, t_ns: int) -> tuple[dict[str, Activity], dict[str, str]]:
        """Each player's recent playing, and the roles it gives (resting after a bar)."""
        beat = self.pulse.grid(t_ns)
        bar_s = (beat[1] if beat else 500_000_000) * self.config.performance.beats_per_bar
        band = {n: a.summary(t_ns) for n, a in self.activity.items()}
        return band, roles(band, t_ns, rest_s=bar_s / NS_PER_S)

    # -- timing ---------------------------------------------------------------------------
    def _phrase_gap_ns(self, t_ns: int) -> int:
        """The silence that ends a phrase: respond.phrase_gap_beats of the beat heard (a
        phrase's breath scales with the tempo), never longer than phrase_gap_ms. A tempo guess
        the tracker is unsure of still counts here: at worst it shortens the gap, and a phrase
        that goes on cancels the answer (yield_to_players)."""
        beats = self.config.respond.phrase_gap_beats
        period = self.pulse.period_guess(t_ns)
        if beats > 0 and period is not None:
            return max(min(round(beats * period), self._gap_ns), MIN_PHRASE_GAP_NS)
        return self._gap_ns

    def _pedal_phrase_ns(self, t_ns: int) -> int:
        """How long the keys stay up, only a pedal ringing, before the phrase counts as
        ended: PEDAL_PHRASE_BARS at the tempo heard, else PEDAL_PHRASE_NS."""
        period = self.pulse.period_guess(t_ns)
        if period is None:
            return PEDAL_PHRASE_NS
        return PEDAL_PHRASE_BARS * self.config.performance.beats_per_bar * period

    def _landed(self, line: list[PlannedNote], start_ns: int, t_ns: int) -> list[PlannedNote]:
        """The line's structural notes on the chords expected under them (develop.
        land_on_chords): the motif's statements were placed on them already; the rest of the
        answer, the model's or the memory's, is aimed at them here. With the beat lock only:
        what is on a beat is known then."""
        grid = self.pulse.grid(t_ns)
        if not line or grid is None or self.config.respond.beat_lock <= 0:
            return line
        chords = self._chords_ahead(start_ns)
        return line if chords is None else land_on_chords(line, chords, start_ns, grid[1])

    def _beat_locked(self, plan: list[PlannedNote], t_ns: int,
                     cause: int | None) -> list[PlannedNote]:
        """With a beat heard, the phrase locks to it (respond.beat_lock: 1 quantises to the
        eighths of the beat), from its first note, which _entry put on a beat."""
        beat = self.pulse.grid(t_ns)
        if beat is None:
            return plan
        return lock_to_grid(plan, beat[0], beat[1], self.config.respond.beat_lock, None,
                            self.config.performance.beat_division)

    def _entry(self, t_ns: int, call_end_ns: int | None) -> int:
        """When an answer decided now starts: with a beat heard, on the strong beat after the
        call (entry_point), else (or with respond.beat_lock 0) as soon as it can: the decision
        time plus the output latency."""
        grid = self.pulse.grid(t_ns)
        at = self.bars.half_bar(t_ns)
        if grid is None or at is None or self.config.respond.beat_lock <= 0:
            return t_ns + self._latency_ns
        return entry_point(t_ns + self._answer_lead_ns(),
                           t_ns if call_end_ns is None else call_end_ns, at.start_ns,
                           at.length_ns, grid[0], grid[1],
                           self.config.performance.beat_division)

    def _answer_lead_ns(self) -> int:
        """How long before its first note an answer on the grid is decided. The output
        latency is a budget there, not a floor: what must be in by the first note is the
        model's answer (or its fallback), at the model's deadline."""
        return max(self._model_deadline_ns + ENTRY_MARGIN_NS, self._latency_ns * 3 // 4)

    def _developed(self, call: list[PhraseNote], scale: frozenset[int] | None, notes: int,
                   start_ns: int) -> tuple[list[PlannedNote], str]:
        """The answer's head: the call's motif developed (policy/skeleton.py), its statements
        placed on the chords expected over the answer (the form's, else the likeliest
        progression from the chord heard last)."""
        grid = self.pulse.grid(start_ns)
        chords = self._chords_ahead(start_ns)
        motif, plan = develop(call, scale, self.rng, notes,
                              beat_ns=None if grid is None else grid[1],
                              chord_tones=chords[0] if chords else None,
                              bar_beats=self.config.performance.beats_per_bar, chords=chords)
        # The skeleton keeps the motif's place in its beat; the answer's first note is where
        # _entry put it (the rest is moved onto the beats by the beat lock).
        first = motif[0].start_ns if motif else 0
        return [replace(n, start_ns=n.start_ns - first) for n in motif[:max(notes - 1, 0)]], plan

    def _chords_ahead(self, start_ns: int) -> list[frozenset[int]] | None:
        """The chords expected over an answer from `start_ns`, one per beat, up to four bars:
        the section's chart where it has one, else the form's (the matching half bars of the
        last pass), else the likeliest progression from the chord heard last. None without a
        grid, a bar or a key heard."""
        grid = self.pulse.grid(start_ns)
        at = self.bars.half_bar(start_ns)
        key = self.hearing.key()
        if grid is None or at is None or key is None:
            return None
        span_beats = max(round(at.length_ns / grid[1]), 1)
        into = max(round((start_ns - at.start_ns) / grid[1]), 0)  # beats into the half bar
        beats = 4 * self.config.performance.beats_per_bar
        triads = self.progression.foresee(at, -(-(beats + into) // span_beats),
                                          (key.tonic, key.mode))
        for i in range(len(triads)):  # a chart, where the section has one, says better
            later = HalfBar(at.index + i, at.start_ns + i * at.length_ns, at.length_ns,
                            at.starts_bar, at.beat_ns)
            charted = self.comp.chart_triad(later, self.place.index)
            triads[i] = triads[i] if charted is None else charted
        return [TRIADS[triads[(into + b) // span_beats]] for b in range(beats)]

    def _beat_in_bar(self) -> float | None:
        return self.pulse.beat_in_bar(self.config.performance.beats_per_bar)

    # -- MIDI clock -------------------------------------------------------------------------
    def _follow_clock(self, ev: Heard) -> None:
        change = self.pulse.on_clock(ev)
        if change == "stop":
            self.log.write("ctl", ev.time_ns, what="clock-stop")
            self.plan.drop_all(ev.time_ns)
            self.scheduler.silence("clock-stop")  # Stop silences the agent's notes
        elif change == "beat":  # once a beat is often enough for the log
            self._arm_tick(ev.time_ns)
            bpm = self.pulse.clock_bpm()
            if bpm is not None and (self._last_bpm is None or abs(bpm - self._last_bpm) >= 0.1):
                self._last_bpm = bpm
                self.log.write("tempo", ev.time_ns, bpm=round(bpm, 2))
        elif change is not None:
            self.log.write("ctl", ev.time_ns, what=f"clock-{change}")

    def check_clock(self, now_ns: int) -> None:
        clock = self.pulse.clock
        if clock is not None and clock.check_loss(now_ns):
            self.log.write("ctl", now_ns, what="clock-lost", bpm=self._last_bpm)

