"""Stage entry points: bad input, bad usage and Ctrl-C end in one line and an exit code."""

import subprocess
import sys

from tests.conftest import ROOT


def run_stage(tmp_path, *args, params="seed: 0\n"):
    (tmp_path / "params.yaml").write_text(params)
    env_path = f"{ROOT}"
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )


def test_a_config_error_exits_2_with_one_line(tmp_path):
    out = run_stage(tmp_path, "stages.prepare", "spam", params="seed: 0\ndatasets: {}\n")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: params: no data set named 'spam' under 'datasets'"


def test_a_misspelled_section_stops_the_stage_before_it_touches_outputs(tmp_path):
    out = run_stage(tmp_path, "stages.prepare", "spam", params="seed: 0\nextrct: {}\n")
    assert out.returncode == 2
    assert "unknown section 'extrct'; did you mean 'extract'?" in out.stderr
    assert not (tmp_path / "data").exists()


def test_a_missing_argument_prints_the_usage(tmp_path):
    out = run_stage(tmp_path, "stages.finetune_sae", "spam")
    assert out.returncode == 2
    assert out.stderr.strip() == "usage: python -m stages.finetune_sae <name> <layer>"


def test_a_non_numeric_layer_is_named(tmp_path):
    out = run_stage(tmp_path, "stages.train_sae", "six")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: the layer argument must be an integer, got 'six'"


def test_ctrl_c_ends_in_one_line_and_exit_130(monkeypatch, capsys):
    import pytest

    from saeprobe import stage

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "argv", ["stage"])
    with pytest.raises(SystemExit) as exit_info:
        stage.run(interrupted)
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == "interrupted: no output was changed\n"
