"""Gaussian filtering in a high-dimensional feature space on the permutohedral lattice.

Adams, Baek and Davis, "Fast High-Dimensional Filtering Using the Permutohedral Lattice"
(Eurographics 2010), as used by the fully connected CRF of Krähenbühl and Koltun (2011).
Filtering ``N`` values with the Gaussian kernel ``k(i, j) = exp(-|f_i - f_j|^2 / 2)`` over
feature vectors ``f`` (already divided by the kernel's standard deviations) costs O(N d^2)
instead of O(N^2): each point is splatted onto the d + 1 vertices of its enclosing simplex of
a lattice in d + 1 dimensions, the lattice is blurred with [1 2 1] / 4 along each of its d + 1
axes, and the values are read back (sliced) with the same barycentric weights.

Vectorised numpy, no per-point Python loop: :class:`Lattice` builds the structure once for a
set of points (an image's pixels), :meth:`Lattice.filter` then filters any number of value
channels with it. The result approximates the exact Gaussian filter (the approximation the
paper and every dense-CRF implementation use); :func:`gaussian_filter_exact` is the brute-force
reference for tests.
"""

from __future__ import annotations

import numpy as np

from hvsa.checks import check_array
from hvsa.errors import ShapeError

__all__ = ["Lattice", "gaussian_filter_exact"]


class Lattice:
    """The permutohedral lattice of a set of points.

    Args:
        features: float (N, d) positions, each dimension divided by its kernel's standard
            deviation (d >= 1).

    Attributes:
        num_points: N.
        num_vertices: lattice vertices touched by the points.
    """

    def __init__(self, features: np.ndarray) -> None:
        check_array(features, "features", ndim=2)
        n, d = features.shape
        if d < 1 or n < 1:
            raise ShapeError(f"features: expected (N, d) with N, d >= 1, got shape {features.shape}")
        self.num_points, self.dim = n, d
        f = features.astype(np.float64, copy=False)

        # Elevate onto the hyperplane x_0 + ... + x_d = 0 of R^(d+1), scaled so that the lattice
        # blur below is a Gaussian of unit standard deviation in the feature space:
        # e_0 = sum_j s_j f_j, e_i = sum_{j >= i} s_j f_j - i s_(i-1) f_(i-1).
        s = np.sqrt(2.0 / 3.0) * (d + 1) / np.sqrt((np.arange(d) + 1.0) * (np.arange(d) + 2.0))
        lift = np.zeros((d, d + 1))
        for i in range(d + 1):
            lift[i:, i] = s[i:]
            if i:
                lift[i - 1, i] = -i * s[i - 1]
        elevated = f @ lift

        # The nearest remainder-0 lattice point (coordinates multiples of d + 1), and the rank of
        # each coordinate's difference to it (0 = largest; ties: the lower index ranks first).
        rem0 = np.floor(elevated / (d + 1) + 0.5) * (d + 1)
        total = np.rint(rem0.sum(axis=1) / (d + 1)).astype(np.int64)
        rank = np.argsort(np.argsort(rem0 - elevated, axis=1, kind="stable"), axis=1) + total[:, None]
        # off the hyperplane (total != 0): move to the remainder-0 point that brings it back
        low, high = rank < 0, rank > d
        rank[low] += d + 1
        rank[high] -= d + 1
        rem0 = rem0 + (d + 1) * (low.astype(np.int64) - high.astype(np.int64))
        rem0 = rem0.astype(np.int64)

        # Barycentric coordinates of each point in its simplex: with v the differences ordered
        # by rank (largest first), b_0 = 1 + v_d - v_0 and b_k = v_(d-k) - v_(d-k+1).
        v = (elevated - rem0) / (d + 1)  # rem0 as adjusted above
        by_rank = np.empty_like(rank)
        np.put_along_axis(by_rank, rank, np.broadcast_to(np.arange(d + 1), rank.shape), axis=1)
        v = np.take_along_axis(v, by_rank, axis=1)[:, ::-1]  # v[:, k] = difference of rank d - k
        weights = np.empty((n, d + 1))
        weights[:, 0] = 1.0 + v[:, 0] - v[:, d]
        weights[:, 1:] = v[:, 1:] - v[:, :-1]
        self._weights = weights.astype(np.float32)

        # The d + 1 vertices of each point's simplex: the remainder-k vertex is rem0 + k, less
        # d + 1 in the coordinates whose rank exceeds d - k (only the first d coordinates: the
        # last follows from the zero sum).
        k = np.arange(d + 1)[None, :, None]
        keys = rem0[:, None, :d] + k - (d + 1) * (rank[:, None, :d] > d - k)  # (n, d+1, d)
        lo = int(keys.min()) - (d + 1)
        span = int(keys.max()) + (d + 1) - lo + 1
        bits = max(1, int(np.ceil(np.log2(span))))
        if bits * d > 62:
            raise ShapeError(
                f"features: a spread of {span} lattice cells per dimension in {d} dimensions does not fit"
                " the lattice's 62-bit keys; divide the features by larger standard deviations"
            )
        self._bits, self._lo = bits, lo
        packed = self._pack(keys)
        self._keys, self._vertex = np.unique(packed.ravel(), return_inverse=True)
        self._vertex = self._vertex.reshape(n, d + 1).astype(np.int64)
        m = len(self._keys)
        self.num_vertices = m

        # Neighbours of each vertex along each lattice axis j (index m = absent: value 0). A step
        # of +-1 in every key coordinate and -+d in coordinate j (j = d: only the +-1 steps) is a
        # constant added to the packed key: the fields never overflow (a margin of d + 1 above).
        weights = 1 << (bits * np.arange(d, dtype=np.int64))
        ones = int(weights.sum())
        self._neighbours = []
        for j in range(d + 1):
            step = -ones if j == d else -ones + (d + 1) * int(weights[j])
            pair = []
            for delta in (step, -step):
                target = self._keys + delta
                pos = np.searchsorted(self._keys, target)
                pos = np.minimum(pos, m - 1)
                found = self._keys[pos] == target
                pair.append(np.where(found, pos, m))
            self._neighbours.append(pair)
        self._alpha = 1.0 / (1.0 + 2.0 ** (-d))

    def _pack(self, keys: np.ndarray) -> np.ndarray:
        shifted = keys.astype(np.int64) - self._lo
        out = np.zeros(shifted.shape[:-1], np.int64)
        for i in range(shifted.shape[-1]):
            out |= shifted[..., i] << (self._bits * i)
        return out

    def filter(self, values: np.ndarray) -> np.ndarray:
        """Gaussian-filter ``values`` (N, C) (or (N,)) over the points: out_i ~ sum_j k(i, j) v_j
        (the point itself included, weight 1). Returns float32 of the same shape."""
        vals = np.asarray(values, np.float32)
        squeeze = vals.ndim == 1
        if squeeze:
            vals = vals[:, None]
        if vals.ndim != 2 or len(vals) != self.num_points:
            raise ShapeError(f"values: expected ({self.num_points}, C), got shape {np.shape(values)}")
        m, c = self.num_vertices, vals.shape[1]
        flat = self._vertex.ravel()
        grid = np.zeros((m + 1, c), np.float32)  # row m: the absent neighbour
        for ch in range(c):
            grid[:m, ch] = np.bincount(flat, (self._weights * vals[:, ch : ch + 1]).ravel(), minlength=m)
        for n1, n2 in self._neighbours:
            blurred = 0.5 * grid[:m] + 0.25 * (grid[n1] + grid[n2])
            grid[:m] = blurred
        out = np.einsum("pk,pkc->pc", self._weights, grid[self._vertex]) * np.float32(self._alpha)
        return out[:, 0] if squeeze else out


def gaussian_filter_exact(features: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The filter :class:`Lattice` approximates, by brute force: out_i = sum_j exp(-|f_i - f_j|^2 / 2) v_j.
    O(N^2): for tests on a few hundred points."""
    f = np.asarray(features, np.float64)
    d2 = ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1)
    return np.exp(-0.5 * d2) @ np.asarray(values, np.float64)
