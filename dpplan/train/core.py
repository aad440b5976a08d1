"""The storage-free training core: DP-SGD on a task, driven by a plan.

The task (:class:`~dpplan.train.Task`: the user's model, data and loss; MNIST with
``options.model`` when none is given) brings what is trained; the plan (a
:class:`~dpplan.plan.TrainingPlan` or :class:`~dpplan.phased.PhasedPlan`) is the single
source of truth for how: batches are Poisson-sampled at exactly ``plan.sample_rate`` for
exactly ``plan.steps_per_epoch`` steps per epoch, with ``plan.noise_multiplier`` and
``plan.max_grad_norm`` (STYLE §3.2); a phased plan changes them at each phase boundary and
stops after exactly its steps. The per-step work is done
by a step engine (:mod:`dpplan.train.engines`: ``fused`` or ``opacus``); after every epoch
the trainer records dpplan's ε for the steps the engine counted, and the ε of Opacus' own RDP
accountant stepped by the same engine; if dpplan's RDP and Opacus' RDP disagree, the run
carries a warning.

:class:`Trainer` is the public step/epoch seam (benchmarks and tests drive it directly);
:func:`train` runs a whole plan in memory and returns a :class:`TrainingResult`. Neither
writes a file: the run store, checkpoints, resuming and the background queue are the runs
layer on top (:mod:`dpplan.train.runs`).

Data stays on the training device as tensors; each step draws a Bernoulli mask on the
device, so there is no per-step DataLoader overhead.
"""

from __future__ import annotations

import bisect
import math
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from dpplan.errors import PlanError
from dpplan.phased import PhasedPlan
from dpplan.plan import TrainingPlan
from dpplan.records import EpochRecord
from dpplan.train.endings import Diverged, StopRequested, quiet_libraries  # re-exported
from dpplan.train.engines import Mechanism, StepEngine, make_engine
from dpplan.train.inputs import (  # re-exported: core was their home
    MnistSplit,
    TrainingResult,
    as_phased,
    check_inputs,
    evaluate,
    load_split,
    plan_epochs,
    resolve_device,
    split_indices,
    torch_threads,
    versions,
)
from dpplan.train.schedules import LrController, make_optimizer, make_scheduler
from dpplan.train.specs import RunOptions, ScheduleSpec
from dpplan.train.tasks import Task, check_mean_loss, check_model, mnist_task

__all__ = [
    "EPSILON_AGREEMENT_RTOL",
    "PROGRESS_SECONDS",
    "STOP_POLL_SECONDS",
    "Diverged",
    "MnistSplit",
    "StopRequested",
    "Trainer",
    "TrainingResult",
    "as_phased",
    "check_inputs",
    "load_split",
    "plan_epochs",
    "resolve_device",
    "split_indices",
    "train",
    "versions",
]

#: Relative disagreement between dpplan's RDP ε and Opacus' RDP ε that flags a run. The two
#: use different RDP order grids, which alone moves ε by ~1e-4.
EPSILON_AGREEMENT_RTOL = 1e-2
#: How often a running epoch polls ``should_stop``.
STOP_POLL_SECONDS = 2.0
#: How often a running epoch reports its progress to ``on_step`` (at most once per interval).
PROGRESS_SECONDS = 2.0

_REPRODUCIBLE_WARNING = (
    "reproducible=True: sampling and noise were derived from the public seed, so this run has "
    "no privacy guarantee against anyone who knows the seed (for experiments only)"
)


class Trainer:
    """One training run in memory: model, step engine, schedule, sampler and counters.

    This is the public seam below :func:`train`: build one, call :meth:`step` or
    :meth:`train_epoch` and :meth:`finish_epoch`, read :attr:`model` and :attr:`steps`.

    A :class:`~dpplan.phased.PhasedPlan` trains phase after phase: at each phase boundary
    the sampler's rate and the engine's σ, C and B change to the next phase's, and a phase
    given in steps (``phase_steps``) ends mid-epoch. The run's epochs are the plan's
    (possibly partial) epochs numbered on across phases (:meth:`PhasedPlan.epoch_ends`).

    Args:
        plan: the plan (a TrainingPlan or a PhasedPlan); ``plan.dataset_size`` must equal
            ``training_set_size(options)``.
        schedule: a schedule spec (``OneCycle``, ``Plateau``, ``Constant``).
        options: run options; default ``RunOptions()``.
        data: the MNIST split to use (default: loaded with :func:`load_split`); not used
            with a ``task``.
        device: the torch device (default: ``options.device`` resolved).
        task: the :class:`~dpplan.train.Task` to train (default: MNIST with
            ``options.model``). Its tensors are moved to the device.

    The model is built, and dropout later draws, from the run's own torch random state
    (seeded with ``options.seed`` in a fork of the global generators, saved in checkpoints):
    the process' global random state is never changed.

    Raises:
        PlanError: for invalid input (see :func:`check_inputs`), data whose training part
            does not have ``plan.dataset_size`` examples, a model DP-SGD cannot train per
            example (field ``model``) or a loss that is not a batch mean (field ``loss``).
        DataError: if MNIST cannot be loaded.
    """

    def __init__(
        self,
        plan: TrainingPlan | PhasedPlan,
        schedule: ScheduleSpec,
        options: RunOptions | None = None,
        *,
        data: MnistSplit | None = None,
        device: torch.device | None = None,
        task: Task | None = None,
    ) -> None:
        plan, schedule, options = check_inputs(plan, schedule, options, task)
        self.plan, self.schedule, self.options = plan, schedule, options
        self.phased = as_phased(plan)
        #: Cumulative steps at the end of each of the run's epochs.
        self.epoch_ends = self.phased.epoch_ends()
        self._phase_ends = tuple(
            sum(self.phased.steps_per_phase[: i + 1]) for i in range(len(self.phased.phases))
        )
        self.device = resolve_device(options.device) if device is None else device
        if task is None:  # the built-in task: MNIST with options.model
            if data is None:
                data = load_split(options, self.device)
            task = mnist_task(options, data=data)
        else:
            data = MnistSplit(
                train_x=task.train[0].to(self.device),
                train_y=task.train[1].to(self.device),
                val_x=task.validation[0].to(self.device),
                val_y=task.validation[1].to(self.device),
                test_x=task.test[0].to(self.device),
                test_y=task.test[1].to(self.device),
                source=None,  # the task's name and fingerprint are stored with the run
            )
        self.task, self.data = task, data
        if plan.dataset_size != len(self.data.train_x):
            raise PlanError(
                "dataset_size",
                plan.dataset_size,
                f"{len(self.data.train_x)}, the number of training examples of the data",
                "dpplan derives dataset_size from the data; build the plan with "
                "dataset_size=training_set_size(options).",
            )
        # The model is initialised, and dropout later draws, from the run's own torch random
        # state, seeded with options.seed in a fork: the global state is never touched.
        cuda = [self._cuda_index()] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(options.seed)
            model = task.model()
            self._torch_rng = torch.get_rng_state()
            self._cuda_rng = torch.cuda.get_rng_state(self.device) if cuda else None
        if not isinstance(model, torch.nn.Module):
            raise PlanError(
                "model",
                type(model).__name__,
                "a callable returning a torch.nn.Module",
                f"task {task.name!r}'s model() returned something else.",
            )
        model = model.to(self.device)
        self._rng_active = False
        if options.private:
            check_model(model, options.engine)
        if task.loss is not None:
            check_mean_loss(task.loss, model, self.data.train_x, self.data.train_y)
        optimizer = make_optimizer(schedule, model.parameters())
        # Sampling and noise come from their own generators, seeded with fresh entropy
        # unless the run is explicitly reproducible (then from the public seed: no guarantee).
        noise_seed, sample_seed = (
            (options.seed + 2, options.seed + 1)
            if options.reproducible
            else (secrets.randbits(63), secrets.randbits(63))
        )
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(sample_seed)
        self.noise_generator = torch.Generator(device=self.device)
        self.noise_generator.manual_seed(noise_seed)
        self.engine: StepEngine = make_engine(
            options.engine,
            model,
            optimizer,
            plan,
            private=options.private,
            noise_generator=self.noise_generator,
            loss=task.loss_function,
        )
        self.controller: LrController = make_scheduler(
            schedule, optimizer, total_steps=plan.total_steps
        )
        self.warnings: list[str] = []
        if options.private and options.reproducible:
            self.warnings.append(_REPRODUCIBLE_WARNING)
        self._curves: tuple[tuple[float, ...], tuple[float, ...], tuple[dict, ...]] | None = None
        self.last_batch_size = 0
        #: Batches the sampler drew (each one noisy step of the engine).
        self.sampled_steps = 0
        #: Validation evaluations that stepped a plateau with ``evaluate_every``.
        self.schedule_evaluations = 0
        self._phase_index = 0
        #: The epoch the run diverged in (set by :meth:`run`), else None.
        self.diverged_epoch: int | None = None
        #: Noisy steps of an epoch abandoned by a stop (set by :meth:`run`): not recorded,
        #: but they touched the data, so they count against privacy.
        self.abandoned_steps = 0

    @property
    def model(self) -> torch.nn.Module:
        """The model being trained."""
        return self.engine.model

    def _cuda_index(self) -> int:
        return self.device.index if self.device.index is not None else torch.cuda.current_device()

    @contextmanager
    def own_random_state(self) -> Iterator[None]:
        """Run the body with torch's global generators set to this run's own state (what
        dropout draws from), saved back afterwards; the caller's global state is restored.
        Re-entrant: inside another ``own_random_state`` it does nothing."""
        if self._rng_active:
            yield
            return
        cuda = [self._cuda_index()] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.set_rng_state(self._torch_rng)
            if cuda:
                torch.cuda.set_rng_state(self._cuda_rng, self.device)
            self._rng_active = True
            try:
                yield
            finally:
                self._rng_active = False
                self._torch_rng = torch.get_rng_state()
                if cuda:
                    self._cuda_rng = torch.cuda.get_rng_state(self.device)

    @property
    def steps(self) -> int:
        """Noisy steps taken, as counted by the engine's accountant."""
        return self.engine.steps

    @property
    def epochs(self) -> int:
        """The epochs this run records (:func:`plan_epochs` of the plan)."""
        return len(self.epoch_ends)

    def phase_at(self, step: int) -> int:
        """Return the index of the phase that noisy step ``step + 1`` belongs to (steps past
        the plan's end stay in the last phase)."""
        return min(bisect.bisect_right(self._phase_ends, step), len(self._phase_ends) - 1)

    def step(self) -> float:
        """Draw one Poisson batch at exactly the current phase's sample rate and take one
        noisy step with its σ.

        Returns:
            The batch's mean training loss (NaN for an empty batch, which is still a step).
        """
        index_of_phase = self.phase_at(self.sampled_steps)
        if index_of_phase != self._phase_index:
            self.engine.set_mechanism(Mechanism.from_plan(self.phased.phases[index_of_phase]))
            self._phase_index = index_of_phase
        sample_rate = self.phased.phases[index_of_phase].sample_rate
        # float64: float32 uniforms are multiples of 2^-24, which would sample slightly
        # above the accounted rate.
        mask = (
            torch.rand(
                len(self.data.train_x),
                generator=self.generator,
                device=self.device,
                dtype=torch.float64,
            )
            < sample_rate
        )
        index = mask.nonzero().squeeze(1)
        self.last_batch_size = len(index)
        self.sampled_steps += 1
        with self.own_random_state():
            loss = self.engine.step(self.data.train_x[index], self.data.train_y[index])
        self.controller.after_step()
        if self.controller.evaluation_due():
            self.evaluate_for_schedule()
        return loss

    def evaluate_for_schedule(self) -> float:
        """Measure the validation loss and pass it to the plateau schedule (a plateau with
        ``evaluate_every``). Only the validation split is read, which is public, so ε is
        unchanged; nothing is recorded and no random number is drawn. The model is put back
        in the mode it was in.

        Returns:
            The validation loss (NaN and infinities count as no improvement).
        """
        was_training = self.model.training
        validation_loss, _, _ = evaluate(
            self.model,
            self.data.val_x,
            self.data.val_y,
            self.options.eval_batch_size,
            self.task,
        )
        self.model.train(was_training)
        self.controller.after_evaluation(validation_loss)
        self.schedule_evaluations += 1
        return validation_loss

    def epoch_steps(self, epoch: int = 0) -> int:
        """Return the noisy steps of ``epoch`` (1-based; 0: the epoch the sampler is in).

        For a TrainingPlan every epoch has ``plan.steps_per_epoch`` steps; a phased plan's
        epochs have their phase's, and the last epoch of a phase that ends mid-epoch fewer.
        """
        ends = self.epoch_ends
        if epoch == 0:
            epoch = min(bisect.bisect_right(ends, self.sampled_steps), len(ends) - 1) + 1
        return ends[epoch - 1] - (ends[epoch - 2] if epoch > 1 else 0)

    def train_epoch(
        self,
        should_stop: Callable[[], bool] | None = None,
        on_step: Callable[[int, int], None] | None = None,
        *,
        epoch: int = 0,
    ) -> tuple[float, float]:
        """Run exactly the steps of ``epoch`` (:meth:`epoch_steps`: ``plan.steps_per_epoch``
        for a TrainingPlan); return (mean loss, seconds).

        ``should_stop`` is polled every ``STOP_POLL_SECONDS``; when it returns True the
        epoch is abandoned (:class:`StopRequested`), so a partial epoch is never recorded.
        ``on_step(k, steps_per_epoch)`` is called after step ``k`` at most once every
        ``PROGRESS_SECONDS`` (never after the last step: the epoch's record follows).

        Raises:
            Diverged: a non-empty batch gave a non-finite loss, or the weights are not all
                finite after the epoch's last step (``epoch`` names the epoch).
        """
        with self.own_random_state():  # one fork of the global state per epoch
            return self._train_epoch(should_stop, on_step, epoch)

    def _train_epoch(
        self,
        should_stop: Callable[[], bool] | None,
        on_step: Callable[[int, int], None] | None,
        epoch: int,
    ) -> tuple[float, float]:
        self.model.train()
        steps_per_epoch = self.epoch_steps(epoch)
        loss_sum, loss_batches = 0.0, 0
        started = last_poll = last_report = time.perf_counter()
        for step in range(1, steps_per_epoch + 1):
            if should_stop is not None and time.perf_counter() - last_poll > STOP_POLL_SECONDS:
                last_poll = time.perf_counter()
                if should_stop():
                    raise StopRequested
            loss = self.step()
            if self.last_batch_size and not math.isfinite(loss):
                raise Diverged(
                    epoch, f"the training loss was {loss} at step {step} of {steps_per_epoch}"
                )
            if not math.isnan(loss):
                loss_sum += loss
                loss_batches += 1
            if (
                on_step is not None
                and step < steps_per_epoch
                and time.perf_counter() - last_report >= PROGRESS_SECONDS
            ):
                last_report = time.perf_counter()
                on_step(step, steps_per_epoch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - started
        if not self.weights_finite():
            raise Diverged(epoch, f"the weights were not finite after step {steps_per_epoch}")
        return (loss_sum / loss_batches if loss_batches else math.nan), seconds

    def weights_finite(self) -> bool:
        """Return whether every parameter of the model is finite (no NaN, no ±inf)."""
        with torch.no_grad():
            return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def epsilon_after(self, epoch: int) -> float:
        """dpplan's ε (``options.method``) after ``epoch`` epochs; ``inf`` if non-private."""
        if not self.options.private:
            return math.inf
        return self._epsilon_curves()[0][epoch - 1]

    def _epsilon_curves(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[dict, ...]]:
        """(``options.method`` curve, RDP curve, every method's ε per epoch), computed once."""
        if self._curves is None:
            from dpplan.accounting import compare, epoch_epsilons, epsilon_curve

            if isinstance(self.plan, TrainingPlan):
                per_epoch = epoch_epsilons(self.plan)
            else:  # the phased plan's curves: one point per (possibly partial) epoch
                comparison = compare(self.plan)
                per_epoch = tuple(
                    {curve.method: curve.epsilons[index] for curve in comparison.curves}
                    for index in range(self.epochs)
                )

            def curve(method: str) -> tuple[float, ...]:
                if method in per_epoch[0]:
                    return tuple(values[method] for values in per_epoch)
                return tuple(epsilon_curve(self.plan, method=method).epsilons)  # its error

            self._curves = (curve(self.options.method), curve("rdp"), per_epoch)
        return self._curves

    def headline_after(self, epoch: int) -> tuple[float, str]:
        """(ε, method) after ``epoch`` epochs: the smallest upper bound of every method
        (``options.method``'s alone if the others failed); ``(inf, "none")`` if non-private.
        This is the one ε the run shows everywhere."""
        if not self.options.private:
            return math.inf, "none"
        from dpplan.accounting.composition import headline_of

        per_epoch = self._epsilon_curves()[2]
        if not per_epoch[epoch - 1]:
            return self.epsilon_after(epoch), self.options.method
        method, value = headline_of(per_epoch[epoch - 1])
        return value, method

    def finish_epoch(self, epoch: int, train_loss: float, seconds: float) -> EpochRecord:
        """Check the step count, evaluate, step the epoch schedule and return the record.

        Raises:
            RuntimeError: if the sampler drew or the engine took another number of steps than
                the plan says (accounting would not match training).
            Diverged: if the validation loss is not finite.
        """
        steps, planned = self.steps, self.phased.steps_after(epoch)
        if steps != planned or self.sampled_steps != planned:
            raise RuntimeError(
                f"the sampler drew {self.sampled_steps} batches and the engine took {steps} "
                f"steps after epoch {epoch}, the plan says {planned}; accounting would not "
                "match training"
            )
        batch = self.options.eval_batch_size
        validation_loss, validation_accuracy, validation_metric = evaluate(
            self.model, self.data.val_x, self.data.val_y, batch, self.task
        )
        if not math.isfinite(validation_loss):
            raise Diverged(epoch, f"the validation loss was {validation_loss}")
        test_loss, test_accuracy, test_metric = evaluate(
            self.model, self.data.test_x, self.data.test_y, batch, self.task
        )
        metrics = {}
        if self.task.metric is not None:
            name = self.task.metric_name
            metrics = {f"validation_{name}": validation_metric, f"test_{name}": test_metric}
        self.controller.after_epoch(validation_loss)
        epsilon = epsilon_rdp = epsilon_opacus = math.inf
        epsilons: dict[str, float] = {}
        if self.options.private:
            curve, rdp_curve, per_epoch = self._epsilon_curves()
            epsilon, epsilon_rdp = curve[epoch - 1], rdp_curve[epoch - 1]
            epsilons = dict(per_epoch[epoch - 1])
            epsilon_opacus = float(self.engine.accountant.get_epsilon(self.plan.delta))
            if not math.isclose(epsilon_rdp, epsilon_opacus, rel_tol=EPSILON_AGREEMENT_RTOL):
                message = (
                    f"epoch {epoch}: dpplan RDP ε={epsilon_rdp:.4g} and Opacus RDP "
                    f"ε={epsilon_opacus:.4g} disagree by more than {EPSILON_AGREEMENT_RTOL:.0%}"
                )
                if message not in self.warnings:
                    self.warnings.append(message)
        return EpochRecord(
            epoch=epoch,
            steps=steps,
            epsilon=epsilon,
            epsilon_rdp=epsilon_rdp,
            epsilon_opacus=epsilon_opacus,
            train_loss=train_loss,
            validation_loss=validation_loss,
            validation_accuracy=validation_accuracy,
            test_accuracy=test_accuracy,
            lr=self.controller.current_lr(),
            seconds=seconds,
            epsilons=epsilons,
            test_loss=test_loss,
            metrics=metrics,
        )

    def run(
        self,
        first_epoch: int = 1,
        *,
        on_epoch: Callable[[EpochRecord], None] | None = None,
        on_step: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[str, str | None]:
        """Train from ``first_epoch`` to the plan's last epoch; return (status, stop reason).

        Ends early:

        * before an epoch whose ε (the smallest upper bound, :meth:`headline_after`) would
          exceed ``options.target_epsilon``: status ``finished``, or ``not_started`` when
          that is the first epoch of the plan (nothing was trained);
        * when ``should_stop`` returns True: status ``stopped`` (a partial epoch is not
          recorded, but its noisy steps touched the data: :attr:`abandoned_steps`);
        * when the loss or the weights stop being finite: status ``diverged``, the reason
          naming the epoch and step. The epoch is not recorded, but its steps touched the
          data, so the reason states ε after it.

        ``on_epoch`` receives every recorded epoch's record. Torch runs with
        ``options.threads`` CPU threads meanwhile; the caller's count is restored after.
        """
        with quiet_libraries(), torch_threads(self.options.threads):
            for epoch in range(first_epoch, self.epochs + 1):
                target = self.options.target_epsilon
                if target is not None:
                    value, method = self.headline_after(epoch)
                    if value > target:
                        return ("not_started" if epoch == 1 else "finished"), (
                            f"stopped before epoch {epoch}: its ε={value:.4g} ({method}) "
                            f"would exceed target_epsilon={target:g}"
                        )
                if should_stop is not None and should_stop():
                    return "stopped", "stop requested"
                started = self.sampled_steps
                try:
                    train_loss, seconds = self.train_epoch(should_stop, on_step, epoch=epoch)
                    record = self.finish_epoch(epoch, train_loss, seconds)
                except StopRequested:
                    self.abandoned_steps = self.sampled_steps - started
                    return "stopped", (
                        f"stop requested during epoch {epoch}, after {self.abandoned_steps} "
                        "of its steps (counted against privacy)"
                    )
                except Diverged as exc:
                    self.diverged_epoch = exc.epoch
                    return "diverged", self._diverged_reason(exc)
                if on_epoch is not None:
                    on_epoch(record)
        return "finished", None

    def _diverged_reason(self, exc: Diverged) -> str:
        kept = (
            f"epochs 1-{exc.epoch - 1} are kept"
            if exc.epoch > 2
            else ("epoch 1 is kept" if exc.epoch == 2 else "no epoch is recorded")
        )
        text = (
            f"diverged in epoch {exc.epoch}: {exc.reason}; {kept}. Lower the learning rate "
            "(or max_grad_norm)."
        )
        if self.options.private:
            value, method = self.headline_after(exc.epoch)
            text += (
                f" The steps of epoch {exc.epoch} touched the data: privacy spent is "
                f"ε={value:.4g} ({method})."
            )
        return text

    def state_dict(self) -> dict[str, Any]:
        """Return the run's state: only tensors and plain Python values, so
        ``torch.load(weights_only=True)`` reads it back.

        The engine's part (``steps``, ``optimizer``, ``accountant_history``) comes from the
        engine's own ``state_dict``."""
        return {
            **self.engine.state_dict(),
            "model": self.model.state_dict(),
            "controller": self.controller.state_dict(),
            # The run's own torch random state (dropout), not the process' global one.
            "torch_rng": self._torch_rng.clone(),
            # Only the run's own GPU: a run resumes on a host with another number of GPUs.
            "cuda_rng": [self._cuda_rng.clone()] if self._cuda_rng is not None else None,
            "generator": self.generator.get_state(),
            "noise_generator": self.noise_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (checked by the caller).

        Raises:
            KeyError, RuntimeError, ValueError, TypeError, IndexError: if the state does not
                fit this run's model, optimizer or random states.
        """
        self.model.load_state_dict(state["model"])
        self.engine.load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        every = self.controller.evaluate_every
        self.schedule_evaluations = self.controller.steps_taken // every if every else 0
        self.sampled_steps = int(state["steps"])
        phase = self.phase_at(self.sampled_steps)
        if phase != self._phase_index:
            self.engine.set_mechanism(Mechanism.from_plan(self.phased.phases[phase]))
            self._phase_index = phase
        torch_rng = state["torch_rng"]
        if not isinstance(torch_rng, torch.Tensor) or torch_rng.dtype != torch.uint8:
            raise TypeError("torch_rng is not a random-number state (a uint8 tensor)")
        self._torch_rng = torch_rng.clone()
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            self._cuda_rng = state["cuda_rng"][0].clone()
        self.generator.set_state(state["generator"])
        self.noise_generator.set_state(state["noise_generator"])


def train(
    plan: TrainingPlan | PhasedPlan,
    schedule: ScheduleSpec,
    options: RunOptions | None = None,
    *,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    data: MnistSplit | None = None,
    device: torch.device | None = None,
    task: Task | None = None,
) -> TrainingResult:
    """Train ``plan`` with DP-SGD on MNIST, in memory: nothing is stored, no file written.

    To store runs, checkpoint and resume them, use :func:`dpplan.train.start_run`.

    Args:
        plan: the plan; ``plan.dataset_size`` must equal ``training_set_size(options)``. A
            :class:`~dpplan.phased.PhasedPlan` changes the sample rate and σ at each phase
            boundary and stops after exactly its ``total_steps`` (also mid-epoch); its
            records are its (possibly partial) epochs, their ε the phased plan's.
        schedule: a learning-rate schedule spec (``OneCycle``, ``Plateau``, ``Constant``).
        options: run options; default ``RunOptions()``.
        on_epoch: called with each epoch's :class:`~dpplan.store.EpochRecord`.
        on_step: called as ``on_step(k, steps_per_epoch)`` within each epoch, at most once
            every ``PROGRESS_SECONDS`` seconds.
        should_stop: polled every few seconds; True stops the run (status ``stopped``).
        data: the MNIST split to train on (default: loaded, as :class:`Trainer` does).
        device: the torch device (default: ``options.device`` resolved).
        task: the :class:`~dpplan.train.Task` to train (the user's model, data and loss);
            ``None`` trains MNIST with ``options.model`` (the built-in task). With a task,
            ``plan.dataset_size`` must be the task's training set size, and the options'
            MNIST settings (model, activation, data folder, subsets) are not used.

    Returns:
        A :class:`TrainingResult` with every epoch's record.

    Raises:
        PlanError: for invalid plan, schedule or options.
        DataError: if MNIST is missing or corrupt, cannot be downloaded, or a named data
            folder does not exist.

    Example:
        >>> import dpplan, os
        >>> from dpplan.train import Constant, RunOptions, train, training_set_size
        >>> options = RunOptions(subset=256, validation_size=100, test_subset=100,
        ...                      device="cpu", method="rdp")
        >>> plan = dpplan.TrainingPlan(dataset_size=training_set_size(options), batch_size=64,
        ...                            noise_multiplier=1.0, epochs=1, delta=1e-3)
        >>> result = train(plan, Constant(lr=0.1), options)  # doctest: +SKIP
        >>> result.status, result.records[-1].steps  # doctest: +SKIP
        ('finished', 4)
    """
    trainer = Trainer(plan, schedule, options, data=data, device=device, task=task)
    records: list[EpochRecord] = []

    def keep(record: EpochRecord) -> None:
        records.append(record)
        if on_epoch is not None:
            on_epoch(record)

    status, reason = trainer.run(on_epoch=keep, on_step=on_step, should_stop=should_stop)
    return TrainingResult(
        plan=trainer.plan,
        schedule=trainer.schedule,
        options=trainer.options,
        device=str(trainer.device),
        engine=trainer.engine.name,
        status=status,
        stop_reason=reason,
        records=tuple(records),
        warnings=tuple(trainer.warnings),
        data_source=trainer.data.source,
        diverged_epoch=trainer.diverged_epoch,
        task=trainer.task.name,
    )
