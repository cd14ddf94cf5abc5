"""lmprof class on a generated class of 300 bundles: every planted misconception found, hostile bundles refused.

The class is made once per module from three real tiny runs (tests/class_maker.py): each
student's bundle is one of them perturbed as its machine kind would, with at most one planted
misconception, plus hostile bundles named evil-* (and two valid ones with markup in their names).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from lmprof.classroom.cohorts import cpu_family, robust_z
from lmprof.classroom.detectors import DETECTORS, growth, parameter_counts
from lmprof.classroom.summary import ClassSummary, class_summary
from lmprof.cli import main
from tests import class_maker

REFUSED_FILES = sorted(n for n in class_maker.hostile({"config": {}, "environment": {}}) if n.startswith("evil-"))


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> list[dict]:
    return class_maker.real_runs(tmp_path_factory.mktemp("bases"), tiny_corpus)


@pytest.fixture(scope="module")
def handins(tmp_path_factory: pytest.TempPathFactory, bases: list[dict]) -> tuple[Path, dict[str, set[str]]]:
    files, truth = class_maker.make_class(bases, n=300)
    files.update(class_maker.hostile(bases[0]))
    folder = tmp_path_factory.mktemp("handins")
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder, truth


@pytest.fixture(scope="module")
def expect_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("expect") / "assignment.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in class_maker.EXPECT.items()))
    return path


@pytest.fixture(scope="module")
def summary(handins: tuple[Path, dict[str, set[str]]]) -> ClassSummary:
    return class_summary([handins[0]], dict(class_maker.EXPECT))


def test_every_planted_misconception_is_found(summary: ClassSummary,
                                              handins: tuple[Path, dict[str, set[str]]]) -> None:
    truth = handins[1]
    found: dict[str, set[str]] = {}
    for flag in summary.flags:
        found.setdefault(flag.run, set()).add(flag.detector)
    scores = {}
    for d in DETECTORS:
        planted = {run for run, keys in truth.items() if d.key in keys}
        flagged = {run for run in truth if d.key in found.get(run, set())}
        hits = len(planted & flagged)
        scores[d.key] = (hits / len(flagged) if flagged else 0.0, hits / len(planted), len(planted), len(flagged))
    print("\ndetector       precision  recall  planted  flagged")
    for key, (p, r, n, f) in scores.items():
        print(f"{key:14s} {p:9.2f} {r:7.2f} {n:8d} {f:8d}")
    assert all(p >= 0.9 and r >= 0.9 for p, r, _, _ in scores.values()), scores


def test_hostile_bundles_cost_one_line_each(summary: ClassSummary) -> None:
    assert len(summary.refused) == len(REFUSED_FILES)
    for name, line in zip(REFUSED_FILES, sorted(summary.refused)):
        assert name in line and "\n" not in line
    assert len(summary.rows) == 302  # 300 students and the two valid bundles with markup in their names
    assert any(r.name == "<img src=x onerror=alert(1)>" for r in summary.rows)


def test_cohorts_by_device_kind(summary: ClassSummary) -> None:
    names = set(summary.cohorts)
    assert {"GPU · Tesla T4", "GPU · A100-SXM4-40GB", "CPU · Intel Core i7 · AVX2", "CPU · Apple M1 · DEFAULT",
            "CPU · AMD Ryzen 7 · AVX2", "CPU · Intel Xeon Gold · AVX512"} <= names
    t4 = summary.cohorts["GPU · Tesla T4"]
    row = next(r for r in t4 if not summary.flags_by_run.get(r.name))
    assert 0 <= row.positions["ms_per_batch"] <= 100 and "ms_per_batch" in row.z
    # calibrated: a clean run costs about the same reference steps per batch on a T4 and on a laptop
    laptop = [r.values["ref_steps_per_batch"] for r in summary.cohorts["CPU · Intel Core i7 · AVX2"]
              if not summary.flags_by_run.get(r.name)]
    t4_clean = [r.values["ref_steps_per_batch"] for r in t4 if not summary.flags_by_run.get(r.name)]
    assert 0.7 < sorted(laptop)[len(laptop) // 2] / sorted(t4_clean)[len(t4_clean) // 2] < 1.4


def test_the_command_line_writes_summary_csv_json_and_page(handins: tuple[Path, dict[str, set[str]]],
                                                           expect_file: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    folder = handins[0]
    args = ["class", str(folder), "--expect", str(expect_file), "--csv", str(tmp_path / "c.csv"),
            "--report", str(tmp_path / "c.html")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "A class of 302 runs" in out and "diverged" in out and "evil-notzip.zip" in out
    assert "<script>" in out  # a stranger's string printed as text, inert
    rows = list(csv.DictReader(io.StringIO((tmp_path / "c.csv").read_text())))
    assert len(rows) == 302 and {"name", "cohort", "ms_per_batch", "share_backward", "flags"} <= set(rows[0])
    assert main(["class", str(folder), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["runs"]) == 302 and doc["detectors"]["flags"] == 0  # no --expect: nothing compared
    html = (tmp_path / "c.html").read_text()
    assert "<script" not in html and "<img src=x" not in html and "&lt;script&gt;" in html


def test_a_csv_cell_never_becomes_a_formula(bases: list[dict], tmp_path: Path) -> None:
    files, _ = class_maker.make_class(bases, n=1, per_plant=0)
    (tmp_path / "=HYPERLINK(1).zip").write_bytes(next(iter(files.values())))
    text = class_summary([tmp_path]).to_csv()
    assert "\n'=HYPERLINK(1)," in text


def test_inputs_mix_folders_bundles_and_missing_paths(bases: list[dict], instrumented_run: Path,
                                                      tmp_path: Path) -> None:
    files, _ = class_maker.make_class(bases, n=2, per_plant=0)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "link.zip").symlink_to(tmp_path / name)  # a link inside a hand-in folder is not followed
    s = class_summary([tmp_path, instrumented_run, tmp_path / "gone.zip"])
    assert len(s.rows) == 3 and s.refused == [f"{tmp_path / 'gone.zip'}: no such file or folder"]


def test_a_class_with_no_readable_run_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["class", str(tmp_path)]) == 2
    assert "no bundle or run folder found" in capsys.readouterr().err
    (tmp_path / "evil.zip").write_text("not a bundle")
    assert main(["class", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "evil.zip is not an lmprof bundle" in err[0] and "no run could be read (1 refused)" in err[1]


def test_expect_file_errors_are_one_line(tmp_path: Path, handins: tuple[Path, dict[str, set[str]]],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "a.toml"
    bad.write_text("nhidd = 200\n")
    assert main(["class", str(handins[0]), "--expect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nhid" in err


def test_a_real_diverged_run_is_flagged(tiny_corpus: Path, tmp_path: Path) -> None:
    from lmprof.classroom.bundle import pack

    assert main(["train", "--data", str(tiny_corpus), "--emsize", "16", "--nhid", "16", "--epochs", "1",
                 "--max-batches", "6", "--bptt", "8", "--lr", "2000", "--out", str(tmp_path / "run")]) in (0, 1)
    pack(tmp_path / "run", tmp_path / "hand" / "bob.zip", environment={"host": "h"},
         calibration={"reference_step": {"seconds": 0.01}})
    s = class_summary([tmp_path / "hand"])
    assert [f.evidence.split(":")[0] for f in s.flags if f.detector == "diverged"] == ["diverged"]


def test_parameter_counts_match_the_real_model(bases: list[dict]) -> None:
    untied, tied = parameter_counts(bases[0]["config"], bases[0]["metrics"]["ntokens"])
    assert bases[0]["metrics"]["nparams"] == untied and untied - tied == bases[0]["metrics"]["ntokens"] * 16


def test_small_helpers() -> None:
    assert cpu_family("Intel(R) Core(TM) i7-1165G7 @ 2.80GHz") == "Intel Core i7"
    assert cpu_family("AMD EPYC 7B13") == "AMD EPYC" and cpu_family("") == "unknown CPU"
    assert robust_z(10.0, [1.0, 1.1, 0.9, 1.0, 1.05]) > 50 and robust_z(1.0, [1.0, 2.0]) is None
    ratio, rank = growth([5.0] + [1.0 + i / 4 for i in range(16)]) or (0, 0)
    assert ratio > 2 and rank == pytest.approx(1.0)
    assert growth([1.0] * 5) is None


def test_the_dashboard_renders_in_chromium(summary: ClassSummary, tmp_path: Path) -> None:
    from PIL import Image

    from lmprof.views.class_page import class_html
    from tests.test_report_browser import Dom, chromium, console_lines, find_browser

    browser = find_browser()
    if browser is None:
        pytest.skip("no headless Chromium here: `apt-get install chromium` (make test does it where it can)")
    page = tmp_path / "class.html"
    page.write_text(class_html(summary))
    done = chromium(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = Dom()
    dom.feed(done.stdout)
    assert dom.sections == ["class-cohorts", "class-flags", "class-dist", "class-runs", "class-refused"]
    assert dom.tags.get("svg", 0) >= 10 and dom.tags.get("circle", 0) >= 3000  # a dot per run per plot
    assert dom.tags.get("script", 0) == 0 and dom.tags.get("img", 0) == 0  # the names' markup stayed text
    assert console_lines(done.stderr) == []
    shot = tmp_path / "class.png"
    done = chromium(browser, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,1800",
                    page.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    lo, hi = Image.open(shot).convert("L").getextrema()
    assert hi - lo > 100  # text and plots on a background, not a blank page


@pytest.mark.cuda
def test_a_real_cuda_run_is_calibrated_on_its_gpu_and_not_flagged(tiny_corpus: Path, tmp_path: Path) -> None:
    from lmprof.classroom.bundle import read_bundle

    assert main(["profile", "--fn", "train", "--data", str(tiny_corpus), "--emsize", "16", "--nhid", "16",
                 "--epochs", "1", "--bptt", "8", "--device", "cuda", "--out", str(tmp_path / "run")]) == 0
    assert main(["pack", str(tmp_path / "run"), "--out", str(tmp_path / "hand" / "gpu.zip")]) == 0
    bundle = read_bundle(tmp_path / "hand" / "gpu.zip")
    assert bundle.calibration["device"].startswith("cuda") and bundle.environment["gpus"]
    assert 0 < bundle.calibration["reference_step"]["seconds"] < 1
    s = class_summary([tmp_path / "hand"])
    assert s.rows[0].cohort.startswith("GPU · ") and s.rows[0].device == "cuda"
    assert s.flags_by_run.get(s.rows[0].name, []) == [], s.flags  # a plain run: no hot sync, no CPU run
