"""The self-regularization paper's LLM judge (its `annotate_explanations.py`
`TextSpanExplainer` and the task judges of `annotate_harmfulness.py` and siblings, masked
by `pipelines.py` `choose_untask_mask`), through any OpenAI-compatible chat endpoint.

For each latent: its top spans (the text up to and including the activating token, the
last `span_chars` characters of each) go to the model, which explains what the latent looks
for or answers "Cannot Tell"; the explanation then goes to the model again with the task's
description, asking whether the feature is relevant to the task, answered as
`[[ Yes ]]`, `[[ Probably ]]`, `[[ Maybe ]]` or `[[ No ]]`. A latent is unintended unless
the answer is Yes or Probably (an unreadable answer counts as unintended, as in the
reference); "Cannot Tell" latents are left out of the decision. Evidence: the answer's place
in Yes, Probably, Maybe, No (0..3; NaN when unreadable).

Every answer is cached by (model, prompt) in a JSON file (to be kept under DVC), so a
rerun makes no calls. The cache is written only when every call succeeded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from saeprobe.errors import ConfigError
from saeprobe.io import write_json
from saeprobe.regularization.judges import TABLE_SCHEMA

EXPLAIN = (
    "Below are text spans on which one neuron of a language model activates most; the "
    "neuron fires at the end of each span. Say in one short phrase what the neuron responds "
    "to, paying most attention to the end of each span. If the spans share nothing you can "
    "name, answer exactly: Cannot Tell.\n\n{spans}\n\nExplanation:"
)
JUDGE = (
    "Task: {task}\n\nA feature of a language model's hidden states responds to: "
    "{explanation}\n\nWould a classifier for this task rightly rely on this feature? Think "
    "briefly, then end with your decision in the form Final Decision: [[ Yes ]], "
    "[[ Probably ]], [[ Maybe ]] or [[ No ]]."
)
ANSWERS = ("yes", "probably", "maybe", "no")


@dataclass(frozen=True)
class LLMJudgeConfig:
    base_url: str  # e.g. http://localhost:8000/v1 (no endpoint: the judge is not used)
    model: str
    task: str  # what the classifier must decide, in a sentence
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this environment variable
    spans: int = 10  # top spans per latent
    span_chars: int = 60  # characters of each span, ending at the activating token
    timeout_s: float = 60.0


def span_text(context: str, chars: int) -> str:
    """The card's context up to and including «token», its last `chars` characters."""
    end = context.find("»")
    text = context[:end] if end >= 0 else context
    return text.replace("«", "")[-chars:].strip()


def parse_decision(answer: str) -> str | None:
    match = re.findall(r"\[\[\s*(yes|probably|maybe|no)\s*\]\]", answer, re.IGNORECASE)
    return match[-1].lower() if match else None


class ChatClient:
    """POST /chat/completions with a cache; `calls` counts requests actually sent."""

    def __init__(self, cfg: LLMJudgeConfig, cache: dict[str, str]):
        self.cfg = cfg
        self.cache = cache
        self.calls = 0

    def ask(self, prompt: str) -> str:
        key = hashlib.sha256(f"{self.cfg.model}\n{prompt}".encode()).hexdigest()
        if key not in self.cache:
            self.cache[key] = self._post(prompt)
            self.calls += 1
        return self.cache[key]

    def _post(self, prompt: str) -> str:
        url = self.cfg.base_url.rstrip("/") + "/chat/completions"
        body = {
            "model": self.cfg.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0.0,
        }
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(url, json.dumps(body).encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=self.cfg.timeout_s) as response:
                reply = json.load(response)
            return reply["choices"][0]["message"]["content"]
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:200]
            raise ConfigError(f"LLM judge: {url} answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ConfigError(
                f"LLM judge: cannot reach {url} (unintended.llm.base_url): {exc}"
            ) from exc
        except (KeyError, IndexError, TypeError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"LLM judge: {url} did not answer as an OpenAI-compatible chat endpoint "
                f"(expected choices[0].message.content)"
            ) from exc


def llm_judge(cards: pl.DataFrame, cfg: LLMJudgeConfig, cache_path: Path) -> pl.DataFrame:
    """The judge's table for every latent with a card; answers cached in `cache_path`."""
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    client = ChatClient(cfg, cache)
    rows = []
    for (latent,), spans in cards.sort("latent", "rank").group_by("latent", maintain_order=True):
        texts = [span_text(c, cfg.span_chars) for c in spans["context"].to_list()[: cfg.spans]]
        listed = "\n".join(f"Span {i + 1}: {t}" for i, t in enumerate(texts) if t)
        if not listed:
            continue
        explanation = client.ask(EXPLAIN.format(spans=listed)).strip()
        if "cannot tell" in explanation.lower():
            continue
        decision = parse_decision(client.ask(JUDGE.format(task=cfg.task, explanation=explanation)))
        rows.append(
            {
                "latent": int(latent),
                "decision": "intended" if decision in ("yes", "probably") else "unintended",
                "judge": "llm",
                "evidence": float(ANSWERS.index(decision)) if decision else float("nan"),
                "detail": f"{decision or 'unreadable'}: {explanation[:200]}",
            }
        )
    # Only now, with every call answered, does the cache change on disk.
    if client.calls:
        write_json(cache_path, client.cache)
    return pl.DataFrame(rows, schema=TABLE_SCHEMA)
