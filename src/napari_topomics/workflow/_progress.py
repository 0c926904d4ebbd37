"""Training progress and cooperative stopping, shared by the CLI and the napari plugin."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from lightning.pytorch.callbacks import Callback


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report, sent after every minibatch.

    Attributes
    ----------
    epoch
        Current epoch, counted from 0.
    n_epochs
        Epochs requested.
    step, n_steps
        Minibatches done so far in the whole run, and in the whole run.
    loss
        Negative ELBO per cell of the last minibatch (lower is better).
    epoch_loss
        Training negative ELBO per cell of the last finished epoch, or None before one ends.
    elapsed_s, eta_s
        Seconds since training started, and the estimated seconds left.
    """

    epoch: int
    n_epochs: int
    step: int
    n_steps: int
    loss: float
    epoch_loss: float | None
    elapsed_s: float
    eta_s: float

    @property
    def fraction(self) -> float:
        """Fraction of the run done, in [0, 1]."""
        return min(1.0, self.step / max(1, self.n_steps))


class TrainingMonitor(Callback):
    """A Lightning callback that reports progress and stops training on request.

    Parameters
    ----------
    on_progress
        Called with a :class:`ProgressEvent` after every training minibatch.
    should_stop
        Polled after every minibatch; when it returns True, training ends after that
        minibatch (the model keeps what it learned so far).
    """

    def __init__(
        self,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.stopped = False
        self.epoch_losses: list[float] = []
        self._start = 0.0
        self._step = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()
        self._step = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._step += 1
        if self.on_progress is not None:
            self.on_progress(self._event(trainer, pl_module, outputs))
        if self.should_stop is not None and self.should_stop():
            self.stopped = True
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get("elbo_train")
        if value is not None:
            self.epoch_losses.append(float(value))

    def _event(self, trainer, pl_module, outputs) -> ProgressEvent:
        batches = trainer.num_training_batches
        per_epoch = int(batches) if batches not in (None, float("inf")) else 1
        n_epochs = int(trainer.max_epochs or 1)
        n_steps = max(1, per_epoch * n_epochs)
        elapsed = time.perf_counter() - self._start
        rate = elapsed / max(1, self._step)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        n_obs = float(getattr(pl_module.module, "n_obs", None) or 1)
        return ProgressEvent(
            epoch=int(trainer.current_epoch),
            n_epochs=n_epochs,
            step=self._step,
            n_steps=n_steps,
            loss=float(loss) / n_obs if loss is not None else float("nan"),
            epoch_loss=self.epoch_losses[-1] if self.epoch_losses else None,
            elapsed_s=elapsed,
            eta_s=max(0.0, (n_steps - self._step) * rate),
        )
