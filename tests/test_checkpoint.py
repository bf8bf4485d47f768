"""Atomic checkpoints: the temporary file is fsynced, renamed over the checkpoint, then the directory is fsynced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from nasframe.errors import CheckpointError
from nasframe.training import checkpoint
from nasframe.training.checkpoint import fsync_directory, save_atomic


def record_file_system_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Wrap ``os.open``, ``os.fsync`` and ``os.replace`` so that each call is recorded (and still made)."""
    events: list[tuple] = []
    opened: dict[int, str] = {}
    real_open, real_fsync, real_replace = os.open, os.fsync, os.replace

    def fake_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        opened[fd] = os.fspath(path)
        events.append(("open", os.fspath(path), fd))
        return fd

    def fake_fsync(fd):
        fd = fd if isinstance(fd, int) else fd.fileno()
        events.append(("fsync", opened.get(fd, f"fd {fd}"), fd))
        return real_fsync(fd)

    def fake_replace(src, dst, *args, **kwargs):
        events.append(("replace", os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "fsync", fake_fsync)
    monkeypatch.setattr(os, "replace", fake_replace)
    return events


@pytest.mark.skipif(os.name != "posix", reason="directories can be opened and fsynced on POSIX only")
def test_save_writes_fsyncs_the_file_renames_then_fsyncs_the_directory(tmp_path: Path, monkeypatch) -> None:
    events = record_file_system_calls(monkeypatch)
    target = tmp_path / "run" / "checkpoint.pt"
    save_atomic({"x": torch.arange(3)}, target)

    kinds = [event[0] for event in events]
    assert kinds.count("replace") == 1
    rename = kinds.index("replace")
    _, tmp, dst = events[rename]
    assert Path(dst) == target and Path(tmp).parent == target.parent and Path(tmp).name.endswith(".tmp")
    # before the rename: the temporary file is created (tempfile.mkstemp opens it) and its data flushed
    before = events[:rename]
    tmp_opens = [e for e in before if e[0] == "open" and e[1] == tmp]
    assert len(tmp_opens) == 1
    assert ("fsync", tmp, tmp_opens[0][2]) in before
    # after the rename: the directory is opened and that very fd is fsynced
    after = events[rename + 1 :]
    assert [(e[0], Path(e[1])) for e in after] == [("open", target.parent), ("fsync", target.parent)]
    assert after[0][2] == after[1][2]
    assert torch.equal(torch.load(target, weights_only=True)["x"], torch.arange(3))
    assert not list(target.parent.glob("*.tmp"))


def test_directory_fsync_is_skipped_where_directories_cannot_be_opened(tmp_path: Path, monkeypatch) -> None:
    real_open = os.open

    def refuse(path, flags, *args, **kwargs):
        if os.path.isdir(path):
            raise PermissionError("directories cannot be opened here")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    fsync_directory(tmp_path)  # no error
    target = save_atomic({"x": 1}, tmp_path / "checkpoint.pt")  # the save itself does not need it
    assert torch.load(target, weights_only=True) == {"x": 1}


def test_directory_fsync_errors_are_ignored_and_the_fd_closed(tmp_path: Path, monkeypatch) -> None:
    closed: list[int] = []
    real_close = os.close

    def failing_fsync(fd):
        raise OSError(22, "fsync not supported for directories here")

    def recording_close(fd):
        closed.append(fd)
        real_close(fd)

    real_open = os.open
    opened: list[int] = []
    monkeypatch.setattr(os, "open", lambda *a, **k: opened.append(real_open(*a, **k)) or opened[-1])
    monkeypatch.setattr(os, "fsync", failing_fsync)
    monkeypatch.setattr(os, "close", recording_close)
    fsync_directory(tmp_path)
    assert opened and closed == opened


def test_a_failed_write_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    target = save_atomic({"epoch": 1}, tmp_path / "checkpoint.pt")

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(OSError):
        save_atomic({"epoch": 2}, target)
    assert torch.load(target, weights_only=True) == {"epoch": 1}
    assert not list(tmp_path.glob("*.tmp"))


def test_a_file_written_before_a_space_setting_existed_matches_that_setting_at_its_default():
    """A checkpoint or latency table records the space's settings; a setting added to the space later (e.g. the
    MobileNet space's resolutions) is missing from the record and counts at its default, not as another space."""
    import json as _json

    from nasframe.core.space import DataSpec, with_later_defaults
    from nasframe.training.restore import check_space
    from search_spaces.mobilenet import MobileNetSpace

    space = MobileNetSpace(DataSpec(3, (32, 32), 10), width_mult=0.5)
    old = space.describe()
    del old["config"]["resolutions"]
    assert with_later_defaults(old) == space.describe()
    check_space({"space": _json.dumps(old)}, _json.dumps(space.describe()))  # accepted
    other = MobileNetSpace(DataSpec(3, (32, 32), 10), width_mult=0.5, resolutions=[24, 32])
    with pytest.raises(CheckpointError, match="written for space"):
        check_space({"space": _json.dumps(old)}, _json.dumps(other.describe()))
    assert with_later_defaults({"name": "no-such-space", "config": {}}) == {"name": "no-such-space", "config": {}}
