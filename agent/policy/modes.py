"""The modes: when the agent plays, what kind of part, and what it asks the model for. Pure.

Three moments can make the agent play (triggers):
    phrase-end  the players stopped (a silence, nothing held)
    beat        a beat of the heard tempo went by
    rest        the players have rested since the agent's last note (respond.solo_after_ms)

    mode           phrase-end         beat                          rest
    call-response  answer             -                             solo, if solo_after_ms > 0
    continue       continue           -                             solo, if solo_after_ms > 0
    mirror         mirror             -                             solo, if solo_after_ms > 0
    accompany      -                  comp while someone plays      -
    solo           solo               -                             solo
    auto           answer (continue   comp under a soloist          solo
                   when aroused)      (under anyone when calm)
    harmony        - (harmony notes react to every note-on, in the pipeline)

Each part turns the listening state into the model's constraints (`phrase_request`): the call's
range and dynamics, the heard key's scale, and the controls (register, dynamics, density,
temperature). Comping takes its pitches from the heard chord (policy/comping.py) and needs no
model.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from agent.config import ModelSection
from agent.events import PhraseNote
from agent.listen.activity import COMPING, SOLOING
from agent.model.live import PhraseRequest
from agent.model.proposals import Constraints
from agent.policy.controls import Mood

PHRASE_END, BEAT, REST = "phrase-end", "beat", "rest"
ANSWER, CONTINUE, MIRROR, COMP, SOLO = "answer", "continue", "mirror", "comp", "solo"
RESPONSES = (ANSWER, CONTINUE, MIRROR)  # parts that respond to a call (timed from its end)
AROUSED, CALM = 0.5, -0.5  # arousal beyond which auto mode leans to continue / to comping

_TABLE: dict[str, dict[str, str]] = {
    "call-response": {PHRASE_END: ANSWER},
    "continue": {PHRASE_END: CONTINUE},
    "mirror": {PHRASE_END: MIRROR},
    "accompany": {BEAT: COMP},
    "solo": {PHRASE_END: SOLO, REST: SOLO},
    "auto": {PHRASE_END: ANSWER, BEAT: COMP, REST: SOLO},
}
LEAD_PARTS = (*RESPONSES, SOLO)  # a phrase of the agent's own (an ensemble takes turns at them)
LEADING_MODES = frozenset(m for m, parts in _TABLE.items() if set(parts.values()) & {*LEAD_PARTS})


def choose(mode: str, trigger: str, role_of: dict[str, str], mood: Mood,
           solo_in_rests: bool) -> str | None:
    """The part to play now, or None to stay out."""
    if trigger == REST and solo_in_rests and mode in ("call-response", "continue", "mirror"):
        return SOLO
    part = _TABLE.get(mode, {}).get(trigger)
    if part is None:
        return None
    playing = [r for r in role_of.values() if r in (SOLOING, COMPING)]
    if part == COMP:
        if mode == "auto" and SOLOING not in playing and not (mood.arousal < CALM and playing):
            return None  # auto comps under a soloist (under anyone when calm)
        return COMP if playing else None
    if mode == "auto" and part == ANSWER and mood.arousal > AROUSED:
        return CONTINUE
    return part


def answer_length(call_notes: int, mood: Mood, max_notes: int) -> int:
    return max(1, min(max_notes, round(call_notes * mood.density)))


def phrase_request(part: str, call: Sequence[PhraseNote], notes: int,
                   scale: Collection[int] | None, mood: Mood, m: ModelSection,
                   beat_s: float | None, start_beat: float | None) -> PhraseRequest:
    """What to ask the model for a phrase of `part` after `call` (not empty)."""
    pitches = [n.pitch for n in call]
    low, high = min(pitches), max(pitches)
    if part == CONTINUE:  # carry on the line itself: its own range and touch, a little cooler
        recent = [n.velocity for n in call[-4:]]
        low, high = low - 2, high + 2
        v_low, v_high = min(recent) - 8, max(recent) + 8
        temperature = mood.temperature * 0.85
    else:
        widen = m.range_semitones + (5 if part == SOLO else 0)
        low, high = low - widen, high + widen
        velocities = [n.velocity for n in call]
        v_low, v_high = min(velocities) - 16, max(velocities) + 16
        temperature = mood.temperature
    shift = mood.velocity_shift
    return PhraseRequest(
        notes=notes,
        constraints=Constraints(
            low=_clip(low + mood.register, 0, 127), high=_clip(high + mood.register, 0, 127),
            velocity_min=_clip(v_low + shift, 1, 127), velocity_max=_clip(v_high + shift, 1, 127),
            pitch_classes=frozenset(scale) if scale else None,
            temperature=temperature, top_p=m.top_p),
        beat_s=beat_s, start_beat=start_beat)


def _clip(x: int, low: int, high: int) -> int:
    return min(max(x, low), high)
