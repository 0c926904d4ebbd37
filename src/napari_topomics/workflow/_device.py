"""Which device to train on: what the user asked for, checked against what is really there."""

from __future__ import annotations

from dataclasses import dataclass

from ..io._errors import TopomicsInputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class Device:
    """A resolved training device.

    Attributes
    ----------
    name
        ``"cpu"``, ``"cuda"`` or ``"mps"``.
    accelerator
        The Lightning accelerator name for ``model.train(accelerator=...)``.
    """

    name: str
    accelerator: str

    def train_kwargs(self) -> dict:
        """Keyword arguments for ``model.train``."""
        return {"accelerator": self.accelerator, "device": "auto"}


def available_devices() -> list[str]:
    """The devices torch can use on this machine, best first (always ends with ``"cpu"``)."""
    import torch

    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def resolve_device(requested: str = "auto") -> Device:
    """Turn ``"auto"``/``"cpu"``/``"cuda"``/``"mps"`` into a device that exists here.

    Raises
    ------
    TopomicsInputError
        For an unknown name, or a device this machine does not have.
    """
    name = str(requested).lower()
    if name not in DEVICE_CHOICES:
        raise TopomicsInputError(
            f"Unknown device '{requested}': choose one of {', '.join(DEVICE_CHOICES)}."
        )
    available = available_devices()
    if name == "auto":
        name = available[0]
    elif name not in available:
        raise TopomicsInputError(
            f"Device '{name}' is not available on this machine (available: "
            f"{', '.join(available)}); use --device auto or one of those."
        )
    accelerator = {"cpu": "cpu", "cuda": "gpu", "mps": "mps"}[name]
    return Device(name=name, accelerator=accelerator)
