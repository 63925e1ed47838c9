"""Subprocess of the memory case: featurize the images of a job file, print peak RSS as JSON."""

from __future__ import annotations

import json
import resource
import sys


def main(job_file: str) -> None:
    from defectflow.features.backbones import build_backbone
    from defectflow.features.extract import FeatureExtractor
    from defectflow.features.store import FeatureStore

    job = json.loads(open(job_file).read())
    model, spec = build_backbone(job["backbone"], "none", job["image_size"], job["seed"])
    extractor = FeatureExtractor(model, spec, device=job["device"], batch_size=job["batch_size"],
                                 num_workers=job["workers"])
    computed = FeatureStore(job["store"], spec).fill(job["keys"], job["paths"], extractor)
    # ru_maxrss is in KiB on Linux; RUSAGE_CHILDREN is the largest finished DataLoader worker
    print(json.dumps({
        "main_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "worker_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "computed": len(computed),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
