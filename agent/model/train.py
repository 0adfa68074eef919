"""`stage-agent train`: fit the event model to one or more corpora.

Each epoch sees every training work once, freshly augmented (random player voice or phrase
phase, transposition, tempo, velocity, sometimes no position) and cropped to a window. After each
epoch the validation split is scored (bits per event); the best epoch is kept (`best.pt`, the
file to ship and play with) and every epoch is saved for resuming (`last.pt`, with the optimiser
and random state). Training stops at the time budget, after `patience` epochs without a better
validation score, or at `max_epochs`.

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
from agent.model.heldout import Scored, heldout_bits, pad_batch, scored
from agent.model.net import HEADS, EventNet, NetConfig, event_nll
from agent.model.originality import join_lines


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
    """Train; returns the path of the best checkpoint."""
    rank, world = _distributed_setup()
    device = torch.device("cuda" if settings.device == "auto" and torch.cuda.is_available()
                          else "cpu" if settings.device == "auto" else settings.device)
    if device.type == "cpu" and world > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    corpora = [load_corpus(d) for d in corpus_dirs]
    styles = tuple(c.name for c in corpora)
    if len(set(styles)) != len(styles):
        raise ModelError(f"a corpus is named twice: {list(styles)}")
    torch.manual_seed(settings.seed)
    net_cfg = NetConfig(**{**asdict(settings.net), "n_styles": len(styles)})
    net = EventNet(net_cfg).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5, patience=1)
    progress = _Progress()
    rng = np.random.default_rng([settings.seed, rank])
    last_path, best_path = settings.out / "last.pt", settings.out / "best.pt"
    if settings.resume:
        progress, rng = _resume(last_path, corpora, net, optimiser, plateau, rank)
    model: torch.nn.Module = DistributedDataParallel(net) if world > 1 else net
    train_works = [(w, i) for i, c in enumerate(corpora) for w in c.split("train")]
    valid = [s for i, c in enumerate(corpora) for s in scored(c.split("valid"), i)]
    if not train_works or not valid:
        raise ModelError("training needs works in both the train and valid splits: "
                         + ", ".join(f"{c.name}: {len(c.split('train'))} train, "
                                     f"{len(c.split('valid'))} valid" for c in corpora))
    meta = _corpora_meta(corpora)
    lines = join_lines([line for c in corpora for w in c.works for line in rep.melodic_lines(w)])
    budget_s = settings.minutes * 60
    started = time.monotonic() - progress.seconds
    say = print if rank == 0 else (lambda *a, **k: None)
    say(f"train: {sum(p.numel() for p in net.parameters()):,} parameters, styles {list(styles)},"
        f" {len(train_works)} training works, {len(valid)} validation works, device {device}"
        + (f", {world} processes" if world > 1 else ""))
    while progress.epoch < settings.max_epochs:
        progress.epoch += 1
        shard = train_works[rank::world]
        train_bits = _epoch(model, net, optimiser, shard, settings, rng, device,
                            f"epoch {progress.epoch}", rank == 0)
        bits = heldout_bits(net, valid)
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
        else:
            progress.bad_epochs += 1
        say(f"epoch {progress.epoch}: train {train_bits:.3f}, valid {bits.bits_per_event:.3f} "
            f"bits/event (pitch {bits.pitch_bits_per_note:.3f} bits/note), "
            f"{progress.seconds:.0f} s" + (" *best*" if improved else ""))
        if rank == 0:
            info = _train_info(progress, settings, device)
            if improved:
                checkpoint.save(best_path, net, styles, meta, info, lines)
            checkpoint.save(last_path, net, styles, meta, info, lines, extra={
                "optimiser": optimiser.state_dict(), "plateau": plateau.state_dict(),
                "rng": rng.bit_generator.state, "progress": asdict(progress)})
        if progress.bad_epochs >= settings.patience:
            say(f"train: stopped, no better validation score for {settings.patience} epochs")
            break
        # Stop before an epoch that would end past the budget (as long as the last one took).
        epoch_s = progress.seconds - (progress.history[-2]["seconds"]
                                      if len(progress.history) > 1 else 0.0)
        if progress.seconds + epoch_s > budget_s:
            say(f"train: stopped within the time budget ({settings.minutes:g} min)")
            break
    say(f"train: best epoch {progress.best_epoch}: {progress.best_bits:.3f} bits/event after "
        f"{progress.seconds_to_best:.0f} s -> {best_path}")
    if world > 1:
        dist.destroy_process_group()
    return best_path


def _epoch(model: torch.nn.Module, net: EventNet, optimiser: torch.optim.Optimizer,
           works: list[tuple[Any, int]], settings: TrainSettings, rng: np.random.Generator,
           device: torch.device, label: str, show: bool) -> float:
    """One pass over the works; returns the mean training bits per event."""
    net.train()
    items = []
    for i in rng.permutation(len(works)):
        work, style = works[i]
        tokens = rep.work_tokens(work, rep.random_roles(work, rng), rep.Augment.draw(rng))
        if len(tokens) > settings.window:
            start = int(rng.integers(len(tokens) - settings.window + 1))
            tokens = tokens[start:start + settings.window]
        items.append(Scored(tokens, style))
    total_nats = total_events = 0.0
    batches = range(0, len(items), settings.batch)
    bar = tqdm(batches, desc=label, disable=not show, leave=False, mininterval=1.0,
               file=sys.stderr)
    for start in bar:
        batch, style, mask = (t.to(device) for t in pad_batch(
            items[start:start + settings.batch], net.cfg.n_styles))
        # Through the DDP wrapper when distributed, so gradients are averaged across processes.
        nll = event_nll(model, batch, style, mask)  # type: ignore[arg-type]
        loss: torch.Tensor = sum((nll[h] for h in HEADS), torch.zeros(())) / nll["events"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimiser.step()
        total_nats += loss.item() * float(nll["events"])
        total_events += float(nll["events"])
        bar.set_postfix(bits=f"{loss.item() / math.log(2):.3f}")
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


def _corpora_meta(corpora: list[Corpus]) -> list[dict[str, Any]]:
    return [{"name": c.name, "hash": c.hash, "works": len(c.works),
             "notes": int(sum(len(w.pitch) for w in c.works))} for c in corpora]


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
