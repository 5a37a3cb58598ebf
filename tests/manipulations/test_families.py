"""Manipulation families as affine maps: the images they give, and refused input."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from hybridver.manipulations import ManipulationError, image_layout, manipulation_spec

SHAPE = (1, 1, 4, 4)
X0 = np.arange(16, dtype=np.float64).reshape(SHAPE) / 20.0


def spec(*families, **kw):
    return manipulation_spec(X0, 1, families, SHAPE, 3, **kw)


def test_brightness_and_contrast_images():
    s = spec("brightness=0.1")
    assert s.n_params == 1 and s.amap.upper[0] >= 0.1 >= s.amap.lower[0] * -1
    np.testing.assert_allclose(s.images([0.05])[0], X0.ravel() + 0.05)
    s = spec("contrast=0.2")
    np.testing.assert_allclose(s.images([-0.2])[0], 0.8 * X0.ravel())
    s = spec("brightness=0.1", "contrast=0.2")  # summed: c*x0 + b
    np.testing.assert_allclose(s.images([0.1, 0.2])[0], 1.2 * X0.ravel() + 0.1)


def test_patch_moves_only_its_pixels_and_occlusion_frees_them():
    s = spec("patch=2x3@1,1:0.3")
    assert s.n_params == 6 and s.amap.labels[0] == "patch[1,1]"
    img = s.images(np.full(6, 0.3))[0].reshape(4, 4)
    moved = np.zeros((4, 4), bool)
    moved[1:3, 1:4] = True
    np.testing.assert_allclose(img[moved], X0[0, 0][moved] + 0.3)
    np.testing.assert_array_equal(img[~moved], X0[0, 0][~moved])
    s = spec("occlude=1x2@3,2", clip=(0.0, 1.0))
    assert list(s.amap.lower) == [0, 0] and list(s.amap.upper) == [1, 1]
    img = s.images([0.25, 0.75])[0].reshape(4, 4)
    assert img[3, 2] == 0.25 and img[3, 3] == 0.75 and img[0, 0] == X0[0, 0, 0, 0]


def test_sequence_brightness_then_occlusion_is_affine():
    s = spec("brightness=0.1>occlude=1x1@0,0")
    img = s.images([0.1, 0.5])[0]
    assert img[0] == 0.5  # the occluded pixel ignores the brightness change
    np.testing.assert_allclose(img[1:], X0.ravel()[1:] + 0.1)


def test_norm_families_box_and_ball():
    s = spec("l2=0.5")
    assert s.n_params == 16 and np.all(s.amap.upper >= 0.5) and len(s.amap.norms) == 1
    assert s.amap.norms[0].order == 2 and s.amap.norms[0].eps == 0.5
    s = spec("l1=0.5", "linf=0.1")
    assert s.n_params == 32 and [g.columns[0] for g in s.amap.norms] == [0]


def test_exact_bounds_are_kept_for_decimal_deltas():
    s = spec("brightness=0.1")
    assert s.amap.exact_upper == (Fraction(1, 10),)
    box = s.parameter_spec().cases[0].region
    # the box is exactly [-1/10, 1/10]: the float 0.1 lies just above 1/10
    assert box.contains(np.array([np.nextafter(0.1, 0)])) and not box.contains(np.array([0.1]))


@pytest.mark.parametrize("families, match", [
    (["blur=0.1"], "unknown manipulation family 'blur'"),
    (["brightness"], "needs a value"),
    (["brightness=-0.1"], "not a non-negative decimal"),
    (["patch=3x3@2,2:0.1"], "does not fit the 4x4 image"),
    (["patch=2x2@0,0"], "expected patch=HxW@ROW,COL:DELTA"),
    (["occlude=2x2@0,0:0.3"], "expected occlude=HxW@ROW,COL"),
    (["brightness=0.1>contrast=0.1"], "is not affine"),
    (["contrast=0.1>contrast=0.1"], "is not affine"),
    (["contrast=1.5"], "would be negative"),
    ([], "no manipulation family"),
])
def test_bad_families_are_refused(families, match):
    with pytest.raises(ManipulationError, match=match):
        spec(*families)


def test_bad_point_label_and_grid():
    with pytest.raises(ManipulationError, match="the point has 15 entries"):
        manipulation_spec(np.zeros(15), 0, ["brightness=0.1"], SHAPE, 3)
    with pytest.raises(ManipulationError, match="label 3 is not in 0..2"):
        manipulation_spec(X0, 3, ["brightness=0.1"], SHAPE, 3)
    with pytest.raises(ManipulationError, match="not a grid image: entry 1"):
        spec("brightness=0.1", grid=16)  # 0.05 is no multiple of 1/16
    assert spec("brightness=0.1", grid=20).grid == 20


def test_image_layouts():
    assert image_layout((1, 64)) == image_layout((64,)) and image_layout((64,)).height == 8
    assert image_layout((1, 3, 5, 7)).channels == 3
    assert image_layout((1, 12), (3, 4)).width == 4
    with pytest.raises(ManipulationError, match="cannot read the model input"):
        image_layout((1, 12))
    with pytest.raises(ManipulationError, match="does not fit"):
        image_layout((1, 12), (5, 4))
    lay = image_layout((1, 2, 3, 3))
    np.testing.assert_array_equal(lay.patch_indices(1, 2, 2, 1), [7, 8, 16, 17])
