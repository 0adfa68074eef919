"""Sections of a piece: where we are, and when to move on (by a cue, or after so many bars).

Entering a section sets the controls to the piece's starting controls plus the section's own
(its mode, if it names one, and its `controls` table); commands afterwards change them until the
next section. The last section lasts until a cue (there is no section after it). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.config import Section
from agent.policy.commands import NEXT
from agent.policy.controls import Controls


@dataclass(frozen=True)
class Place:
    index: int  # -1: the piece has no sections
    bar: int  # bars completed in this section

    def to_dict(self, sections: Sequence[Section]) -> dict[str, object]:
        name = sections[self.index].name if self.index >= 0 else None
        return {"name": name, "index": self.index, "bar": self.bar}


def start(sections: Sequence[Section]) -> Place:
    return Place(0 if sections else -1, 0)


def find(sections: Sequence[Section], place: Place, target: str) -> int | None:
    """The section a cue goes to: by name, or NEXT (None past the last section)."""
    if target == NEXT:
        nxt = place.index + 1
        return nxt if nxt < len(sections) else None
    return next((i for i, s in enumerate(sections) if s.name == target), None)


def after_bar(sections: Sequence[Section], place: Place) -> tuple[Place, bool]:
    """One more bar went by: the new place, and whether a new section starts."""
    if place.index < 0:
        return place, False
    bars = place.bar + 1
    limit = sections[place.index].bars
    if limit and bars >= limit and place.index + 1 < len(sections):
        return Place(place.index + 1, 0), True
    return Place(place.index, bars), False


def controls_for(base: Controls, section: Section) -> Controls:
    """The controls on entering `section`, from the piece's starting controls."""
    changes = dict(section.controls)
    if section.mode:
        changes["mode"] = section.mode
    return base.with_changes(changes)
