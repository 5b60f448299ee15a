"""Gaussian filtering in a high-dimensional feature space on the permutohedral lattice.

Adams, Baek and Davis, "Fast High-Dimensional Filtering Using the Permutohedral Lattice"
(Eurographics 2010), as used by the fully connected CRF of Krähenbühl and Koltun (2011).
Filtering ``N`` values with the Gaussian kernel ``k(i, j) = exp(-|f_i - f_j|^2 / 2)`` over
feature vectors ``f`` (already divided by the kernel's standard deviations) costs O(N d^2)
instead of O(N^2): each point is splatted onto the d + 1 vertices of its enclosing simplex of
a lattice in d + 1 dimensions, the lattice is blurred with [1 2 1] / 4 along each of its d + 1
axes, and the values are read back (sliced) with the same barycentric weights.

Vectorised, no per-point Python loop: :class:`Lattice` builds the structure once for a set of
points (an image's pixels) with one sort of the vertices' packed keys, and keeps splatting and
slicing as two sparse matrices; :meth:`Lattice.filter` then filters any number of value channels
with two sparse matrix products and 2 (d + 1) gathers. The result approximates the exact
Gaussian filter (the approximation the paper and every dense-CRF implementation use);
:func:`gaussian_filter_exact` is the brute-force reference for tests.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

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
        elevated = _elevate(features.astype(np.float64, copy=False))
        rem0, rank = _enclosing_simplex(elevated)
        weights = _barycentric_weights(elevated, rem0, rank)
        keys = _VertexKeys(rem0, rank)

        # One sort of the n (d + 1) keys gives the vertices (unique keys, sorted) and the splat
        # matrix: the entries of each vertex are contiguous in sorted order. Stable, so the sums
        # run in one order whatever the threads, and a run repeats to the last bit.
        sorted_keys, order = (a.numpy() for a in torch.sort(torch.from_numpy(keys.packed), stable=True))
        first = np.empty(len(order), bool)
        first[0] = True
        np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
        vertex_keys = sorted_keys[first]
        m = len(vertex_keys)
        self.num_vertices = m
        vertex = np.empty(len(order), np.int64)
        vertex[order] = np.cumsum(first) - 1
        weights = weights.astype(np.float32).ravel()
        # slice: (n, m), row i holds point i's d + 1 barycentric weights at its vertices;
        # splat: (m, n), its transpose, built from the sort (rows = vertices in key order)
        with warnings.catch_warnings():  # torch calls its sparse CSR layout beta; matmul is all we use
            warnings.simplefilter("ignore", UserWarning)
            self._slice = torch.sparse_csr_tensor(
                torch.arange(0, n * (d + 1) + 1, d + 1), torch.from_numpy(vertex), torch.from_numpy(weights),
                (n, m), check_invariants=False,
            )
            self._splat = torch.sparse_csr_tensor(
                torch.from_numpy(np.append(np.flatnonzero(first), len(order))),
                torch.from_numpy(order // (d + 1)), torch.from_numpy(weights[order]), (m, n), check_invariants=False,
            )
        self._neighbours = keys.neighbours(vertex_keys)
        self._alpha = 1.0 / (1.0 + 2.0 ** (-d))

    def filter(self, values: np.ndarray) -> np.ndarray:
        """Gaussian-filter ``values`` (N, C) (or (N,)) over the points: out_i ~ sum_j k(i, j) v_j
        (the point itself included, weight 1). Returns float32 of the same shape."""
        vals = np.asarray(values, np.float32)
        squeeze = vals.ndim == 1
        if squeeze:
            vals = vals[:, None]
        if vals.ndim != 2 or len(vals) != self.num_points:
            raise ShapeError(f"values: expected ({self.num_points}, C), got shape {np.shape(values)}")
        m = self.num_vertices
        with torch.no_grad():
            grid = torch.zeros((m + 1, vals.shape[1]), dtype=torch.float32)  # row m: the absent neighbour
            grid[:m] = self._splat @ torch.tensor(vals)
            for n1, n2 in self._neighbours:
                grid[:m] = 0.5 * grid[:m] + 0.25 * (grid[n1] + grid[n2])
            out = (self._slice @ grid[:m]).numpy() * np.float32(self._alpha)
        return out[:, 0] if squeeze else out


def _elevate(f: np.ndarray) -> np.ndarray:
    """Points (n, d) lifted onto the hyperplane x_0 + ... + x_d = 0 of R^(d+1), (n, d + 1), scaled
    so that the lattice blur is a Gaussian of unit standard deviation in the feature space:
    e_0 = sum_j s_j f_j, e_i = sum_{j >= i} s_j f_j - i s_(i-1) f_(i-1)."""
    d = f.shape[1]
    s = np.sqrt(2.0 / 3.0) * (d + 1) / np.sqrt((np.arange(d) + 1.0) * (np.arange(d) + 2.0))
    lift = np.zeros((d, d + 1))
    for i in range(d + 1):
        lift[i:, i] = s[i:]
        if i:
            lift[i - 1, i] = -i * s[i - 1]
    return f @ lift


def _enclosing_simplex(elevated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each elevated point's simplex: its remainder-0 vertex ``rem0`` (int64 (n, d + 1),
    coordinates multiples of d + 1) and the rank of each coordinate's difference to it (0 =
    largest; ties: the lower index ranks first)."""
    d = elevated.shape[1] - 1
    # the nearest remainder-0 lattice point
    rem0 = np.floor(elevated / (d + 1) + 0.5) * (d + 1)
    total = np.rint(rem0.sum(axis=1) / (d + 1)).astype(np.int64)
    rank = np.argsort(np.argsort(rem0 - elevated, axis=1, kind="stable"), axis=1) + total[:, None]
    # off the hyperplane (total != 0): move to the remainder-0 point that brings it back
    low, high = rank < 0, rank > d
    rank[low] += d + 1
    rank[high] -= d + 1
    rem0 = rem0 + (d + 1) * (low.astype(np.int64) - high.astype(np.int64))
    return rem0.astype(np.int64), rank


def _barycentric_weights(elevated: np.ndarray, rem0: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (n, d + 1) of each point in its simplex, remainder-k vertex in
    column k: with v the differences ordered by rank (largest first), b_0 = 1 + v_d - v_0 and
    b_k = v_(d-k) - v_(d-k+1)."""
    n, d = len(elevated), elevated.shape[1] - 1
    v = (elevated - rem0) / (d + 1)
    by_rank = np.empty_like(rank)
    np.put_along_axis(by_rank, rank, np.broadcast_to(np.arange(d + 1), rank.shape), axis=1)
    v = np.take_along_axis(v, by_rank, axis=1)[:, ::-1]  # v[:, k] = difference of rank d - k
    weights = np.empty((n, d + 1))
    weights[:, 0] = 1.0 + v[:, 0] - v[:, d]
    weights[:, 1:] = v[:, 1:] - v[:, :-1]
    return weights


class _VertexKeys:
    """The d + 1 vertices of each point's simplex, as keys packed into one int64.

    The remainder-k vertex is rem0 + k, less d + 1 in the coordinates whose rank exceeds d - k
    (only the first d coordinates: the last follows from the zero sum). Keys hold ``bits`` per
    coordinate, offset by ``lo``. Vertices lie within d + 1 of rem0 in each coordinate and their
    lattice neighbours within d + 1 more, so with 2 (d + 1) of margin no field overflows and
    packing is linear: a vertex's key is its point's packed rem0 plus a constant per remainder,
    less d + 1 for each coordinate that steps back, and a step along a lattice axis adds a
    constant to a key.

    Attributes:
        packed: int64 (n (d + 1),), point i's remainder-k vertex at i (d + 1) + k.
    """

    def __init__(self, rem0: np.ndarray, rank: np.ndarray) -> None:
        n, d = rem0.shape[0], rem0.shape[1] - 1
        self._d = d
        lo = int(rem0[:, :d].min()) - 2 * (d + 1)
        span = int(rem0[:, :d].max()) + 2 * (d + 1) - lo + 1
        bits = max(1, int(np.ceil(np.log2(span))))
        if bits * d > 62:
            raise ShapeError(
                f"features: a spread of {span} lattice cells per dimension in {d} dimensions does not fit"
                " the lattice's 62-bit keys; divide the features by larger standard deviations"
            )
        self._place = np.int64(1) << (bits * np.arange(d, dtype=np.int64))  # each coordinate's unit
        self._ones = int(self._place.sum())
        base = (rem0[:, :d] - lo) @ self._place  # (n,) exact: int64 matmul
        # coordinate i steps back in the vertices of remainder k > d - rank_i; a point's ranks
        # are distinct, so its steps are one scatter and a running sum over k
        steps = np.zeros((n, d + 2), np.int64)
        np.put_along_axis(steps, d + 1 - rank[:, :d], np.broadcast_to(self._place, (n, d)), axis=1)
        back = np.cumsum(steps[:, : d + 1], axis=1)  # (n, d + 1)
        self.packed = (base[:, None] + np.arange(d + 1) * self._ones - (d + 1) * back).ravel()

    def neighbours(self, keys: np.ndarray) -> list[list[torch.Tensor]]:
        """For each lattice axis j, the indices into the sorted unique ``keys`` of each vertex's two
        neighbours along it (index len(keys) = absent). A step of +-1 in every key coordinate and
        -+d in coordinate j (j = d: only the +-1 steps) is a constant added to the packed key."""
        d, m = self._d, len(keys)
        out = []
        for j in range(d + 1):
            step = -self._ones if j == d else -self._ones + (d + 1) * int(self._place[j])
            pair = []
            for delta in (step, -step):
                target = keys + delta
                pos = np.minimum(np.searchsorted(keys, target), m - 1)
                pair.append(torch.from_numpy(np.where(keys[pos] == target, pos, m)))
            out.append(pair)
        return out


def gaussian_filter_exact(features: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The filter :class:`Lattice` approximates, by brute force: out_i = sum_j exp(-|f_i - f_j|^2 / 2) v_j.
    O(N^2): for tests on a few hundred points."""
    f = np.asarray(features, np.float64)
    d2 = ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1)
    return np.exp(-0.5 * d2) @ np.asarray(values, np.float64)
