"""`stage-agent train`: fit the event model to one or more corpora.

Each epoch sees every training work once, freshly augmented (random player voice or phrase
phase, transposition, tempo, velocity, sometimes no position) and cropped to a window. After each
epoch the validation split is scored (bits per event); the best epoch is kept (`best.pt`, the
file to ship and play with) and every epoch is saved for resuming (`last.pt`, with the optimiser
and random state). Training stops at the time budget, after `patience` epochs without a better
validation score, or at `max_epochs`. One progress bar runs over the time budget: the epoch,
the last validation bits and the time left.

What is trained is a Plan (plan.py): from scratch here (every weight, every corpus a style), or
grown from a checkpoint by finetune.py (`--init`: new styles, some weights frozen, old corpora
rehearsed). The loop below is the same for both.

Under torchrun (WORLD_SIZE > 1) the works are sharded across processes and gradients averaged
by DistributedDataParallel (gloo on CPU, nccl on GPU). Every process scores the whole validation
split itself, so all of them take the same stop decision without exchanging it; only rank 0
writes files and prints.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from agent.errors import ModelError
from agent.model import checkpoint
from agent.model import representation as rep
from agent.model.corpus import Corpus, load_corpus
from agent.model.finetune import finetune_plan
from agent.model.freeze import DEFAULT_REHEARSE
from agent.model.heldout import Bits, Scored, heldout_bits, pad_batch, scored
from agent.model.net import HEADS, EventNet, NetConfig, event_nll
from agent.model.plan import Plan, TrainWork, record


@dataclass(frozen=True)
class TrainSettings:
    out: Path
    minutes: float = 10.0  # wall-clock budget: no epoch starts that would end past it
    max_epochs: int = 500
    patience: int = 4  # epochs without a better validation score before stopping
    batch: int = 32
    window: int = 256  # events per training sequence (longer works are cropped at random)
    lr: float = 2e-3
    seed: int = 0
    device: str = "auto"  # "auto": cuda when present, else cpu
    resume: bool = False
    net: NetConfig = field(default_factory=NetConfig)
    init: Path | None = None  # fine-tune this checkpoint (finetune.py); net is then its own
    freeze: str = "core"  # with init: what learns (finetune.FREEZE)
    # With init: old-corpus works per new work drawn each epoch. 2: at 1, --freeze core on the
    # madrigals left the O'Neill style +0.145 bits/event worse on its test split; at 2, +0.067.
    rehearse: float = DEFAULT_REHEARSE


@dataclass
class _Progress:
    epoch: int = 0
    best_bits: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    seconds: float = 0.0  # training time so far, over all runs (resumes add up)
    seconds_to_best: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def train(corpus_dirs: list[Path], settings: TrainSettings) -> Path:
    """Train (from scratch, from `settings.init`, or resuming); returns the best checkpoint."""
    if settings.init is not None and settings.resume:
        raise ModelError("--init starts a new model from a checkpoint and --resume continues "
                         "OUT/last.pt: give one of them")
    if settings.init is not None and settings.init.resolve() in {
            (settings.out / n).resolve() for n in ("best.pt", "last.pt")}:
        raise ModelError(f"--out {settings.out} would overwrite the --init checkpoint "
                         f"{settings.init}: fine-tune into another folder")
    rank, world = _distributed_setup()
    device = torch.device("cuda" if settings.device == "auto" and torch.cuda.is_available()
                          else "cpu" if settings.device == "auto" else settings.device)
    if device.type == "cpu" and world > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    corpora = [load_corpus(d) for d in corpus_dirs]
    names = [c.name for c in corpora]
    if len(set(names)) != len(names):
        raise ModelError(f"a corpus is named twice: {names}")
    torch.manual_seed(settings.seed)
    plan = (finetune_plan(corpora, settings.init, settings.freeze, settings.rehearse)
            if settings.init is not None else _scratch_plan(corpora, settings))
    net = plan.net.to(device)
    optimiser = torch.optim.Adam(plan.params, lr=settings.lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5, patience=1)
    progress = _Progress()
    rng = np.random.default_rng([settings.seed, rank])
    last_path, best_path = settings.out / "last.pt", settings.out / "best.pt"
    if settings.resume:
        progress, rng = _resume(last_path, corpora, net, optimiser, plateau, rank)
    model: torch.nn.Module = DistributedDataParallel(net) if world > 1 else net
    if not plan.works or not plan.valid:
        raise ModelError("training needs works in both the train and valid splits: "
                         + ", ".join(f"{c.name}: {len(c.split('train'))} train, "
                                     f"{len(c.split('valid'))} valid" for c in corpora))
    budget_s = settings.minutes * 60
    started = time.monotonic() - progress.seconds
    show = rank == 0
    say = _say if show else (lambda *a, **k: None)
    say(f"train: {sum(p.numel() for p in net.parameters()):,} parameters "
        f"({sum(p.numel() for p in plan.params):,} trained), styles {list(plan.styles)}, "
        f"{len(plan.works)} training works"
        + (f" (+{plan.rehearsal_draw * len(plan.rehearsal)} rehearsed each epoch)"
           if plan.rehearsal else "")
        + f", {len(plan.valid)} validation works, device {device}"
        + (f", {world} processes" if world > 1 else ""))
    run = dict(plan.run)
    if run["kind"] == "finetune":
        run.update(_before(net, plan, say))
    bar = _Bar(budget_s, started, show, progress.epoch + 1)
    best_state = {k: v.clone() for k, v in net.state_dict().items()}
    while progress.epoch < settings.max_epochs:
        progress.epoch += 1
        bar.epoch(progress.epoch)
        train_bits = _epoch(model, net, optimiser, plan.epoch_works(rng, rank, world),
                            settings, rng, device, bar.tick)
        bits = heldout_bits(net, plan.valid)
        plateau.step(bits.bits_per_event)
        progress.seconds = time.monotonic() - started
        improved = bits.bits_per_event < progress.best_bits - 1e-4
        progress.history.append({"epoch": progress.epoch, "train_bits": train_bits,
                                 "valid_bits": bits.bits_per_event,
                                 "valid_pitch_bits": bits.pitch_bits_per_note,
                                 "seconds": round(progress.seconds, 1)})
        if improved:
            progress.best_bits, progress.best_epoch = bits.bits_per_event, progress.epoch
            progress.bad_epochs, progress.seconds_to_best = 0, progress.seconds
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            progress.bad_epochs += 1
        bar.scored(bits.bits_per_event, progress.best_bits)
        say(f"epoch {progress.epoch}: train {train_bits:.3f}, valid {bits.bits_per_event:.3f} "
            f"bits/event (pitch {bits.pitch_bits_per_note:.3f} bits/note), "
            f"{progress.seconds:.0f} s" + (" *best*" if improved else ""))
        if rank == 0:
            info = _train_info(progress, settings, device)
            runs = [*plan.runs, {**run, **_figures(progress)}]
            if improved:
                checkpoint.save(best_path, net, plan.styles, list(plan.corpora), info,
                                plan.lines, runs=runs)
            # last.pt carries the optimiser for --resume: a scratch run's only (finetune.py)
            resumable = plan.run["kind"] == "scratch"
            checkpoint.save(last_path, net, plan.styles, list(plan.corpora), info, plan.lines,
                            runs=runs, extra={
                                "optimiser": optimiser.state_dict(),
                                "plateau": plateau.state_dict(), "rng": rng.bit_generator.state,
                                "progress": asdict(progress)} if resumable else None)
        if progress.bad_epochs >= settings.patience:
            say(f"train: stopped, no better validation score for {settings.patience} epochs")
            break
        # Stop before an epoch that would end past the budget (as long as the last one took).
        epoch_s = progress.seconds - (progress.history[-2]["seconds"]
                                      if len(progress.history) > 1 else 0.0)
        if progress.seconds + epoch_s > budget_s:
            say(f"train: stopped within the time budget ({settings.minutes:g} min)")
            break
    bar.close()
    if plan.old_valid:  # what the old styles lost, with the weights that are kept
        net.load_state_dict(best_state)
        run["old_styles"] = _after(net, plan, run["old_styles"], say)
        if rank == 0:
            checkpoint.save(best_path, net, plan.styles, list(plan.corpora),
                            _train_info(progress, settings, device), plan.lines,
                            runs=[*plan.runs, {**run, **_figures(progress)}])
    say(f"train: best epoch {progress.best_epoch}: {progress.best_bits:.3f} bits/event after "
        f"{progress.seconds_to_best:.0f} s -> {best_path}")
    if world > 1:
        dist.destroy_process_group()
    return best_path


def _scratch_plan(corpora: list[Corpus], settings: TrainSettings) -> Plan:
    """Every weight learns every corpus, each corpus a style in the order given."""
    styles = tuple(c.name for c in corpora)
    net = EventNet(NetConfig(**{**asdict(settings.net), "n_styles": len(styles)}))
    return Plan(
        net=net, styles=styles, params=tuple(net.parameters()),
        works=tuple(TrainWork(w, i, True) for i, c in enumerate(corpora)
                    for w in c.split("train")),
        valid=tuple(s for i, c in enumerate(corpora) for s in scored(c.split("valid"), i)),
        corpora=tuple(record(c) for c in corpora),
        lines=rep.copy_lines(w for c in corpora for w in c.works),
        run={"kind": "scratch", "corpora": list(styles)})


def _before(net: EventNet, plan: Plan, say: Callable[[str], None]) -> dict[str, Any]:
    """A fine-tune's starting figures: the new corpora's validation bits as the checkpoint
    stands, and each rehearsed old style's."""
    start = heldout_bits(net, plan.valid)
    say(f"epoch 0 (as initialised): valid {start.bits_per_event:.3f} bits/event (pitch "
        f"{start.pitch_bits_per_note:.3f} bits/note)")
    old = {name: _bits_record(heldout_bits(net, items)) for name, items in plan.old_valid.items()}
    for name, b in old.items():
        say(f"old style {name}: valid {b['bits_per_event']:.3f} bits/event (pitch "
            f"{b['pitch_bits_per_note']:.3f} bits/note) before")
    if not plan.old_valid:
        say("old styles not rehearsed nor measured: give their corpus folders too to keep them")
    return {"start_valid_bits": start.bits_per_event,
            "start_valid_pitch_bits": start.pitch_bits_per_note,
            "old_styles": {name: {"before": b} for name, b in old.items()}}


def _after(net: EventNet, plan: Plan, old: dict[str, Any], say: Callable[[str], None]
           ) -> dict[str, Any]:
    out = {}
    for name, items in plan.old_valid.items():
        before, after = old[name]["before"], _bits_record(heldout_bits(net, items))
        out[name] = {"before": before, "after": after}
        say(f"old style {name}: valid {after['bits_per_event']:.3f} bits/event "
            f"({after['bits_per_event'] - before['bits_per_event']:+.3f}), pitch "
            f"{after['pitch_bits_per_note']:.3f} bits/note "
            f"({after['pitch_bits_per_note'] - before['pitch_bits_per_note']:+.3f}) after")
    return out


def _bits_record(bits: Bits) -> dict[str, float]:
    return {"bits_per_event": bits.bits_per_event, "pitch_bits_per_note": bits.pitch_bits_per_note}


def _say(text: str) -> None:
    tqdm.write(text, file=sys.stdout)


class _Bar:
    """One progress bar over the time budget: the epoch, its validation bits, the time left."""

    def __init__(self, budget_s: float, started: float, show: bool, epoch: int) -> None:
        self._started, self._budget = started, budget_s
        self._bar = tqdm(total=round(budget_s), disable=not show, file=sys.stderr, leave=False,
                         mininterval=1.0, desc=f"epoch {epoch}",
                         bar_format="{desc}: {percentage:3.0f}%|{bar}|{postfix}")
        self._valid = ""

    def epoch(self, n: int) -> None:
        self._bar.set_description_str(f"epoch {n}", refresh=False)
        self.tick()

    def scored(self, bits: float, best: float) -> None:
        self._valid = f"valid {bits:.3f} bits (best {best:.3f}), "
        self.tick()

    def tick(self) -> None:
        elapsed = time.monotonic() - self._started
        left = tqdm.format_interval(max(self._budget - elapsed, 0.0))
        self._bar.set_postfix_str(f"{self._valid}{left} left", refresh=False)
        self._bar.update(min(round(elapsed), self._bar.total) - self._bar.n)

    def close(self) -> None:
        self._bar.close()


def _epoch(model: torch.nn.Module, net: EventNet, optimiser: torch.optim.Optimizer,
           works: list[TrainWork], settings: TrainSettings, rng: np.random.Generator,
           device: torch.device, tick: Callable[[], None]) -> float:
    """One pass over the works (in this order); returns the mean training bits per event."""
    net.train()
    items = []
    for item in works:
        tokens = rep.work_tokens(item.work, rep.random_roles(item.work, rng),
                                 rep.Augment.draw(rng))
        if len(tokens) > settings.window:
            start = int(rng.integers(len(tokens) - settings.window + 1))
            tokens = tokens[start:start + settings.window]
        items.append(Scored(tokens, item.style, item.velocity))
    total_nats = total_events = 0.0
    for start in range(0, len(items), settings.batch):
        chunk = items[start:start + settings.batch]
        batch, style, mask = (t.to(device) for t in pad_batch(chunk, net.cfg.n_styles))
        velocity = torch.tensor([s.velocity for s in chunk], device=device)
        # Through the DDP wrapper when distributed, so gradients are averaged across processes.
        nll = event_nll(model, batch, style, mask, velocity)  # type: ignore[arg-type]
        loss: torch.Tensor = sum((nll[h] for h in HEADS), torch.zeros(())) / nll["events"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimiser.step()
        total_nats += loss.item() * float(nll["events"])
        total_events += float(nll["events"])
        tick()
    return total_nats / math.log(2) / max(total_events, 1.0)


def _distributed_setup() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank = dist.get_rank()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return rank, world


def _figures(progress: _Progress) -> dict[str, Any]:
    """What the checkpoint's record of this run says of its training (checkpoint.RUN_FIGURES)."""
    best = next((h for h in progress.history if h["epoch"] == progress.best_epoch), {})
    return {"epochs": progress.epoch, "best_epoch": progress.best_epoch,
            "seconds": round(progress.seconds, 1),
            "seconds_to_best": round(progress.seconds_to_best, 1),
            "best_valid_bits": progress.best_bits,
            "best_valid_pitch_bits": best.get("valid_pitch_bits")}


def _train_info(progress: _Progress, settings: TrainSettings, device: torch.device
                ) -> dict[str, Any]:
    return {"epochs": progress.epoch, "best_epoch": progress.best_epoch,
            "best_valid_bits": progress.best_bits, "seconds": round(progress.seconds, 1),
            "seconds_to_best": round(progress.seconds_to_best, 1), "seed": settings.seed,
            "batch": settings.batch, "window": settings.window, "lr": settings.lr,
            "device": device.type, "history": progress.history,
            "torch": str(torch.__version__)}


def _resume(path: Path, corpora: list[Corpus], net: EventNet, optimiser: torch.optim.Optimizer,
            plateau: Any, rank: int) -> tuple[_Progress, np.random.Generator]:
    saved = checkpoint.load(path)
    if saved.history()[-1].get("kind") == "finetune":
        raise ModelError(f"{path}: made by a fine-tune (--init), which is not resumed: run the "
                         "fine-tune again (into a new folder)")
    if [(c["name"], c["hash"]) for c in saved.corpora] != [(c.name, c.hash) for c in corpora]:
        raise ModelError(f"{path}: was trained on other corpora "
                         f"({[c['name'] for c in saved.corpora]}, or they were rebuilt); "
                         "cannot resume: train into a new folder")
    if saved.net.cfg != net.cfg:
        raise ModelError(f"{path}: network sizes {saved.net.cfg} differ from {net.cfg}")
    net.load_state_dict(saved.net.state_dict())
    optimiser.load_state_dict(saved.extra["optimiser"])
    plateau.load_state_dict(saved.extra["plateau"])
    rng = np.random.default_rng()
    rng.bit_generator.state = saved.extra["rng"]
    if rank:
        rng = np.random.default_rng(rng.integers(2**32) + rank)
    progress = _Progress(**saved.extra["progress"])
    if rank == 0:
        print(f"train: resuming {path} after epoch {progress.epoch}")
    return progress, rng
