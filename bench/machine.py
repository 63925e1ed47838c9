"""Describe the machine a report was measured on: CPU model, cores, RAM, load, torch, device."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    """The SIMD features that decide CPU inference speed (bf16 pays only with these)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return []
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            wanted = {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"}
            return sorted(flags & wanted)
    return []


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe(device: str) -> dict:
    import numpy
    import PIL
    import torch
    import torchvision

    from defectflow.features.extract import usable_cpus

    info = {
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cpus(),
        "ram_gib": _ram_gib(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "load_average_at_start": load_average(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return info


def summary_line(info: dict) -> str:
    """One line naming the machine, for report titles and the README table."""
    parts = [f"{info['cpu_model']} ({info['usable_cores']} cores, {info['ram_gib']} GiB)"]
    if "gpu" in info:
        parts.append(f"{info['gpu']} ({info['gpu_memory_gib']} GiB)")
    parts.append(f"torch {info['torch']}")
    return ", ".join(parts)
