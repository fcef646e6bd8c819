import os
import signal

import pytest

from etbert.lab.cleanup import Cleanup, LabInterrupted, signals_raise
from etbert.lab.generate import prepare_output, select_classes
from etbert.lab.manifest import MANIFEST_NAME
from etbert.lab.netns import LabSetupError


def test_every_undo_step_runs_newest_first_even_when_one_fails():
    ran = []
    cleanup = Cleanup()
    cleanup.push("first", lambda: ran.append("first"))
    cleanup.push("broken", lambda: 1 / 0)
    cleanup.push("last", lambda: ran.append("last"))
    failures = cleanup.close()
    assert ran == ["last", "first"]
    assert [(f.step, f.error.split(":")[0]) for f in failures] == [("broken", "ZeroDivisionError")]
    assert cleanup.close() == []  # steps run once


def test_cleanup_runs_when_the_block_raises_and_lets_the_error_through():
    ran = []
    with pytest.raises(RuntimeError, match="boom"):
        with Cleanup() as cleanup:
            cleanup.push("undo", lambda: ran.append("undo"))
            raise RuntimeError("boom")
    assert ran == ["undo"]


def test_an_interrupt_inside_an_undo_step_does_not_skip_the_others():
    ran = []

    def interrupted():
        raise KeyboardInterrupt

    cleanup = Cleanup()
    cleanup.push("a", lambda: ran.append("a"))
    cleanup.push("interrupted", interrupted)
    cleanup.close()
    assert ran == ["a"] and cleanup.failures[0].step == "interrupted"


def test_sigterm_becomes_an_exception_that_unwinds_cleanup():
    ran = []
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(LabInterrupted, match="SIGTERM"):
        with signals_raise(), Cleanup() as cleanup:
            cleanup.push("undo", lambda: ran.append("undo"))
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.1)  # give the handler a bytecode boundary to run at
    assert ran == ["undo"]
    assert signal.getsignal(signal.SIGTERM) == before


def test_ctrl_c_raises_even_where_the_shell_started_the_lab_with_sigint_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_raise():
                os.kill(os.getpid(), signal.SIGINT)
                signal.sigtimedwait([], 0.1)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_output_folder_is_never_mixed_nor_wrongly_deleted(tmp_path):
    prepare_output(tmp_path / "new", force=False)
    assert (tmp_path / "new").is_dir()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(LabSetupError, match="not empty"):
        prepare_output(foreign, force=False)
    with pytest.raises(LabSetupError, match="no lab manifest"):
        prepare_output(foreign, force=True)
    assert (foreign / "precious.txt").exists()
    earlier = tmp_path / "earlier"
    (earlier / "ssh").mkdir(parents=True)
    (earlier / MANIFEST_NAME).write_text("{}")
    prepare_output(earlier, force=True)
    assert list(earlier.iterdir()) == []


def test_unknown_classes_are_named():
    with pytest.raises(ValueError, match="unknown class.*nope.*known: tls-api"):
        select_classes(["ssh", "nope"])
