"""The featurize stage's side of the anomaly head: patch vectors captured in the same pass.

`fill` is FeatureStore.fill with the tap open: each completed batch stores its feature vectors
and its patch vectors, whichever engine runs the backbone (`graph_outputs` is what an ONNX
engine's graph must carry for it). Images with a feature vector but no patch vectors yet (a
feature store from before the anomaly head, or one filled on Dask workers) are run once more here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from defectflow.anomaly.store import PatchStore
from defectflow.anomaly.taps import graph_tap, patch_batches, resolve_layer
from defectflow.features.backbones import BackboneSpec
from defectflow.features.store import FeatureStore
from defectflow.inference.export import ExtraOutput
from defectflow.params import AnomalyParams


def patch_store(feature_store_root, spec: BackboneSpec, params: AnomalyParams | None) -> PatchStore | None:
    """The patch store for this featurizer, or None when the anomaly head is off."""
    if params is None or not params.enabled:
        return None
    return PatchStore(feature_store_root, spec.featurizer_id, resolve_layer(spec.name, params.layer))


def graph_outputs(patches: PatchStore | None) -> tuple[ExtraOutput, ...]:
    """The extra outputs an ONNX engine's graph needs to fill `patches` in the featurize pass."""
    return () if patches is None else (graph_tap(patches.layer),)


def fill(features: FeatureStore, patches: PatchStore, keys: Sequence[str], sources: Sequence, extractor,
         on_batch: Callable[[int], None] | None = None) -> list[str]:
    """Compute and store feature and patch vectors of `keys` (one backbone pass); returns the keys run."""
    for start, feats, patch_vectors in patch_batches(extractor, patches.layer, list(sources)):
        batch_keys = keys[start:start + len(feats)]
        features.put_many(batch_keys, feats)
        patches.put_many(batch_keys, patch_vectors)
        if on_batch is not None:
            on_batch(len(feats))
    return list(keys)
