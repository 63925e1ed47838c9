"""Cases (a) end-to-end featurization from files and (b) the model alone, per backbone, both
compared with the naive baseline measured in the same run; plus where the time goes."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from bench.cases.context import Context
from bench.timing import Result, compare, interleaved_rate_runs, rate_runs


def naive_features(model, paths: Sequence[str], size: int, mean: Sequence[float], std: Sequence[float],
                   device: str) -> np.ndarray:
    """What a typical notebook does: PIL decode and resize per image, batch size 1, fp32,
    NCHW, `torch.no_grad` (no inference mode), single process."""
    import torch
    from PIL import Image

    mean_t = torch.tensor(mean).view(3, 1, 1)
    std_t = torch.tensor(std).view(3, 1, 1)
    out = []
    for path in paths:
        img = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        x = ((x - mean_t) / std_t).unsqueeze(0).to(device)
        with torch.no_grad():
            out.append(model(x).cpu().numpy())
    return np.concatenate(out)


def _naive_row(ctx: Context, backbone: str) -> Result:
    from defectflow.features.backbones import build_backbone

    size = int(ctx.cfg["image_size"])
    model, spec = build_backbone(backbone, "none", size, int(ctx.cfg["seed"]))
    model = model.to(ctx.device)
    paths = ctx.images.paths(int(ctx.cfg["naive_images"]), "jpeg")

    def work() -> int:
        return len(naive_features(model, paths, size, spec.mean, spec.std, ctx.device))

    runs = rate_runs(work, ctx.repeats, sync=ctx.sync)
    return Result("naive", f"{backbone} naive (jpeg, PIL, bs1, fp32, NCHW, no_grad)", "images/s", runs,
                  params={"backbone": backbone, "images": len(paths)})


def _engine_key(params: dict) -> tuple:
    """Variants that compute the same thing: end-to-end rows are compared with the model-alone row
    of the same engine, quantization and precision."""
    return params.get("engine", "torch"), params.get("quantization", "none"), params.get("precision", "auto")


def _on_engine(extractor, pixels):
    """The preloaded batch where the extractor reads it: the torch device, or host numpy for a graph engine."""
    return pixels.to(extractor.device_name) if hasattr(extractor, "plan") else pixels.numpy()


def _model_rows(ctx: Context, backbone: str) -> list[Result]:
    import torch

    from defectflow.features.imaging import load_uint8

    size = int(ctx.cfg["image_size"])
    n = int(ctx.cfg["model_images"])
    paths = ctx.images.paths(min(n, 64), "jpeg")
    decoded = np.stack([load_uint8(p, size) for p in paths])
    pixels = torch.from_numpy(np.resize(decoded, (n, size, size, 3)))
    variants, works = [], []
    for variant in ctx.cfg["model_variants"]:
        extractor = ctx.extractor(backbone, variant)
        data = _on_engine(extractor, pixels)  # preloaded: no decode, no host-to-device copy

        def work(ex=extractor, data=data, bs=extractor.batch_size) -> int:
            for i in range(0, len(data), bs):
                ex.forward_uint8(data[i : i + bs])
            return len(data)

        variants.append((variant, extractor.batch_size))
        works.append(work)
    all_runs = interleaved_rate_runs(works, ctx.repeats, sync=ctx.sync)
    return [Result("b", f"{backbone} model alone ({variant['label']})", "images/s", runs,
                   params={"backbone": backbone, "images": n, "batch_size": bs, **variant})
            for (variant, bs), runs in zip(variants, all_runs, strict=True)]


def _e2e_rows(ctx: Context, backbone: str) -> list[Result]:
    n = int(ctx.cfg["e2e_images"])
    variants, works = [], []
    for variant in ctx.cfg["e2e_variants"]:
        paths = ctx.images.paths(n, variant["format"])
        extractor = ctx.extractor(backbone, variant)

        def work(ex=extractor, paths=paths) -> int:
            return len(ex.transform(paths))

        variants.append((variant, extractor.batch_size))
        works.append(work)
    all_runs = interleaved_rate_runs(works, ctx.repeats, sync=ctx.sync)
    return [Result("a", f"{backbone} end to end ({variant['label']})", "images/s", runs,
                   params={"backbone": backbone, "images": n, "batch_size": bs, **variant})
            for (variant, bs), runs in zip(variants, all_runs, strict=True)]


def _close_to_model(e2e: list[Result], model: list[Result]) -> None:
    """Note each end-to-end row's share of the model-alone speed of the same engine and precision,
    and its speed-up over the torch end-to-end row of the same format and decode workers."""
    by_engine = {_engine_key(r.params): r for r in model}
    torch_e2e = {(r.params["format"], r.params.get("workers")): r for r in e2e
                 if _engine_key(r.params) == ("torch", "none", "auto")}
    for row in e2e:
        notes = []
        ref = by_engine.get(_engine_key(row.params))
        if ref is not None and not row.params.get("compile"):
            row.params["share_of_model_alone"] = round(row.median / ref.median, 3)
            notes.append(f"{row.median / ref.median:.0%} of model alone ({ref.name})")
        base = torch_e2e.get((row.params["format"], row.params.get("workers")))
        if base is not None and base is not row:
            row.params["vs_torch_e2e"] = round(row.median / base.median, 2)
            notes.append(f"{row.median / base.median:.2f}× torch end to end ({base.params['label']})")
        row.note = "; ".join(notes)


def run(ctx: Context) -> list[Result]:
    rows: list[Result] = []
    for backbone in ctx.cfg["backbones"]:
        ctx.log(f"{backbone}: naive baseline")
        naive = _naive_row(ctx, backbone)
        ctx.log(f"{backbone}: model alone")
        model = _model_rows(ctx, backbone)
        ctx.log(f"{backbone}: end to end")
        e2e = _e2e_rows(ctx, backbone)
        compare(model + e2e, naive)
        _close_to_model(e2e, model)
        rows += [naive, *model, *e2e]
    return rows


def where_time_goes(ctx: Context) -> dict:
    """Per-image decode cost, per-batch host-to-device copy and model time, and the top
    operators of torch.profiler over a few end-to-end batches (first backbone, first variant).
    DataLoader workers are separate processes: their decoding shows up in the timers, not in
    the profiler table, which covers the main process (and the GPU)."""
    import torch
    from PIL import Image
    from torch.profiler import ProfilerActivity, profile

    from defectflow.features.imaging import load_uint8, open_image
    from defectflow.validation.convert import to_rgb

    backbone, variant = ctx.cfg["backbones"][0], ctx.cfg["e2e_variants"][0]
    size = int(ctx.cfg["image_size"])
    out: dict = {"backbone": backbone, "variant": variant["label"]}

    def ms_per_image(paths: list[str], decode) -> float:
        started = time.perf_counter()
        for p in paths:
            decode(p)
        return round((time.perf_counter() - started) / len(paths) * 1e3, 3)

    jpegs, pngs = ctx.images.paths(32, "jpeg"), ctx.images.paths(32, "png")
    out["decode_resize_ms_per_image_jpeg"] = ms_per_image(jpegs, lambda p: load_uint8(p, size))
    out["decode_resize_ms_per_image_png"] = ms_per_image(pngs, lambda p: load_uint8(p, size))
    out["decode_resize_ms_per_image_jpeg_full_decode"] = ms_per_image(  # as the naive baseline does
        jpegs, lambda p: Image.open(p).convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    # the two halves of load_uint8 on JPEG: draft decode + RGB, then the antialiased resize
    decoded = [to_rgb(open_image(p, draft_size=size)) for p in jpegs]
    out["decode_only_ms_per_image_jpeg_draft"] = ms_per_image(jpegs, lambda p: to_rgb(open_image(p, draft_size=size)))
    out["resize_only_ms_per_image_jpeg_draft"] = ms_per_image(
        decoded, lambda img: img.resize((size, size), Image.Resampling.BILINEAR))
    for engine_variant in ctx.cfg.get("profile_engines", []):  # model time per engine, same input batch
        ex = ctx.extractor(backbone, engine_variant)
        batch = np.resize(np.stack([load_uint8(p, size) for p in jpegs]), (ex.batch_size, size, size, 3))
        data = _on_engine(ex, torch.from_numpy(batch))
        rate = float(np.median(rate_runs(lambda ex=ex, data=data: len(ex.forward_uint8(data)), ctx.repeats,
                                         sync=ctx.sync)))
        out[f"model_ms_per_image_{engine_variant['label']}"] = round(1e3 / rate, 3)

    extractor = ctx.extractor(backbone, variant)
    bs = extractor.batch_size
    host = torch.from_numpy(np.resize(load_uint8(jpegs[0], size), (bs, size, size, 3)))
    if extractor.plan.pin_memory:
        host = host.pin_memory()

    def copy() -> int:
        host.to(extractor.device_name, non_blocking=extractor.plan.non_blocking)
        return 1

    on_device = host.to(extractor.device_name)
    out["batch_size"] = bs
    out["host_to_device_ms_per_batch"] = round(1e3 / float(np.median(rate_runs(copy, ctx.repeats, sync=ctx.sync))), 3)
    model_rate = float(np.median(rate_runs(lambda: len(extractor.forward_uint8(on_device)), ctx.repeats,
                                           sync=ctx.sync)))
    out["model_ms_per_image"] = round(1e3 / model_rate, 3)

    sources = ctx.images.paths(bs * int(ctx.cfg["profile_batches"]), variant["format"])
    cuda = ctx.device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    extractor.transform(sources[:bs])  # warm-up: oneDNN/cuDNN pick their kernels on first use
    with profile(activities=activities) as prof:
        extractor.transform(sources)
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, attr), reverse=True)[:10]
    out["profiler_self_time"] = "device" if cuda else "cpu"
    out["top_ops"] = [{"op": e.key, "calls": e.count, "self_ms": round(getattr(e, attr) / 1e3, 2)} for e in events]
    return out
