"""A Ray Train run folder whose checkpoint record was cut short (its writer killed) is moved
aside before the run starts again, so that the trial trains afresh instead of failing on
every resume; a readable record is left alone."""

from __future__ import annotations

import json

from quokka_ray.sweep.trial import TRAIN_SNAPSHOT, set_aside_if_unreadable


def test_an_unreadable_checkpoint_record_is_set_aside(tmp_path, capsys):
    good, cut, none = tmp_path / "good", tmp_path / "cut", tmp_path / "none"
    for folder in (good, cut, none):
        (folder / "step_00000010").mkdir(parents=True)
    (good / TRAIN_SNAPSHOT).write_text(json.dumps({"checkpoint_results": []}))
    (cut / TRAIN_SNAPSHOT).write_text('{"checkpoint_res')

    assert not set_aside_if_unreadable(str(good)) and (good / TRAIN_SNAPSHOT).exists()
    assert not set_aside_if_unreadable(str(none)) and (none / "step_00000010").exists()
    assert set_aside_if_unreadable(str(cut))
    assert not cut.exists()
    (aside,) = tmp_path.glob("cut.unreadable-*")
    assert (aside / "step_00000010").is_dir()
    assert "starts again from step 0" in capsys.readouterr().out

    (cut / "x").mkdir(parents=True)
    (cut / TRAIN_SNAPSHOT).write_text("")  # truncated to nothing
    assert set_aside_if_unreadable(f"file://{cut}")  # within the same second, too
    assert len(list(tmp_path.glob("cut.unreadable-*"))) == 2
