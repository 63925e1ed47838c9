"""The issue's targets, checked against this run's measurements (reported, never faked)."""

from __future__ import annotations

from bench.timing import Result

E2E_SHARE_OF_MODEL = 0.80  # end to end at ≥ 80% of the model alone (same precision)
E2E_VS_NAIVE = 4.0  # and ≥ 4× the naive baseline
GPU_RESNET50_IMAGES_PER_S = 5000.0  # one H100, ResNet-50 from JPEG files
INCREMENTAL_OVERHEAD = 3.0  # a new image may cost at most this many times a bulk one
MEMORY_GROWTH = 1.2  # 10× the images, at most 1.2× the peak RSS
# issue 14: an ONNX engine end to end vs its own model-alone speed, and vs torch end to end
ENGINE_E2E_SHARE = {"none": 0.80, "int8": 0.50}
ENGINE_VS_TORCH_E2E = {"mobilenet_v2": 3.5, "resnet50": 1.5}


def _target(text: str, measured: str, met: bool) -> dict:
    return {"target": text, "measured": measured, "met": bool(met)}


def evaluate(rows: list[Result], cfg: dict) -> list[dict]:
    out = []
    default_variant = cfg["e2e_variants"][0]["label"]
    for backbone in cfg["backbones"]:
        e2e = next((r for r in rows if r.case == "a" and r.params.get("backbone") == backbone
                    and r.params.get("label") == default_variant), None)
        if e2e is None:
            continue
        share = e2e.params.get("share_of_model_alone")
        if share is not None:
            out.append(_target(f"{backbone} end to end ({default_variant}) ≥ {E2E_SHARE_OF_MODEL:.0%} of model alone",
                               f"{share:.0%}", share >= E2E_SHARE_OF_MODEL))
        out.append(_target(f"{backbone} end to end ({default_variant}) ≥ {E2E_VS_NAIVE:.0f}× naive",
                           f"{e2e.ratio:.2f}×", e2e.ratio >= E2E_VS_NAIVE))
        if cfg["device"].startswith("cuda") and backbone == "resnet50":
            best = max((r for r in rows if r.case == "a" and r.params.get("backbone") == backbone
                        and r.params.get("format") == "jpeg"), key=lambda r: r.median)
            out.append(_target(f"resnet50 end to end from JPEG ≥ {GPU_RESNET50_IMAGES_PER_S:,.0f} images/s",
                               f"{best.median:,.0f} images/s ({best.name})", best.median >= GPU_RESNET50_IMAGES_PER_S))
    out += _engine_targets(rows)
    incr = [r for r in rows if r.case == "c" and r.name.startswith("second run")]
    if incr:
        r = incr[0]
        share = r.params["new"] / r.params["n"]
        out.append(_target(f"second run ≤ {INCREMENTAL_OVERHEAD:.0f}× (new/N) of the first run",
                           f"{r.ratio:.2%} for new/N = {share:.1%}", r.ratio <= INCREMENTAL_OVERHEAD * share))
    mem = [r for r in rows if r.case == "memory"]
    if len(mem) >= 2:
        out.append(_target(f"peak RSS with {mem[-1].params['images'] // mem[0].params['images']}× the images "
                           f"≤ {MEMORY_GROWTH}× the smaller run", f"{mem[-1].ratio:.2f}×",
                           mem[-1].ratio <= MEMORY_GROWTH))
    return out


def _engine_targets(rows: list[Result]) -> list[dict]:
    """Issue 14's ratios, for each end-to-end JPEG row that runs an exported graph."""
    out = []
    for r in rows:
        if r.case != "a" or r.params.get("engine", "torch") == "torch" or r.params.get("format") != "jpeg":
            continue
        quant = r.params.get("quantization", "none")
        share = r.params.get("share_of_model_alone")
        if share is not None:
            need = ENGINE_E2E_SHARE[quant]
            out.append(_target(f"{r.name} ≥ {need:.0%} of its model alone", f"{share:.0%}", share >= need))
        speedup, need = r.params.get("vs_torch_e2e"), ENGINE_VS_TORCH_E2E.get(r.params["backbone"])
        if speedup is not None and need is not None and quant == "none":
            out.append(_target(f"{r.name} ≥ {need}× torch end to end", f"{speedup:.2f}×", speedup >= need))
    return out
