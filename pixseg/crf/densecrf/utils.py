"""pydensecrf.utils' helpers: unary energies from probabilities or labels, and pairwise features for
`DenseCRF.addPairwiseEnergy` on images of any number of dimensions. Same arguments, same float32
results."""

from numbers import Number

import numpy as np


def unary_from_softmax(sm, scale=None, clip=1e-5):
    """-log(probabilities) as labels x pixels float32 energies, from `sm` with the labels first (the
    other axes are flattened). scale in (0, 1]: mix with the uniform distribution, so that a
    probability of 1 becomes `scale`; clip: the least probability (None: no clipping, and a
    probability of 0 has the energy +inf)."""
    sm = np.asarray(sm)
    labels = sm.shape[0]
    if scale is not None:
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale!r}")
        sm = scale * sm + np.float64((1 - scale) * (1.0 / labels))  # the sum in float64, as the reference
    if clip is not None:
        sm = np.clip(sm, clip, 1.0)
    with np.errstate(divide="ignore"):
        return -np.log(sm).reshape(labels, -1).astype(np.float32)


def unary_from_labels(labels, n_labels, gt_prob, zero_unsure=True):
    """Energies (n_labels x pixels float32) of a classifier that gives each pixel's annotated label
    probability gt_prob and shares the rest evenly. With zero_unsure, the value 0 means "unknown"
    (uniform over the labels) and label values 1..n_labels stand for labels 0..n_labels-1."""
    if not 0 < gt_prob < 1:
        raise ValueError(f"gt_prob must be in (0, 1), got {gt_prob!r}")
    labels = np.asarray(labels).ravel()
    index = labels - 1 if zero_unsure else labels
    known = labels != 0 if zero_unsure else np.ones(labels.size, bool)
    if known.any() and (index[known].min() < 0 or index[known].max() >= n_labels):
        raise ValueError(f"label values must be in {'1' if zero_unsure else '0'}..{n_labels - (0 if zero_unsure else 1)}"
                         f" (n_labels={n_labels}, zero_unsure={zero_unsure}), got {labels.min()}..{labels.max()}")
    energies = np.full((n_labels, labels.size), -np.log((1.0 - gt_prob) / (n_labels - 1)), np.float32)
    energies[index[known], np.flatnonzero(known)] = -np.log(gt_prob)
    if zero_unsure:
        energies[:, ~known] = -np.log(1.0 / n_labels)
    return energies


def create_pairwise_gaussian(sdims, shape):
    """Positions over bandwidths: len(shape) x prod(shape) float32 features, axis i's coordinate
    divided by sdims[i] (for a 2-D image, (y / sy, x / sx), the order of `shape`)."""
    if len(sdims) != len(shape):
        raise ValueError(f"sdims has {len(sdims)} bandwidths for a shape of {len(shape)} dimensions")
    grid = np.array(np.meshgrid(*[np.arange(size) for size in shape], indexing="ij"), np.float32)
    for axis, bandwidth in enumerate(sdims):
        grid[axis] /= bandwidth
    return grid.reshape(len(sdims), -1)


def create_pairwise_bilateral(sdims, schan, img, chdim=-1):
    """Positions over sdims followed by the image's channels over schan (one number for all or one
    per channel): (dims + channels) x pixels float32. chdim: the image's channel axis, -1 when it
    has none (one channel)."""
    channels = np.asarray(img)[np.newaxis] if chdim == -1 else np.moveaxis(np.asarray(img), chdim, 0)
    channels = channels.astype(np.float32)
    bandwidths = [schan] * channels.shape[0] if isinstance(schan, Number) else list(schan)
    if len(bandwidths) != channels.shape[0]:
        raise ValueError(f"schan has {len(bandwidths)} bandwidths for an image of {channels.shape[0]} channels")
    for c, bandwidth in enumerate(bandwidths):
        channels[c] /= bandwidth
    positions = create_pairwise_gaussian(sdims, channels.shape[1:])
    return np.vstack([positions, channels.reshape(channels.shape[0], -1)])
