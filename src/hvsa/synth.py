"""Synthetic labelled clips with exact labels and exact optical flow.

A clip is a stack of layers drawn back to front, each a texture moved by a per-frame
translation:

* layer 0, the far "sky", pans slowly; layer 1, the nearer "ground" below a wavy horizon, pans
  faster (parallax) and bobs a little;
* layers 2.., objects of the object classes (ellipses, rounded rectangles, polygons, stars,
  triangles), each with its own textured look, moving across the frame in front of the ground in
  a fixed depth order (a larger layer id is nearer). At least one object per object class; some
  objects enter and leave the frame during the clip.

Frames are rendered by backward mapping: pixel x of frame t shows the texture of the nearest
layer covering x at the point x - p_t(layer) (bilinear, sub-pixel translations allowed), and
objects are rasterised by pixel-centre inclusion in their analytic shape, so labels are exact.
The exact forward flow O_t->t+1 at pixel x is the translation step p_t+1 - p_t of the layer
visible at x in frame t, also where that surface becomes occluded in frame t+1.

Positions are multiples of 1/256 pixel, so every coordinate is exact in floating point: with
``subpixel=False`` (integer steps) frame t+1 at x + flow equals frame t at x bit for bit
wherever the same layer is visible.

Classes: ``classes=2`` gives "background" (sky and ground) and "object"; ``classes=C >= 3``
gives "sky", "ground" and C - 2 object classes (up to 20 classes in all). Class appearance
(hue, pattern, shape family) is a fixed function of the class id; the seed picks layout,
motion and texture details.

Guarantees, checked on every generated layout (a layout that fails is redrawn from the same
random stream; one that cannot be met raises :class:`~hvsa.errors.InputError`):

* every class is visible in some frame;
* one object is absent from frame 0 and appears later ("enters"), one is present in frame 0 and
  absent from the last frame ("leaves");
* with two or more object classes (``classes >= 4``) the entering object is the only object of
  its class, so some class is absent from frame 0 and present later; with three or more
  (``classes >= 5``) the leaving object is also alone in its class, so some class present in
  frame 0 is absent from the last frame.

Data folder written by :func:`write_clip` / :func:`generate`::

    OUT/frames/<name>.png     RGB, lossless; names 00000, 00001, ...
    OUT/labels/<name>.png     uint8 index masks (mode L); no ignore pixels
    OUT/flow/<name>.flo       forward flow O_t->t+1 for t = 0..T-2 (Middlebury .flo)
    OUT/classes.json          {"classes": [{"id", "name", "color"}], "ignore_index": 255}
    OUT/synth.json            the generator's parameters (marks the folder as a synth output)
"""

from __future__ import annotations

import colorsys
import json
import math
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hvsa.checks import parse_size
from hvsa.errors import InputError
from hvsa.threads import usable_cores
from hvsa.video.classes import ClassInfo, Classes

__all__ = [
    "SynthClip",
    "SynthFrame",
    "SynthScene",
    "make_scene",
    "make_clip",
    "write_clip",
    "generate",
    "frame_names",
    "MAX_CLASSES",
]

MAX_CLASSES = 20
_FLO_MAGIC = 202021.25
_QUANT = 256.0  # positions are multiples of 1 / _QUANT pixel
_MAX_ATTEMPTS = 40
_MAX_CLIP_BYTES = 2 << 30  # make_clip refuses clips whose arrays would exceed this

_OBJECT_NAMES = (
    "car", "person", "tree", "sign", "ball", "house", "bird", "boat", "rock",
    "bush", "lamp", "bench", "cone", "kite", "box", "pole", "dog", "bicycle",
)  # fmt: skip
_SHAPES = ("ellipse", "roundrect", "polygon", "star", "triangle")
_PATTERNS = ("stripes", "spots", "grain", "checker")


# --------------------------------------------------------------------------------------------
# public types


@dataclass
class SynthFrame:
    """One rendered frame of a :class:`SynthScene`.

    Attributes:
        frame: uint8 (H, W, 3) RGB.
        labels: uint8 (H, W) class ids (no ignore pixels).
        instances: uint8 (H, W) layer ids: 0 sky, 1 ground, 2.. objects back to front (a larger
            id is nearer).
        flow: float32 (H, W, 2) exact forward flow (dx, dy) to frame t+1, or None for the last frame.
    """

    frame: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    flow: np.ndarray | None


@dataclass
class SynthClip:
    """A whole synthetic clip in memory (for small clips; long ones stream, see :func:`generate`).

    Attributes:
        frames: uint8 (T, H, W, 3) RGB frames.
        labels: uint8 (T, H, W) class ids.
        flows: float32 (T-1, H, W, 2) exact forward flow O_t->t+1 as (dx, dy) pixels.
        instances: uint8 (T, H, W) layer ids (0 sky, 1 ground, 2.. objects, larger = nearer).
        classes: the classes (ids 0..C-1, ignore index 255).
        names: frame names ("00000", ...), one per frame.
        config: the generator's parameters (frames, size, classes, seed, subpixel).
    """

    frames: np.ndarray
    labels: np.ndarray
    flows: np.ndarray
    instances: np.ndarray
    classes: Classes
    names: list[str]
    config: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def size(self) -> tuple[int, int]:
        """(W, H)."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])


# --------------------------------------------------------------------------------------------
# argument checks


def _check_int(value: object, name: str, lo: int, hi: int | None, hint: str = "") -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        want = f"an integer from {lo} to {hi}" if hi is not None else f"an integer of at least {lo}"
        raise InputError(f"{name}: expected {want}{hint}, got {value!r}")
    return int(value)


def _check_args(
    frames: object, size: object, classes: object, seed: object
) -> tuple[int, tuple[int, int], int, int]:
    n_frames = _check_int(frames, "frames", 2, 1_000_000, " (a clip needs two frames for its flow)")
    wh = parse_size(size)  # type: ignore[arg-type]
    if wh is None:
        raise InputError("size: expected WIDTHxHEIGHT, for example 320x240, got None")
    n_classes = _check_int(classes, "classes", 2, MAX_CLASSES, " (2 = background and one object class)")
    seed_ = _check_int(seed, "seed", 0, None)
    return n_frames, wh, n_classes, seed_


def frame_names(n: int) -> list[str]:
    """Zero-padded frame names "00000", "00001", ... (wider when ``n`` needs it)."""
    width = max(5, len(str(max(n - 1, 0))))
    return [f"{t:0{width}d}" for t in range(n)]


# --------------------------------------------------------------------------------------------
# classes and their appearance


def _make_classes(n_classes: int) -> Classes:
    """The classes of a clip: names, and label colours that echo each class's look."""
    if n_classes == 2:
        names, colors = ["background", "object"], [(0, 0, 0)]
    else:
        names, colors = ["sky", "ground", *_OBJECT_NAMES[: n_classes - 2]], [(70, 130, 180), (107, 142, 35)]
    for j in range(len(names) - len(colors)):
        rgb = colorsys.hsv_to_rgb(_object_hue(j), 0.85, 0.95)
        colors.append(tuple(int(round(255 * v)) for v in rgb))
    return Classes([ClassInfo(i, n, c) for i, (n, c) in enumerate(zip(names, colors))])


@dataclass(frozen=True)
class _Style:
    pattern: str
    dark: tuple[float, float, float]
    light: tuple[float, float, float]
    feature: float  # feature size in pixels at a 240-pixel frame side


_SKY = _Style("clouds", (0.30, 0.50, 0.86), (0.93, 0.95, 0.99), 28.0)
_GROUND = _Style("grain", (0.20, 0.34, 0.11), (0.58, 0.50, 0.27), 5.0)


def _object_hue(j: int) -> float:
    return (0.02 + 0.381966 * j) % 1.0


def _object_style(j: int) -> _Style:
    """Appearance of object class ``j`` (0-based among object classes); fixed per class."""
    hue = _object_hue(j)
    sat = (0.80, 0.60, 0.95)[j % 3]
    dark = colorsys.hsv_to_rgb(hue, sat, 0.30 + 0.12 * (j % 2))
    light = colorsys.hsv_to_rgb((hue + 0.05) % 1.0, sat * 0.55, 0.92)
    return _Style(_PATTERNS[j % len(_PATTERNS)], dark, light, (4.0, 6.0, 8.0)[j % 3])


def _noise(rng: np.random.Generator, h: int, w: int, sigma: float, tile: bool) -> np.ndarray:
    """Smooth noise (h, w) float32 with zero mean and unit deviation: white noise blurred by a
    Gaussian of ``sigma`` pixels in the Fourier domain. ``tile`` keeps it periodic (seamless
    tiling); otherwise it is cut from a canvas padded by 3 sigma, so small patches get noise of
    the same character as large ones (not one dominant wave of the patch's own period)."""
    pad = 0 if tile else int(math.ceil(3 * sigma))
    hh, ww = h + 2 * pad, w + 2 * pad
    white = rng.standard_normal((hh, ww))
    fy = np.fft.fftfreq(hh)[:, None]
    fx = np.fft.rfftfreq(ww)[None, :]
    filt = np.exp(-2.0 * (math.pi * sigma) ** 2 * (fx**2 + fy**2))
    n = np.fft.irfft2(np.fft.rfft2(white) * filt, s=(hh, ww))
    std = n.std()
    n = (n - n.mean()) / std if std > 0 else n
    return n[pad : pad + h, pad : pad + w].astype(np.float32)


def _texture(rng: np.random.Generator, style: _Style, h: int, w: int, scale: float, tile: bool) -> np.ndarray:
    """A (h, w, 3) float32 texture in [0, 1] of ``style``; ``tile`` makes it periodic (for the
    noise-only patterns "clouds" and "grain")."""
    f = max(2.5, style.feature * scale)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    detail = _noise(rng, h, w, max(1.2, f / 3), tile)
    if style.pattern == "clouds":
        m = 1.0 / (1.0 + np.exp(-2.2 * (_noise(rng, h, w, f, tile) + 0.2))) + 0.06 * detail
    elif style.pattern == "grain":
        m = 0.5 + 0.22 * _noise(rng, h, w, f, tile) + 0.14 * detail
    elif style.pattern == "stripes":
        theta = rng.uniform(0, math.pi)
        period = 3.5 * f
        phase = (xx * math.cos(theta) + yy * math.sin(theta)) * (2 * math.pi / period)
        m = 0.5 + 0.42 * np.sin(phase + 1.2 * _noise(rng, h, w, 1.5 * f, tile)) + 0.06 * detail
    elif style.pattern == "spots":
        n = _noise(rng, h, w, f, tile)
        m = np.clip((n - 0.2) / 0.8, 0.0, 1.0) + 0.07 * detail
    elif style.pattern == "checker":
        p = 3.5 * f
        theta = rng.uniform(0, math.pi / 2)
        u = xx * math.cos(theta) + yy * math.sin(theta)
        v = -xx * math.sin(theta) + yy * math.cos(theta)
        m = 0.5 + 0.42 * np.tanh(2.5 * np.sin(2 * math.pi * u / p) * np.sin(2 * math.pi * v / p))
        m = m + 0.06 * detail
    else:  # pragma: no cover - the style table only holds the patterns above
        raise ValueError(f"unknown pattern {style.pattern!r}")
    m = np.clip(m, 0.0, 1.0)[..., None]
    dark = np.asarray(style.dark, np.float32)
    light = np.asarray(style.light, np.float32)
    return (dark + (light - dark) * m).astype(np.float32)


# --------------------------------------------------------------------------------------------
# shapes


class _Shape:
    """An analytic shape centred on the origin, inside the disk of ``radius``."""

    def __init__(self, kind: str, radius: float, **params: object) -> None:
        self.kind = kind
        self.radius = float(radius)
        self.params = params

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Pixel-centre inclusion: ``x`` (1, w) and ``y`` (h, 1) local coordinates -> (h, w) bool."""
        p = self.params
        if self.kind in ("ellipse", "roundrect"):
            c, s = p["cos"], p["sin"]
            xr = x * c + y * s
            yr = -x * s + y * c
            if self.kind == "ellipse":
                return (xr / p["a"]) ** 2 + (yr / p["b"]) ** 2 <= 1.0
            rc = p["corner"]
            qx = np.abs(xr) - (p["hx"] - rc)
            qy = np.abs(yr) - (p["hy"] - rc)
            outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
            return outside + np.minimum(np.maximum(qx, qy), 0.0) <= rc
        verts = p["vertices"]  # (n, 2) polygon, even-odd rule
        inside = np.zeros(np.broadcast_shapes(x.shape, y.shape), bool)
        n = len(verts)
        for i in range(n):  # a loop over edges, vectorised over pixels
            x1, y1 = verts[i]
            x2, y2 = verts[i - 1]
            if y1 == y2:
                continue
            crosses = (y1 > y) != (y2 > y)
            xint = x1 + (x2 - x1) * (y - y1) / (y2 - y1)
            inside ^= crosses & (x < xint)
        return inside


def _make_shape(rng: np.random.Generator, kind: str, r: float) -> _Shape:
    angle = rng.uniform(0, 2 * math.pi)
    c, s = math.cos(angle), math.sin(angle)
    if kind == "ellipse":
        return _Shape(kind, r, a=r, b=r * rng.uniform(0.55, 1.0), cos=c, sin=s)
    if kind == "roundrect":
        beta = rng.uniform(0.45, 1.1)
        hx, hy = r * math.cos(beta), r * math.sin(beta)
        return _Shape(kind, r, hx=hx, hy=hy, corner=rng.uniform(0.1, 0.45) * min(hx, hy), cos=c, sin=s)
    if kind == "polygon":
        n = int(rng.integers(5, 9))
        radii = r * rng.uniform(0.75, 1.0, n)
    elif kind == "star":
        n = 2 * int(rng.integers(5, 8))
        radii = r * np.where(np.arange(n) % 2 == 0, 1.0, rng.uniform(0.42, 0.6))
    else:  # triangle
        n = 3
        radii = r * rng.uniform(0.85, 1.0, n)
    ang = angle + 2 * math.pi * (np.arange(n) + rng.uniform(-0.15, 0.15, n) * (kind != "star")) / n
    verts = np.stack([radii * np.cos(ang), radii * np.sin(ang)], axis=1)
    return _Shape(kind, float(np.hypot(verts[:, 0], verts[:, 1]).max()), vertices=verts)


# --------------------------------------------------------------------------------------------
# layout: layers, paths and the checks every layout must pass


def _q(a: np.ndarray | float) -> np.ndarray:
    """Round to a multiple of 1 / _QUANT pixel (exact in floating point)."""
    return np.round(np.asarray(a, np.float64) * _QUANT) / _QUANT


def _quantise_path(path: np.ndarray, anchor: int, subpixel: bool) -> np.ndarray:
    """(T, 2) continuous positions -> exact positions: dyadic at ``anchor``, steps rounded to
    1/_QUANT pixel (``subpixel``) or to whole pixels."""
    rel = path - path[anchor]
    return _q(path[anchor]) + (_q(rel) if subpixel else np.round(rel))


@dataclass
class _Object:
    class_id: int
    style_index: int
    shape: _Shape
    path: np.ndarray  # (T, 2) unwrapped centre (x, y), multiples of 1/_QUANT
    lo: np.ndarray  # (2,) wrap window start (x, y)
    period: np.ndarray  # (2,) wrap window length, whole pixels
    role: str = ""  # "enter", "leave" or ""

    def centre(self, t: int) -> tuple[float, float]:
        """Centre at frame t: the path wrapped on a torus whose seam lies outside the frame."""
        c = self.lo + np.mod(self.path[t] - self.lo, self.period)
        return float(c[0]), float(c[1])


@dataclass
class _Layout:
    w: int
    h: int
    n_frames: int
    sky_path: np.ndarray  # (T, 2) texture offsets
    ground_path: np.ndarray  # (T, 2)
    horizon: tuple[float, np.ndarray, np.ndarray, np.ndarray]  # base, amplitudes, wavelengths, phases
    objects: list[_Object]
    layer_classes: np.ndarray  # (L,) uint8 class of each layer id

    def horizon_at(self, u: np.ndarray) -> np.ndarray:
        """Ground starts at row ``horizon_at(u)`` of ground coordinates (u = x - ground offset)."""
        base, amp, lam, ph = self.horizon
        return base + (amp[:, None] * np.sin(2 * math.pi * u[None, :] / lam[:, None] + ph[:, None])).sum(0)

    def rasterise(self, t: int) -> tuple[np.ndarray, list[tuple]]:
        """Layer ids of frame t, uint8 (H, W), and each visible object's (k, rows, cols, mask, cx, cy)."""
        h, w = self.h, self.w
        xs = np.arange(w, dtype=np.float64)
        ys = np.arange(h, dtype=np.float64)
        gx, gy = self.ground_path[t]
        ground = (ys[:, None] - gy) >= self.horizon_at(xs - gx)[None, :]
        inst = ground.astype(np.uint8)
        regions = []
        for k, obj in enumerate(self.objects):
            cx, cy = obj.centre(t)
            r = obj.shape.radius
            c0, c1 = max(0, math.floor(cx - r) - 1), min(w - 1, math.ceil(cx + r) + 1)
            r0, r1 = max(0, math.floor(cy - r) - 1), min(h - 1, math.ceil(cy + r) + 1)
            if c0 > c1 or r0 > r1:
                continue
            mask = obj.shape.contains(xs[None, c0 : c1 + 1] - cx, ys[r0 : r1 + 1, None] - cy)
            if not mask.any():
                continue
            inst[r0 : r1 + 1, c0 : c1 + 1][mask] = 2 + k
            regions.append((k, slice(r0, r1 + 1), slice(c0, c1 + 1), mask, cx, cy))
        return inst, regions


def _wrap_window(path: np.ndarray, r: float, extent: int, extra: float) -> tuple[float, int]:
    """Torus window (lo, period) for one axis of an object path.

    The seam (where the wrapped position jumps by a period) lies at least one step plus a
    margin outside the frame on both sides, so a visible object never jumps, and the path's
    first position lies inside the window (wrapping leaves it unchanged).
    """
    step = float(np.abs(np.diff(path)).max()) if len(path) > 1 else 0.0
    outside0 = max(0.0, -r - path[0], path[0] - (extent - 1 + r))
    m = 2 * step + 2 + max(extra, 2 * outside0)
    lo = -float(_q(r + m / 2))
    period = math.ceil(extent - 1 + 2 * r + m)
    return lo, period


def _plan(rng: np.random.Generator, n_frames: int, w: int, h: int, n_classes: int, subpixel: bool) -> _Layout:
    """Draw one layout (paths and shapes, no textures). The draws run in a fixed order: a seed
    gives the same layout, bit for bit."""
    t = np.arange(n_frames, dtype=np.float64)
    ms = max(0.4, min(w, h) / 240)  # motion scale: pixels per frame at 240 px, never tiny
    sky, ground, horizon = _plan_camera(rng, t, w, h, ms)
    cast = _Cast.draw(rng, n_classes)
    objects = _plan_ordinary(rng, cast, t, w, h, ms, subpixel)
    objects.append(_plan_entering(rng, cast, t, w, h, ms, subpixel))
    objects.append(_plan_leaving(rng, cast, t, w, h, ms, subpixel))
    layer_classes = np.array(
        [0, 1 if n_classes >= 3 else 0, *[o.class_id for o in objects]], dtype=np.uint8
    )
    return _Layout(
        w, h, n_frames,
        _quantise_path(sky, 0, subpixel),
        _quantise_path(ground, 0, subpixel),
        horizon,
        objects,
        layer_classes,
    )  # fmt: skip


def _plan_camera(
    rng: np.random.Generator, t: np.ndarray, w: int, h: int, ms: float
) -> tuple[np.ndarray, np.ndarray, tuple]:
    """The sky's and the ground's paths (T, 2) and the horizon's (height, amplitudes, periods,
    phases). The camera pans: ground at full speed, sky slower (parallax); the speed varies over
    time but keeps its sign, and the ground bobs a little."""
    T = len(t)
    vc = rng.uniform(1.0, 2.5) * ms * (1 if rng.random() < 0.5 else -1)
    mu, om, ph = rng.uniform(0.2, 0.5), 2 * math.pi / rng.uniform(20, 80), rng.uniform(0, 2 * math.pi)
    pan = vc * (t + mu * (math.cos(ph) - np.cos(om * t + ph)) / om)
    k_sky = rng.uniform(0.15, 0.35)
    sky = np.stack([k_sky * pan + rng.uniform(0, 1000), np.zeros(T)], axis=1)
    bob_amp, bob_om, bob_ph = rng.uniform(0, 0.02) * h, 2 * math.pi / rng.uniform(15, 50), rng.uniform(0, 6.3)
    ground = np.stack([pan + rng.uniform(0, 1000), bob_amp * np.sin(bob_om * t + bob_ph)], axis=1)
    horizon = (
        rng.uniform(0.35, 0.6) * h,
        rng.uniform(0.0, 0.06, 3) * h,
        rng.uniform(0.3, 2.0, 3) * w,
        rng.uniform(0, 2 * math.pi, 3),
    )
    return sky, ground, horizon


@dataclass(frozen=True)
class _Cast:
    """Which class plays which object.

    Attributes:
        entering: class of the object that enters the frame.
        leaving: class of the object that leaves it.
        ordinary: classes of the other objects, one per object (a class can repeat).
        style_of: object class -> style index (its texture and shape kind).
        shrink: factor on the objects' radii, so that many objects still fit.
    """

    entering: int
    leaving: int
    ordinary: list[int]
    style_of: dict[int, int]
    shrink: float

    @classmethod
    def draw(cls, rng: np.random.Generator, n_classes: int) -> _Cast:
        """Every object class plays some object. With two or more object classes the entering
        object is the only one of its class, with three or more the leaving object too (the
        module's guarantees)."""
        obj_classes = list(range(2, n_classes)) if n_classes >= 3 else [1]
        n_cls = len(obj_classes)
        n_obj = max(n_cls, 4) + int(rng.integers(1, 3))
        order = [int(c) for c in rng.permutation(obj_classes)]
        e_cls = order[0]
        l_cls = order[1] if n_cls >= 2 else order[0]
        protected = {e_cls} if n_cls >= 2 else set()
        if n_cls >= 3:
            protected.add(l_cls)
        ordinary = [c for c in order if c not in (e_cls, l_cls)]
        pool = [c for c in obj_classes if c not in protected]
        while len(ordinary) < n_obj - 2:
            ordinary.append(int(pool[int(rng.integers(0, len(pool)))]))
        style_of = {c: i for i, c in enumerate(obj_classes)}
        return cls(e_cls, l_cls, ordinary, style_of, min(1.0, math.sqrt(5.0 / n_obj)))

    def shape(self, rng: np.random.Generator, c: int, w: int, h: int) -> _Shape:
        """A new shape for an object of class ``c``."""
        r = max(2.0, min(w, h) * rng.uniform(0.08, 0.22) * self.shrink)
        return _make_shape(rng, _SHAPES[self.style_of[c] % len(_SHAPES)], r)


def _plan_ordinary(
    rng: np.random.Generator, cast: _Cast, t: np.ndarray, w: int, h: int, ms: float, subpixel: bool
) -> list[_Object]:
    """The ordinary objects: each passes a "hero" point inside the frame at its own time (the
    times spread over the clip) along a straight, wobbling path."""
    T = len(t)
    n_ord = len(cast.ordinary)
    hero_slots = rng.permutation(n_ord)
    objects = []
    for i, c in enumerate(cast.ordinary):
        shape = cast.shape(rng, c, w, h)
        t_h = min(T - 1, int((hero_slots[i] + rng.random()) * T / n_ord))
        hero = np.array([rng.uniform(0.15, 0.85) * (w - 1), rng.uniform(0.15, 0.85) * (h - 1)])
        speed = rng.uniform(0.5, 2.5) * ms
        ang = rng.uniform(-0.6, 0.6) + math.pi * int(rng.integers(0, 2))
        if rng.random() < 0.3:
            ang = rng.uniform(0, 2 * math.pi)
        amp, wom = rng.uniform(0, 3) * ms, 2 * math.pi / rng.uniform(12, 48)
        wph = rng.uniform(0, 2 * math.pi, 2)
        wob = np.stack([amp * np.sin(wom * t + wph[0]), 0.6 * amp * np.sin(wom * t + wph[1])], axis=1)
        path = hero + speed * np.array([math.cos(ang), math.sin(ang)]) * (t - t_h)[:, None] + wob - wob[t_h]
        path = _quantise_path(path, t_h, subpixel)
        extra = rng.uniform(0, 0.6, 2) * (w, h)
        objects.append(_object(c, cast.style_of[c], shape, path, w, h, extra, ""))
    return objects


def _plan_entering(
    rng: np.random.Generator, cast: _Cast, t: np.ndarray, w: int, h: int, ms: float, subpixel: bool
) -> _Object:
    """The entering object: outside the frame at t = 0, well inside at t_in."""
    T = len(t)
    c = cast.entering
    shape = cast.shape(rng, c, w, h)
    r = shape.radius
    t_in = max(1, min(T - 1, round(0.2 * T)))
    speed = max(rng.uniform(1.0, 2.5) * ms, (1.3 * r + 1) / t_in)
    from_left = rng.random() < 0.5
    cy = rng.uniform(0.25, 0.75) * (h - 1)
    x_in = 0.3 * r if from_left else (w - 1) - 0.3 * r
    xs = x_in + (1 if from_left else -1) * speed * (t - t_in)
    ys = cy + rng.uniform(0, 0.04) * h * np.sin(2 * math.pi * t / rng.uniform(15, 50) + rng.uniform(0, 6.3))
    path = _quantise_path(np.stack([xs, ys], axis=1), t_in, subpixel)
    return _object(c, cast.style_of[c], shape, path, w, h, rng.uniform(0, 0.6, 2) * (w, h), "enter")


def _plan_leaving(
    rng: np.random.Generator, cast: _Cast, t: np.ndarray, w: int, h: int, ms: float, subpixel: bool
) -> _Object:
    """The leaving object: inside the frame at t = 0, outside (and not back) at T - 1."""
    T = len(t)
    c = cast.leaving
    shape = cast.shape(rng, c, w, h)
    r = shape.radius
    speed = max(rng.uniform(1.0, 2.5) * ms, (1.3 * r + 1) / (T - 1))
    to_right = rng.random() < 0.5
    x0 = (w - 1) - 0.3 * r if to_right else 0.3 * r
    xs = x0 + (1 if to_right else -1) * speed * t
    ys = np.full(T, rng.uniform(0.25, 0.75) * (h - 1))
    path = _quantise_path(np.stack([xs, ys], axis=1), 0, subpixel)
    extra = np.array([2 * speed * T + 2, rng.uniform(0, 0.6) * h])
    return _object(c, cast.style_of[c], shape, path, w, h, extra, "leave")


def _object(c: int, style: int, shape: _Shape, path: np.ndarray, w: int, h: int, extra, role: str) -> _Object:
    lx, px = _wrap_window(path[:, 0], shape.radius, w, float(extra[0]))
    ly, py = _wrap_window(path[:, 1], shape.radius, h, float(extra[1]))
    return _Object(c, style, shape, path, np.array([lx, ly]), np.array([px, py], np.float64), role)


def _check_layout(layout: _Layout, n_classes: int) -> bool:
    """Does the layout meet the module's guarantees? Checked on a subset of frames, so a pass is
    a proof (presence in a checked frame is presence in the clip)."""
    T = layout.n_frames
    ts = sorted({0, T - 1, *np.linspace(0, T - 1, min(T, 48)).round().astype(int).tolist()})
    n_layers = len(layout.layer_classes)
    counts = np.zeros((len(ts), n_layers), np.int64)
    for i, t in enumerate(ts):
        inst, _ = layout.rasterise(t)
        counts[i] = np.bincount(inst.ravel(), minlength=n_layers)
    min_px = max(4, layout.w * layout.h // 1000)
    class_counts = np.zeros((len(ts), n_classes), np.int64)
    for k in range(n_layers):
        class_counts[:, layout.layer_classes[k]] += counts[:, k]
    if not (class_counts.max(axis=0) >= min_px).all():
        return False
    for k, obj in enumerate(layout.objects, start=2):
        if obj.role == "enter" and not (counts[0, k] == 0 and counts[1:, k].max(initial=0) > 0):
            return False
        if obj.role == "leave" and not (counts[0, k] > 0 and counts[-1, k] == 0):
            return False
    return True


# --------------------------------------------------------------------------------------------
# rendering


def _sample_shifted(tex: np.ndarray, row0: float, col0: float, n: int, m: int, wrap: bool) -> np.ndarray:
    """Bilinear samples of ``tex`` (h, w, 3) on the pixel grid shifted by (row0, col0):
    out[i, j] = tex(row0 + i, col0 + j) -> (n, m, 3) float32. ``wrap`` tiles the texture, else
    the grid (plus one) must lie inside it.

    Every sample shares one fractional offset, so this is one block gather and three lerps.
    """
    r = math.floor(row0)
    c = math.floor(col0)
    fr = np.float32(row0 - r)
    fc = np.float32(col0 - c)
    rows = np.arange(r, r + n + 1)
    cols = np.arange(c, c + m + 1)
    if wrap:
        rows %= tex.shape[0]
        cols %= tex.shape[1]
    block = np.take(np.take(tex, rows, axis=0), cols, axis=1)  # (n + 1, m + 1, 3)
    if fc:
        block = block[:, :-1] + (block[:, 1:] - block[:, :-1]) * fc
    else:
        block = block[:, :-1]
    if fr:
        return block[:-1] + (block[1:] - block[:-1]) * fr
    return block[:-1]


class SynthScene:
    """A synthetic clip that renders any frame on demand (nothing is held per frame).

    Build it with :func:`make_scene`. ``render(t)`` returns a :class:`SynthFrame`; iterate for
    all frames in order.

    Attributes:
        classes: the classes.
        names: frame names, one per frame.
        size: (W, H).
        config: the generator's parameters.
        layer_classes: uint8 (L,) class id of each layer id (0 sky, 1 ground, 2.. objects).
    """

    def __init__(self, layout: _Layout, textures: list[np.ndarray], classes: Classes, config: dict) -> None:
        self._layout = layout
        self._textures = textures  # sky, ground, then one patch per object
        self.classes = classes
        self.config = dict(config)
        self.names = frame_names(layout.n_frames)
        self.size = (layout.w, layout.h)
        self.layer_classes = layout.layer_classes.copy()
        steps = [np.diff(layout.sky_path, axis=0), np.diff(layout.ground_path, axis=0)]
        steps += [np.diff(o.path, axis=0) for o in layout.objects]
        self._steps = np.stack(steps, axis=1).astype(np.float32)  # (T-1, L, 2)

    def __len__(self) -> int:
        return self._layout.n_frames

    def __repr__(self) -> str:
        w, h = self.size
        return f"SynthScene({len(self)} frames, {w}x{h}, {len(self.classes)} classes)"

    def render(self, t: int) -> SynthFrame:
        """Frame ``t`` with its labels, layer ids and forward flow (None for the last frame)."""
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < len(self):
            raise IndexError(f"frame {t!r} out of range for a clip of {len(self)} frames")
        t = int(t)
        lay = self._layout
        h, w = lay.h, lay.w
        inst, regions = lay.rasterise(t)
        sx, sy = lay.sky_path[t]
        gx, gy = lay.ground_path[t]
        img = _sample_shifted(self._textures[0], -sy, -sx, h, w, wrap=True)
        ground = _sample_shifted(self._textures[1], -gy, -gx, h, w, wrap=True)
        np.copyto(img, ground, where=(inst == 1)[..., None])
        for k, rows, cols, mask, cx, cy in regions:
            patch = self._textures[2 + k]
            centre = (patch.shape[0] - 1) / 2
            n, m = mask.shape
            sample = _sample_shifted(patch, rows.start - cy + centre, cols.start - cx + centre, n, m, wrap=False)
            np.copyto(img[rows, cols], sample, where=mask[..., None])
        img *= 255.0
        img += 0.5
        frame = np.clip(img, 0.0, 255.0, out=img).astype(np.uint8)
        flow = np.take(self._steps[t], inst, axis=0) if t < len(self) - 1 else None
        return SynthFrame(frame, np.take(self.layer_classes, inst), inst, flow)

    def __iter__(self) -> Iterator[SynthFrame]:
        for t in range(len(self)):
            yield self.render(t)


def _object_texture(rng: np.random.Generator, obj: _Object, scale: float) -> np.ndarray:
    """A square patch covering the object's disk (plus a 2-pixel border), with shading."""
    r = obj.shape.radius
    n = 2 * math.ceil(r) + 5
    tex = _texture(rng, _object_style(obj.style_index), n, n, scale, False)
    tex = tex * np.float32(rng.uniform(0.88, 1.12))  # per-object brightness
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) - (n - 1) / 2
    lx, ly = rng.uniform(-0.6, 0.6, 2) * r
    shade = 1.08 - 0.3 * ((xx - lx) ** 2 + (yy - ly) ** 2) / (2 * r * r)
    return np.clip(tex * np.clip(shade, 0.7, 1.1)[..., None], 0.0, 1.0).astype(np.float32)


def make_scene(
    frames: int = 60,
    size: tuple[int, int] | str = (320, 240),
    classes: int = 5,
    seed: int = 0,
    *,
    subpixel: bool = True,
) -> SynthScene:
    """Lay out a synthetic clip; frames render on demand (use this for long clips).

    Args:
        frames: number of frames T >= 2.
        size: (W, H) or "WxH".
        classes: number of classes C in 2..20 (see the module docstring for the layout).
        seed: non-negative integer; the same seed gives the same clip, bit for bit.
        subpixel: translations in 1/256-pixel steps (True) or whole pixels (False).

    Raises:
        InputError: a bad argument, or a clip too small to show every class and an object
            entering and leaving.
    """
    n_frames, (w, h), n_classes, seed_ = _check_args(frames, size, classes, seed)
    layout_seq, texture_seq = np.random.SeedSequence(seed_).spawn(2)
    rng = np.random.default_rng(layout_seq)
    for _ in range(_MAX_ATTEMPTS):
        layout = _plan(rng, n_frames, w, h, n_classes, bool(subpixel))
        if _check_layout(layout, n_classes):
            break
    else:
        raise InputError(
            f"cannot lay out {n_classes} classes in {n_frames} frames of {w}x{h} so that every class"
            " is visible and objects enter and leave; use a larger --size, more --frames or fewer"
            " --classes"
        )
    trng = np.random.default_rng(texture_seq)
    scale = min(w, h) / 240
    ws = min(2 * w, w + 1024)
    # the sky lightens downwards (it never moves vertically, so texture rows are frame rows)
    down = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = np.clip(_texture(trng, _SKY, h, ws, scale, True) * (0.85 + 0.15 * down) + 0.12 * down, 0, 1)
    textures = [sky.astype(np.float32), _texture(trng, _GROUND, h, ws, scale, True)]
    textures += [_object_texture(trng, o, scale) for o in layout.objects]
    cls = _make_classes(n_classes)
    config = {
        "frames": n_frames,
        "size": [w, h],
        "classes": n_classes,
        "seed": seed_,
        "subpixel": bool(subpixel),
    }
    return SynthScene(layout, textures, cls, config)


def make_clip(
    frames: int = 60,
    size: tuple[int, int] | str = (320, 240),
    classes: int = 5,
    seed: int = 0,
    *,
    subpixel: bool = True,
) -> SynthClip:
    """A whole synthetic clip in memory; arguments as :func:`make_scene`.

    Meant for small clips (tests, demos). A clip whose arrays would exceed 2 GiB is refused:
    :func:`generate` streams any length to disk.
    """
    n_frames, (w, h), _, _ = _check_args(frames, size, classes, seed)
    need = n_frames * h * w * (3 + 1 + 1 + 8)
    if need > _MAX_CLIP_BYTES:
        raise InputError(
            f"a clip of {n_frames} frames at {w}x{h} needs {need / 2**30:.1f} GiB in memory;"
            " use hvsa.synth.generate (or `hvsa synth`), which streams frames to disk"
        )
    scene = make_scene(n_frames, (w, h), classes, seed, subpixel=subpixel)
    out_frames = np.empty((n_frames, h, w, 3), np.uint8)
    labels = np.empty((n_frames, h, w), np.uint8)
    instances = np.empty((n_frames, h, w), np.uint8)
    flows = np.empty((n_frames - 1, h, w, 2), np.float32)
    for t, f in enumerate(scene):
        out_frames[t], labels[t], instances[t] = f.frame, f.labels, f.instances
        if f.flow is not None:
            flows[t] = f.flow
    return SynthClip(out_frames, labels, flows, instances, scene.classes, list(scene.names), scene.config)


# --------------------------------------------------------------------------------------------
# writing


def _write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write a (H, W, 2) flow as Middlebury .flo: float32 202021.25, int32 W, int32 H, then
    H*W*2 float32 (dx, dy), little-endian."""
    h, w = flow.shape[:2]
    with open(path, "wb") as f:
        f.write(np.array([_FLO_MAGIC], "<f4").tobytes())
        f.write(np.array([w, h], "<i4").tobytes())
        f.write(np.ascontiguousarray(flow, "<f4").tobytes())


def _write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    data = image[..., ::-1] if image.ndim == 3 else image  # cv2 wants BGR
    if not cv2.imwrite(str(path), np.ascontiguousarray(data), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise InputError(f"{path}: cannot write the image (is the folder writable?)")


def _write_frame(p: Path, name: str, frame: np.ndarray, labels: np.ndarray, flow: np.ndarray | None) -> None:
    _write_png(p / "frames" / f"{name}.png", frame)
    _write_png(p / "labels" / f"{name}.png", labels)
    if flow is not None:
        _write_flo(p / "flow" / f"{name}.flo", flow)


_MARKER = "synth.json"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def _prepare_out(out: str | os.PathLike, overwrite: bool) -> Path:
    """Create ``out`` with frames/, labels/, flow/; clear a previous synth output there.

    A non-empty folder that is not a previous synth output is refused unless ``overwrite``;
    clearing removes only images in frames/ and labels/ and .flo files in flow/.
    """
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise InputError(f"{p}: exists and is a file; expected a folder to write the synthetic clip into")
    if p.is_dir() and any(p.iterdir()):
        if not (p / _MARKER).is_file() and not overwrite:
            raise InputError(
                f"{p}: folder is not empty and is not a previous `hvsa synth` output;"
                " choose another folder or pass --overwrite (overwrite=True in Python)"
            )
        for sub, suffixes in (("frames", _IMAGE_SUFFIXES), ("labels", _IMAGE_SUFFIXES), ("flow", (".flo",))):
            if (p / sub).is_dir():
                for f in (p / sub).iterdir():
                    if f.is_file() and f.suffix.lower() in suffixes:
                        f.unlink()
        for name in ("classes.json", _MARKER):
            if (p / name).is_file():
                (p / name).unlink()
    try:
        for sub in ("frames", "labels", "flow"):
            (p / sub).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{p}: cannot create the output folder ({e.strerror})") from None
    return p


def _write_marker(p: Path, config: dict, complete: bool) -> None:
    from hvsa import __version__

    info = {"generator": "hvsa.synth", "version": __version__, **config, "complete": complete}
    (p / _MARKER).write_text(json.dumps(info, indent=1))


def write_clip(
    clip: SynthClip | SynthScene,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    show_progress: bool = False,
) -> Path:
    """Write a clip as a data folder (see the module docstring); returns the folder.

    A :class:`SynthScene` is rendered and written one frame at a time, so any length fits in
    memory. ``out`` may be absent, empty or a previous synth output (replaced); any other
    non-empty folder raises :class:`InputError` unless ``overwrite``.
    """
    if not isinstance(clip, (SynthClip, SynthScene)):
        raise InputError(f"clip: expected a SynthClip or SynthScene, got {type(clip).__name__}")
    p = _prepare_out(out, overwrite)
    _write_marker(p, clip.config, complete=False)
    clip.classes.to_json(p / "classes.json")
    names = clip.names

    def items() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        if isinstance(clip, SynthScene):
            for f in clip:
                yield f.frame, f.labels, f.flow
        else:
            for t in range(len(names)):
                yield clip.frames[t], clip.labels[t], clip.flows[t] if t < len(names) - 1 else None

    it: Iterator = items()
    if show_progress:
        from hvsa.progress import progress

        it = progress(it, total=len(names), desc="writing synthetic clip", unit="frame")
    # encode and write on worker threads (cv2 and file writes release the GIL) while the next
    # frame renders; at most 2 * workers frames are in flight, so memory stays bounded
    workers = min(4, usable_cores())
    with ThreadPoolExecutor(workers, thread_name_prefix="hvsa-synth") as pool:
        pending: deque[Future] = deque()
        for name, (frame, labels, flow) in zip(names, it):
            pending.append(pool.submit(_write_frame, p, name, frame, labels, flow))
            while len(pending) > 2 * workers:
                pending.popleft().result()
        while pending:
            pending.popleft().result()
    _write_marker(p, clip.config, complete=True)
    return p


def generate(
    out: str | os.PathLike,
    frames: int = 60,
    size: tuple[int, int] | str = (320, 240),
    classes: int = 5,
    seed: int = 0,
    *,
    subpixel: bool = True,
    overwrite: bool = False,
    show_progress: bool = False,
) -> Path:
    """Generate a synthetic clip and write it to ``out``, streaming frame by frame.

    Arguments as :func:`make_scene` and :func:`write_clip`; returns the folder.
    """
    scene = make_scene(frames, size, classes, seed, subpixel=subpixel)
    return write_clip(scene, out, overwrite=overwrite, show_progress=show_progress)

