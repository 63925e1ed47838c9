"""Split protocols: each one is an ordering of the cells (→ captured_at) and a board per cell.

The pipeline's time split then does the rest: `time` is the dataset's index order (cells come
module by module, as a plant would see them); `unseen-<seed>` shuffles whole modules, so
every test window holds modules the model never saw, in no particular time order; `random`
shuffles single cells and gives each its own board, so cells of one module sit on both sides
(a leaky reference: how good the features are when the module is known).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Protocol:
    name: str
    family: str  # time | unseen | random
    seed: int | None = None

    def arrange(self, modules: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(order, boards) for cells in capture order with integer board codes `modules`:
        order[k] is the cell captured k-th; boards[i] the board of cell i."""
        modules = np.asarray(modules)
        n = len(modules)
        index = np.arange(n)
        if self.family == "time":
            return index, np.array([f"module{m:03d}" for m in modules])
        if self.family == "unseen":
            perm = np.random.default_rng(self.seed).permutation(np.unique(modules))
            order = np.concatenate([index[modules == m] for m in perm])
            return order, np.array([f"module{m:03d}" for m in modules])
        if self.family == "random":
            return np.random.default_rng(self.seed).permutation(n), np.array([f"cell{i:04d}" for i in index])
        raise ValueError(f"unknown protocol family {self.family!r}")


def parse_protocols(names: list[str], seeds: list[int]) -> list[Protocol]:
    """`time`, `unseen` (one protocol per seed), `random` (the first seed)."""
    out: list[Protocol] = []
    for name in names:
        if name == "time":
            out.append(Protocol("time", "time"))
        elif name == "unseen":
            out += [Protocol(f"unseen-{s}", "unseen", s) for s in seeds]
        elif name == "random":
            out.append(Protocol("random", "random", seeds[0]))
        else:
            raise SystemExit(f"unknown protocol {name!r}; choose from time, unseen, random")
    return out
