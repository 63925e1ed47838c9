"""The featurizer's fast path on CPU: the execution plan per device (GPU branches included,
decided without a GPU), the DataLoader/pipelined/device-decode paths giving the features the
plain path gives, JPEG draft decoding, and the threaded feature store writes."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

from defectflow.errors import ConfigError
from defectflow.features import imaging
from defectflow.features.backbones import BackboneSpec, build_backbone
from defectflow.features.extract import FeatureExtractor, plan_execution, resize_uint8
from defectflow.features.store import FeatureStore

SIZE = 32


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    """Six JPEGs and two PNGs of different sizes, each a distinct smooth colour field."""
    root = tmp_path_factory.mktemp("extract-images")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(8):
        side = 48 + 16 * i
        coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
        img = coarse.resize((side, side), Image.Resampling.BICUBIC)
        fmt, suffix = ("PNG", ".png") if i % 4 == 3 else ("JPEG", ".jpg")
        path = root / f"img{i}{suffix}"
        img.save(path, format=fmt)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def backbone():
    return build_backbone("mobilenet_v2", "none", SIZE, seed=1)


def _extractor(backbone, **kw) -> FeatureExtractor:
    model, spec = backbone
    return FeatureExtractor(model, spec, device="cpu", batch_size=kw.pop("batch_size", 3),
                            num_workers=kw.pop("num_workers", 0), **kw)


def _reference(backbone, paths: list[str]) -> np.ndarray:
    """Features of the plain path: imaging.load_uint8 per image, one forward_uint8 call."""
    pixels = torch.from_numpy(np.stack([imaging.load_uint8(p, SIZE) for p in paths]))
    return _extractor(backbone).forward_uint8(pixels)


def _rel_l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)


def test_plan_on_cuda_pins_memory_copies_asynchronously_and_uses_bf16():
    plan = plan_execution(torch.device("cuda"), "auto", "pil", cpu_count=16)
    assert plan.autocast_dtype is torch.bfloat16
    assert plan.pin_memory and plan.non_blocking
    assert plan.intra_op_threads is None  # the GPU does the math; CPU threads are left to the loader
    assert plan.in_flight == 2
    assert plan_execution(torch.device("cuda:1"), "fp16").autocast_dtype is torch.float16
    assert plan_execution(torch.device("cuda"), "fp32").autocast_dtype is None
    assert plan_execution(torch.device("cuda"), decode="device").device_decode


def test_plan_on_cpu_is_fp32_with_one_thread_per_core_unless_bf16_is_asked_for():
    plan = plan_execution(torch.device("cpu"), "auto", "pil", cpu_count=6)
    assert plan.autocast_dtype is None and plan.intra_op_threads == 6
    assert not plan.pin_memory and not plan.non_blocking and plan.in_flight == 1
    assert plan_execution(torch.device("cpu"), "bf16").autocast_dtype is torch.bfloat16


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "fp16"}, "fp16 needs a CUDA device"),
    ({"precision": "int8"}, "precision 'int8'"),
    ({"decode": "nvjpeg"}, "decode 'nvjpeg'"),
])
def test_plan_rejects_unsupported_choices(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        plan_execution(torch.device("cpu"), **kwargs)


def test_dataloader_workers_and_batching_do_not_change_features(backbone, images):
    expected = _reference(backbone, images)
    for kw in ({"num_workers": 0, "batch_size": 3}, {"num_workers": 1, "batch_size": 4}):
        got = _extractor(backbone, **kw).transform(images)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_batches_in_flight_yield_every_batch_once_with_its_start(backbone, images):
    extractor = _extractor(backbone, batch_size=3)
    extractor.plan = dataclasses.replace(extractor.plan, in_flight=2)  # the CUDA pipelining, run on CPU
    starts = [(start, len(feats)) for start, feats in extractor.batches(images)]
    assert starts == [(0, 3), (3, 3), (6, 2)]
    np.testing.assert_allclose(extractor.transform(images), _reference(backbone, images), rtol=1e-4, atol=1e-5)


def test_device_decode_keeps_order_and_png_pixels_and_stays_close_for_jpegs(backbone, images):
    got = _extractor(backbone, decode="device").transform(images)
    ref = _reference(backbone, images)
    is_png = np.array([p.endswith(".png") for p in images])
    np.testing.assert_allclose(got[is_png], ref[is_png], rtol=1e-4, atol=1e-5)  # decoded by PIL either way
    # JPEGs: torchvision's libjpeg decode + torch's antialiased resize vs PIL draft decode + resize
    # differ by a grey level here and there; each image's features stay nearest to its own.
    distances = np.linalg.norm(got[:, None, :] - ref[None, :, :], axis=2)
    np.testing.assert_array_equal(distances.argmin(axis=1), np.arange(len(images)))
    # Measured max relative L2: 0.022 on this CPU (torchvision's libjpeg), ~0.07 reported elsewhere;
    # a decode with swapped channels or a wrong scale lands far above 0.1.
    assert _rel_l2(got[~is_png], ref[~is_png]).max() < 0.1


def test_torch_resize_matches_pil_bilinear_within_a_grey_level(images):
    img = imaging.to_rgb(imaging.open_image(images[-1]))
    pil = np.asarray(img.resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.int16)
    torch_nchw = resize_uint8(torch.from_numpy(np.array(img)).permute(2, 0, 1).unsqueeze(0), SIZE)
    diff = np.abs(torch_nchw[0].permute(1, 2, 0).numpy().astype(np.int16) - pil)
    assert diff.mean() < 1.0 and diff.max() <= 8


def test_bf16_autocast_on_cpu_gives_close_features(backbone, images):
    got = _extractor(backbone, precision="bf16").transform(images)
    ref = _reference(backbone, images)
    cosine = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert got.dtype == np.float32 and cosine.min() > 0.98


def test_jpeg_draft_decoding_shrinks_large_jpegs_only_and_stays_close_to_full_decode():
    yy, xx = np.mgrid[0:512, 0:384]
    pixels = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    encoded = {}
    for fmt in ("JPEG", "PNG"):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format=fmt, quality=95)
        encoded[fmt] = buf.getvalue()
    assert imaging.open_image(encoded["JPEG"], draft_size=64).size == (96, 128)  # 1/4 scale keeps ≥ 64
    assert imaging.open_image(encoded["PNG"], draft_size=64).size == (384, 512)
    full = np.asarray(imaging.open_image(encoded["JPEG"]).resize((64, 64), Image.Resampling.BILINEAR), dtype=np.int16)
    drafted = imaging.load_uint8(encoded["JPEG"], 64).astype(np.int16)
    assert np.abs(full - drafted).mean() < 3.0


def _spec() -> BackboneSpec:
    return BackboneSpec(name="mobilenet_v2", dim=4, weights_id="test", image_size=SIZE)


def test_put_many_writes_every_vector_concurrently_and_reports_bad_input(tmp_path):
    store = FeatureStore(tmp_path, _spec())
    keys = [f"{i:064x}" for i in range(40)]
    matrix = np.arange(160, dtype=np.float32).reshape(40, 4)
    store.put_many(keys, matrix)
    np.testing.assert_array_equal(store.get_many(keys), matrix)
    with pytest.raises(ValueError, match="2 keys for 3 vectors"):
        store.put_many(keys[:2], matrix[:3])
    with pytest.raises(ValueError, match="featurizer expects 4"):
        store.put_many([f"{i:064x}" for i in range(100, 103)], np.zeros((3, 5), np.float32))
    assert not list(tmp_path.rglob("*.tmp"))  # failed writes leave no partial files


def test_fill_computes_only_missing_keys(backbone, images, tmp_path):
    model, spec = backbone
    extractor = _extractor(backbone)
    store = FeatureStore(tmp_path, spec)
    keys = [f"{i:064x}" for i in range(len(images))]
    assert store.fill(keys[:5], images[:5], extractor) == keys[:5]
    seen = []
    assert store.fill(keys, images, extractor, on_batch=seen.append) == keys[5:]
    assert sum(seen) == 3
    np.testing.assert_allclose(store.get_many(keys), _reference(backbone, images), rtol=1e-4, atol=1e-5)
