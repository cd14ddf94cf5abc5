"""lmprof pack: a bundle of JSON only, under its cap, calibrated, anonymized on request; show and report open it."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from lmprof.classroom import bundle as bundle_module
from lmprof.classroom.bundle import MEMBERS, pack, read_bundle
from lmprof.cli import main

FAKE_MACHINE = {"host": "secret-host-xyz", "user": "alicestudent", "home": "/home/alicestudent",
                "platform": "Linux", "cpu": "AMD EPYC 7B13", "cpu_capability": "AVX2", "gpus": [], "mps": False}
FAKE_CALIBRATION = {"device": "cpu", "matmul_peak_gflops": 100.0, "reference_step": {"seconds": 0.01}}


def members(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as zf:
        return {name: json.loads(zf.read(name)) for name in zf.namelist()}


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory, instrumented_run: Path) -> Path:
    """The instrumented run (it has a trace, a checkpoint, lines.lprof) packed by the CLI, calibration measured."""
    out = tmp_path_factory.mktemp("pack") / "alice.zip"
    assert main(["pack", str(instrumented_run), "--out", str(out)]) == 0
    return out


def test_bundle_holds_json_only_with_a_calibration(packed: Path, instrumented_run: Path) -> None:
    assert (instrumented_run / "lines.lprof").exists() and any(instrumented_run.glob("trace*"))  # left at home
    with zipfile.ZipFile(packed) as zf:
        assert sorted(zf.namelist()) == sorted(MEMBERS)
    assert packed.stat().st_size < 2_000_000
    doc = members(packed)
    assert doc["bundle.json"]["format"] == "lmprof-bundle" and doc["bundle.json"]["schema_version"] == 1
    result = doc["result.json"]
    assert result["files"] == {}  # no checkpoint, pickle or trace named
    train = next(f for f in result["lines"]["functions"] if f["name"] == "train")
    assert any("loss.backward()" in line["source"] for line in train["lines"])  # the line table, as JSON
    calibration = doc["calibration.json"]
    assert calibration["matmul_peak_gflops"] > 0 and 0 < calibration["reference_step"]["seconds"] < 5
    assert calibration["same_host"] is True and calibration["device"] == "cpu"
    assert doc["environment.json"]["cpu_capability"] and "home" not in doc["environment.json"]


def test_long_series_are_thinned_in_order() -> None:
    series = list(range(10_000))
    kept = bundle_module.thinned(series, 1000)
    assert len(kept) == 1000 and kept[0] == 0 and kept[-1] == 9999 and kept == sorted(kept)


def test_anonymize_leaves_no_host_user_or_path(tmp_path: Path, instrumented_run: Path) -> None:
    run = tmp_path / "alicestudent-run"
    shutil.copytree(instrumented_run, run)
    doc = json.loads((run / "result.json").read_text())
    doc["environment"]["host"] = doc["metrics"]["host"] = "secret-host-xyz"
    doc["metrics"]["message"] = "stopped by alicestudent on secret-host-xyz.uni.edu, see /home/alicestudent/log"
    doc["config"]["data"] = "/home/alicestudent/data/wikitext-2"
    (run / "result.json").write_text(json.dumps(doc))
    out = pack(run, tmp_path / "b.zip", anonymize=True, environment=FAKE_MACHINE, calibration=FAKE_CALIBRATION)
    with zipfile.ZipFile(out) as zf:
        text = "".join(zf.read(name).decode("utf-8") for name in zf.namelist())
    for secret in ("secret-host", "alicestudent", "/home/", str(tmp_path), str(instrumented_run)):
        assert secret not in text, secret
    got = members(out)
    assert got["result.json"]["environment"]["host"] == got["environment.json"]["host"]  # stable: one hash
    assert got["result.json"]["environment"]["host"].startswith("host-")
    assert got["bundle.json"]["anonymized"] is True and got["calibration.json"]["same_host"] is True
    assert read_bundle(out).result.config["model"] == "LSTM"  # still a bundle lmprof reads


def test_a_bundle_over_its_cap_is_refused_in_one_line(tmp_path: Path, instrumented_run: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bundle_module, "BUNDLE_BYTES", 2000)
    monkeypatch.setattr("lmprof.classroom.calibrate.calibrate", lambda *a: FAKE_CALIBRATION)
    assert main(["pack", str(instrumented_run), "--out", str(tmp_path / "big.zip")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "over the" in err and not (tmp_path / "big.zip").exists()


def test_pack_needs_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pack", str(tmp_path / "nothing")]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_show_and_report_open_a_bundle(packed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(packed)]) == 0
    out = capsys.readouterr().out
    assert "backward (BPTT)" in out and "loss.backward()" in out and f"Bundle {packed}" in out
    page = tmp_path / "alice.html"
    assert main(["report", str(packed), "--output", str(page)]) == 0
    html = page.read_text()
    assert "Where the time went" in html and "cannot read" not in html


def test_api_pack(tmp_path: Path, instrumented_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lmprof

    monkeypatch.setattr("lmprof.classroom.calibrate.calibrate", lambda *a: FAKE_CALIBRATION)
    path = lmprof.pack(str(instrumented_run), tmp_path / "api.zip")
    assert read_bundle(path).calibration["reference_step"]["seconds"] == 0.01
    with pytest.raises(ValueError, match="a bundle is a zip"):
        lmprof.pack(str(instrumented_run), tmp_path / "api.tar")


def test_a_cuda_run_packed_where_there_is_no_cuda_is_calibrated_on_the_cpu_and_says_so() -> None:
    import torch

    from lmprof.classroom.calibrate import calibrate

    if torch.cuda.is_available():
        pytest.skip("CUDA is here: test_class's cuda test covers the GPU calibration")
    state = torch.random.get_rng_state()
    cal = calibrate("cuda:0", 1)
    assert cal["device"] == "cpu" and cal["run_device"] == "cuda:0" and cal["reference_step"]["threads"] == 1
    assert 0 < cal["reference_step"]["seconds"] < 5 and torch.equal(state, torch.random.get_rng_state())
