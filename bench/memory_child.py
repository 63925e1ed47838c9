"""Subprocess of the memory case: featurize the images of a job file while sampling RSS, print JSON.

The process's *current* RSS is sampled every few milliseconds on a thread from /proc (no psutil:
the GPU box has only torch, torchvision, numpy and Pillow). `baseline_mib` is taken once the
extractor is built and has run one warm-up batch (model, graph and buffers all in memory), so
`peak_mib - baseline_mib` is what the run itself added: memory that grows with the number of
images shows up there, which ru_maxrss (dominated by the start-up peak) could not show.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_S = 0.005


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size of `pid` now, in MiB (0 when the process is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def children_rss_mib() -> float:
    """RSS of this process's direct children (DataLoader workers), summed."""
    me, total = str(os.getpid()), 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if fields[1] == me:  # field 4 of /proc/<pid>/stat: the parent pid
            total += rss_mib(stat.parent.name)
    return total


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = self.workers_peak = 0.0
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_mib())
            if self.samples % 20 == 0:  # scanning /proc is slower: less often
                self.workers_peak = max(self.workers_peak, children_rss_mib())
            self.samples += 1
            time.sleep(SAMPLE_S)

    def stop(self) -> None:
        self._done.set()
        self.join()


def main(job_file: str) -> None:
    from defectflow.features.store import FeatureStore
    from defectflow.inference.engine import build_extractor

    job = json.loads(open(job_file).read())
    extractor, spec = build_extractor(job["backbone"], "none", job["image_size"], job["seed"],
                                      engine=job.get("engine", "torch"), device=job["device"],
                                      batch_size=job["batch_size"], num_workers=job["workers"],
                                      graph_cache=Path(job["store"]) / "graphs")
    extractor.transform(job["paths"][: job["batch_size"]])  # warm-up: kernels, arenas, buffers
    baseline = rss_mib()
    sampler = Sampler()
    sampler.start()
    computed = FeatureStore(job["store"], spec).fill(job["keys"], job["paths"], extractor)
    sampler.stop()
    print(json.dumps({"baseline_mib": round(baseline, 1), "peak_mib": round(sampler.peak, 1),
                      "growth_mib": round(sampler.peak - baseline, 1),
                      "worker_peak_mib": round(sampler.workers_peak, 1),
                      "samples": sampler.samples, "computed": len(computed), "engine": extractor.device_name}))


if __name__ == "__main__":
    main(sys.argv[1])
