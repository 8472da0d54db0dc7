"""Cross-model labels (MOSAIC's cross-model setting): a second model answers each item of a
true/false data set, and each item is labelled by whether that answer is right.

The answer is read off the next-token logits after the chat template's generation prompt:
the model says whichever answer word (its first token) it scores highest. That is greedy
decoding restricted to the allowed answers, one forward pass per item, no sampling. The
second model's hidden states at that same position are kept for the probe on its own
representation, the reference the main model's probes are compared with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from tqdm import tqdm

from saeprobe.config import CrossModelConfig
from saeprobe.errors import ConfigError
from saeprobe.models import LoadedModel, check_layers, head_logits, head_runs_apart
from saeprobe.transfer.behaviour_io import CORRECT, WRONG


@dataclass(frozen=True)
class AnswerTokens:
    """The answer words the model may give and the first token of each."""

    words: list[str]
    token_ids: list[int]


def answer_tokens(tokenizer, answers: dict[str, str]) -> AnswerTokens:
    """After a chat template's generation prompt the answer starts a line; after a plain
    prompt it follows a space, which tokenizers fold into the word's first token."""
    words = sorted(set(answers.values()))
    lead = "" if tokenizer.chat_template is not None else " "
    ids = []
    for word in words:
        encoded = tokenizer.encode(lead + word, add_special_tokens=False)
        if not encoded:
            raise ConfigError(f"params: 'cross_model.answers' has '{word}', which is no token")
        ids.append(encoded[0])
    if len(set(ids)) < len(ids):
        raise ConfigError(
            f"params: 'cross_model.answers' words {words} start with the same token, so the "
            "model's choice between them cannot be read from one next-token score"
        )
    return AnswerTokens(words, ids)


def expected_answers(labels: list[str], answers: dict[str, str], dataset: str) -> list[str]:
    missing = sorted(set(labels) - set(answers))
    if missing:
        raise ConfigError(
            f"params: 'cross_model.answers' has no answer for the labels {missing} of data set "
            f"'{dataset}'; map each label name to the word a correct answer starts with"
        )
    return [answers[label] for label in labels]


def prompt_ids(model: LoadedModel, text: str, cfg: CrossModelConfig) -> list[int]:
    """The chat-template tokens of one item, up to the assistant's first answer token."""
    tokenizer = model.tokenizer
    item = tokenizer.encode(text, add_special_tokens=False)[-cfg.max_length :]
    content = cfg.prompt.replace("{text}", tokenizer.decode(item))
    messages = [{"role": "user", "content": content}]
    if tokenizer.chat_template is None:
        return tokenizer.encode(content)
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    # The template writes its own special tokens; encode adds none of its own.
    return tokenizer.encode(text, add_special_tokens=False)


@dataclass
class Answers:
    answer: list[str]  # the word the model chose
    margin: np.ndarray  # its score minus the best other answer's score (logits)
    hidden: dict[int, np.ndarray]  # layer -> (items, width) at the answer position


@torch.no_grad()
def answer_items(
    model: LoadedModel, texts: list[str], cfg: CrossModelConfig, progress: bool = True
) -> Answers:
    """Batches of items of similar length (less padding), answers in the items' order."""
    check_layers(cfg.layers, model.n_layers, "cross_model.layers")
    choices = answer_tokens(model.tokenizer, cfg.answers)
    prompts = [prompt_ids(model, text, cfg) for text in texts]
    order = np.argsort([len(p) for p in prompts], kind="stable")
    scores = np.zeros((len(prompts), len(choices.token_ids)), np.float32)
    hidden = {layer: np.zeros((len(prompts), model.d_model), np.float32) for layer in cfg.layers}
    for start in tqdm(range(0, len(prompts), cfg.batch_size), disable=not progress):
        items = order[start : start + cfg.batch_size]
        batch_scores, batch_hidden = _answer_scores(
            model, [prompts[i] for i in items], choices, cfg
        )
        scores[items] = batch_scores
        for layer in cfg.layers:
            hidden[layer][items] = batch_hidden[layer]
    top2 = -np.sort(-scores, axis=1)[:, :2]
    return Answers(
        answer=[choices.words[i] for i in scores.argmax(1)],
        margin=(top2[:, 0] - top2[:, 1]).astype(np.float32),
        hidden=hidden,
    )


def _answer_scores(
    model: LoadedModel, batch: list[list[int]], choices: AnswerTokens, cfg: CrossModelConfig
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The answer words' logits and the hidden states at each item's last token."""
    lengths = torch.tensor([len(p) for p in batch])
    width = int(lengths.max())
    ids = torch.full((len(batch), width), model.tokenizer.pad_token_id, dtype=torch.long)
    for row, p in enumerate(batch):  # right padding: the last real token is the answer slot
        ids[row, : len(p)] = torch.tensor(p)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    inputs = dict(input_ids=ids.to(model.device), attention_mask=mask.to(model.device))
    rows = torch.arange(len(batch), device=model.device)
    last = (lengths - 1).to(model.device)
    if head_runs_apart(model.model):
        # The LM head on the answer slots only, not on every position of the batch.
        out = model.model.get_decoder()(**inputs, output_hidden_states=True, use_cache=False)
        logits = head_logits(model.model, out.last_hidden_state[rows, last])
    else:
        out = model.model(**inputs, output_hidden_states=True)
        logits = out.logits[rows, last]
    scores = logits[:, choices.token_ids].float().cpu().numpy()
    hidden = {
        layer: out.hidden_states[layer][rows, last].float().cpu().numpy() for layer in cfg.layers
    }
    return scores, hidden


def behaviour_table(prepared: pl.DataFrame, expected: list[str], answers: Answers) -> pl.DataFrame:
    """One row per item of `prepared`: the right answer (`expected_answers`), the model's,
    whether they agree (`label`: correct or wrong), the score margin, and the hidden states
    (`hidden_<layer>`)."""
    right = [a == e for a, e in zip(answers.answer, expected, strict=True)]
    columns = {
        "id": prepared["id"],
        "split": prepared["split"],
        "expected": expected,
        "answer": answers.answer,
        "label": [CORRECT if r else WRONG for r in right],
        "margin": answers.margin.astype(np.float32),
    }
    for layer, X in answers.hidden.items():
        columns[f"hidden_{layer}"] = pl.Series(X.astype(np.float32)).cast(
            pl.Array(pl.Float32, X.shape[1])
        )
    return pl.DataFrame(columns)


def behaviour_summary(table: pl.DataFrame, model_name: str) -> dict:
    """How often the second model is right, overall, per split and per expected answer."""

    def share(frame: pl.DataFrame) -> dict:
        n = len(frame)
        n_right = int((frame["label"] == CORRECT).sum())
        return {"items": n, "correct": n_right, "accuracy": n_right / n if n else None}

    return {
        "model": model_name,
        "overall": share(table),
        "by_split": {s: share(table.filter(pl.col("split") == s)) for s in ("train", "test")},
        "by_expected_answer": {
            word: share(table.filter(pl.col("expected") == word))
            for word in sorted(table["expected"].unique().to_list())
        },
        "answers": {
            word: int((table["answer"] == word).sum())
            for word in sorted(table["answer"].unique().to_list())
        },
    }
