"""Every params section is checked when params load: one line, exit 2, before any stage runs."""

from __future__ import annotations

import pytest

from defectflow.cli import main
from defectflow.errors import ConfigError
from defectflow.params import Params

BAD = [
    ("featurize.batch_size=0", "featurize.batch_size=0 must be ≥ 1"),
    ("featurize.image_size=0", "featurize.image_size=0 must be ≥ 32"),
    ("featurize.num_workers=-1", "featurize.num_workers=-1 must be ≥ 0"),
    ("train.n_folds=abc", "train.n_folds='abc' must be a whole number"),
    ("train.n_folds=0", "train.n_folds=0 must be ≥ 1"),
    ("train.val_fraction=true", "train.val_fraction=True must be a finite number"),
    ("featurize.device=tpu", "featurize.device='tpu' must be auto, cpu, cuda or cuda:N"),
    ("executor.kind=cloud", "executor.kind='cloud' must be one of local, local_cluster, address"),
    ("gate.min_auc=1.5", "gate.min_auc=1.5 must be between 0.0 and 1.0"),
    ("score.batch_size=0", "score.batch_size=0 must be ≥ 1"),
    ("validate.min_side=20000", "validate.min_side=20000 is above validate.max_side=12000"),
    ("seed=abc", "seed='abc' must be a whole number"),
]


@pytest.mark.parametrize(("override", "message"), BAD)
def test_bad_value_is_refused_when_params_load(override, message):
    with pytest.raises(ConfigError) as err:
        Params.load("params.yaml", [override])
    assert message in str(err.value)


def test_shipped_params_and_usual_overrides_pass():
    Params.load("params.yaml", ["synth.start=2026-11-04", "promote.tolerance=-1", "train.gap_days=1",
                                "register.tracking_uri=null", "featurize.device=cpu"])


def test_cuda_without_a_gpu_is_refused():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: featurize.device=cuda is valid here")
    with pytest.raises(ConfigError, match="featurize.device='cuda' asks for a CUDA GPU but none is visible"):
        Params.load("params.yaml", ["featurize.device=cuda"])


@pytest.mark.parametrize("override", ["featurize.batch_size=0", "featurize.image_size=0", "train.n_folds=0"])
def test_pipeline_refuses_before_any_stage(tmp_path, capsys, override):
    data, work = tmp_path / "data", tmp_path / "work"
    data.mkdir()
    assert main(["pipeline", "--data", str(data), "--workdir", str(work), "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("defectflow pipeline: error: params ") and "\n" not in err  # one line
    assert not work.exists()  # nothing ran: no manifest, no spec.json left behind
