"""Atomic outputs: all or nothing, with the permissions of an ordinary file."""

import os
import stat

import pytest

from saeprobe.io import atomic_dir, atomic_outputs, atomic_path


def test_outputs_replace_their_targets_together(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with atomic_outputs(tmp_path / "a.txt", tmp_path / "folder") as (a, folder):
        a.write_text("new")
        folder.mkdir()
        (folder / "x").write_text("x")
    assert (tmp_path / "a.txt").read_text() == "new" and (tmp_path / "folder" / "x").exists()


def test_a_failing_block_leaves_every_old_output_and_no_temporary(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_outputs(tmp_path / "a.txt", tmp_path / "b") as tmps:
        tmps[0].write_text("new")
        raise RuntimeError("interrupted")
    assert (tmp_path / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f") as f:
            f.write_text("x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
