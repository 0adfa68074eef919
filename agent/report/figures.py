"""The report's pictures, drawn with matplotlib's file-only backend (no display on a stage machine).

The piano roll and the timeline share their time axis and margins, so on the page, one above the
other, the same second is at the same place. Colours are the Okabe-Ito palette (told apart with
the common colour-vision deficiencies); the agent's notes are also outlined in black, so they
stand out in greyscale too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.report.data import Latencies, Moment, Part, ReportData, Segment, Timeline, p50_p99

PLAYER_COLOURS = ("#0072B2", "#009E73", "#56B4E9", "#CC79A7", "#E69F00", "#F0E442")
AGENT_COLOUR = "#D55E00"
LANE_COLOURS = ("#DDEEFF", "#FFE9CC", "#DDF2E9", "#F6E0EE", "#FFF7C2", "#E6E6E6", "#D9ECF7",
                "#F9E3D6")
# Where the agent's decisions sit on the modes lane, and how they look.
DECISION_STYLE = {"answer": (0.75, "v", "black"), "continue": (0.75, ">", "black"),
                  "mirror": (0.75, "D", "black"), "solo": (0.75, "*", AGENT_COLOUR),
                  "comp": (0.25, "|", "0.35"), "yield": (0.25, "x", "#0072B2")}
WIDTH_IN = 12.0
DPI = 100
MARGINS = {"left": 0.07, "right": 0.85}  # the legend goes in the right margin
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def part_colours(parts: Sequence[Part]) -> list[str]:
    out, i = [], 0
    for p in parts:
        if p.is_agent:
            out.append(AGENT_COLOUR)
        else:
            out.append(PLAYER_COLOURS[i % len(PLAYER_COLOURS)])
            i += 1
    return out


def plain(text: str) -> str:
    """Text from the log (a player's name, a marker's label) drawn as it is, never as
    matplotlib's mathtext ("$x$")."""
    return text.replace("$", r"\$")


def pitch_name(pitch: int) -> str:
    """MIDI 60 is C4."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def draw_piano_roll(data: ReportData, out: Path, title: str) -> Path:
    plt = _pyplot()
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(WIDTH_IN, 5.0))
    handles = []
    pitches = [n.pitch for p in data.parts for n in p.notes]
    for part, colour in zip(data.parts, part_colours(data.parts), strict=True):
        boxes = [[(n.start_s, n.pitch - 0.4), (n.start_s + n.duration_s, n.pitch - 0.4),
                  (n.start_s + n.duration_s, n.pitch + 0.4), (n.start_s, n.pitch + 0.4)]
                 for n in part.notes]
        edge = "black" if part.is_agent else colour
        ax.add_collection(PolyCollection(boxes, facecolors=colour, edgecolors=edge,
                                         linewidths=0.6, alpha=0.85, zorder=3 if part.is_agent
                                         else 2))
        who = "the agent" if part.is_agent else plain(part.name)
        handles.append(Patch(facecolor=colour, edgecolor=edge,
                             label=f"{who} ({len(part.notes)} notes)"))
    if pitches:
        low, high = min(pitches) - 2, max(pitches) + 2
        ax.set_ylim(low, high)
        ticks = [p for p in range(low, high + 1) if p % 12 in (0, 7)] or [low]
        ax.set_yticks(ticks, [pitch_name(p) for p in ticks])
    else:
        ax.text(0.5, 0.5, "no notes", transform=ax.transAxes, ha="center")
    _markers(ax, data.markers, label_them=True)
    _time_axis(ax, data.seconds)
    ax.set_ylabel("pitch")
    ax.grid(axis="y", alpha=0.25)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
    ax.set_title(plain(title))
    return _save(fig, plt, out)


def draw_timeline(data: ReportData, out: Path, title: str) -> Path:
    """Tempo; key and chord; section; mode with the agent's decisions."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    tl: Timeline = data.timeline
    fig, (tempo, keys, sections, modes) = plt.subplots(
        4, 1, figsize=(WIDTH_IN, 4.6), sharex=True,
        gridspec_kw={"height_ratios": [2.0, 1.0, 0.6, 1.0]})
    if tl.tempo:
        xs = [p.t_s for p in tl.tempo] + [data.seconds]
        ys = [p.bpm for p in tl.tempo] + [tl.tempo[-1].bpm]
        tempo.step(xs, ys, where="post", color="black", lw=1.2, label="beat played to")
    if tl.clock_tempo:
        tempo.plot([p.t_s for p in tl.clock_tempo], [p.bpm for p in tl.clock_tempo], ".",
                   color="#0072B2", ms=3, label="MIDI clock")
    if tl.tempo or tl.clock_tempo:
        tempo.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    else:
        tempo.text(0.5, 0.5, "no tempo heard", transform=tempo.transAxes, ha="center",
                   va="center", fontsize=9)
    tempo.set_ylabel("BPM")
    tempo.grid(alpha=0.3)
    _lane(keys, tl.keys, data.seconds, 0.5, 0.5)
    _lane(keys, tl.chords, data.seconds, 0.0, 0.5, fontsize=6)
    keys.set_yticks([0.25, 0.75], ["chord", "key"])
    _lane(sections, tl.sections, data.seconds, 0.0, 1.0)
    sections.set_yticks([0.5], ["section"])
    _lane(modes, tl.modes, data.seconds, 0.0, 1.0, alpha=0.6)
    modes.set_yticks([0.5], ["mode"])
    handles = []
    for what, (y, marker, colour) in DECISION_STYLE.items():
        times = [m.t_s for m in tl.decisions if m.label == what]
        if times:
            modes.scatter(times, [y] * len(times), marker=marker, s=18, color=colour,
                          linewidths=0.8, zorder=3)
            handles.append(Line2D([], [], ls="", marker=marker, color=colour,
                                  label=f"{what} ({len(times)})"))
    if handles:
        modes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.3), fontsize=7,
                     frameon=False, title="decisions", title_fontsize=7)
    for ax in (tempo, keys, sections, modes):
        _markers(ax, data.markers, label_them=False)
    _time_axis(modes, data.seconds)
    tempo.set_title(plain(title))
    fig.subplots_adjust(hspace=0.12)
    return _save(fig, plt, out)


def draw_latencies(lat: Latencies, out: Path, replay_clock: bool) -> Path:
    """Three histograms, p50 and p99 marked."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(WIDTH_IN, 3.6))
    _histogram(axes[0], {"note-ons": lat.reaction_ms}, "reaction (cause -> agent note)")
    _histogram(axes[1], {"messages": lat.lateness_ms}, "scheduler lateness (sent - deadline)")
    _histogram(axes[2], lat.model_wait_ms, "model wait (request -> answer)")
    if replay_clock:
        fig.suptitle("on the replay clock: lateness and model wait are not the machine's",
                     fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def _histogram(ax: Any, groups: Mapping[str, Sequence[float]], title: str) -> None:
    shown = {k: list(v) for k, v in groups.items() if v}
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("ms")
    if not shown:
        ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center", va="center")
        ax.set_yticks([])
        return
    colours = ["#56B4E9", "#E69F00", "#CC79A7", "#009E73", "#F0E442", "0.6"]
    ax.hist(list(shown.values()), bins=30, stacked=True, label=[
        f"{plain(k)} (n={len(v)})" for k, v in shown.items()], color=colours[:len(shown)])
    every = [x for v in shown.values() for x in v]
    p = p50_p99(every)
    assert p is not None
    ax.axvline(p[0], color="black", lw=1.2, label=f"p50 {p[0]:.4g} ms")
    ax.axvline(p[1], color=AGENT_COLOUR, lw=1.2, ls="--", label=f"p99 {p[1]:.4g} ms")
    ax.set_ylabel("count")
    ax.legend(fontsize=7)


def _lane(ax: Any, segs: Sequence[Segment], seconds: float, y: float, height: float,
          fontsize: int = 7, alpha: float = 1.0) -> None:
    """Coloured stretches labelled where there is room (the same label, the same colour)."""
    colour_of: dict[str, str] = {}
    for s in segs:
        colour = colour_of.setdefault(s.label, LANE_COLOURS[len(colour_of) % len(LANE_COLOURS)])
        ax.broken_barh([(s.start_s, s.end_s - s.start_s)], (y, height), facecolors=colour,
                       edgecolors="0.5", linewidths=0.4, alpha=alpha)
        if seconds > 0 and (s.end_s - s.start_s) / seconds >= 0.035:
            ax.text(s.start_s + (s.end_s - s.start_s) / 2, y + height / 2, plain(s.label),
                    ha="center", va="center", fontsize=fontsize, clip_on=True)
    ax.set_ylim(0, 1)


def _markers(ax: Any, markers: Sequence[Moment], label_them: bool) -> None:
    for m in markers:
        ax.axvline(m.t_s, color="0.2", lw=0.8, ls=":", zorder=4)
        if label_them:
            ax.text(m.t_s, 1.0, plain(m.label), transform=ax.get_xaxis_transform(), rotation=90,
                    va="top", ha="right", fontsize=7, color="0.2")


def _time_axis(ax: Any, seconds: float) -> None:
    ax.set_xlim(0, max(seconds, 1e-3))
    ax.set_xlabel("time (s from the first record)")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, plt: Any, out: Path) -> Path:
    fig.subplots_adjust(**MARGINS)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out
