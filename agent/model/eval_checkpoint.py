"""`stage-agent eval <checkpoint>`: held-out likelihood, a listenable sample, and originality.

- Likelihood on each corpus's test split (heldout.py): bits per event, pitch bits per note. The
  corpora are the model's own (found by name in a folder, checked by hash) or any corpus folders
  given, scored in their own style, one chosen style, or the blend of all: so a base model and
  one fine-tuned from it are scored on the same notes.
- A sample per corpus: the player part of the opening of a test work is fed as a prompt (the
  agent listening), then the model plays on alone in the corpus's style. Written to one MIDI
  file, a track per corpus.
- Originality: the longest run of the agent's notes whose intervals all occur, in order, in a
  corpus line (originality.py), over the samples; also for the same sampling with the copy
  guard switched off, which shows what the guard prevents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mido
import numpy as np
import torch

from agent.errors import CorpusError, ModelError
from agent.model import representation as rep
from agent.model.checkpoint import Checkpoint
from agent.model.corpus import Corpus, load_corpus
from agent.model.heldout import Bits, heldout_bits, scored
from agent.model.originality import DEFAULT_BOUND, longest_shared_run
from agent.model.proposals import Constraints, Proposal
from agent.model.proposer import Proposer

PROMPT_BEATS = 8.0  # the prompt: the player's part of the first two bars (4/4)
SAMPLE_NOTES = 200
TICKS_PER_BEAT = 480
SAMPLE_BPM = 120.0


BLEND = "blend"  # --style: equal weights over every style of the model


@dataclass(frozen=True)
class Sample:
    label: str  # the MIDI track's name: the corpus, and the style when not its own
    prompt: list[rep.ModelEvent]
    notes: list[Proposal]


def evaluate(ckpt: Checkpoint, corpus_dirs: Sequence[Path], split: str = "test", seed: int = 0,
             bound: int = DEFAULT_BOUND, sample_path: Path | None = None,
             style: str | None = None) -> dict[str, Any]:
    """Every figure of the report, as plain data (printed by the CLI, or as JSON).

    corpus_dirs: corpus folders (any corpus), or folders holding the model's own corpora by
    name (find_corpora). style: a style of the model or BLEND for every corpus; None: each
    corpus's own style, the blend for a corpus that is not one of the model's styles.
    """
    if style is not None and style != BLEND and style not in ckpt.styles:
        raise ModelError(f"--style {style!r}: this model's styles are "
                         f"{', '.join(ckpt.styles)}, or {BLEND} (equal weights)")
    corpora = find_corpora(ckpt, corpus_dirs)
    report: dict[str, Any] = {"checkpoint": str(ckpt.path), "sha256": ckpt.sha256,
                              "styles": list(ckpt.styles), "split": split,
                              "trained": {k: ckpt.train.get(k) for k in (
                                  "epochs", "best_epoch", "best_valid_bits", "seconds",
                                  "seconds_to_best")}}
    seen = {(c["name"], c["hash"]) for c in ckpt.corpora}
    per_corpus, parts, samples, unguarded = {}, [], [], []
    for i, corpus in enumerate(corpora):
        chosen = style or (corpus.name if corpus.name in ckpt.styles else BLEND)
        weights = style_weights(ckpt.styles, chosen)
        items = scored(corpus.split(split), 0)
        if not items:
            raise ModelError(f"{corpus.path}: no works in the {split} split")
        bits = heldout_bits(ckpt.net, items, style=torch.tensor(
            [weights.get(s, 0.0) for s in ckpt.styles]))
        parts.append(bits)
        per_corpus[corpus.name] = {**_bits_dict(bits), "style": chosen, "hash": corpus.hash,
                                   "trained_on": (corpus.name, corpus.hash) in seen}
        label = corpus.name if chosen == corpus.name else f"{corpus.name} in {chosen}"
        work = corpus.split(split)[0]
        samples.append(generate(ckpt.proposer(seed, bound), weights, work, label))
        unguarded.append(generate(Proposer(ckpt.net, ckpt.styles, None, seed + i), weights,
                                  work, label))
    report["heldout"] = {"all": _bits_dict(Bits.combine(parts)), **per_corpus}
    report["originality"] = {
        "bound_notes": bound,
        "longest_shared_run_notes": max(longest_shared_run([n.pitch for n in s.notes],
                                                           ckpt.corpus_lines) for s in samples),
        "without_guard_notes": max(longest_shared_run([n.pitch for n in s.notes],
                                                      ckpt.corpus_lines) for s in unguarded),
        "sample_notes": sum(len(s.notes) for s in samples)}
    if sample_path is not None:
        write_samples(samples, sample_path)
        report["sample"] = str(sample_path)
    return report


def find_corpora(ckpt: Checkpoint, dirs: Sequence[Path]) -> list[Corpus]:
    """The corpora to score: a folder with a manifest.json is a corpus; any other folder holds
    the model's own corpora by name (every one, each checked to be the corpus it was trained
    on: the use before corpus folders could be given)."""
    found: list[Corpus] = []
    for folder in dirs:
        if (folder / "manifest.json").is_file():
            found.append(load_corpus(folder))
        elif folder.is_dir():
            found += _model_corpora(ckpt, folder)
        else:
            raise CorpusError(f"{folder}: no such folder (give corpus folders, or a folder "
                              "holding the model's corpora by name)")
    names = [c.name for c in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CorpusError(f"two corpora named {', '.join(twice)}: give each corpus once")
    return found


def _model_corpora(ckpt: Checkpoint, root: Path) -> list[Corpus]:
    corpora = []
    for name in dict.fromkeys(c["name"] for c in ckpt.corpora):
        corpus = load_corpus(root / name)
        hashes = [c["hash"] for c in ckpt.corpora if c["name"] == name]
        if corpus.hash not in hashes:
            raise ModelError(f"{corpus.path}: differs from the corpus this model was trained on "
                             f"(hash {corpus.hash[:12]} vs {hashes[0][:12]}): rebuild it with "
                             "the recorded music21 version, or give corpus folders to score "
                             "any corpus")
        corpora.append(corpus)
    return corpora


def style_weights(styles: Sequence[str], style: str) -> dict[str, float]:
    """One style, or BLEND: equal weights over all of them."""
    return {s: 1.0 / len(styles) for s in styles} if style == BLEND else {style: 1.0}


def generate(proposer: Proposer, weights: Mapping[str, float], work: rep.NoteArrays,
             label: str, notes: int = SAMPLE_NOTES) -> Sample:
    """Prompt with the work's opening player notes, then let the agent play on alone."""
    proposer.set_style(weights)
    tokens = rep.work_tokens(work, rep.eval_roles(work))
    onset = np.sort(work.onset)
    prompt = []
    beat_s = 60.0 / work.bpm
    for row, beat in zip(tokens, onset, strict=True):
        if beat >= PROMPT_BEATS:
            break
        if row[0] != rep.PLAYER:
            continue
        dt, _ = rep.decode_time(row)
        ev = rep.ModelEvent(rep.PLAYER, int(row[1]), dt, int(rep.VELOCITY_VALUES[row[3]]), None,
                            float(beat % work.bar_beats))
        proposer.feed(ev)
        prompt.append(ev)
    out = proposer.propose_phrase(notes, Constraints(), beat_s=beat_s, start_beat=PROMPT_BEATS)
    return Sample(label, prompt, out)


def write_samples(samples: list[Sample], path: Path) -> None:
    """One track per corpus: the prompt (channel 1) then the agent's notes (channel 2)."""
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(SAMPLE_BPM))])
    mid.tracks.append(conductor)
    ticks_per_s = TICKS_PER_BEAT * SAMPLE_BPM / 60
    for s in samples:
        timed: list[tuple[int, mido.Message]] = []
        t = 0.0
        notes = [(0, e.pitch, e.dt_s, e.velocity, 0.4) for e in s.prompt]
        notes += [(1, p.pitch, p.dt_s, p.velocity, p.duration_s) for p in s.notes]
        for channel, pitch, dt, velocity, duration in notes:
            t += dt
            on, off = round(t * ticks_per_s), round((t + duration) * ticks_per_s)
            timed.append((on, mido.Message("note_on", channel=channel, note=pitch,
                                           velocity=velocity)))
            timed.append((max(off, on + 1), mido.Message("note_off", channel=channel,
                                                         note=pitch)))
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=s.label)])
        last = 0
        for tick, msg in sorted(timed, key=lambda x: (x[0], x[1].type == "note_on")):
            track.append(msg.copy(time=tick - last))
            last = tick
        mid.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(path)


def _bits_dict(bits: Any) -> dict[str, Any]:
    return {"bits_per_event": round(bits.bits_per_event, 4),
            "pitch_bits_per_note": round(bits.pitch_bits_per_note, 4), "events": bits.events,
            "per_head": {h: round(v, 4) for h, v in bits.per_head.items()}}


def format_report(r: dict[str, Any]) -> str:
    lines = [f"model {r['checkpoint']} (sha256 {r['sha256'][:12]}), styles {r['styles']}"]
    t = r["trained"]
    lines.append(f"trained {t['epochs']} epochs; best epoch {t['best_epoch']} after "
                 f"{t['seconds_to_best']} s, valid {t['best_valid_bits']:.3f} bits/event")
    for name, b in r["heldout"].items():
        how = f", style {b['style']}" + ("" if b["trained_on"] else ", a corpus it was not "
                                         "trained on") if "style" in b else ""
        lines.append(f"{r['split']} {name}: {b['bits_per_event']:.3f} bits/event, pitch "
                     f"{b['pitch_bits_per_note']:.3f} bits/note ({b['events']} events{how})")
    o = r["originality"]
    lines.append(f"originality: longest run shared with the corpus {o['longest_shared_run_notes']}"
                 f" notes (bound {o['bound_notes']}; {o['without_guard_notes']} without the "
                 f"guard) over {o['sample_notes']} sampled notes")
    if "sample" in r:
        lines.append(f"sample: {r['sample']}")
    return "\n".join(lines)
