import torch

from saeprobe.pooling import pool


def test_pooling_matches_a_hand_computation():
    hidden = torch.tensor(
        [
            [[9.0, 9.0], [1.0, 2.0], [3.0, -4.0], [0.0, 0.0]],  # BOS, two tokens, padding
            [[9.0, 9.0], [5.0, 6.0], [-1.0, 0.0], [2.0, 8.0]],  # BOS, three tokens
        ]
    )
    content = torch.tensor([[False, True, True, False], [False, True, True, True]])
    out = pool(hidden, content, ["mean", "max", "last", "first"])
    torch.testing.assert_close(out["mean"], torch.tensor([[2.0, -1.0], [2.0, 14 / 3]]))
    torch.testing.assert_close(out["max"], torch.tensor([[3.0, 2.0], [5.0, 8.0]]))
    torch.testing.assert_close(out["last"], torch.tensor([[3.0, -4.0], [2.0, 8.0]]))
    torch.testing.assert_close(out["first"], torch.tensor([[9.0, 9.0], [9.0, 9.0]]))


def test_bos_never_enters_mean_or_max():
    hidden = torch.zeros(1, 3, 4)
    hidden[0, 0] = 1000.0  # a huge BOS, as in Gemma
    hidden[0, 1:] = 1.0
    out = pool(hidden, torch.tensor([[False, True, True]]), ["mean", "max"])
    assert out["mean"].max() == 1.0 and out["max"].max() == 1.0
