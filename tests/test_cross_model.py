"""Cross-model transfer: labelling items by a second model's answers, and probing for them."""

from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch

from saeprobe.config import CrossModelConfig, ModelConfig, ProbeConfig, TransferConfig
from saeprobe.errors import ConfigError
from saeprobe.models import LoadedModel
from saeprobe.probes.sweep import Representation
from saeprobe.transfer.behaviour import (
    answer_items,
    answer_tokens,
    behaviour_summary,
    behaviour_table,
    expected_answers,
)
from saeprobe.transfer.behaviour_io import hidden_matrix, read_behaviour
from saeprobe.transfer.crossmodel import (
    behaviour_labels,
    own_representations,
    run_cross_model,
    summarize_cross_model,
)


class WordTokenizer:
    """One token per word; no chat template, so the prompt is the item itself."""

    chat_template = None
    pad_token_id = 0

    def __init__(self):
        self.vocab = {"<pad>": 0, "True": 1, "False": 2}

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [self.vocab.setdefault(word, len(self.vocab)) for word in text.split()]

    def decode(self, ids) -> str:
        words = {i: w for w, i in self.vocab.items()}
        return " ".join(words[int(i)] for i in ids)


class LastWordModel(torch.nn.Module):
    """Answers True exactly where the token at the position is `sure`; its hidden state at
    layer l is (l + 1) * the token id, so the answer position can be read back."""

    def __init__(self, tokenizer: WordTokenizer, n_layers: int = 2):
        super().__init__()
        self.sure = tokenizer.encode("sure")[0]
        self.n_layers = n_layers

    def forward(self, input_ids, attention_mask, output_hidden_states):
        logits = torch.zeros(*input_ids.shape, 8)
        logits[..., 1] = (input_ids == self.sure).float()
        logits[..., 2] = 0.5
        hidden = tuple(
            (layer + 1) * input_ids.float()[..., None].expand(-1, -1, 3)
            for layer in range(self.n_layers + 1)
        )
        return SimpleNamespace(logits=logits, hidden_states=hidden)


def word_model() -> LoadedModel:
    tokenizer = WordTokenizer()
    return LoadedModel(
        name="last-word",
        model=LastWordModel(tokenizer),
        tokenizer=tokenizer,
        path="",
        n_layers=2,
        d_model=3,
        device=torch.device("cpu"),
        dtype=torch.float32,
    )


def config(**overrides) -> CrossModelConfig:
    base = {
        "model": ModelConfig(name="last-word"),
        "prompt": "{text}",
        "answers": {"1": "True", "0": "False"},
        "layers": [1, 2],
        "max_length": 16,
        "batch_size": 2,
    }
    return CrossModelConfig(**(base | overrides))


def test_the_answer_is_read_at_each_items_last_token_whatever_the_padding():
    model = word_model()
    texts = ["it is sure", "sure it is not", "a much longer item that ends sure", "no"]
    answers = answer_items(model, texts, config(), progress=False)
    assert answers.answer == ["True", "False", "True", "False"]
    last_ids = [model.tokenizer.encode(t)[-1] for t in texts]
    np.testing.assert_array_equal(answers.hidden[2][:, 0], 3 * np.asarray(last_ids))
    np.testing.assert_allclose(answers.margin, [0.5, 0.5, 0.5, 0.5])


def test_each_item_is_labelled_by_whether_the_answer_matches_its_label():
    model = word_model()
    prepared = pl.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "split": ["train", "train", "test", "test"],
            "label_name": ["1", "1", "0", "0"],
        }
    )
    cfg = config()
    texts = ["it is sure", "not at all", "sure", "maybe"]
    expected = expected_answers(prepared["label_name"].to_list(), cfg.answers, "x")
    table = behaviour_table(prepared, expected, answer_items(model, texts, cfg, progress=False))
    assert table["label"].to_list() == ["correct", "wrong", "wrong", "correct"]
    summary = behaviour_summary(table, "last-word")
    assert summary["overall"] == {"items": 4, "correct": 2, "accuracy": 0.5}
    assert summary["answers"] == {"False": 2, "True": 2}
    assert hidden_matrix(table, 1, "b.parquet").shape == (4, 3)
    with pytest.raises(ConfigError, match="b.parquet: holds no column 'hidden_5'"):
        hidden_matrix(table, 5, "b.parquet")


def test_a_layer_the_second_model_lacks_names_the_parameter():
    with pytest.raises(ConfigError, match=r"'cross_model.layers' has \[7\]; this model has"):
        answer_items(word_model(), ["sure"], config(layers=[7]), progress=False)


def test_a_long_item_keeps_its_last_tokens_where_the_answer_is():
    model = word_model()
    answers = answer_items(model, ["x " * 40 + "sure"], config(max_length=8), progress=False)
    assert answers.answer == ["True"]


def test_a_label_without_an_answer_is_named():
    with pytest.raises(ConfigError, match=r"no answer for the labels \['maybe'\] of data set 'x'"):
        expected_answers(["1", "maybe"], {"1": "True", "0": "False"}, "x")


def test_answer_words_that_start_with_the_same_token_are_refused():
    tokenizer = WordTokenizer()
    tokenizer.encode = lambda text, add_special_tokens=True: [5, 6]
    with pytest.raises(ConfigError, match="start with the same token"):
        answer_tokens(tokenizer, {"1": "Yes", "0": "Yeah"})


def test_a_second_model_right_on_every_training_item_is_a_clear_error():
    prepared = pl.DataFrame({"id": ["a", "b", "c", "d"], "split": ["train"] * 2 + ["test"] * 2})
    behaviour = prepared.with_columns(
        pl.Series("label", ["correct", "correct", "wrong", "correct"])
    )
    with pytest.raises(ConfigError, match="on the train split the second model is right on every"):
        behaviour_labels(prepared, behaviour, "b.parquet")


def test_a_behaviour_table_of_other_items_is_refused():
    prepared = pl.DataFrame({"id": ["a", "b"], "split": ["train", "test"]})
    behaviour = pl.DataFrame({"id": ["a", "z"], "label": ["correct", "wrong"]})
    with pytest.raises(ConfigError, match="ids differ"):
        behaviour_labels(prepared, behaviour, "b.parquet")


def test_a_table_without_the_behaviour_columns_names_them(tmp_path):
    path = tmp_path / "b.parquet"
    pl.DataFrame({"id": ["a"]}).write_parquet(path)
    with pytest.raises(ConfigError, match=r"b.parquet: lacks the columns \['split'"):
        read_behaviour(path)


def test_cross_model_rows_name_the_task_and_hold_the_second_models_own_probe():
    rng = np.random.default_rng(0)
    n = 80
    y = np.tile([0, 1], n // 2)
    split = np.where(np.arange(n) < 60, "train", "test")
    prepared = pl.DataFrame({"id": [str(i) for i in range(n)], "split": split})
    signal = y[:, None] * 2.0 + rng.normal(size=(n, 4))
    behaviour = pl.DataFrame(
        {"id": prepared["id"], "label": np.where(y == 1, "correct", "wrong")}
    ).with_columns(pl.Series("hidden_3", signal.astype(np.float32)).cast(pl.Array(pl.Float32, 4)))
    reps = [
        Representation(1, "hidden", rng.normal(size=(n, 4))),
        *own_representations(behaviour, "second", [3], "b.parquet"),
    ]
    cfg = TransferConfig(seeds=2, max_train=40, methods=["logreg_l2"])
    labels = behaviour_labels(prepared, behaviour, "b.parquet")
    results = run_cross_model("items", prepared, labels, reps, "second", cfg, ProbeConfig(), 0)
    assert set(results["regime"]) == {"cross_model"}
    assert set(results["train_dataset"]) == set(results["test_dataset"]) == {"items:second"}
    assert set(results["representation"]) == {"hidden", "hidden_second"}
    assert set(results["n_test"]) == {20}
    summary = summarize_cross_model(results, "second")
    assert summary[0]["family"] == "own_hidden"  # the only representation with signal
    assert summary[0]["auc"]["mean"] > 0.9 > summary[1]["auc"]["mean"]


@pytest.mark.parametrize("family", ["llama", "gemma2"])  # gemma2: soft-capped logits
def test_the_head_on_the_answer_slots_scores_as_the_whole_models_logits(family):
    import transformers

    size = dict(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2)
    size |= dict(num_attention_heads=2, num_key_value_heads=1, head_dim=8)
    torch.manual_seed(0)
    if family == "llama":
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**size))
    else:
        cfg = transformers.Gemma2Config(**size, final_logit_softcapping=0.5)
        model = transformers.Gemma2ForCausalLM(cfg)
    model.eval()
    tokenizer = WordTokenizer()
    lm = LoadedModel("tiny", model, tokenizer, "", 2, 16, torch.device("cpu"), torch.float32)
    texts = ["sure it is", "no", "a longer item that ends sure"]
    answers = answer_items(lm, texts, config(batch_size=2), progress=False)

    whole = LoadedModel(
        "tiny", WholeLogits(model), tokenizer, "", 2, 16, torch.device("cpu"), torch.float32
    )
    reference = answer_items(whole, texts, config(batch_size=2), progress=False)
    assert answers.answer == reference.answer
    np.testing.assert_allclose(answers.margin, reference.margin, rtol=1e-5, atol=1e-6)
    for layer in (1, 2):
        np.testing.assert_allclose(answers.hidden[layer], reference.hidden[layer], atol=1e-6)


class WholeLogits(torch.nn.Module):
    """The model seen through its forward only: every position's logits."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def forward(self, **inputs):
        return self.inner(**inputs)
