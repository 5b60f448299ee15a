"""Fine-tuning losses (exact cases) and the trainer on a tiny problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hvsa.errors import InputError
from hvsa.finetune import (FinetuneConfig, FineTuner, ce_loss, cells_holding, class_weights, sample_pair, tc_loss,
                           windows_holding)


def _shifted_pair(c: int = 3, h: int = 8, w: int = 10, dx: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q_t and q_t' where frame t' is frame t moved right by dx px, with the flow O_t->t'."""
    g = torch.Generator().manual_seed(0)
    q_t = torch.rand(1, c, h, w, generator=g).softmax(1)
    q_t2 = torch.zeros_like(q_t)
    q_t2[..., dx:] = q_t[..., :-dx]
    flow = torch.zeros(1, h, w, 2)
    flow[..., 0] = dx
    return q_t, q_t2, flow


def test_tc_loss_is_zero_for_a_consistent_prediction() -> None:
    q_t, q_t2, flow = _shifted_pair()
    reliable = torch.zeros(1, 8, 10, dtype=torch.bool)
    reliable[..., :-2] = True  # targets x + 2 inside the frame
    assert float(tc_loss(q_t, q_t2, flow, reliable)) == pytest.approx(0.0, abs=1e-10)


def test_tc_loss_ignores_unreliable_pixels() -> None:
    q_t, q_t2, flow = _shifted_pair()
    reliable = torch.zeros(1, 8, 10, dtype=torch.bool)
    reliable[..., :-2] = True
    reliable[:, 3, 4] = False
    spoiled = q_t.clone()
    spoiled[..., 3, 4] = torch.tensor([1.0, 0.0, 0.0])
    spoiled[..., -2:] = 0.5  # pixels whose targets leave the frame
    assert float(tc_loss(spoiled, q_t2, flow, reliable)) == pytest.approx(0.0, abs=1e-10)
    reliable[:, 3, 4] = True  # now the spoiled pixel counts
    assert float(tc_loss(spoiled, q_t2, flow, reliable)) > 0


def test_tc_loss_hand_computed_value() -> None:
    q_t = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).T.reshape(1, 2, 1, 2)  # pixel 0: class 0, pixel 1: class 1
    q_t2 = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).T.reshape(1, 2, 1, 2)  # both class 1
    flow = torch.zeros(1, 1, 2, 2)
    reliable = torch.ones(1, 1, 2, dtype=torch.bool)
    # pixel 0: (1-0)^2 + (0-1)^2 = 2; pixel 1: 0 -> mean 1
    assert float(tc_loss(q_t, q_t2, flow, reliable)) == pytest.approx(1.0)
    assert float(tc_loss(q_t, q_t2, flow, torch.zeros(1, 1, 2, dtype=torch.bool))) == 0.0


def test_ce_loss_zero_for_perfect_logits_and_when_nothing_is_annotated() -> None:
    labels = torch.tensor([[[0, 1], [255, 1]]])
    logits = torch.full((1, 2, 2, 2), -50.0)
    logits[0, 0, 0, 0] = 50.0
    logits[0, 1, 0, 1] = 50.0
    logits[0, 1, 1, 1] = 50.0
    assert float(ce_loss(logits, labels)) == pytest.approx(0.0, abs=1e-6)
    empty = ce_loss(logits.requires_grad_(), torch.full((1, 2, 2), 255))
    assert float(empty.detach()) == 0.0
    empty.backward()  # a zero loss with a gradient path
    assert logits.grad is not None and float(logits.grad.abs().sum()) == 0.0


def test_ce_loss_class_weights_upweight_rare_classes() -> None:
    labels = torch.tensor([[[0, 0, 0, 1]]])
    logits = torch.zeros(1, 2, 1, 4)
    logits[:, 0] = 1.0  # predicts class 0 everywhere: the class-1 pixel is the costly one
    per_pixel = -torch.log_softmax(logits, 1)[0, :, 0]  # (2, 4)
    right, wrong = float(per_pixel[0, 0]), float(per_pixel[1, 3])
    assert float(ce_loss(logits, labels)) == pytest.approx((3 * right + wrong) / 4, rel=1e-5)
    weighted = float(ce_loss(logits, labels, weight=torch.tensor([1.0, 3.0])))
    assert weighted == pytest.approx((3 * right + 3 * wrong) / 6, rel=1e-5)


def test_class_weights_from_counts() -> None:
    w = class_weights(np.array([90, 10, 0]), power=0.5)
    # (N / (C_present * n_c)) ** 0.5 with N = 100 over the 2 present classes
    np.testing.assert_allclose(w[:2], [(100 / 180) ** 0.5, (100 / 20) ** 0.5], rtol=1e-6)
    assert w[2] == pytest.approx(w[1])  # absent classes get the largest present weight
    np.testing.assert_allclose(class_weights(np.array([5, 5]), power=0.0), [1.0, 1.0])


def test_pair_sampling_respects_distance_and_bounds() -> None:
    rng = np.random.default_rng(0)
    pairs = [sample_pair(5, [4], 0.5, rng) for _ in range(500)]
    assert all(1 <= abs(a - b) <= 2 and 0 <= a < 5 and 0 <= b < 5 for a, b in pairs)
    assert sum(a == 4 for a, _ in pairs) > 200  # the annotated frame is drawn about half the time
    assert {b for a, b in pairs if a == 4} == {2, 3}


def test_finetune_config_checks() -> None:
    with pytest.raises(InputError, match="lambda-tc"):
        FinetuneConfig(lambda_tc=-1)
    with pytest.raises(InputError, match="epochs"):
        FinetuneConfig(epochs=0)
    assert FinetuneConfig(epochs=2, min_steps=10, max_steps=100).steps_for(30) == 60
    assert FinetuneConfig(epochs=2, min_steps=10, max_steps=100).steps_for(3) == 10
    assert FinetuneConfig(epochs=2, min_steps=10, max_steps=100).steps_for(300) == 100


class _TinyData:
    """Two frames: left half class 0, right half class 1; frame 0 annotated; zero flow."""

    def __init__(self) -> None:
        self.num_frames = 2
        self.frame_hw = (8, 8)
        self.annotated = [0]
        g = torch.Generator().manual_seed(0)
        base = torch.randn(1, 4, 8, 8, generator=g) * 0.1
        base[:, 0, :, 4:] += 1.0  # a feature that tells the halves apart
        self._taps = [base]

    def taps(self, t: int) -> list[torch.Tensor]:
        return [self._taps[0].clone()]

    def annotation(self, t: int) -> np.ndarray | None:
        if t != 0:
            return None
        a = np.zeros((8, 8), np.uint8)
        a[:, 4:] = 1
        return a

    def flow(self, t: int, t2: int) -> np.ndarray:
        return np.zeros((8, 8, 2), np.float32)

    def reliable(self, t: int, t2: int) -> np.ndarray:
        return np.ones((8, 8), bool)


class _TinyNet(torch.nn.Module):
    num_classes = 2

    def __init__(self) -> None:
        super().__init__()
        self.decoder = torch.nn.Conv2d(4, 2, 1)

    def decode(self, taps: list[torch.Tensor]) -> torch.Tensor:
        return self.decoder(taps[0])


@pytest.mark.parametrize(("crop", "steps"), [(1.0, 80), (0.5, 200)])
def test_fine_tuner_learns_the_annotation(crop: float, steps: int) -> None:
    torch.manual_seed(0)
    net = _TinyNet()
    tuner = FineTuner(net, FinetuneConfig(lr=0.5, min_steps=1, lambda_tc=1.0, crop=crop))
    stats = tuner.run(_TinyData(), np.random.default_rng(0), steps=steps)
    assert stats["steps"] == steps and stats["ce"] < 0.69
    with torch.no_grad():
        pred = net.decode(_TinyData().taps(1)).argmax(1)[0]
    assert pred[:, :4].eq(0).all() and pred[:, 4:].eq(1).all()


def test_fine_tuner_skips_without_annotations() -> None:
    data = _TinyData()
    data.annotated = []
    stats = FineTuner(_TinyNet(), FinetuneConfig()).run(data, np.random.default_rng(0))
    assert stats["steps"] == 0 and stats["skipped"] == "no annotations"


class _WindowData(_TinyData):
    """Two 8x8 frames with random stride-2 taps (1, 4, 4, 4), random labels on both, a flow of
    2 px to the right."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self._taps = [torch.randn(1, 4, 4, 4, generator=g), torch.randn(1, 4, 4, 4, generator=g)]
        self.annotated = [0, 1]
        self._labels = np.random.default_rng(2).integers(0, 2, (2, 8, 8)).astype(np.uint8)

    def taps(self, t: int) -> list[torch.Tensor]:
        return [self._taps[t].clone()]

    def annotation(self, t: int) -> np.ndarray | None:
        return self._labels[t]

    def flow(self, t: int, t2: int) -> np.ndarray:
        f = np.zeros((8, 8, 2), np.float32)
        f[..., 0] = 2.0
        return f


class _StrideTwoNet(_TinyNet):
    """A pointwise decoder on one stride-2 tap: decoding a window of the tap is the window of the
    decoded tap."""


def test_a_training_window_computes_the_losses_of_those_pixels_only() -> None:
    torch.manual_seed(0)
    net = _StrideTwoNet()
    data = _WindowData()
    tuner = FineTuner(net, FinetuneConfig(loss_stride=2, crop=0.5, class_balance=0.0))
    tuner._weight = None  # noqa: SLF001 - run() sets it from the annotations
    window = (1, 3, 1, 3)  # stride-2 cells: pixel rows and columns 2..5
    ce, tc = tuner._losses(data, 0, 1, window)  # noqa: SLF001
    with torch.no_grad():
        logits = torch.cat([net.decode(data.taps(0)), net.decode(data.taps(1))])[..., 1:3, 1:3]
    labels = torch.from_numpy(data._labels[:, 2:6:2, 2:6:2].astype(np.int64))  # noqa: SLF001
    assert float(ce.detach()) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)), rel=1e-5)
    # 2 px is one cell of the loss grid: only the window's left column lands inside the window
    # (a 2 x 2 grid, where a flow laid out (B, H, W, 2) would be ambiguous)
    q = logits.softmax(1)
    expected = ((q[0, :, :, 0] - q[1, :, :, 1]) ** 2).sum(0).mean()
    assert float(tc.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_losses_from_targets_read_once_equal_those_read_for_the_window() -> None:
    torch.manual_seed(0)
    data = _WindowData()
    data._labels[0, :, :5] = 255  # noqa: SLF001 - a target on part of frame 0 only
    tuner = FineTuner(_StrideTwoNet(), FinetuneConfig(loss_stride=2, crop=0.5, class_balance=0.0, anchor_windows=True))
    tuner._weight = None  # noqa: SLF001 - run() sets it from the annotations
    window = (1, 3, 1, 3)
    read_once = tuner._losses(data, 0, 1, window, tuner._pair_targets(data, 0, 1))  # noqa: SLF001
    for got, expected in zip(read_once, tuner._losses(data, 0, 1, window)):  # noqa: SLF001
        assert float(got.detach()) == float(expected.detach())


def test_tap_strides_from_shapes() -> None:
    from hvsa.finetune import tap_strides

    taps = [torch.zeros(1, 1, -(-270 // s), -(-480 // s)) for s in (4, 8, 16, 32)]  # "same" padding rounds up
    assert tap_strides(taps, (270, 480)) == (4, 8, 16, 32)
    assert tap_strides([torch.zeros(1, 1, 8, 8)], (8, 8)) == (1,)


def test_training_windows_lie_inside_the_frame_with_the_asked_size() -> None:
    data = _TinyData()
    data.frame_hw = (270, 480)  # 9 x 15 cells of 32 px
    data.taps = lambda t: [torch.zeros(1, 1, 68, 120), torch.zeros(1, 1, 9, 15)]  # strides 4 and 32
    Net = _TinyNet  # noqa: N806
    tuner = FineTuner(Net(), FinetuneConfig(crop=0.5))
    rng = np.random.default_rng(0)
    windows = {tuner._window(data, rng) for _ in range(300)}  # noqa: SLF001
    assert {(y1 - y0, x1 - x0) for y0, y1, x0, x1 in windows} == {(4, 8)}
    assert min(w[0] for w in windows) == 0 and max(w[1] for w in windows) == 9
    assert min(w[2] for w in windows) == 0 and max(w[3] for w in windows) == 15
    assert FineTuner(Net(), FinetuneConfig(crop=1.0))._window(data, rng) is None  # noqa: SLF001
    with pytest.raises(InputError, match="crop"):
        FinetuneConfig(crop=0.0)


def test_cells_holding_marks_the_cells_with_a_true_pixel_partial_cells_included() -> None:
    mask = np.zeros((5, 7), bool)
    mask[1, 1] = True  # cell (0, 0)
    mask[4, 6] = True  # the partial corner cell (1, 2)
    assert cells_holding(mask, 3).tolist() == [[True, False, False], [False, False, True]]
    assert cells_holding(np.zeros((4, 4), bool), 2).tolist() == [[False, False], [False, False]]


def test_windows_holding_lists_the_placements_that_cover_a_true_cell() -> None:
    cells = np.zeros((3, 4), bool)
    cells[1, 2] = True
    # 2 x 2 windows: rows 0-1 or 1-2 both cover row 1; columns starting at 1 or 2 cover column 2
    assert windows_holding(cells, 2, 2).tolist() == [[False, True, True], [False, True, True]]
    assert windows_holding(cells, 3, 4).tolist() == [[True]]
    assert not windows_holding(np.zeros((3, 4), bool), 1, 1).any()
    with pytest.raises(ValueError, match="does not fit"):
        windows_holding(cells, 4, 1)


def _frame_of_cells(data: _TinyData) -> _TinyData:
    """``data`` with 270 x 480 frames, taps of strides 4 and 32 (9 x 15 cells of 32 px)."""
    data.frame_hw = (270, 480)
    data.taps = lambda t: [torch.zeros(1, 1, 68, 120), torch.zeros(1, 1, 9, 15)]
    return data


def test_anchored_windows_are_drawn_uniformly_from_those_holding_an_annotated_pixel() -> None:
    data = _frame_of_cells(_TinyData())
    tile = np.zeros((270, 480), bool)
    tile[200:240, 80:120] = True  # one 40 px tile: cell rows 6-7, columns 2-3
    holding = {(y0, y0 + 4, x0, x0 + 8) for y0 in range(3, 6) for x0 in range(0, 4)}  # 4 x 8 windows
    anchored = FineTuner(_TinyNet(), FinetuneConfig(crop=0.5, anchor_windows=True))
    rng = np.random.default_rng(0)
    draws = [anchored._window(data, rng, targets=tile) for _ in range(3000)]  # noqa: SLF001
    assert set(draws) == holding
    counts = np.array([draws.count(w) for w in sorted(holding)])
    assert counts.min() > 0.7 * 3000 / 12 and counts.max() < 1.3 * 3000 / 12  # 250 each if uniform
    plain = FineTuner(_TinyNet(), FinetuneConfig(crop=0.5, anchor_windows=False))
    misses = [w for w in (plain._window(data, rng, targets=tile) for _ in range(300)) if w not in holding]  # noqa: SLF001
    assert len(misses) > 150  # 72 of the 84 placements miss the tile


def test_anchoring_leaves_the_windows_of_a_whole_annotated_frame_draw_for_draw() -> None:
    data = _frame_of_cells(_TinyData())
    whole = np.ones((270, 480), bool)
    windows = {}
    for anchor in (False, True):
        tuner = FineTuner(_TinyNet(), FinetuneConfig(crop=0.5, anchor_windows=anchor))
        rng = np.random.default_rng(3)
        windows[anchor] = [tuner._window(data, rng, targets=whole) for _ in range(100)]  # noqa: SLF001
    assert windows[True] == windows[False]


def test_anchored_windows_give_every_annotated_item_a_cross_entropy() -> None:
    class Corner(_TinyData):  # only the top-left 2 x 2 pixels of frame 0 are annotated
        def annotation(self, t: int) -> np.ndarray | None:
            a = super().annotation(t)
            if a is not None:
                a[2:, :] = 255
                a[:, 2:] = 255
            return a

    for anchor in (False, True):
        ce: list[float] = []
        cfg = FinetuneConfig(lr=0.1, min_steps=1, crop=0.5, annotated_share=1.0, view_share=0.0, anchor_windows=anchor)
        FineTuner(_TinyNet(), cfg).run(Corner(), np.random.default_rng(0), steps=60,
                                       on_step=lambda step, total, s: ce.append(s["ce"]))
        if anchor:
            assert min(ce) > 0
        else:  # 4 x 4 windows of an 8 x 8 frame: 21 of 25 placements miss the corner
            assert sum(c == 0 for c in ce) > 30


def test_target_pixels_of_a_pair_are_the_union_of_its_frames() -> None:
    data = _WindowData()
    tuner = FineTuner(_TinyNet(), FinetuneConfig(crop=0.5, anchor_windows=True))
    data._labels[0, :4] = 255  # noqa: SLF001 - frame 0: the bottom half annotated
    data._labels[1, :, :] = 255  # noqa: SLF001
    data._labels[1, 0, 0] = 1  # noqa: SLF001 - frame 1: one pixel
    union = tuner._target_pixels(tuner._pair_targets(data, 0, 1))  # noqa: SLF001
    assert union[4:].all() and union[0, 0] and union[:4].sum() == 1
    data.annotated = []
    data.annotation = lambda t: None
    assert tuner._target_pixels(tuner._pair_targets(data, 0, 1)) is None  # noqa: SLF001
    unanchored = FineTuner(_TinyNet(), FinetuneConfig(crop=0.5, anchor_windows=False))
    assert unanchored._target_pixels(unanchored._pair_targets(_WindowData(), 0, 1)) is None  # noqa: SLF001


class _ViewData(_TinyData):
    """_TinyData whose annotated frame also has views: each is the frame mirrored (taps and
    labels), whatever its scale, so a view teaches the same rule as the frame."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def view(self, t: int, view) -> tuple[list[torch.Tensor], np.ndarray]:  # noqa: ANN001
        self.asked.append(view.name)
        return [self._taps[0].flip(-1)], self.annotation(t)[:, ::-1].copy()


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_view_items_train_on_the_views(share: float) -> None:
    torch.manual_seed(0)
    net, data = _TinyNet(), _ViewData()
    cfg = FinetuneConfig(lr=0.5, min_steps=1, lambda_tc=1.0, crop=1.0, annotated_share=1.0, view_share=share)
    stats = FineTuner(net, cfg).run(data, np.random.default_rng(0), steps=120)
    if share == 0:
        assert stats["view_items"] == 0 and data.asked == []
    else:  # every item is a view, of every kind, and the mirrored rule still labels frame 1
        assert stats["view_items"] == 120 and set(data.asked) == {"s1f", "s0.75", "s0.75f", "s1.25", "s1.25f"}
    with torch.no_grad():
        pred = net.decode(data.taps(1)).argmax(1)[0]
    assert pred[:, :4].eq(0).all() and pred[:, 4:].eq(1).all()


def test_view_windows_have_the_frames_window_size() -> None:
    data = _TinyData()
    data.frame_hw = (270, 480)  # 9 x 15 cells of 32 px
    data.taps = lambda t: [torch.zeros(1, 1, 68, 120), torch.zeros(1, 1, 9, 15)]  # strides 4 and 32
    tuner = FineTuner(_TinyNet(), FinetuneConfig(crop=0.5))
    rng = np.random.default_rng(0)
    big = {tuner._window(data, rng, (338, 600)) for _ in range(300)}  # noqa: SLF001 - 11 x 19 cells
    assert {(y1 - y0, x1 - x0) for y0, y1, x0, x1 in big} == {(4, 8)}
    assert max(w[1] for w in big) == 11 and max(w[3] for w in big) == 19
    small = {tuner._window(data, rng, (64, 96)) for _ in range(50)}  # noqa: SLF001 - 2 x 3 cells
    assert small == {(0, 2, 0, 3)}
    with pytest.raises(InputError, match="view-share"):
        FinetuneConfig(view_share=1.5)


class _HalfAnnotatedData(_TinyData):
    """_TinyData with only the left half of frame 0 annotated (class 0), and labels from before
    the fine-tuning that are right (left half 0, right half 1) with confidence 0.9, but for one
    column of 0.4, on both frames."""

    def annotation(self, t: int) -> np.ndarray | None:
        if t != 0:
            return None
        a = np.full((8, 8), 255, np.uint8)
        a[:, :4] = 0
        return a

    def prediction(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.zeros((8, 8), np.uint8)
        labels[:, 4:] = 1
        conf = np.full((8, 8), 0.9, np.float32)
        conf[:, 4:5] = 0.4
        return labels, conf


@pytest.mark.parametrize("hold", [0.0, 0.5])
def test_hold_unseen_keeps_a_class_nobody_annotated(hold: float) -> None:
    torch.manual_seed(0)
    net, data = _TinyNet(), _HalfAnnotatedData()
    cfg = FinetuneConfig(lr=0.5, min_steps=1, lambda_tc=0.0, crop=1.0, loss_stride=1, hold_unseen=hold)
    stats = FineTuner(net, cfg).run(data, np.random.default_rng(0), steps=120)
    with torch.no_grad():
        pred = net.decode(data.taps(1)).argmax(1)[0]
    assert pred[:, :4].eq(0).all()
    if hold == 0:  # the paper: only class 0 was ever a target, so class 1 is gone
        assert stats["unseen_classes"] == [] and pred.eq(0).all()
    else:
        assert stats["unseen_classes"] == [1] and pred[:, 4:].eq(1).all()


def test_hold_unseen_targets() -> None:
    data = _HalfAnnotatedData()
    tuner = FineTuner(_TinyNet(), FinetuneConfig(min_steps=1, hold_unseen=0.5))
    tuner.run(data, np.random.default_rng(0), steps=1)
    grid = (slice(None), slice(None))
    held = np.zeros((8, 8), np.int64)  # the labels from before, but where their confidence is 0.4 < 0.5
    held[:, 4] = 255
    held[:, 5:] = 1
    np.testing.assert_array_equal(tuner._target(data, 1, grid), held)  # noqa: SLF001 - unannotated
    np.testing.assert_array_equal(tuner._target(data, 0, grid), held)  # noqa: SLF001 - annotation + held
    data.annotation = lambda t: np.where(_HalfAnnotatedData.annotation(data, 0) == 255, 255, 1).astype(np.uint8) \
        if t == 0 else None  # the annotation disagrees with the labels from before: it wins
    tuner.run(data, np.random.default_rng(0), steps=1)
    assert (tuner._target(data, 0, grid)[:, :4] == 1).all()  # noqa: SLF001
    # once every class has an annotated pixel, nothing is held
    data.annotation = lambda t: _TinyData.annotation(data, t)
    assert tuner.run(data, np.random.default_rng(0), steps=1)["unseen_classes"] == []
    assert tuner._target(data, 1, grid) is None  # noqa: SLF001 - unannotated and nothing held
    np.testing.assert_array_equal(tuner._target(data, 0, grid), _TinyData.annotation(data, 0))  # noqa: SLF001
    with pytest.raises(InputError, match="hold-unseen"):
        FinetuneConfig(hold_unseen=1.5)


class _PropagatedData(_HalfAnnotatedData):
    """_HalfAnnotatedData with labels propagated to both frames: class 1 everywhere, confident
    (0.95) on columns 0-1 and 6-7, not (0.5) on columns 2-5."""

    def propagated(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        conf = np.full((8, 8), 0.5, np.float32)
        conf[:, :2] = conf[:, 6:] = 0.95
        return np.ones((8, 8), np.uint8), conf


def test_anchored_windows_also_count_held_labels_as_targets() -> None:
    data = _HalfAnnotatedData()  # frame 1 is not annotated; the hold labels it but for column 4
    tuner = FineTuner(_TinyNet(), FinetuneConfig(min_steps=1, crop=0.5, hold_unseen=0.5, anchor_windows=True))
    tuner.run(data, np.random.default_rng(0), steps=1)
    expected = np.ones((8, 8), bool)
    expected[:, 4] = False  # held labels of confidence 0.4 are not targets
    np.testing.assert_array_equal(tuner._target_pixels(tuner._pair_targets(data, 1, 1)), expected)  # noqa: SLF001
    data.prediction = lambda t: (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.float32))  # nothing confident
    assert not tuner._target_pixels(tuner._pair_targets(data, 1, 1)).any()  # noqa: SLF001


def test_propagated_targets_fill_what_the_annotations_leave_before_the_hold() -> None:
    data, grid = _PropagatedData(), (slice(None), slice(None))
    off = FineTuner(_TinyNet(), FinetuneConfig(min_steps=1, hold_unseen=0.0))
    off.run(data, np.random.default_rng(0), steps=1)
    assert off._target(data, 1, grid) is None  # noqa: SLF001 - the paper: annotated pixels only
    on = FineTuner(_TinyNet(), FinetuneConfig(min_steps=1, hold_unseen=0.0, propagated_targets=0.9))
    on.run(data, np.random.default_rng(0), steps=1)
    expected = np.full((8, 8), 255, np.int64)
    expected[:, :2] = expected[:, 6:] = 1  # confident enough; columns 2-5 are not
    np.testing.assert_array_equal(on._target(data, 1, grid), expected)  # noqa: SLF001
    expected[:, :4] = 0  # frame 0: the annotation wins where it labels
    np.testing.assert_array_equal(on._target(data, 0, grid), expected)  # noqa: SLF001
    # with the hold (class 1 is unseen), the labels from before fill what is left
    both = FineTuner(_TinyNet(), FinetuneConfig(min_steps=1, hold_unseen=0.5, propagated_targets=0.9))
    both.run(data, np.random.default_rng(0), steps=1)
    expected = np.full((8, 8), 255, np.int64)
    expected[:, :2] = expected[:, 6:] = 1  # propagated
    expected[:, 2:4] = 0  # held: 0 before, with confidence 0.9
    expected[:, 5] = 1  # held: column 4's 0.4 is below the hold's 0.5
    np.testing.assert_array_equal(both._target(data, 1, grid), expected)  # noqa: SLF001
    with pytest.raises(InputError, match="propagated-targets"):
        FinetuneConfig(propagated_targets=1.5)
