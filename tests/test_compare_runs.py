"""lmprof compare on real tiny runs: a bigger model is slower where arithmetic says, a rerun is within noise,
and the HTML page renders in headless Chromium without a console error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmprof.cli import main
from lmprof.comparison import NOISE, SLOWER, compare, load_runs
from tests.test_report_browser import Dom, browser, chromium, console_lines  # noqa: F401  (browser: a fixture)

BATCHES = 36  # bptt 4: a burst of the VM's other load over a 15-batch run moved every phase of it 15-30%


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> dict[str, Path]:
    """emsize/nhid 32, the same again, and 256: phase timer and FLOP counter, as lmprof profile runs them."""
    from lmprof.config import RunConfig
    from lmprof.instrument.flops import FlopInstrument
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.runner import run

    folder = tmp_path_factory.mktemp("compare-runs")
    out = {}
    # The small runs follow a small warm-up run, not the big run: a small run right after the big one ran
    # slower in every phase (the allocator and caches left as the big model left them), and its rerun
    # looked "faster" in 4 of 4 tries on a 2-core VM; after the warm-up, 6 of 6 were within noise.
    for name, size in (("big", 256), ("warm-up", 32), ("small", 32), ("small-again", 32)):
        # on the CPU: at these sizes a GPU step is launch-bound, so 8x wider layers need not be slower there
        cfg = RunConfig(data=str(tiny_corpus), emsize=size, nhid=size, epochs=1, max_batches=BATCHES, bptt=4,
                        device="cpu")
        run(cfg, command="profile", run_dir=folder / name, log=lambda line: None,
            instruments=[PhaseInstrument(), FlopInstrument()])
        out[name] = folder / name
    return out


def verdicts(*folders: Path, drift_margin: float | None = None) -> dict[str, str]:
    results, notes = load_runs(folders)
    return {p.name: p.verdicts[1] for p in compare(results, notes, drift_margin=drift_margin).phases}


def test_bigger_model_is_slower_in_forward_and_backward(runs: dict[str, Path]) -> None:
    said = verdicts(runs["small"], runs["big"])
    assert said["forward"] == SLOWER and said["backward"] == SLOWER


# The drift this shared 2-core VM showed between reruns of one command (29%:
# benchmarks/results/compare-noise-emsize200-20261204-vm.json): at 1 ms phases the default 15% was crossed
# by whole-machine drift (every phase of a rerun 11-14% faster) in 1 of 5 tries.
THIS_VM_DRIFT = 0.30


def test_a_rerun_is_within_noise(runs: dict[str, Path]) -> None:
    said = verdicts(runs["small"], runs["small-again"], drift_margin=THIS_VM_DRIFT)
    assert said["forward"] == NOISE and said["backward"] == NOISE


def test_flop_ratio_is_printed_beside_the_time_ratio(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(runs["small"]), str(runs["big"]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["key"] for d in doc["config"]] == ["emsize", "nhid"]
    flops = {f["phase"]: f for f in doc["flops"]}
    assert set(flops) == {"forward", "backward"}
    # 8x wider layers: the recurrent matmuls grow 64x, the decoder 8x, so the step's FLOPs grow well over 8x
    assert flops["forward"]["flop_ratios"][1] > 8 and flops["backward"]["flop_ratios"][1] > 8
    assert flops["forward"]["time_ratios"][1] > 1
    phases = {p["name"]: p for p in doc["phases"]}
    assert phases["forward"]["batches"] == [BATCHES, BATCHES]


def test_page_renders_in_chromium(browser: str, runs: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    page = tmp_path / "compare.html"
    assert main(["compare", str(runs["small"]), str(runs["big"]), "--report", str(page)]) == 0
    done = chromium(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = Dom()
    dom.feed(done.stdout)
    # no line profile in these runs, so no lines section; the flow chart coloured by B's ratios, as an image
    assert dom.sections == ["cmp-runs", "cmp-differs", "cmp-outcome", "cmp-phases", "cmp-flops", "cmp-flow-B"]
    assert 'data-source="flow-vs-B"' in done.stdout
    assert dom.tags.get("table", 0) >= 5
    assert 'class="verdict slower"' in page.read_text()
    assert console_lines(done.stderr) == []
