"""Registration with SimpleITK: the four sequences onto one (rigid), that one onto the atlas (affine).

Same-session sequences share the scanner's coordinates, so co-registration starts from the identity
and only corrects head motion between series (rigid, 6 parameters). The atlas has its own
coordinates: that registration starts by matching centres of mass, then a rigid and an affine
stage (12 parameters: head size and shape differ between people). Both use Mattes mutual
information (32 bins), which compares contrasts that are not alike (FLAIR against T1, a patient's
T1 against the atlas's), on a coarse-to-fine pyramid with a fixed sampling seed, so a study gives
the same transforms on every run.

Transforms follow ITK's convention: a registration's transform maps points of the fixed image to
the moving one, so `to_grid` pulls each native voxel onto the atlas grid in one interpolation
(never resampled twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

SEED = 20231
BINS = 32


@dataclass(frozen=True)
class Fit:
    """A registration's result and how well it went (for the report)."""

    transform: Any
    """A rigid (Euler3D), affine or B-spline transform."""
    metric: float
    """Final Mattes MI (negative; lower is a better fit)."""
    stop: str

    def parameters(self) -> list[float]:
        tx = self.transform
        if isinstance(tx, sitk.CompositeTransform):
            tx = tx.GetBackTransform()
        return [round(float(p), 5) for p in tx.GetParameters()]


def _central_differences(r: sitk.ImageRegistrationMethod) -> None:
    """Image gradients by central differences at each sample, not by ITK's gradient image filter:
    with the filter, on series stored with flipped axes (LAS, as scanners write axial series), the
    optimiser climbed *away* from a perfect alignment (FLAIR onto T1 of one synthetic head: mutual
    information -0.45 at the identity, -0.39 after 50 steps and 8 mm off); with central differences
    it stays within 0.5 mm."""
    r.SetMetricUseFixedImageGradientFilter(False)
    r.SetMetricUseMovingImageGradientFilter(False)


def _method(
    shrink: list[int], smooth_mm: list[float], sampling: float, iterations: int
) -> sitk.ImageRegistrationMethod:
    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=BINS)
    _central_differences(r)
    r.SetMetricSamplingStrategy(r.RANDOM)
    r.SetMetricSamplingPercentage(sampling, SEED)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0,
        minStep=1e-4,
        numberOfIterations=iterations,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-6,
    )
    r.SetOptimizerScalesFromPhysicalShift()
    r.SetShrinkFactorsPerLevel(shrink)
    r.SetSmoothingSigmasPerLevel(smooth_mm)
    r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return r


def _head_mask(img: sitk.Image) -> sitk.Image:
    """Where the head is (Otsu above background), so air and neighbouring noise do not vote."""
    return sitk.OtsuThreshold(img, 0, 1, 128)


def brain_mi(fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image, tx: sitk.Transform) -> float:
    """Mattes MI over every voxel of `mask` (no sampling): the judge between candidate transforms."""
    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=BINS)
    r.SetMetricSamplingStrategy(r.NONE)
    r.SetMetricFixedMask(mask)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetInitialTransform(tx)
    return float(r.MetricEvaluate(fixed, moving))


def coregister(
    fixed: sitk.Image, moving: sitk.Image, brain: sitk.Image, starts: Sequence[sitk.Euler3DTransform] = ()
) -> Fit:
    """Rigid transform (fixed -> moving points) between two series of one session.

    Only the brain votes (`brain`: the atlas brain carried into the fixed series, dilated), so scalp,
    neck and the edges of a 5 mm slab do not. Scanner coordinates are usually right but not always
    (patients move; converted headers lie), and mutual information between a T1 and a T2 at 5 mm has
    false minima, so the optimiser starts from the identity and from each transform already found for
    another series of the study (series planned together move together), and the start whose result
    fits the brain best wins (full-brain MI). On TCGA_FG_6692 the T2 from the identity stopped 18 mm
    off (QC picture), while started from the FLAIR's transform it lands with the others."""
    centre = fixed.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in fixed.GetSize()])
    best: Fit | None = None
    for start in [None, *starts]:
        tx = sitk.Euler3DTransform()
        tx.SetCenter(centre)
        if start is not None:
            tx.SetMatrix(start.GetMatrix())
            tx.SetTranslation(
                np.array(start.GetTranslation())
                + np.array(start.GetCenter())
                - centre
                - (np.array(start.GetMatrix()).reshape(3, 3) @ (np.array(start.GetCenter()) - centre))
            )
        r = _method([2, 1], [1.0, 0.0], 0.15, 100)
        r.SetOptimizerAsRegularStepGradientDescent(
            learningRate=0.3, minStep=1e-4, numberOfIterations=100, relaxationFactor=0.6
        )
        r.SetOptimizerScalesFromPhysicalShift()
        r.SetMetricFixedMask(brain)
        r.SetInitialTransform(tx, inPlace=True)
        r.Execute(fixed, moving)
        fit = Fit(tx, brain_mi(fixed, moving, brain, tx), r.GetOptimizerStopConditionDescription())
        if best is None or fit.metric < best.metric:
            best = fit
    assert best is not None
    return best


def register_to_atlas(atlas: sitk.Image, moving: sitk.Image) -> Fit:
    """Affine transform (atlas -> native points): centres of mass, then rigid, then affine.

    On the atlas at 2 mm (the native series have 5 mm slices: a 1 mm level adds time, not
    information); 8 -> 4 -> 2 mm rigid, 4 -> 2 mm affine."""
    atlas2 = sitk.BinShrink(atlas, [2, 2, 2])
    init = sitk.CenteredTransformInitializer(
        atlas2, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    rigid = sitk.Euler3DTransform(init)
    r = _method([4, 2, 1], [4.0, 2.0, 1.0], 0.1, 200)
    r.SetInitialTransform(rigid, inPlace=True)
    r.Execute(atlas2, moving)
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())
    affine.SetCenter(rigid.GetCenter())
    r = _method([2, 1], [2.0, 1.0], 0.1, 200)
    r.SetInitialTransform(affine, inPlace=True)
    r.Execute(atlas2, moving)
    return Fit(affine, float(r.GetMetricValue()), r.GetOptimizerStopConditionDescription())


def brain_in(native: sitk.Image, atlas_brain: sitk.Image, to_atlas: Fit) -> sitk.Image:
    """The atlas brain carried into a native series (nearest neighbour), dilated by ~3 mm: the region
    whose fit co-registration judges."""
    inverse = to_atlas.transform.GetInverse()
    mask = sitk.Resample(atlas_brain, native, inverse, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    radius = [max(1, round(3.0 / s)) for s in native.GetSpacing()]
    return sitk.BinaryDilate(mask, radius)


def to_grid(moving: sitk.Image, reference: sitk.Image, *transforms: sitk.Transform) -> sitk.Image:
    """`moving` resampled onto `reference`'s grid; transforms in the order points travel
    (reference -> ... -> moving), linear interpolation, 0 outside the native field of view."""
    chain = sitk.CompositeTransform(list(reversed(transforms))) if len(transforms) > 1 else transforms[0]
    return sitk.Resample(moving, reference, chain, sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def matrix_of(fit: Fit) -> list[list[float]]:
    """The 4 x 4 homogeneous matrix (LPS, fixed -> moving) of a rigid or affine fit, for the report."""
    tx = fit.transform
    m = np.eye(4)
    m[:3, :3] = np.array(tx.GetMatrix()).reshape(3, 3)
    c = np.array(tx.GetCenter())
    m[:3, 3] = np.array(tx.GetTranslation()) + c - m[:3, :3] @ c
    return [[round(float(v), 5) for v in row] for row in m]


def refine_to_head(atlas: sitk.Image, t1_grid: sitk.Image, mesh: int = 6, iterations: int = 40) -> Fit:
    """A smooth deformation (B-spline, `mesh` control cells per axis) that carries the atlas onto
    this head after the affine: the brain's own shape, which an affine cannot follow.

    Fixed: the patient's T1 on the atlas grid; moving: the atlas. Coarse (4 mm, then 2 mm) and few
    control points, so it bends the brain outline without inventing detail the 5 mm slices of a
    clinical series do not have."""
    tx = sitk.BSplineTransformInitializer(t1_grid, [mesh] * 3, order=3)
    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=BINS)
    _central_differences(r)
    r.SetMetricSamplingStrategy(r.RANDOM)
    r.SetMetricSamplingPercentage(0.05, SEED)
    r.SetMetricFixedMask(sitk.Cast(t1_grid > 0, sitk.sitkUInt8))
    r.SetInterpolator(sitk.sitkLinear)
    r.SetOptimizerAsLBFGSB(
        gradientConvergenceTolerance=1e-5, numberOfIterations=iterations, maximumNumberOfCorrections=5
    )
    r.SetShrinkFactorsPerLevel([4, 2])
    r.SetSmoothingSigmasPerLevel([2.0, 1.0])
    r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    r.SetInitialTransform(tx, inPlace=True)
    r.Execute(t1_grid, atlas)
    return Fit(tx, float(r.GetMetricValue()), r.GetOptimizerStopConditionDescription())
