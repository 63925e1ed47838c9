"""Backbones, weights resolution, the content-addressed feature store and the featurize stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from defectflow.errors import ConfigError, WeightsNotFoundError
from defectflow.features import weights as weights_mod
from defectflow.features.backbones import backbone_spec, build_backbone
from defectflow.features.stage import featurize
from defectflow.features.store import FeatureStore
from defectflow.params import FeaturizeParams
from defectflow.workdir import Workdir

SMALL = dict(weights="none", image_size=64, batch_size=16, num_workers=0, device="cpu")


def _manifest(data_dir, workdir: Workdir) -> pd.DataFrame:
    """A manifest like validate writes, built from the synthetic dataset's labels.csv."""
    from defectflow.hashing import sha256_file

    labels = pd.read_csv(data_dir / "labels.csv")
    manifest = pd.DataFrame({"path": labels["image"], "status": "ok",
                             "sha256": [sha256_file(data_dir / p) for p in labels["image"]]})
    workdir.root.mkdir(parents=True, exist_ok=True)
    manifest.to_parquet(workdir.manifest)
    return manifest


@pytest.mark.parametrize("name, dim", [("mobilenet_v2", 1280), ("resnet50", 2048)])
def test_headless_backbones_give_pooled_vectors(name, dim):
    import torch

    model, spec = build_backbone(name, "none", 64, seed=3)
    with torch.inference_mode():
        out = model(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, dim) and spec.dim == dim


def test_random_init_is_seeded_and_part_of_the_cache_key():
    import torch

    a, spec_a = build_backbone("mobilenet_v2", "none", 64, seed=1)
    b, _ = build_backbone("mobilenet_v2", "none", 64, seed=1)
    c, spec_c = build_backbone("mobilenet_v2", "none", 64, seed=2)
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))
    assert spec_a.featurizer_id != spec_c.featurizer_id


def test_offline_imagenet_weights_are_found_and_verified():
    resolved = weights_mod.resolve_weights("mobilenet_v2", "IMAGENET1K_V1", seed=0)
    assert resolved.path is not None and resolved.path.name == "mobilenet_v2-b0353104.pth"
    assert weights_mod.sha256_file(resolved.path) == weights_mod.OFFLINE_WEIGHT_PACKAGES[resolved.path.name][1]


def test_missing_weights_error_tells_what_to_do(tmp_path, monkeypatch):
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsNotFoundError, match="featurize.weights=none"):
        weights_mod.resolve_weights("resnet50", "IMAGENET1K_V2", seed=0)
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        weights_mod.resolve_weights("resnet50", str(tmp_path / "missing.pth"), seed=0)
    with pytest.raises(WeightsNotFoundError, match="unknown weights"):
        weights_mod.resolve_weights("resnet50", "IMAGENET9K", seed=0)
    with pytest.raises(ConfigError, match="unknown backbone"):
        backbone_spec("vgg11", "none", 64, seed=0)


def test_local_weights_file_identity_is_its_hash(tmp_path):
    import torch
    import torchvision

    path = tmp_path / "w.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    resolved = weights_mod.resolve_weights("mobilenet_v2", str(path), seed=0)
    assert resolved.weights_id.startswith("file-") and resolved.path == path
    _, spec = build_backbone("mobilenet_v2", str(path), 64, seed=0)
    assert spec.weights_id == resolved.weights_id


def test_store_round_trip_and_shape_check(tmp_path):
    spec = backbone_spec("mobilenet_v2", "none", 64, seed=0)
    store = FeatureStore(tmp_path, spec)
    vec = np.arange(spec.dim, dtype=np.float32)
    store.put("ab" * 32, vec)
    assert store.missing(["ab" * 32, "cd" * 32, "cd" * 32]) == ["cd" * 32]
    np.testing.assert_array_equal(store.get_many(["ab" * 32])[0], vec)
    with pytest.raises(ValueError, match="expects 1280"):
        store.put("ef" * 32, np.zeros(3))
    assert not list(tmp_path.rglob("*.tmp"))


def test_second_run_computes_nothing_and_changing_backbone_recomputes(make_dataset, tmp_path):
    data = make_dataset(n=40, image_size=48)
    workdir = Workdir(tmp_path / "work")
    _manifest(data, workdir)
    first = featurize(data, workdir, FeaturizeParams(backbone="mobilenet_v2", **SMALL), seed=0, progress=False)
    assert first["n_computed"] == first["n_images"] > 0
    features = pd.read_parquet(workdir.features)
    again = featurize(data, workdir, FeaturizeParams(backbone="mobilenet_v2", **SMALL), seed=0, progress=False)
    assert again["n_computed"] == 0 and again["n_cached"] == first["n_images"]
    pd.testing.assert_frame_equal(pd.read_parquet(workdir.features), features)
    other = featurize(data, workdir, FeaturizeParams(backbone="resnet50", **SMALL), seed=0, progress=False)
    assert other["n_computed"] == first["n_images"] and other["feature_dim"] == 2048


def test_interrupted_run_keeps_finished_batches(make_dataset, tmp_path, monkeypatch):
    from defectflow.features import store as store_mod

    data = make_dataset(n=40, image_size=48)
    workdir = Workdir(tmp_path / "work")
    _manifest(data, workdir)
    params = FeaturizeParams(backbone="mobilenet_v2", **{**SMALL, "batch_size": 8})
    real_put_many, calls = store_mod.FeatureStore.put_many, []

    def crash_on_third_batch(self, shas, matrix):
        calls.append(len(shas))
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_put_many(self, shas, matrix)

    monkeypatch.setattr(store_mod.FeatureStore, "put_many", crash_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        featurize(data, workdir, params, seed=0, progress=False)
    monkeypatch.setattr(store_mod.FeatureStore, "put_many", real_put_many)
    assert not list(workdir.root.rglob("*.tmp")) and not workdir.features.exists()
    resumed = featurize(data, workdir, params, seed=0, progress=False)
    assert resumed["n_cached"] == 16 and resumed["n_computed"] == resumed["n_images"] - 16


def test_patch_vectors_come_from_the_same_pass_and_only_missing_ones_are_computed(make_dataset, tmp_path):
    """With the anomaly head on, one featurize pass stores feature and patch vectors; a store
    without patch vectors for some images (older store, Dask-filled) gets exactly those run again."""
    from defectflow.anomaly.featurize import patch_store
    from defectflow.params import AnomalyParams

    data = make_dataset(n=30, image_size=48)
    workdir = Workdir(tmp_path / "work")
    _manifest(data, workdir)
    params = FeaturizeParams(backbone="mobilenet_v2", **SMALL)
    first = featurize(data, workdir, params, seed=0, progress=False, anomaly=AnomalyParams())
    spec = backbone_spec("mobilenet_v2", "none", 64, 0)
    patches = patch_store(workdir.feature_store, spec, AnomalyParams())
    shas = list(pd.read_parquet(workdir.features)["sha256"])
    assert patches.missing(shas) == [] and patches.get_many(shas).shape == (len(shas), 16, 64)
    features = pd.read_parquet(workdir.features)
    for sha in shas[:3]:
        patches.path(sha).unlink()
    again = featurize(data, workdir, params, seed=0, progress=False, anomaly=AnomalyParams())
    assert again["n_computed"] == 0 and patches.missing(shas) == []
    pd.testing.assert_frame_equal(pd.read_parquet(workdir.features), features)
    assert first["n_computed"] == len(shas)
    assert patch_store(workdir.feature_store, spec, AnomalyParams(enabled=False)) is None


def test_rerun_removes_temp_files_a_killed_writer_left(make_dataset, tmp_path):
    """A kill between a vector's create and rename leaves `.<sha>.npy.*.tmp`; the next normal
    (in-process) featurize run removes it and keeps every finished vector."""
    import os
    import time

    from defectflow import atomic

    data = make_dataset(n=12, image_size=48)
    workdir = Workdir(tmp_path / "work")
    _manifest(data, workdir)
    params = FeaturizeParams(backbone="mobilenet_v2", **SMALL)
    featurize(data, workdir, params, seed=0, progress=False)
    store = FeatureStore(workdir.feature_store, backbone_spec("mobilenet_v2", "none", 64, 0))
    killed = atomic.atomic_path(store.path("ab" * 32))  # a writer that never got to rename
    orphan = killed.__enter__()
    old = time.time() - 60
    os.utime(orphan, (old, old))
    vectors = sorted(store.dir.rglob("*.npy"))

    again = featurize(data, workdir, params, seed=0, progress=False)
    assert again["n_computed"] == 0
    assert not orphan.exists() and not list(store.dir.rglob("*.tmp"))
    assert sorted(store.dir.rglob("*.npy")) == vectors
