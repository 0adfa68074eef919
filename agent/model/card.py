"""`stage-agent model card CHECKPOINT [--md FILE]`: what went into a model.

From the checkpoint alone (nothing else is read): the network, its styles, every corpus it was
trained on (counts, hash, velocity, each collection's provenance and licence), the checkpoints
it was fine-tuned from, and each training run with its time and the validation figures recorded
when it ran. Checkpoints from before these records print what they have and say what they lack.
card() gathers plain data; card_text() and card_markdown() only lay it out.
"""

from __future__ import annotations

from typing import Any

from agent.model.checkpoint import Checkpoint

NOT_RECORDED = "not recorded (the checkpoint predates these records)"


def card(ckpt: Checkpoint) -> dict[str, Any]:
    runs = ckpt.history()
    return {
        "checkpoint": str(ckpt.path), "sha256": ckpt.sha256,
        "network": {**ckpt.net.cfg.as_dict(),
                    "weights": sum(p.numel() for p in ckpt.net.parameters())},
        "styles": list(ckpt.styles), "corpora": [dict(c) for c in ckpt.corpora],
        # The checkpoints it grew from, nearest first.
        "parents": [r["parent"] for r in reversed(runs) if r.get("parent")],
        "runs": runs, "seconds": round(sum(r.get("seconds") or 0.0 for r in runs), 1)}


def card_text(c: dict[str, Any]) -> str:
    net = c["network"]
    lines = [f"model: {c['checkpoint']}", f"sha256: {c['sha256']}",
             f"network: embed {net['embed']}, GRU {net['hidden']}, heads {net['head']}; "
             f"{net['weights']:,} weights",
             f"styles: {', '.join(c['styles'])}",
             f"corpora: {len(c['corpora'])}, {sum(x['works'] for x in c['corpora']):,} works, "
             f"{sum(x['notes'] for x in c['corpora']):,} notes"]
    for x in c["corpora"]:
        lines.append(f"  {x['name']}: {x['works']:,} works, {x['notes']:,} notes, "
                     f"{_velocity(x)}, hash {x['hash']}")
        if "collections" not in x:
            lines.append(f"    provenance and licence: {NOT_RECORDED}")
        for col in x.get("collections", []):
            lines += [f"    collection {col['name']}", f"      provenance: {col['provenance']}",
                      f"      licence: {col['licence']}"]
    lines.append("parents: " + (" <- ".join(f"{p['path']} (sha256 {p['sha256']})"
                                            for p in c["parents"]) or "none"))
    lines.append(f"training: {len(c['runs'])} run{'s' * (len(c['runs']) != 1)}, "
                 f"{c['seconds']:g} s in all")
    for i, r in enumerate(c["runs"], start=1):
        lines.append(f"  {i}. {_run_head(r)}")
        lines += [f"     {text}" for text in _run_details(r)]
    return "\n".join(lines)


def card_markdown(c: dict[str, Any]) -> str:
    net = c["network"]
    out = [f"# Model card: `{c['checkpoint']}`", "", f"- sha256: `{c['sha256']}`",
           f"- network: embed {net['embed']}, GRU {net['hidden']}, heads {net['head']}; "
           f"{net['weights']:,} weights",
           f"- styles: {', '.join(f'`{s}`' for s in c['styles'])}",
           "- parents: " + (" ← ".join(f"`{p['path']}` (sha256 `{p['sha256']}`)"
                                       for p in c["parents"]) or "none"),
           "", "## Corpora", "", "| corpus | works | notes | velocity | hash |",
           "|---|---:|---:|---|---|"]
    out += [f"| {x['name']} | {x['works']:,} | {x['notes']:,} | {_velocity(x)} | "
            f"`{x['hash']}` |" for x in c["corpora"]]
    for x in c["corpora"]:
        out += ["", f"### {x['name']}", ""]
        if "collections" not in x:
            out.append(f"Provenance and licence: {NOT_RECORDED}.")
        for col in x.get("collections", []):
            out += [f"- collection `{col['name']}`", f"  - provenance: {col['provenance']}",
                    f"  - licence: {col['licence']}"]
    out += ["", "## Training", "",
            f"{len(c['runs'])} run{'s' * (len(c['runs']) != 1)}, {c['seconds']:g} s in all.", ""]
    for i, r in enumerate(c["runs"], start=1):
        out.append(f"{i}. {_run_head(r)}")
        out += [f"   - {text}" for text in _run_details(r)]
    return "\n".join(out) + "\n"


def _velocity(corpus: dict[str, Any]) -> str:
    if "velocity" not in corpus:
        return "velocity not recorded"
    v = corpus["velocity"]
    return "velocities vary" if v is None else f"every note at velocity {v}"


def _run_head(r: dict[str, Any]) -> str:
    corpora = ", ".join(r.get("corpora", []))
    if r.get("kind") != "finetune":
        return f"from scratch on {corpora}"
    p = r["parent"]
    added = r.get("added", [])
    return (f"fine-tune of {p['path']} (sha256 {p['sha256'][:12]}) on {corpora}"
            + (f", new style{'s' * (len(added) != 1)} {', '.join(added)}" if added else ""))


def _run_details(r: dict[str, Any]) -> list[str]:
    out = []
    if r.get("kind") == "finetune":
        out.append(f"freeze {r['freeze']}: trained {r['trained']}")
        rehearsed = r.get("rehearsed", [])
        works = "work" if r["rehearse"] == 1 else "works"
        out.append(f"rehearsed {', '.join(rehearsed)}: {r['rehearse']:g} old {works} per new "
                   "work each epoch" if rehearsed else "rehearsed no old corpus")
        if r.get("velocity_not_scored"):
            out.append(f"velocities not scored (flat): {', '.join(r['velocity_not_scored'])}")
    out.append(f"{_num(r.get('epochs'), 'd')} epochs, best epoch {_num(r.get('best_epoch'), 'd')}"
               f" after {_num(r.get('seconds_to_best'), 'g')} s of "
               f"{_num(r.get('seconds'), 'g')} s")
    # A fine-tune's figures start from the checkpoint's own on the new corpora.
    start, pitch_start = (f"{r[k]:.3f} -> " if k in r else ""
                          for k in ("start_valid_bits", "start_valid_pitch_bits"))
    out.append(f"validation: {start}{_num(r.get('best_valid_bits'), '.3f')} bits/event, pitch "
               f"{pitch_start}{_num(r.get('best_valid_pitch_bits'), '.3f')} bits/note")
    for name, o in r.get("old_styles", {}).items():
        if "after" not in o:
            continue
        b, a = o["before"], o["after"]
        out.append(f"old style {name}: validation {b['bits_per_event']:.3f} -> "
                   f"{a['bits_per_event']:.3f} bits/event "
                   f"({a['bits_per_event'] - b['bits_per_event']:+.3f}), pitch "
                   f"{b['pitch_bits_per_note']:.3f} -> {a['pitch_bits_per_note']:.3f} "
                   f"({a['pitch_bits_per_note'] - b['pitch_bits_per_note']:+.3f})")
    return out


def _num(value: Any, fmt: str) -> str:
    return "?" if value is None else format(value, fmt)
