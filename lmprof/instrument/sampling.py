"""Sampled instrumentation: the expensive instruments watch one training batch in K, the others run bare.

On a GPU the default model is launch-bound: the host is the critical path,
so every microsecond an instrument spends on the host (a hook, a CUDA event,
a memory query) is added to the step one for one, and a table of shares
describes a slower program than the one it claims to. So the instruments
that cost per call (line profiling, components, memory, gradient statistics,
and the phase timer's CUDA events) switch on for one batch in K and off for
the others; the phase markers keep their host clock on every batch.

``Sampler`` sits in front of every recorder the run installs. At the start of
a training batch (the ``data`` marker) it decides whether the batch is
watched, switches the sampled instruments on or off (``watch(on)``), and
times the step on the host clock from the first marker to the end of
``logging`` (``loss.item()`` waits for the device there, so on a GPU this is
the step's real time). Watched and bare steps go into separate lists; the
run's ``overhead`` section compares their medians:

    >>> s = Sampler(every=4, recorders=[], switches=[], clock=iter(range(0, 100, 1)).__next__)
    >>> [s.watches(b) for b in range(6)]
    [False, True, False, False, False, True]

Outside training steps (evaluation, checkpoints) everything watches, as
before. Batch 0 is never watched when K > 1 (cuDNN's algorithm search and the
allocator's first growth happen there) and never counted as a bare step.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence

from lmprof.phases import STEP_PHASES
from lmprof.record.sections import BARE_MS_PER_BATCH, BARE_TOKENS_PER_S, GPU_BUSY, RUN_COST, WATCHED_MS_PER_BATCH, \
    WATCHED_OVER_BARE

Clock = Callable[[], float]
DEFAULT_EVERY_CUDA = 16  # a 2.1x watched step costs the run 1 + 1.1/16 = 7%: within the 1.10 targets
FIRST_STEP, LAST_STEP = STEP_PHASES[0], STEP_PHASES[-1]  # "data" opens a training batch, "logging" closes it


def default_every(device: Any) -> int:
    """--sample-every's default: one batch in 16 on CUDA (the host is the critical path), every batch elsewhere."""
    return DEFAULT_EVERY_CUDA if getattr(device, "type", str(device)) == "cuda" else 0


def run_every(cfg: Any, device: Any) -> int:
    """The K this run applies: --sample-every as given, else its default on ``device``."""
    every = getattr(cfg, "sample_every", None)
    return default_every(device) if every is None else int(every)


class Sampler:
    """Routes the phase markers to every recorder on watched batches and to the always-on ones on bare batches.

    ``recorders``: (recorder, sampled) in the order they listen; ``switches``: objects with
    ``watch(on: bool)``, told when the sampled instruments switch on or off.
    """

    def __init__(self, every: int, recorders: Sequence[tuple[Any, bool]], switches: Sequence[Any],
                 clock: Clock = time.perf_counter, batches_per_epoch: int | None = None) -> None:
        self.every = every
        self.all = tuple(r for r, _ in recorders)
        self.always = tuple(r for r, sampled in recorders if not sampled)
        self.all_reversed, self.always_reversed = self.all[::-1], self.always[::-1]
        self.switches = tuple(switches)
        self.clock = clock
        # Recorders listed before the phase timer (gpu_busy's profiler windows) work outside its spans:
        # their time inside a training step is added to the timer's ``between_seconds``, named in its table.
        timer = next((i for i, r in enumerate(self.all) if hasattr(r, "between_seconds")), None)
        self.timer = self.all[timer] if timer else None  # first (or absent): nothing listens outside it
        outer = self.all[:timer] if timer else ()
        self.split = {on: (tuple(r for r in chosen if r in outer), tuple(r for r in chosen if r not in outer))
                      for on, chosen in ((True, self.all), (False, self.always))}
        # a one-batch epoch (--dry-run, --max-batches 1) has no second batch: watch its only one
        self.one_batch = batches_per_epoch == 1
        self.on = True  # outside training steps everything watches
        self.batch = -1  # training batches begun in this run, from 0
        self.bare_seconds: list[float] = []
        self.watched_seconds: list[float] = []
        self._started = 0.0

    def watches(self, batch: int) -> bool:
        """Whether training batch ``batch`` (0-based over the run) is watched: 1, K + 1, 2K + 1, ..."""
        return self.every <= 1 or self.one_batch or batch % self.every == 1

    def _switch(self, on: bool) -> None:
        self.on = on
        for switch in self.switches:
            switch.watch(on)

    def enter(self, name: str) -> None:
        if name == FIRST_STEP:
            self.batch += 1
            watched = self.watches(self.batch)
            first = self.batch == 0  # every switch told once where it stands (an instrument may start off)
            if not watched and (self.on or first):
                self._switch(False)  # before the clock: switching off is no part of a bare step
            self._started = self.clock()
            if watched and (not self.on or first):
                self._switch(True)  # after the clock: switching on is part of what watching costs
        elif not self.on and name not in STEP_PHASES:
            self._switch(True)
        if self.timer is not None and name in STEP_PHASES:
            self._timed_outer(name, entering=True)
            return
        for recorder in self.all if self.on else self.always:
            recorder.enter(name)

    def exit(self, name: str) -> None:
        if self.timer is not None and name in STEP_PHASES:
            self._timed_outer(name, entering=False)
        else:
            for recorder in self.all_reversed if self.on else self.always_reversed:
                recorder.exit(name)
        if name == LAST_STEP:
            seconds = self.clock() - self._started
            if self.on:
                self.watched_seconds.append(seconds)
            elif self.batch > 0:
                self.bare_seconds.append(seconds)
            if self.on and self.every > 1 and not self.one_batch:
                self._switch(False)  # the next batch is bare: switch off between batches, off both clocks

    def _timed_outer(self, name: str, entering: bool) -> None:
        """Markers as usual, with the outer recorders' own time inside a step given to the phase timer."""
        outer, inner = self.split[self.on]
        assert self.timer is not None
        if entering:
            started = self.clock()
            for recorder in outer:
                recorder.enter(name)
            self.timer.between_seconds += self.clock() - started
            for recorder in inner:
                recorder.enter(name)
            return
        for recorder in reversed(inner):
            recorder.exit(name)
        started = self.clock()
        for recorder in reversed(outer):
            recorder.exit(name)
        self.timer.between_seconds += self.clock() - started

    def section(self, names: Sequence[str], batch_size: int, bptt: int) -> dict[str, Any]:
        """The ``overhead`` section of result.json: what watching cost this run, measured on it."""
        return overhead_section(self.every, names, self.bare_seconds, self.watched_seconds,
                                batches=self.batch + 1, tokens_per_batch=batch_size * bptt)


def overhead_section(every: int, names: Sequence[str], bare: Sequence[float], watched: Sequence[float], *,
                     batches: int, tokens_per_batch: int) -> dict[str, Any]:
    """Bare and watched ms per batch (medians: a shared machine's outliers move a mean), their ratio, and the
    whole run's cost ((watched - bare) on the watched batches, over the bare time of every batch)."""
    # the figures first, then the counts (a reader looking for "bare" or "watched" meets the ms first)
    out: dict[str, Any] = {"sample_every": every, "instruments": list(names)}
    bare_ms = 1000 * statistics.median(bare) if bare else None
    watched_ms = 1000 * statistics.median(watched) if watched else None
    if bare_ms is not None:
        out[BARE_MS_PER_BATCH] = bare_ms
    if watched_ms is not None:
        out[WATCHED_MS_PER_BATCH] = watched_ms
    if bare_ms and watched_ms is not None:
        out[WATCHED_OVER_BARE] = watched_ms / bare_ms
        out[RUN_COST] = (out[WATCHED_OVER_BARE] - 1) * len(watched) / max(batches, 1)  # +0.04: the run took 4% longer
    out.update(batches=batches, watched_batches=len(watched), bare_batches=len(bare))
    if bare_ms:
        out[BARE_TOKENS_PER_S] = tokens_per_batch / (bare_ms / 1000)
    return out


def sampler_for(instruments: Sequence[Any], recorders: list[tuple[Any, bool]], context: Any) -> Sampler | None:
    """A Sampler in front of the recorders when some instrument watches per batch at a cost (or switches)."""
    # sampled: its recorder hears only watched batches; switched: told watch(on) (the phase timer's CUDA events)
    switches = [i for i in instruments if getattr(i, "sampled", False) or getattr(i, "switched", False)]
    if not switches:
        return None
    return Sampler(run_every(context.cfg, context.device), recorders, [i for i in switches if callable(getattr(i, "watch", None))],
                   batches_per_epoch=context.batches_per_epoch)


SAID_AS = {"gradients": "grad-stats", "phases": "phase CUDA events", GPU_BUSY: "GPU busy windows",
           "backward_lines": "backward-lines"}  # as the user asked for them


def sampled_names(instruments: Sequence[Any]) -> list[str]:
    """The instruments a Sampler switches, as the user knows them (the phase timer only for its CUDA events)."""
    return [SAID_AS.get(i.name, i.name) for i in instruments
            if getattr(i, "sampled", False) or getattr(i, "switched", False)]
