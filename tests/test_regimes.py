import numpy as np
import pytest

from saeprobe.config import RegimeConfig
from saeprobe.errors import Infeasible
from saeprobe.regimes import flip_labels, sample

Y = np.array([0] * 300 + [1] * 200 + [0] * 100 + [1] * 100 + [0] * 40 + [1] * 40)
TRAIN = np.arange(500)
TEST = np.arange(500, 700)
OOD = np.arange(700, 780)


def draw(regime, level=None, seed=0, **cfg):
    return sample(
        regime,
        level,
        RegimeConfig(**cfg),
        Y,
        train_pool=TRAIN,
        test_pool=TEST,
        ood_pool=OOD,
        seed=seed,
    )


def test_normal_is_balanced_capped_and_never_touches_test():
    s = draw("normal", max_train=300)
    assert len(s.train) == 300
    assert np.bincount(Y[s.train]).tolist() == [150, 150]
    assert set(s.train) <= set(TRAIN) and not set(s.train) & set(TEST)
    assert np.array_equal(s.test, TEST)


@pytest.mark.parametrize("size", [2, 4, 16, 128])
def test_scarcity_draws_the_asked_size_with_every_class(size):
    s = draw("scarcity", size)
    assert len(s.train) == size and len(np.unique(Y[s.train])) == 2


def test_scarcity_beyond_the_pool_is_a_clear_error():
    with pytest.raises(Infeasible, match="asks for 4096 training examples; the pool has 500"):
        draw("scarcity", 4096)


@pytest.mark.parametrize("share", [0.05, 0.2, 0.5, 0.9])
def test_imbalance_sets_the_share_in_train_and_test(share):
    s = draw("imbalance", share, train_size=100)
    assert len(s.train) == 100
    assert Y[s.train].mean() == pytest.approx(share, abs=0.01)
    assert Y[s.test].mean() == pytest.approx(share, abs=0.02)
    assert set(s.test) <= set(TEST)


def test_imbalance_that_leaves_one_positive_is_refused():
    with pytest.raises(Infeasible, match=r"class counts \[19, 1\]; every class needs at least 2"):
        draw("imbalance", 0.05, train_size=20)


def test_noise_flips_the_asked_share_and_keeps_the_test_clean():
    s = draw("noise", 0.3, max_train=200)
    assert (s.train_labels != Y[s.train]).mean() == pytest.approx(0.3)
    assert np.array_equal(s.test, TEST)


def test_flip_labels_moves_to_another_class_in_multiclass():
    labels = np.arange(100) % 5
    flipped = flip_labels(labels, 0.5, 5, np.random.default_rng(0))
    assert (flipped != labels).sum() == 50
    assert flipped.max() < 5


def test_shift_tests_on_the_ood_split_and_needs_one():
    assert np.array_equal(draw("shift").test, OOD)
    with pytest.raises(Infeasible, match="no shifted"):
        sample(
            "shift",
            None,
            RegimeConfig(),
            Y,
            train_pool=TRAIN,
            test_pool=TEST,
            ood_pool=np.array([], int),
            seed=0,
        )


def test_samplers_are_deterministic_by_seed():
    a, b, c = draw("scarcity", 16, seed=1), draw("scarcity", 16, seed=1), draw("scarcity", 16, 2)
    assert np.array_equal(a.train, b.train) and not np.array_equal(a.train, c.train)


def test_imbalance_needs_a_binary_task():
    y = np.arange(90) % 3
    with pytest.raises(Infeasible, match="binary tasks only"):
        sample(
            "imbalance",
            0.5,
            RegimeConfig(),
            y,
            train_pool=np.arange(60),
            test_pool=np.arange(60, 90),
            ood_pool=np.array([], int),
            seed=0,
        )
