"""Multi-process training through Lightning's DDP strategy (issue 18).

``model.train(strategy="ddp", devices=N, num_nodes=M)`` runs the same training plan on
``N × M`` processes. Lightning's :class:`~lightning.pytorch.strategies.DDPStrategy` wraps
the training plan in ``DistributedDataParallel``: every parameter is a registered attribute
of the torch module (none lives only in Pyro's param store), so the initial parameters are
broadcast from rank 0 and every gradient is all-reduced, and the ranks' parameters stay
identical. scvi's :class:`~scvi.dataloaders.BatchDistributedSampler` gives each rank a
disjoint share of every epoch's training (and validation) cells; the Pyro plate keeps the
global training-cell count as its size. Running statistics are averaged over the ranks
before every validation pass and at the end (see :func:`running_buffers`) instead of
broadcast from rank 0 before every step; epoch metrics are averaged in one all-reduce.

The processes are started by Lightning (it re-runs the calling script or command for the
other local ranks), by ``torchrun`` or by SLURM; see ``docs/distributed.md``.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

STRATEGIES = ("auto", "ddp")
#: Seconds a rank waits for the others (start-up rendezvous and every collective) before
#: the fit fails with :class:`DistributedTrainingError` instead of hanging.
DEFAULT_TIMEOUT_S = 600.0


class DistributedOptionError(ValueError):
    """A bad ``strategy``, ``devices``, ``num_nodes`` or ``distributed_timeout`` value."""


class DistributedTrainingError(RuntimeError):
    """A distributed fit failed: a rank raised, died, or did not answer in time."""


@dataclass(frozen=True)
class DistributedSettings:
    """Resolved multi-process options of one ``train`` call.

    Attributes
    ----------
    devices
        Processes per node (one per GPU on a GPU node).
    num_nodes
        Number of nodes.
    timeout_s
        Rendezvous and collective timeout, in seconds.
    """

    devices: int
    num_nodes: int
    timeout_s: float

    @property
    def world_size(self) -> int:
        """Total number of processes."""
        return self.devices * self.num_nodes


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise DistributedOptionError(
            f"{name} must be a positive integer (processes per node for devices, machines "
            f"for num_nodes); got {value!r}."
        )
    return int(value)


def parse_distributed(
    strategy: Any = None,
    devices: Any = None,
    num_nodes: Any = None,
    timeout: Any = None,
    accelerator: str = "auto",
) -> DistributedSettings | None:
    """Check the multi-process options; ``None`` means one ordinary process.

    ``strategy`` is ``None``/``"auto"`` (DDP when ``devices`` or ``num_nodes`` exceed 1)
    or ``"ddp"``.

    Raises
    ------
    DistributedOptionError
        Naming the offending option, the value received and what is allowed.
    """
    name = "auto" if strategy is None else strategy
    if not isinstance(name, str) or name.lower() not in STRATEGIES:
        raise DistributedOptionError(
            f"strategy must be one of {list(STRATEGIES)} (Lightning's DDP, launched by "
            f"Lightning, torchrun or SLURM); got {strategy!r}."
        )
    name = name.lower()
    n_devices = 1 if devices in (None, "auto") else _positive_int("devices", devices)
    n_nodes = 1 if num_nodes is None else _positive_int("num_nodes", num_nodes)
    seconds = DEFAULT_TIMEOUT_S if timeout is None else timeout
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not seconds > 0:
        raise DistributedOptionError(
            f"distributed_timeout must be a positive number of seconds; got {timeout!r}."
        )
    if name == "auto" and n_devices == 1 and n_nodes == 1:
        return None
    accel = str(accelerator).lower()
    if accel == "mps":
        raise DistributedOptionError(
            "devices > 1 / strategy='ddp' is not available with accelerator='mps'; "
            "use accelerator='cpu' (gloo) or 'gpu' (NCCL)."
        )
    if accel in ("gpu", "cuda"):
        import torch

        found = torch.cuda.device_count()
        if n_devices > found:
            raise DistributedOptionError(
                f"devices={n_devices} GPUs per node were asked for but this machine has "
                f"{found}; use devices <= {found} or accelerator='cpu'."
            )
    return DistributedSettings(n_devices, n_nodes, float(seconds))


def uses_gpu(accelerator: str) -> bool:
    """Whether ``accelerator`` resolves to CUDA GPUs here (``"auto"`` included)."""
    import torch

    accel = str(accelerator).lower()
    return accel in ("gpu", "cuda") or (accel == "auto" and torch.cuda.is_available())


def trainer_arguments(settings: DistributedSettings, accelerator: str) -> dict:
    """``train`` keyword arguments that run ``settings`` through Lightning's DDP.

    CPU processes talk over gloo, GPU processes over NCCL. ``static_graph``: every
    training step uses the same parameters, so DDP finds the ones a configuration leaves
    unused once, in the first step, instead of searching the autograd graph at every step
    (``find_unused_parameters``); gradients are reduced in place (bucket views).
    """
    from lightning.pytorch.strategies import DDPStrategy

    gpu = uses_gpu(accelerator)
    strategy = DDPStrategy(
        process_group_backend="nccl" if gpu else "gloo",
        timeout=timedelta(seconds=settings.timeout_s),
        static_graph=True,
        gradient_as_bucket_view=True,
        # rank 0's buffers are not broadcast before every forward (a blocking collective
        # per step); the running statistics are averaged over the ranks instead, before
        # each validation pass and when training ends (the training plan)
        broadcast_buffers=False,
    )
    return {
        "accelerator": "gpu" if gpu else "cpu",
        # scvi's ``device`` becomes Lightning's ``devices``: a GPU list (scvi then moves
        # the trained model to the first), a process count on CPU
        "device": list(range(settings.devices)) if gpu else settings.devices,
        "strategy": strategy,
        "num_nodes": settings.num_nodes,
    }


def stop_local_ranks(strategy) -> None:
    """Kill the local ranks this process started (Lightning's launcher), if any are left.

    Lightning does not stop them when the fit fails; a rank stuck outside a collective
    would otherwise outlive the failed fit.
    """
    import signal

    launcher = getattr(strategy, "launcher", None)
    for proc in getattr(launcher, "procs", None) or []:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)


def launch_rank() -> int:
    """Global rank of this process as its launcher set it (0 when not launched so).

    Reads ``RANK`` (torchrun), ``SLURM_PROCID`` or ``NODE_RANK``/``LOCAL_RANK`` with the
    local process count in ``LOCAL_WORLD_SIZE`` (or ``devices`` of the call)."""
    for key in ("RANK", "SLURM_PROCID"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0")) or 0)
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("_TOPOMICS_DEVICES", "1")))
    return node * per_node + local


def is_global_zero() -> bool:
    """True in the process that should write results (rank 0, or no distributed run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return launch_rank() == 0


def failure(err: BaseException, settings: DistributedSettings) -> DistributedTrainingError:
    """One clear error for a rank's failure (its own exception, or a lost peer)."""
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else launch_rank()
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    peer = isinstance(err, RuntimeError | TimeoutError) and any(
        word in text.lower()
        for word in ("connection", "timed out", "timeout", "gloo", "nccl", "closed", "peer")
    )
    why = (
        "another rank failed or stopped answering (the fit stops everywhere)"
        if peer else "this rank raised"
    )
    return DistributedTrainingError(
        f"Distributed training ({settings.world_size} processes: devices={settings.devices}, "
        f"num_nodes={settings.num_nodes}) failed on rank {rank}: {why}: "
        f"{type(err).__name__}: {text} (timeout {settings.timeout_s:g} s)"
    )


def running_buffers(module) -> list:
    """The floating-point buffers training updates: the normalisation layers' running
    statistics (``running_mean``/``running_var``)."""
    return [b for name, b in module.named_buffers()
            if name.rsplit(".", 1)[-1].startswith("running_") and b.is_floating_point()]
