"""The scheduler: one heap of absolute deadlines on an injected clock.

Everything that happens later goes through here: agent note-ons and note-offs, raw messages, and
the policy's own timers (e.g. "is the phrase over?"). Jobs run in (deadline, order of planning),
and a job acts as if it ran exactly at its deadline: decisions never depend on how late the
machine woke, which is what makes a replay on a manual clock reproduce a live run byte-for-byte.
Lateness (actual - deadline) is measured per emitted message.

Nothing here can fail half-way. The sink must not raise (if it does, the message counts as
undelivered); the recorder's hook may (a bug, a tap), but then the exception is held until every
message of the job or release at hand has gone out, and raised after: a release takes the notes
from the ledger one by one, each leaving it only as its note-off is sent, so no exception can lose
the rest, and a panic's CC tail always follows. A job that raises does not keep the other due
jobs from running.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from agent import midi
from agent.clock import Clock
from agent.events import Emitted, NoteId
from agent.schedule.ledger import NoteLedger
from agent.stats import Samples

Sink = Callable[[str, bytes], bool]  # (port, message) -> delivered; must not raise
EmitHook = Callable[[Emitted, str], None]  # (emitted, why) for the recorder
Message = tuple[str, bytes, str, int | None]  # (port, data, why, cause_ns)


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
        # A sounding note's maximum-length release, by the note's serial, cancelled when the
        # note's own off runs first. Left in place, a release that would do nothing is the
        # heap's head: a real-time driver spins the last 2 ms before a head's deadline, and in
        # a flood of short notes one fell due every 0.4 ms, so the loop spun on no-ops (15% of
        # its time in a 5,000 msg/s harmony flood, by py-spy).
        self._max_length: dict[int, _Job] = {}
        self._order = 0
        # Called when a job lands before the current head, so a real-time driver can re-arm.
        self.on_earlier_deadline: Callable[[int], None] | None = None
        self._holding = False  # hold_wakeups(): the call waits for release_wakeups()
        self._woken_early = False  # a job landed before the head meanwhile
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

    def hold_wakeups(self) -> None:
        """Until release_wakeups(), a job landing before the head does not call
        on_earlier_deadline at once: for planning and running at one moment (a heard note's
        reaction leaves in the same call), where the driver would otherwise re-arm its timer
        for each job (a cancel and a new timer: ~5% of the loop in a harmony flood) and then
        wake for jobs already run."""
        self._holding = True

    def release_wakeups(self) -> None:
        """The held call, once, for the head as it is now (if any job landed earlier)."""
        self._holding = False
        if self._woken_early:
            self._woken_early = False
            head = self.next_deadline()
            if head is not None and self.on_earlier_deadline is not None:
                self.on_earlier_deadline(head)

    def next_deadline(self) -> int | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    # -- running ----------------------------------------------------------------------------
    def run_due(self, now_ns: int, halted: Callable[[], bool] | None = None) -> None:
        """Run every job whose deadline is <= now_ns, in order, each at its own deadline;
        `halted` (a strict replay's watch) is asked before each one: once it says so, nothing
        more runs, not even the other notes of the same chord. A job that raises: the others
        due run all the same, then the first exception is raised."""
        failure: Exception | None = None
        while self._heap and self._heap[0][0] <= now_ns and not (halted and halted()):
            deadline, _, job = heapq.heappop(self._heap)
            if not job.cancelled:
                self._forget(job)
                try:
                    self._run(deadline, job)
                except Exception as e:  # per job: the rest must run
                    failure = failure or e
        if failure is not None:
            raise failure

    def silence(self, why: str) -> None:
        """Cancel every pending note-on and release every sounding note (ledger offs only)."""
        self._cancel_sounds()
        self._release(None, why, reset=False)

    def panic(self, why: str = "panic") -> None:
        """Cancel every pending note-on and sound nothing more: ledger offs, then CC64/123/120.

        Idempotent; needs nothing from the policy or the model, so it works while they hang.
        """
        self._cancel_sounds()
        self._release(None, why, reset=True)

    def close(self, why: str = "stop") -> None:
        """The end of the run: panic, then run and plan nothing more. The input ports stay
        open a moment after the stop while the last messages leave; a note heard then is still
        recorded, but a note-on planned for it would never get its note-off."""
        try:
            self.panic(why)
        finally:
            self._closed = True
            self._heap.clear()  # the policy's timers too (the panic released every note)
            self._cancellable.clear()
            self._max_length.clear()

    def _cancel_sounds(self) -> None:
        for jobs in self._cancellable.values():
            sounds = [job for job in jobs if job.kind in ("on", "raw") and not job.cancelled]
            for job in sounds:
                job.cancelled = True
                jobs.discard(job)
            self.stats.cancelled += len(sounds)

    def panic_port(self, port: str, why: str) -> None:
        """Panic on one port only (its pending notes still play on the others)."""
        self._release(port, why, reset=True)

    def reset_channel(self, t_ns: int, port: str, channel: int, why: str) -> None:
        """Sustain off, all notes off, all sound off on one channel of a port, now (for the
        deadline `t_ns`, so a replay reproduces it exactly), whatever the ledger holds: what
        another run (a crashed one) left sounding there is unknown."""
        self._emit_each(t_ns, ((port, data, why, None) for data in midi.channel_reset(channel)))

    def release_port(self, port: str, why: str) -> None:
        """A port went away: forget its sounding notes (their offs are sent if it still works)."""
        self._release(port, why, reset=False)

    def _release(self, port: str | None, why: str, reset: bool) -> None:
        """Every sounding note's off (on one port, or all; oldest first), then with `reset`
        the CC tail. Each note leaves the ledger only as its note-off is sent: an exception
        cannot make the ledger forget a note whose off did not go (see the module's doc)."""
        def messages() -> Iterator[Message]:
            for note in self.ledger.in_order(port):
                data = self.ledger.note_off(note)  # taken from the ledger as its off is sent
                if data is not None:
                    yield note.port, data, why, None
            if reset:
                for p, data in self.ledger.reset_messages(port):
                    yield p, data, why, None
        self._emit_each(self.clock.now_ns(), messages())

    def _push(self, t_ns: int, job: _Job) -> None:
        if self._closed:
            return  # after close() every note is off and stays off (and no timer runs)
        head = self._heap[0][0] if self._heap else None
        self._order += 1
        heapq.heappush(self._heap, (t_ns, self._order, job))
        if job.kind != "off":
            self._cancellable.setdefault(job.tag, set()).add(job)
        if self.on_earlier_deadline is not None and (head is None or t_ns < head):
            if self._holding:
                self._woken_early = True
            else:
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
            retrigger = self.ledger.note_on(note)  # a re-trigger releases the older note first
            # The maximum note length: an off cancelled when the planned one comes first
            # (planned before anything is sent, so that it stands whatever the hook does).
            guard = _Job("off", "max-length", note=note)
            self._max_length[note.serial] = guard
            self._push(deadline + self._max_note_ns, guard)
            self._emit_each(deadline, [
                *((note.port, data, "retrigger", None) for data in retrigger),
                (note.port, midi.note_on(note.channel, note.pitch, job.velocity), "planned",
                 job.cause_ns)])
        else:
            assert job.note is not None
            cut = self._max_length.pop(job.note.serial, None)
            if cut is not None and cut is not job:
                cut.cancelled = True  # the note's own off came first
            data_off = self.ledger.note_off(job.note)
            if data_off is not None:
                if job.tag == "max-length":
                    self.stats.forced_offs += 1
                self._emit(deadline, job.note.port, data_off, job.tag or "planned")

    def _emit_each(self, deadline: int, messages: Iterable[Message]) -> None:
        """Every message, as `messages` gives them; an exception (the hook's: the message went
        out before it ran) is held until the last has gone, then raised."""
        failure: Exception | None = None
        for port, data, why, cause_ns in messages:
            try:
                self._emit(deadline, port, data, why, cause_ns)
            except Exception as e:  # per message: the rest must go out
                failure = failure or e
        if failure is not None:
            raise failure

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
