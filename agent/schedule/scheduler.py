"""The scheduler: one heap of absolute deadlines on an injected clock.

Everything that happens later goes through here: agent note-ons and note-offs, raw messages, and
the policy's own timers (e.g. "is the phrase over?"). Jobs run in (deadline, order of planning),
and a job acts as if it ran exactly at its deadline: decisions never depend on how late the
machine woke, which is what makes a replay on a manual clock reproduce a live run byte-for-byte.
Lateness (actual - deadline) is measured per emitted message.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from agent import midi
from agent.clock import Clock
from agent.events import Emitted, NoteId
from agent.schedule.ledger import NoteLedger
from agent.stats import Samples

Sink = Callable[[str, bytes], bool]  # (port, message) -> delivered; must not raise
EmitHook = Callable[[Emitted, str], None]  # (emitted, why) for the recorder


@dataclass(eq=False)
class _Job:
    kind: str  # "on" | "off" | "raw" | "call"
    tag: str
    note: NoteId | None = None
    velocity: int = 0
    port: str = ""
    data: bytes = b""
    call: Callable[[int], None] | None = None
    cause_ns: int | None = None  # what the agent reacted to (for reaction latency)
    cancelled: bool = False


@dataclass
class SchedulerStats:
    emitted: int = 0
    undelivered: int = 0  # the port was gone: dropped and counted, never raised
    cancelled: int = 0
    forced_offs: int = 0  # notes cut at the maximum note length
    lateness: Samples = field(default_factory=Samples)


class Scheduler:
    def __init__(self, clock: Clock, sink: Sink, max_note_ns: int, on_emit: EmitHook) -> None:
        self.clock = clock
        self.ledger = NoteLedger()
        self.stats = SchedulerStats()
        self._sink = sink
        self._max_note_ns = max_note_ns
        self._on_emit = on_emit
        self._heap: list[tuple[int, int, _Job]] = []
        # tag -> its pending jobs that cancel(tag) may cancel (every kind but note-offs). Found
        # here, not by scanning the heap: the heap holds a maximum-length note-off for every
        # note of the last max_note_ms (10,000 in a 5,000 msg/s flood), and every note heard
        # cancels the rest of an answer; a scan made each message cost ~0.3 ms.
        self._cancellable: dict[str, set[_Job]] = {}
        self._order = 0
        # Called when a job lands before the current head, so a real-time driver can re-arm.
        self.on_earlier_deadline: Callable[[int], None] | None = None
        self._closed = False  # after close(): nothing more is planned

    # -- planning ---------------------------------------------------------------------------
    def note_on(self, t_ns: int, port: str, channel: int, pitch: int, velocity: int,
                tag: str = "agent", cause_ns: int | None = None) -> NoteId:
        note = self.ledger.new_id(port, channel, pitch)
        self._push(t_ns, _Job("on", tag, note=note, velocity=velocity, cause_ns=cause_ns))
        return note

    def note_off(self, t_ns: int, note: NoteId) -> None:
        self._push(t_ns, _Job("off", "", note=note))

    def play(self, t_on_ns: int, duration_ns: int, port: str, channel: int, pitch: int,
             velocity: int, tag: str = "agent", cause_ns: int | None = None) -> NoteId:
        note = self.note_on(t_on_ns, port, channel, pitch, velocity, tag, cause_ns)
        self.note_off(t_on_ns + max(duration_ns, 1), note)
        return note

    def send(self, t_ns: int, port: str, data: bytes, tag: str = "agent") -> None:
        self._push(t_ns, _Job("raw", tag, port=port, data=data))

    def call_at(self, t_ns: int, fn: Callable[[int], None], tag: str = "timer") -> None:
        """Run fn(deadline) at t_ns; fn sees its deadline, not the (later) wall time."""
        self._push(t_ns, _Job("call", tag, call=fn))

    def cancel(self, tag: str) -> int:
        """Cancel pending note-ons, raw messages and timers with this tag (note-offs stay)."""
        n = 0
        for job in self._cancellable.pop(tag, ()):
            if not job.cancelled:
                job.cancelled = True
                n += 1
        self.stats.cancelled += n
        return n

    def next_deadline(self) -> int | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    # -- running ----------------------------------------------------------------------------
    def run_due(self, now_ns: int, halted: Callable[[], bool] | None = None) -> None:
        """Run every job whose deadline is <= now_ns, in order, each at its own deadline;
        `halted` (a strict replay's watch) is asked before each one: once it says so, nothing
        more runs, not even the other notes of the same chord."""
        while self._heap and self._heap[0][0] <= now_ns and not (halted and halted()):
            deadline, _, job = heapq.heappop(self._heap)
            if not job.cancelled:
                self._forget(job)
                self._run(deadline, job)

    def silence(self, why: str) -> None:
        """Cancel every pending note-on and release every sounding note (ledger offs only)."""
        self._cancel_sounds()
        now = self.clock.now_ns()
        for port, data in self.ledger.release_all():
            self._emit(now, port, data, why)

    def panic(self, why: str = "panic") -> None:
        """Cancel every pending note-on and sound nothing more: ledger offs, then CC64/123/120.

        Idempotent; needs nothing from the policy or the model, so it works while they hang.
        """
        self._cancel_sounds()
        now = self.clock.now_ns()
        for port, data in self.ledger.panic_messages():
            self._emit(now, port, data, why)

    def close(self, why: str = "stop") -> None:
        """The end of the run: panic, then run and plan nothing more. The input ports stay
        open a moment after the stop while the last messages leave; a note heard then is still
        recorded, but a note-on planned for it would never get its note-off."""
        self.panic(why)
        self._closed = True
        self._heap.clear()  # the policy's timers too (the panic released every note)
        self._cancellable.clear()

    def _cancel_sounds(self) -> None:
        for jobs in self._cancellable.values():
            sounds = [job for job in jobs if job.kind in ("on", "raw") and not job.cancelled]
            for job in sounds:
                job.cancelled = True
                jobs.discard(job)
            self.stats.cancelled += len(sounds)

    def panic_port(self, port: str, why: str) -> None:
        """Panic on one port only (its pending notes still play on the others)."""
        now = self.clock.now_ns()
        for p, data in self.ledger.panic_messages(port):
            self._emit(now, p, data, why)

    def release_port(self, port: str, why: str) -> None:
        """A port went away: forget its sounding notes (their offs are sent if it still works)."""
        now = self.clock.now_ns()
        for p, data in self.ledger.release_all(port):
            self._emit(now, p, data, why)

    def _push(self, t_ns: int, job: _Job) -> None:
        if self._closed:
            return  # after close() every note is off and stays off (and no timer runs)
        head = self._heap[0][0] if self._heap else None
        self._order += 1
        heapq.heappush(self._heap, (t_ns, self._order, job))
        if job.kind != "off":
            self._cancellable.setdefault(job.tag, set()).add(job)
        if self.on_earlier_deadline is not None and (head is None or t_ns < head):
            self.on_earlier_deadline(t_ns)

    def _forget(self, job: _Job) -> None:
        """A job leaves the heap to run: nothing can cancel it any more."""
        if job.kind != "off":
            jobs = self._cancellable.get(job.tag)
            if jobs is not None:
                jobs.discard(job)
                if not jobs:
                    del self._cancellable[job.tag]

    def _run(self, deadline: int, job: _Job) -> None:
        if job.kind == "call":
            assert job.call is not None
            job.call(deadline)
        elif job.kind == "raw":
            self._emit(deadline, job.port, job.data, "planned")
        elif job.kind == "on":
            note = job.note
            assert note is not None
            for data in self.ledger.note_on(note):  # a re-trigger releases the older note first
                self._emit(deadline, note.port, data, "retrigger")
            self._emit(deadline, note.port, midi.note_on(note.channel, note.pitch, job.velocity),
                       "planned", job.cause_ns)
            # The maximum note length: an off that is a no-op if the planned one came first.
            self._push(deadline + self._max_note_ns, _Job("off", "max-length", note=note))
        else:
            assert job.note is not None
            data_off = self.ledger.note_off(job.note)
            if data_off is not None:
                if job.tag == "max-length":
                    self.stats.forced_offs += 1
                self._emit(deadline, job.note.port, data_off, job.tag or "planned")

    def _emit(self, deadline: int, port: str, data: bytes, why: str,
              cause_ns: int | None = None) -> None:
        try:
            delivered = self._sink(port, data)
        except Exception:  # a sink must not raise; if one does, the note is still accounted for
            delivered = False
        sent = self.clock.now_ns()
        self.stats.emitted += 1
        if not delivered:
            self.stats.undelivered += 1
        self.stats.lateness.add(sent - deadline)
        self._on_emit(Emitted(deadline, sent, port, data, delivered, cause_ns), why)
