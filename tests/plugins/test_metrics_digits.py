"""``digits_fd`` and ``digits_nn_copy`` on the 8x8 digits that scikit-learn ships (no download).

The built-in ``digits`` target hands out its train/held-out splits and their class labels, which is
all ``digits_fd`` asks of a data set. The classifier is trained once for the module, into a
temporary cache directory.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from scorelab_builtins.metrics import DigitsFD, DigitsNNCopy, _classifier
from scorelab_builtins.metrics.digits import copy_threshold, features, frechet_distance, nearest_distance
from scorelab_builtins.targets import Digits

sklearn_datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits, with the classifier cache in a temporary directory, on one thread (small
    matrices on a shared 2-core machine: see test_metrics_stein)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCORELAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setattr(_classifier, "_MEMORY", {})
        yield Digits()
    torch.set_num_threads(threads)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_capabilities(digits):
    assert {"data_splits", "labels"} <= digits.provides
    assert set(DigitsFD.requires) <= digits.provides and set(DigitsNNCopy.requires) <= digits.provides


def test_the_classifier_is_accurate_and_cached_on_disk(digits):
    # Against an independent baseline on the same held-out images: the nearest class mean, a linear rule
    # (argmax_k x.mu_k - |mu_k|^2 / 2) that the classifier's last layer can represent, so training that
    # works does better than it (90.3 % here; the classifier's misclassifications must be fewer).
    train, labels, held = digits.train_split(), digits.train_labels(), digits.held_out_split()
    net = _classifier.classifier(train, labels, torch.device("cpu"))
    accuracy = (net(held.to(torch.float64)).argmax(1) == digits.held_out_labels()).double().mean()
    flat = train.reshape(len(train), -1).double()
    means = torch.stack([flat[labels == k].mean(0) for k in range(10)])
    nearest_mean = torch.cdist(held.reshape(len(held), -1).double(), means).argmin(1)
    assert accuracy > (nearest_mean == digits.held_out_labels()).double().mean()
    files = list(_classifier.cache_dir().glob("classifier-*.pt"))
    assert len(files) == 1
    # A new process (memory cleared) loads the file instead of training: the same features exactly.
    _classifier._MEMORY.clear()
    again = _classifier.classifier(digits.train_split(), digits.train_labels(), torch.device("cpu"))
    x = digits.held_out_split()[:50]
    assert again is not net and torch.equal(features(again, x.double()), features(net, x.double()))
    # The key follows the data: another split, another network; float32 data, the same one.
    assert _classifier.data_key(digits.train_split(), digits.train_labels()) == _classifier.data_key(
        digits.train_split().float(), digits.train_labels())
    other = Digits(seed=1)
    assert _classifier.data_key(other.train_split(), digits.train_labels()) != files[0].stem.split("-")[1]


def test_frechet_distance_matches_scipy():
    # |mu_a - mu_b|^2 + tr(C_a + C_b - 2 sqrtm(C_a C_b)) with scipy's general matrix square root;
    # a rank-deficient C_a (fewer points than dimensions) included.
    g = np.random.default_rng(0)
    for n_a in (200, 5):
        a, b = g.normal(size=(n_a, 6)), g.normal(size=(300, 6)) @ g.normal(size=(6, 6)) + 0.5
        ca, cb = np.cov(a.T), np.cov(b.T)
        expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real)
        assert float(frechet_distance(torch.from_numpy(a), torch.from_numpy(b))) == pytest.approx(expected, rel=1e-8)


def test_fd_of_held_out_digits_is_far_below_that_of_noise(digits):
    # Measured: FD(held-out, train) = 2.07; noise with each pixel's training mean and standard
    # deviation (independent Gaussian) reads 57, uniform noise on [-1, 1] 110. Required: 10x apart.
    fd, train, held = DigitsFD(), digits.train_split(), digits.held_out_split()
    real = fd(held, train, digits)
    noise = train.mean(0) + train.std(0) * torch.randn(held.shape, generator=gen(1), dtype=torch.float64)
    assert 0 < real < 0.1 * fd(noise, train, digits)
    assert fd(held, train, digits) == real  # deterministic
    assert fd(held.float(), train.float(), digits) == pytest.approx(real, rel=1e-4)  # float32 runs
    # FD of a set with itself is 0 (to rounding), and it grows as held-out images are blurred into noise
    assert abs(fd(held, held, digits)) < 1e-8
    values = [fd((1 - t) * held + t * noise, train, digits) for t in (0.0, 0.25, 0.5, 1.0)]
    assert values == sorted(values)
    bad = held.clone()
    bad[0, 0, 0, 0] = float("nan")
    assert math.isnan(fd(bad, train, digits))


def test_nn_copy_flags_training_images_and_not_new_ones(digits):
    nn, train, held = DigitsNNCopy(), digits.train_split(), digits.held_out_split()
    # Each held-out image's distance to its nearest training image, computed here in one exact cdist.
    flat_held, flat_train = held.reshape(len(held), -1), train.reshape(len(train), -1)
    d = torch.cdist(flat_held, flat_train, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
    torch.testing.assert_close(nearest_distance(flat_held, flat_train), d, rtol=0, atol=0)  # in row blocks
    threshold = copy_threshold(digits, 0.01)
    assert threshold == pytest.approx(float(torch.quantile(d, 0.01)), rel=1e-12)  # its definition
    # Held-out images read the false-alarm rate: the linearly interpolated 1% quantile of m distances
    # lies between the k-th and (k+1)-th smallest, k = floor(0.01 (m - 1)) + 1 (4 of 359), so exactly
    # k of them are below it.
    m = len(held)
    assert nn(held, None, digits) == (math.floor(0.01 * (m - 1)) + 1) / m
    # Training images are copies, also with independent noise of sd s per pixel: one then lies s chi_64
    # from its original (mean 8 s, sd 0.71 s; over 300 images at most ~ 8 s + 4 x 0.71 s = 10.8 s), so
    # s = threshold / 16 keeps every one within 0.7 x threshold of a training image.
    copies, s = train[:300], threshold / 16
    assert nn(copies, None, digits) == 1.0
    assert nn(copies + s * torch.randn(copies.shape, generator=gen(2), dtype=torch.float64), None, digits) == 1.0
    # Uniform noise on [-1, 1]^64 lies sqrt(sum_i (1/3 + p_i^2)) >= sqrt(64 / 3) = 4.6 from any image p in
    # mean square, over twice the threshold (a 1% quantile of new digits' distances): never a copy.
    assert 2 * threshold < math.sqrt(64 / 3)
    noise = 2 * torch.rand(held.shape, generator=gen(3), dtype=torch.float64) - 1
    assert nn(noise, None, digits) == 0.0
    # Half copies, half new: the 100 copies plus the new images that happen to fall under the threshold.
    mixed = torch.cat([train[:100], held[:100]])
    assert nn(mixed, None, digits) == (100 + int((d[:100] < threshold).sum())) / 200
    # Pixels lie in [-1, 1], so no two images are farther apart than 2 sqrt(64) = 16: a threshold of 100
    # flags everything.
    assert DigitsNNCopy(threshold=100.0)(held, None, digits) == 1.0
    assert math.isnan(nn(torch.full_like(held[:3], float("nan")), None, digits))


@pytest.mark.parametrize("bad", [{"quantile": 0.0}, {"quantile": 1.0}, {"threshold": 0.0}])
def test_nn_copy_refuses_bad_hyperparameters(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        DigitsNNCopy(**bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(digits):
    held, train = digits.held_out_split(), digits.train_split()
    for metric in (DigitsFD(), DigitsNNCopy()):
        on_cpu = metric(held, train, digits)
        on_gpu = metric(held.cuda().float(), train.cuda().float(), Digits().to("cuda", torch.float32))
        assert on_gpu == pytest.approx(on_cpu, rel=1e-4, abs=1e-5)
