"""Training measured by the clock: how many epochs fit in ``plan.minutes`` on this machine.

Epochs mean nothing across data sets: 64 epochs of 17 photos are 448 steps (3 min on a
2-core CPU), of 290 photos 7,400 steps (25 min). So ``fit`` times the first steps, counts
what the validations will cost, and fixes the number of steps (never more than
``plan.epochs`` worth; the last epoch may stop part-way, so 3,000 photos on a slow machine
still stop in time) before the warm-up ends, so the cosine schedule runs its whole course.
After every epoch it checks the clock again: it shortens the run if the machine got slower
(another job started, or the host slowed), and in the first half of the run lengthens it (up to
the plan's epochs) if the machine got faster, so a run measured on a busy minute still fills its
budget. What was decided is recorded in the metrics and the checkpoint (``budget``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROBE_STEPS = 12  # steps timed before deciding (the first two are left out: allocation, caches)
PLANNED_EVALUATIONS = 4  # validations in a run the budget shortened (plus the final sweep)
# Shorten the run as soon as it heads past its budget. It was 110 % until 2026-12-07, when a
# BCCD run whose epochs slowed from 13.7 to 15.5 s (the host, not the run) was let finish in
# 624 s of a 600 s budget: shortening then aims at AIM again, 5 % under.
OVERRUN = 1.0
VALIDATION_SHARE = 0.2  # validations may take at most a fifth of the budget (as estimated)
# Lengthen it (first half only) when it heads for less than 90 %. It was 85 % until 2026-12-07,
# when on an Intel Xeon a BCCD run's epochs sped up from 19.5 to 17 s after its one lengthening
# (at epoch 2): heading for 87 %, between the two bounds, it ended at 524 s of its 570.
UNDERRUN = 0.90
# Aim 5 % under the budget: loading the photos, the last validation's threshold sweep and saving
# fall outside the clock's last look (BCCD, 10 min: the whole command took 631 s aiming at 100 %).
AIM = 0.95


@dataclass
class Budget:
    """The run's length in steps, fixed from the measured cost of a step and a validation.

    ``total_steps`` starts as the plan's epochs (the most a run may do) and only goes down;
    ``epochs`` (the last one may be partial) and ``eval_every`` follow it, so a shortened run
    still validates ``PLANNED_EVALUATIONS`` times. ``seconds=None``: the plan's epochs as they are.
    """

    seconds: float | None
    steps_per_epoch: int
    epochs: int
    eval_every: int
    started: float = field(default_factory=time.perf_counter)
    steps: int = 0
    record: dict[str, Any] = field(default_factory=dict)
    total_steps: int = 0
    _stamps: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.total_steps = self.total_steps or self.epochs * self.steps_per_epoch

    def steps_in(self, epoch: int) -> int:
        """Steps of ``epoch`` (1-based): a whole epoch but the last, which may stop part-way."""
        return min(self.steps_per_epoch, self.total_steps - (epoch - 1) * self.steps_per_epoch)

    def _cut(self, steps: int) -> None:
        self.total_steps = steps
        self.epochs = math.ceil(steps / self.steps_per_epoch)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def timed(self, step: Callable, validation_cost: Callable[[], float]) -> Callable:
        """``step`` that also times itself and decides the epochs after ``PROBE_STEPS``."""

        def wrapped(*args, **kwargs):
            out = step(*args, **kwargs)
            self.steps += 1
            if self.seconds is not None and self.steps <= PROBE_STEPS:
                self._stamps.append(time.perf_counter())
                if self.steps == PROBE_STEPS:
                    self.decide(self._seconds_per_step(), validation_cost())
            return out

        return wrapped

    def _seconds_per_step(self) -> float:
        stamps = self._stamps[2:] if len(self._stamps) > 3 else self._stamps
        if len(stamps) < 2:
            return self.elapsed() / max(1, self.steps)
        return (stamps[-1] - stamps[0]) / (len(stamps) - 1)

    def decide(self, seconds_per_step: float, seconds_per_validation: float) -> None:
        """Fix the epochs that fit: the budget, less what is spent and the validations."""
        assert self.seconds is not None
        # Validations (and the final threshold sweep) count: on 58 photos, measured on a model
        # still untrained (many peaks), one cost 68 s, and five would have eaten half of 10 min.
        affordable = int(VALIDATION_SHARE * self.seconds / max(seconds_per_validation, 1e-6))
        planned = min(PLANNED_EVALUATIONS, math.ceil(self.epochs / self.eval_every)) + 1
        evaluations = max(1, min(planned, affordable))
        left = AIM * self.seconds - self.elapsed() - evaluations * seconds_per_validation
        fit_steps = self.steps + int(max(0.0, left) / max(seconds_per_step, 1e-6))
        planned = self.epochs
        if fit_steps < self.total_steps:
            self._cut(fit_steps)
            per_run = max(1, evaluations - 1)  # the last epoch is always validated
            self.eval_every = max(1, round(self.epochs / per_run))
        self.record.update(
            minutes=round(self.seconds / 60, 2),
            seconds_per_step=round(seconds_per_step, 4),
            seconds_per_validation=round(seconds_per_validation, 2),
            steps_per_epoch=self.steps_per_epoch,
            plan_epochs=planned,
            epochs=self.epochs,
            steps=self.total_steps,
            eval_every=self.eval_every,
            evaluations=evaluations,
            limited_by="minutes" if self.total_steps < planned * self.steps_per_epoch else "epochs",
        )

    def check(self, epochs_done: int, seconds_per_step: float, validation_seconds: float) -> bool:
        """After an epoch: fit the run to the budget again at the last epoch's pace.

        Shortens a run heading past ``OVERRUN`` of its budget; lengthens one heading below
        ``UNDERRUN`` while less than half of it is done (later the cosine is already low),
        never beyond the plan's epochs. True if the length changed.
        """
        if self.seconds is None or epochs_done >= self.epochs or "limited_by" not in self.record:
            return False  # no budget, the end, or not decided yet (the probe decides first)
        done = epochs_done * self.steps_per_epoch
        evaluations = math.ceil((self.epochs - epochs_done) / self.eval_every) + 1
        spent = self.elapsed() + evaluations * validation_seconds
        projected = spent + (self.total_steps - done) * seconds_per_step
        fits = done + max(1, int((AIM * self.seconds - spent) / max(seconds_per_step, 1e-6)))
        cap = self.record["plan_epochs"] * self.steps_per_epoch
        if projected > OVERRUN * self.seconds and fits < self.total_steps:
            self._cut(fits)
            self.record["shortened_after_epoch"] = epochs_done
        elif projected < UNDERRUN * self.seconds and 2 * done < self.total_steps:
            steps = min(cap, fits)
            if steps <= self.total_steps:
                return False
            self._cut(steps)
            self.eval_every = max(1, round(self.epochs / PLANNED_EVALUATIONS))
            self.record["lengthened_after_epoch"] = epochs_done
        else:
            return False
        self.record.update(epochs=self.epochs, steps=self.total_steps, eval_every=self.eval_every)
        self.record["limited_by"] = "minutes" if self.total_steps < cap else "epochs"
        return True
