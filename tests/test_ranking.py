"""The proposal ranker: its features and targets, that it learns which proposals are objects, and storage."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixseg.objectness import Proposals, objectness_from_proposals, pixel_objectness
from pixseg.objectness.learned import BoundaryModel, load_boundary_model, train_boundary_model
from pixseg.objectness.perceptron import Perceptron
from pixseg.objectness.pos import learned_objectness
from pixseg.objectness.ranking import FEATURES, proposal_features, proposal_overlaps, train_proposal_ranker
from tests.test_learned_boundaries import with_void_band

PROPOSAL_OPTIONS = {"n_superpixels": 120}


def banded_scene(seed, size=64):
    """A background of three horizontal bands of different colours (sky, field, ground: each touches
    both image sides) with one or two objects of random colour inside, and a void band on the objects'
    outlines as VOC masks have. Many proposals are pieces of the background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    band = np.digitize(y, np.sort(rng.integers(size // 5, 4 * size // 5, 2)))
    image = np.zeros((size, size, 3))
    for value in range(3):
        image[band == value] = rng.integers(30, 226, 3)
    classes = np.zeros((size, size), np.uint8)
    for value in (1, 2)[: 1 + seed % 2]:
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        ry, rx = rng.integers(size // 10, size // 5, 2)
        inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
        image[inside] = rng.integers(0, 256, 3)
        classes[inside] = value
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), with_void_band(classes)


@pytest.fixture(scope="module")
def boundary_model():
    return train_boundary_model([banded_scene(seed) for seed in range(8)], pixels_per_image=600, iterations=150)


def ratios_and_scores(model, seeds):
    """Per unseen scene: object / background ratio of the weighted and of the plain objectness; and the
    ranker's scores of all proposals with their true overlaps."""
    weighted, plain, scores, overlaps = [], [], [], []
    for seed in seeds:
        image, classes = banded_scene(seed)
        proposals, pos = learned_objectness(image, model, **PROPOSAL_OPTIONS)
        fraction = objectness_from_proposals(proposals)
        inside, outside = (classes > 0) & (classes != 255), classes == 0
        weighted.append(pos[inside].mean() / max(pos[outside].mean(), 1e-9))
        plain.append(fraction[inside].mean() / max(fraction[outside].mean(), 1e-9))
        scores.append(model.ranker(proposal_features(proposals, image, model.boundaries(image))))
        overlaps.append(proposal_overlaps(proposals, classes))
    return np.median(weighted), np.median(plain), np.concatenate(scores), np.concatenate(overlaps)


def test_the_ranker_learns_which_proposals_are_objects(boundary_model):
    training = [banded_scene(seed) for seed in range(8)]
    ranker = train_proposal_ranker(training, boundary_model, **PROPOSAL_OPTIONS)
    weighted, plain, scores, overlaps = ratios_and_scores(BoundaryModel(boundary_model.edges, ranker), range(100, 112))
    # Measured: weighted 30, plain 1.9; background pieces (IoU < 0.3) score 0.26 on average. The
    # ranker's random starting weights (no fitting) give a weighted ratio of 6.9 and 0.42.
    assert weighted > 8 * plain
    assert scores[overlaps < 0.3].mean() < 0.35
    assert scores[overlaps > 0.7].mean() > scores[overlaps < 0.3].mean() + 0.2


def test_overlaps_are_each_proposals_best_iou_with_an_object():
    labels = np.array([[0, 0, 1, 1],
                       [2, 2, 3, 3]], np.int32)
    classes = np.array([[0, 0, 5, 5],
                        [0, 0, 5, 255]], np.uint8)
    membership = np.array([[False, True, False, True],   # the object, its void pixel included
                           [False, True, False, False],  # half of it
                           [True, False, True, False],   # background only
                           [True, True, True, True]])    # the whole image
    overlaps = proposal_overlaps(Proposals(labels, membership), classes)
    np.testing.assert_allclose(overlaps, [1.0, 0.5, 0.0, 0.5])
    assert (proposal_overlaps(Proposals(labels, membership), np.zeros((2, 4), np.uint8)) == 0).all()


def test_features_describe_size_position_border_and_outline():
    labels = np.repeat(np.repeat(np.arange(9, dtype=np.int32).reshape(3, 3), 4, axis=0), 4, axis=1)
    image = np.full((12, 12, 3), 100, np.uint8)
    image[4:8, 4:8] = (250, 40, 40)
    boundaries = np.zeros((12, 12), np.float32)
    boundaries[4:8, [4, 7]] = boundaries[[4, 7], 4:8] = 0.8
    centre = np.zeros(9, bool)
    centre[4] = True
    membership = np.stack([centre, ~centre, np.ones(9, bool)])
    features = proposal_features(Proposals(labels, membership), image, boundaries)
    assert features.shape == (3, FEATURES) and np.isfinite(features).all()
    log_area, area, distance, _, _, border, outline = features[:, :7].T
    np.testing.assert_allclose(area, [16 / 144, 128 / 144, 1.0])
    np.testing.assert_allclose(log_area, np.log(area))
    np.testing.assert_allclose(distance[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(border, [0.0, 1.0, 1.0])
    np.testing.assert_allclose(outline[:2], [0.8, 0.8])
    # The red square against the grey around it, and the grey around against the square: one distance.
    contrast_around = features[:, 10]
    assert contrast_around[0] > 1
    assert contrast_around[1] == pytest.approx(contrast_around[0])


def test_weighted_objectness_counts_each_proposal_with_its_weight():
    labels = np.array([[0, 0, 1],
                       [2, 2, 1]], np.int32)
    membership = np.array([[True, True, False],
                           [True, False, False],
                           [False, False, True]])
    proposals = Proposals(labels, membership)
    plain = objectness_from_proposals(proposals)
    np.testing.assert_array_equal(objectness_from_proposals(proposals, np.ones(3)), plain)
    np.testing.assert_allclose(objectness_from_proposals(proposals, [0, 1, 0]), [[1, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(objectness_from_proposals(proposals, [3, 0, 1]),
                               [[0.75, 0.75, 0.75], [0.25, 0.25, 0.75]])
    assert (objectness_from_proposals(proposals, np.zeros(3)) == 0).all()
    for bad in ([1, 1], [1, -1, 0], [1, np.nan, 0]):
        with pytest.raises(ValueError, match="3 finite values"):
            objectness_from_proposals(proposals, bad)


def test_the_ranker_is_stored_with_the_boundary_model(boundary_model, tmp_path):
    training = [banded_scene(seed) for seed in range(3)]
    ranker = train_proposal_ranker(training, boundary_model, iterations=30, **PROPOSAL_OPTIONS)
    again = train_proposal_ranker(training, boundary_model, iterations=30, **PROPOSAL_OPTIONS)
    np.testing.assert_array_equal(ranker.hidden_weights, again.hidden_weights)
    model = BoundaryModel(boundary_model.edges, ranker)
    model.save(tmp_path / "with.npz")
    boundary_model.save(tmp_path / "without.npz")
    image, _ = banded_scene(50)
    with_ranker = pixel_objectness(image, boundary_method="learned", boundary_model=str(tmp_path / "with.npz"),
                                   **PROPOSAL_OPTIONS)
    np.testing.assert_array_equal(with_ranker, learned_objectness(image, model, **PROPOSAL_OPTIONS)[1])
    # A file without a ranker (as written before rankers existed) gives the plain fraction.
    assert load_boundary_model(tmp_path / "without.npz").ranker is None
    plain = pixel_objectness(image, boundary_method="learned", boundary_model=str(tmp_path / "without.npz"),
                             **PROPOSAL_OPTIONS)
    proposals = learned_objectness(image, boundary_model, **PROPOSAL_OPTIONS)[0]
    np.testing.assert_array_equal(plain, objectness_from_proposals(proposals))
    assert not np.array_equal(plain, with_ranker)


def test_a_broken_ranker_in_a_model_file_is_a_clear_error(boundary_model, tmp_path):
    broken = Perceptron(mean=np.zeros(FEATURES, np.float32), scale=np.ones(FEATURES, np.float32),
                        hidden_weights=np.zeros((FEATURES + 1, 4), np.float32), hidden_bias=np.zeros(4, np.float32),
                        output_weights=np.zeros(4, np.float32), output_bias=0.0)
    BoundaryModel(boundary_model.edges, broken).save(tmp_path / "broken.npz")
    with pytest.raises(ValueError, match="broken.npz.*inconsistent"):
        load_boundary_model(tmp_path / "broken.npz")
    BoundaryModel(boundary_model.edges, Perceptron.from_arrays(broken.arrays() | {
        "mean": np.zeros(4, np.float32), "scale": np.ones(4, np.float32),
        "hidden_weights": np.zeros((4, 4), np.float32)})).save(tmp_path / "other.npz")
    with pytest.raises(ValueError, match=f"other.npz: its proposal ranker takes 4 features, expected {FEATURES}"):
        load_boundary_model(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="needs boundary_model"):
        pixel_objectness(banded_scene(1)[0], boundary_method="learned")
    with pytest.raises(ValueError, match="no proposals"):
        train_proposal_ranker([(np.full((16, 16, 3), 90, np.uint8), np.zeros((16, 16), np.uint8))], boundary_model)


RANKED_SCRIPT = """
import hashlib, sys
import numpy as np
from pixseg.objectness.learned import load_boundary_model
from pixseg.objectness.pos import learned_objectness
from tests.test_ranking import PROPOSAL_OPTIONS, banded_scene

model = load_boundary_model(sys.argv[1])
digest = hashlib.sha256()
for seed in (60, 61):
    digest.update(learned_objectness(banded_scene(seed)[0], model, **PROPOSAL_OPTIONS)[1].tobytes())
print(digest.hexdigest())
"""


def test_ranked_objectness_is_the_same_to_the_bit_on_any_thread_count(boundary_model, tmp_path):
    training = [banded_scene(seed) for seed in range(4)]
    model = BoundaryModel(boundary_model.edges, train_proposal_ranker(training, boundary_model, iterations=60,
                                                                      **PROPOSAL_OPTIONS))
    model.save(tmp_path / "model.npz")
    digests = set()
    for threads in ("1", "4"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
               "MKL_NUM_THREADS": threads, "NUMBA_NUM_THREADS": threads}
        result = subprocess.run([sys.executable, "-c", RANKED_SCRIPT, str(tmp_path / "model.npz")], env=env,
                                capture_output=True, text=True, timeout=600, cwd=Path(__file__).parent.parent)
        assert result.returncode == 0, result.stderr
        digests.add(result.stdout.strip())
    assert len(digests) == 1
