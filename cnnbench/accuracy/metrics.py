"""How accuracy is counted: top-k hits, the same for the digits' held-out split (:mod:`.train`, :mod:`.deployed`)
and for a checkpoint scored on an image folder (:mod:`.evaluate`)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

__all__ = ["topk_hits"]


def topk_hits(logits: Tensor, labels: Tensor, ks: Sequence[int] = (1, 5)) -> tuple[int, ...]:
    """For each k of ``ks``, how many rows of ``logits`` (N×classes) hold their label among their k highest scores.

    A head with fewer than k classes counts every row (top-5 of a 3-class head is 100 %). Counts, not shares, so
    that batches add up; one ``topk`` serves every k, so top-1 is the first of the top-5.
    """
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    return tuple(int((top[:, :k] == labels[:, None]).any(dim=1).sum()) for k in ks)
