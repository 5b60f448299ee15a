"""k-means for diversity sampling: k-means++ seeding, Lloyd iterations, nearest-to-centroid picks.

Vectorised with torch matrix products; for very many points the clustering runs on a seeded
random subset and every point is then assigned to its nearest centroid, so the cost is bounded.
"""

from __future__ import annotations

import numpy as np

from hvsa.errors import InputError

__all__ = ["kmeans", "nearest_to_centroids"]

_MAX_FIT_POINTS = 50_000
_CHUNK_ELEMENTS = 1 << 24  # distance-matrix entries computed at once


def _sq_dists(x, c):  # noqa: ANN001, ANN202 - torch tensors
    return ((x * x).sum(1, keepdim=True) - 2.0 * x @ c.T + (c * c).sum(1)[None, :]).clamp_min_(0.0)


def _assign(x, c):  # noqa: ANN001, ANN202 - torch tensors
    """Nearest centroid of every point and its squared distance, in bounded-memory chunks."""
    import torch

    chunk = max(1, _CHUNK_ELEMENTS // max(c.shape[0], 1))
    mins, args = [], []
    for s in range(0, x.shape[0], chunk):
        v, i = _sq_dists(x[s : s + chunk], c).min(1)
        mins.append(v)
        args.append(i)
    return torch.cat(args), torch.cat(mins)


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 25) -> np.ndarray:
    """Cluster ``x`` (N, D) into ``k`` clusters; returns the centroids float32 (k, D).

    k-means++ seeding and Lloyd iterations, all randomness from ``rng``. An empty cluster is
    re-seeded at the point farthest from its centroid. ``k`` is clipped to the number of
    distinct points.
    """
    import torch

    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"kmeans: expected a non-empty (N, D) array, got shape {x.shape}")
    if k < 1:
        raise InputError(f"kmeans: k must be >= 1, got {k}")
    pts = x
    if x.shape[0] > _MAX_FIT_POINTS:
        pts = x[rng.choice(x.shape[0], _MAX_FIT_POINTS, replace=False)]
    xt = torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float32))
    n = xt.shape[0]
    k = min(k, n)
    # k-means++ seeding
    first = int(rng.integers(n))
    centers = [first]
    d2 = _sq_dists(xt, xt[first : first + 1])[:, 0]
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0.0:  # fewer distinct points than k
            break
        p = (d2 / total).double().numpy()
        nxt = int(rng.choice(n, p=p / p.sum()))
        centers.append(nxt)
        d2 = torch.minimum(d2, _sq_dists(xt, xt[nxt : nxt + 1])[:, 0])
    c = xt[centers].clone()
    for _ in range(iterations):
        assign, dist = _assign(xt, c)
        counts = torch.bincount(assign, minlength=c.shape[0]).float()
        sums = torch.zeros_like(c).index_add_(0, assign, xt)
        new = sums / counts.clamp_min(1.0)[:, None]
        empty = counts == 0
        if empty.any():
            far = dist.argsort(descending=True)
            new[empty] = xt[far[: int(empty.sum())]]
        if torch.allclose(new, c, atol=1e-6):
            c = new
            break
        c = new
    return c.numpy()


def nearest_to_centroids(x: np.ndarray, centroids: np.ndarray, candidates: int = 8) -> np.ndarray:
    """For each centroid, the index of the nearest point of ``x`` (N, D); distinct indices.

    Centroids are served in order of their cluster size (largest first); a centroid whose
    nearest point is already taken gets its nearest free point. Returns int64 (min(k, N),),
    ordered largest cluster first, so a prefix is the best smaller selection. Distances are
    computed in chunks of points, so memory stays bounded for hundreds of thousands of points.
    """
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    ct = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32))
    n, k = xt.shape[0], ct.shape[0]
    m = min(candidates, n)
    sizes = torch.zeros(k, dtype=torch.int64)
    best_d = torch.full((k, m), float("inf"))
    best_i = torch.zeros((k, m), dtype=torch.int64)
    chunk = max(1, _CHUNK_ELEMENTS // max(k, 1))
    for s in range(0, n, chunk):
        d = _sq_dists(xt[s : s + chunk], ct)  # (n_chunk, k)
        sizes += torch.bincount(d.argmin(1), minlength=k)
        dd = torch.cat([best_d, d.T], 1)
        ii = torch.cat([best_i, torch.arange(s, s + d.shape[0]).expand(k, -1)], 1)
        best_d, pos = dd.topk(m, dim=1, largest=False)
        best_i = ii.gather(1, pos)
    order = torch.argsort(-sizes.double() + torch.arange(k).double() * 1e-9).tolist()
    taken = np.zeros(n, bool)
    picks: list[int] = []
    for j in order:
        if len(picks) == n:
            break
        free = [i for i in best_i[j].tolist() if not taken[i]]
        if free:
            i = free[0]
        else:  # every short-listed point is taken: scan all points for this centroid
            col = _sq_dists(xt, ct[j : j + 1])[:, 0].numpy()
            col[taken] = np.inf
            i = int(col.argmin())
        taken[i] = True
        picks.append(i)
    return np.asarray(picks, np.int64)
