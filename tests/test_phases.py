"""phases.py: one list of names, markers that cost nothing unheard, and recorders that hear them in order."""

from __future__ import annotations

from lmprof.phases import (EPOCH_PHASES, LABELS, PHASE_NAMES, PHASES, STEP_PHASES, Fanout, listening, phase)


class Log:
    def __init__(self, tag: str, heard: list[str]) -> None:
        self.tag, self.heard = tag, heard

    def enter(self, name: str) -> None:
        self.heard.append(f"{self.tag}+{name}")

    def exit(self, name: str) -> None:
        self.heard.append(f"{self.tag}-{name}")


def test_names_are_unique_and_in_upstreams_step_order() -> None:
    assert len(set(PHASE_NAMES)) == len(PHASES)
    assert STEP_PHASES == ("data", "zero_grad", "repackage", "forward", "loss", "backward", "clip", "update",
                           "logging")
    assert EPOCH_PHASES == ("evaluate_valid", "checkpoint_save")
    assert "waits for the device" in LABELS["logging"]


def test_unheard_markers_share_one_do_nothing_span() -> None:
    assert phase("forward") is phase("backward")
    with phase("forward"):
        pass


def test_listening_hears_enter_and_exit_then_stops() -> None:
    heard: list[str] = []
    with listening(Log("a", heard)):
        with phase("forward"):
            with phase("loss"):
                pass
    with phase("backward"):  # after the block: nobody listens
        pass
    assert heard == ["a+forward", "a+loss", "a-loss", "a-forward"]


def test_fanout_exits_in_reverse_so_spans_nest() -> None:
    heard: list[str] = []
    with listening(Fanout(Log("a", heard), Log("b", heard))):
        with phase("update"):
            pass
    assert heard == ["a+update", "b+update", "b-update", "a-update"]
