"""`replay` (and `compare`) `--mode` and `--styles`: another mode or blend of the model's styles.

They override the config's (the given, the recorded or a MIDI file's default) for the whole run,
the way a performer means "play it in accompany mode": the sections' own modes and styles go,
and so do the recorded commands that changed them (a mode command, the mode and styles of a
controls command), whether live or put back at a window's start by --from/--bars. The rest of a
section (its bars, controls, gestures) and of a command stays. A log replayed with an override is
a re-improvisation: the model runs here (the recorded answers followed the recorded mode).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from agent.config import MODE_ALIASES, Config
from agent.policy.controls import MODES
from agent.record.replay import Control, Input, Recording
from agent.record.scrub import OptionError

MODE_CHOICES = (*MODES, *MODE_ALIASES)  # what --mode accepts (the config's names)
MAX_WEIGHT = 1000.0  # as model.style_weights


@dataclass(frozen=True)
class Overrides:
    mode: str | None = None
    styles: tuple[tuple[str, float], ...] | None = None  # (style, weight), in the order given

    def given(self) -> list[str]:
        """The options given, for messages about options that do not go together."""
        return ["--mode"] * (self.mode is not None) + ["--styles"] * (self.styles is not None)

    def apply(self, recording: Recording, cfg: Config) -> tuple[Recording, Config]:
        """The recording and config to replay."""
        if not self.given():
            return recording, cfg
        sections = cfg.sections
        if self.mode is not None:
            mode = MODE_ALIASES.get(self.mode, self.mode)
            cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, mode=mode))
            sections = tuple(dataclasses.replace(s, mode="") for s in sections)
        if self.styles is not None:
            _check_styles(self.styles, cfg)
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(
                cfg.model, styles=tuple(s for s, _w in self.styles),
                style_weights=tuple(w for _s, w in self.styles)))
            sections = tuple(dataclasses.replace(s, controls={
                k: v for k, v in s.controls.items() if k != "styles"}) for s in sections)
        cfg = dataclasses.replace(cfg, sections=sections)
        inputs = [kept for i in recording.inputs if (kept := self._keep(i)) is not None]
        return dataclasses.replace(recording, inputs=inputs, model_answers=[]), cfg

    def _keep(self, item: Input) -> Input | None:
        """A recorded input without the changes these options override (None: nothing left)."""
        if not isinstance(item, Control):
            return item
        if item.what == "mode":
            return None if self.mode is not None else item
        if item.what != "controls":
            return item
        dropped = {name for name, value in (("mode", self.mode), ("styles", self.styles))
                   if value is not None}
        fields = {k: v for k, v in item.fields.items() if k not in dropped}
        if fields == item.fields:
            return item
        return dataclasses.replace(item, fields=fields) if fields else None


NO_OVERRIDES = Overrides()


def parse_styles(text: str) -> tuple[tuple[str, float], ...]:
    """"oneill-1850:0.7,bach-chorales:0.3" (a style alone weighs 1) -> ((style, weight), ...).
    ValueError says what is wrong (argparse names the option)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, colon, weight_text = (p.strip() for p in part.partition(":"))
        if not name:
            raise ValueError(f"{text!r}: expected NAME[:WEIGHT],... (a style name is missing)")
        if name in out:
            raise ValueError(f"{text!r}: {name} is given twice")
        try:
            weight = float(weight_text) if colon else 1.0
        except ValueError:
            raise ValueError(f"{name}:{weight_text}: the weight is not a number") from None
        if not (math.isfinite(weight) and 0.0 <= weight <= MAX_WEIGHT):
            raise ValueError(f"{name}:{weight_text}: the weight must be 0..{MAX_WEIGHT:g}")
        out[name] = weight
    if sum(out.values()) <= 0:
        raise ValueError(f"{text!r}: the weights must not all be zero")
    return tuple(out.items())


def _check_styles(styles: tuple[tuple[str, float], ...], cfg: Config) -> None:
    """Every style named is one the config's model knows (found now, before a replay starts)."""
    if not cfg.model.checkpoint:
        raise OptionError(f"--styles: {cfg.source} plays without a model ([model] checkpoint), "
                          "so there are no styles to blend")
    from agent.model import checkpoint  # torch only when styles are asked for

    model_styles = checkpoint.load(cfg.model_path()).styles
    unknown = [s for s, _w in styles if s not in model_styles]
    if unknown:
        raise OptionError(f"--styles: unknown style {', '.join(unknown)}; the model "
                          f"{cfg.model_path().name} knows {', '.join(model_styles)}")
