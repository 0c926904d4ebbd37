"""A terminal progress bar with the ELBO and an ETA, and a Ctrl-C that stops cleanly."""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager

from tqdm import tqdm

from ..workflow._progress import ProgressEvent


class ProgressBar:
    """Renders :class:`ProgressEvent` reports as a tqdm bar on stderr."""

    def __init__(self, description: str = "training", disable: bool = False) -> None:
        self._bar: tqdm | None = None
        self._description = description
        self._disable = disable

    def __call__(self, event: ProgressEvent) -> None:
        if self._bar is None:
            self._bar = tqdm(
                total=event.n_steps, desc=self._description, unit="batch", file=sys.stderr,
                disable=self._disable, dynamic_ncols=True, mininterval=0.5,
            )
        self._bar.update(event.step - self._bar.n)
        shown = event.epoch_loss if event.epoch_loss is not None else event.loss
        self._bar.set_postfix_str(
            f"epoch {event.epoch + 1}/{event.n_epochs}, -ELBO/cell {shown:,.1f}", refresh=False
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class StopRequest:
    """Set by the first Ctrl-C; training polls it and ends after the current minibatch."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested


@contextmanager
def stop_on_interrupt(request: StopRequest):
    """While active, the first Ctrl-C asks training to stop; a second one aborts at once."""
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True
        print("\nStopping after this minibatch (Ctrl-C again to abort)...", file=sys.stderr)

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        yield request
        return
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)
