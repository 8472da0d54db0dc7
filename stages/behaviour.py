"""behaviour@<data set>: the cross-model setting's second model answers each item; each is
labelled by whether the answer is right, with the model's hidden states at its answer."""

from transformers import AutoModelForCausalLM

from saeprobe import config
from saeprobe.data.schema import read_prepared
from saeprobe.io import atomic_path, write_json
from saeprobe.models import load_model
from saeprobe.stage import behaviour_path, behaviour_report, prepared_path, run
from saeprobe.transfer.behaviour import (
    answer_items,
    behaviour_summary,
    behaviour_table,
    expected_answers,
)


def main(name: str) -> None:
    params = config.load_params()
    cfg = config.behaviour_config(params)
    prepared = read_prepared(prepared_path(name))
    expected = expected_answers(prepared["label_name"].to_list(), cfg.answers, name)
    model = load_model(cfg.model, AutoModelForCausalLM, "cross_model.model")
    answers = answer_items(model, prepared["text"].to_list(), cfg)
    table = behaviour_table(prepared, expected, answers)
    with atomic_path(behaviour_path(name)) as tmp:
        table.write_parquet(tmp)
    write_json(behaviour_report(name), behaviour_summary(table, cfg.model.name))


if __name__ == "__main__":
    run(main)
