"""What memory this machine has: NVIDIA GPUs through NVML (nvidia-ml-py), else torch, else CPU RAM
(psutil); or a what-if card from the catalog (``--gpu``) or a size (``--vram``)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from pipeline.planner.catalog import get_card

log = logging.getLogger(__name__)


@dataclass
class Device:
    kind: str  # cuda | cpu
    name: str
    total_bytes: int
    free_bytes: int
    source: str  # nvml | torch | psutil | catalog | --vram
    index: int | None = None
    bf16: bool = True
    what_if: bool = False

    @property
    def available_bytes(self) -> int:
        """What a new process can use: free memory on a real device, all of it for a what-if."""
        return self.total_bytes if self.what_if else self.free_bytes

    def as_dict(self) -> dict:
        return dict(asdict(self), available_bytes=self.available_bytes)


def what_if_card(name: str) -> Device:
    card = get_card(name)
    total = card.reported_mib * 2**20 if card.reported_mib else int(card.memory_gib * 2**30)
    return Device("cuda", card.name, total, total, "catalog", bf16=card.bf16, what_if=True)


def what_if_size(size: str) -> Device:
    from pipeline.planner.readers import parse_size

    total = parse_size(size)
    return Device("cuda", f"GPU with {size.strip()}", total, total, "--vram", what_if=True)


def nvml_gpus() -> list[Device]:
    """All NVIDIA GPUs NVML sees; empty without the driver or the library."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound / DriverNotLoaded: no NVIDIA GPU here
        log.debug("NVML unavailable: %s", exc)
        return []
    devices = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else name
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            major, _ = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            devices.append(Device("cuda", name, int(mem.total), int(mem.free), "nvml", index=i, bf16=major >= 8))
    except Exception as exc:
        log.debug("NVML query failed: %s", exc)
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    return devices


def torch_gpus() -> list[Device]:
    """Fallback when NVML is not installed: torch.cuda (imports torch; slower)."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        major, _ = torch.cuda.get_device_capability(i)
        out.append(Device("cuda", torch.cuda.get_device_name(i), int(total), int(free), "torch", index=i, bf16=major >= 8))
    return out


def cpu_ram() -> Device:
    import psutil

    vm = psutil.virtual_memory()
    return Device("cpu", "CPU RAM", int(vm.total), int(vm.available), "psutil", bf16=True)


def detect(gpu: str | None = None, vram: str | None = None) -> list[Device]:
    """Devices to plan for, best first. A what-if (--gpu / --vram) replaces detection."""
    if gpu:
        return [what_if_card(gpu)]
    if vram:
        return [what_if_size(vram)]
    try:
        import pynvml  # noqa: F401

        gpus = nvml_gpus()
    except ImportError:
        gpus = torch_gpus()
    gpus.sort(key=lambda d: -d.free_bytes)
    return gpus or [cpu_ram()]
