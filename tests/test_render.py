"""Rendering: where files go, which renderer runs, and what happens when none can."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmprof.cli import main
from lmprof.errors import UsageError
from lmprof.views import render as render_module
from lmprof.views.render import find_renderer, output_path, render

SMALL = 'digraph g { subgraph cluster_t1 { label="t = 1"; a -> b } b -> c }'


def test_output_path_from_out_and_format(tmp_path: Path) -> None:
    assert output_path(None, None, "bptt") == (Path("bptt.svg"), "svg")
    assert output_path(None, "png", "flow", tmp_path) == (tmp_path / "flow.png", "png")
    assert output_path(str(tmp_path), "pdf", "bptt") == (tmp_path / "bptt.pdf", "pdf")  # an existing folder
    assert output_path("out/g.png", None, "bptt") == (Path("out/g.png"), "png")  # the suffix gives the format
    assert output_path("out/g", "dot", "bptt") == (Path("out/g.dot"), "dot")
    with pytest.raises(UsageError, match="make them agree"):
        output_path("g.svg", "png", "bptt")
    with pytest.raises(UsageError, match="unknown --format"):
        output_path(None, "jpg", "bptt")


@pytest.mark.skipif(find_renderer("svg") is None, reason="no dot or graphviz-pure here")
@pytest.mark.parametrize("fmt, magic", [("svg", b"<svg"), ("png", b"\x89PNG")])
def test_renders_picture_and_keeps_dot_beside(tmp_path: Path, fmt: str, magic: bytes) -> None:
    done = render(SMALL, tmp_path / f"g.{fmt}", fmt)
    assert done.picture == tmp_path / f"g.{fmt}" and done.dot == tmp_path / "g.dot"
    assert magic in done.picture.read_bytes()[:400]
    assert done.dot.read_text() == SMALL
    assert done.renderer in ("dot", "graphviz-pure")


def test_dot_format_needs_no_renderer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render_module, "which", lambda name: None)
    done = render(SMALL, tmp_path / "g.dot", "dot")
    assert done.picture == done.dot and done.renderer is None and done.dot.read_text() == SMALL


def test_no_renderer_exits_2_and_keeps_the_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(render_module, "which", lambda name: None)  # nor graphviz-pure beside python
    monkeypatch.setattr(render_module, "pure_renderer", lambda: None)  # nor beside its installed package
    assert main(["diagram", "bptt", "--out", str(tmp_path / "b.svg")]) == 2
    err = capsys.readouterr().err
    assert "no Graphviz renderer" in err and "pip install graphviz-pure" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "t = 4" in (tmp_path / "b.dot").read_text()
    assert not (tmp_path / "b.svg").exists()


def test_pdf_without_system_dot_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render_module, "which", lambda name: "/opt/bin/graphviz-pure" if name == "graphviz-pure" else None)
    assert find_renderer("svg") == "/opt/bin/graphviz-pure" and find_renderer("pdf") is None
    with pytest.raises(UsageError, match="pdf needs the system Graphviz `dot`") as caught:
        render(SMALL, tmp_path / "g.pdf", "pdf")
    assert str(tmp_path / "g.dot") in str(caught.value)
    assert (tmp_path / "g.dot").is_file() and not (tmp_path / "g.pdf").exists()


def test_graphviz_pure_installed_with_pip_target_is_found_in_its_bin(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`pip install --target DIR graphviz-pure`: metadata in DIR (on PYTHONPATH), the executable in DIR/bin."""
    target = tmp_path / "site"
    info = target / "graphviz_pure-0.2.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: graphviz-pure\nVersion: 0.2.2\n")
    (info / "RECORD").write_text("../../bin/graphviz-pure,,\ngraphviz_pure-0.2.2.dist-info/METADATA,,\n")  # as pip wrote it
    exe = target / "bin" / "graphviz-pure"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\necho '<svg xmlns=\"http://www.w3.org/2000/svg\"/>'\n")
    exe.chmod(0o755)
    monkeypatch.syspath_prepend(str(target))
    monkeypatch.setattr(render_module, "which", lambda name: None)  # neither on PATH nor in the scripts folder
    assert find_renderer("svg") == str(exe) and find_renderer("pdf") is None
    assert main(["diagram", "bptt", "--nlayers", "1", "--bptt", "3", "--out", str(tmp_path / "b.svg")]) == 0
    assert (tmp_path / "b.svg").read_text().startswith("<svg")


def test_system_dot_is_preferred(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render_module, "which", lambda name: f"/usr/bin/{name}")
    assert find_renderer("pdf") == "/usr/bin/dot" and find_renderer("png") == "/usr/bin/dot"


@pytest.mark.skipif(find_renderer("svg") is None, reason="no dot or graphviz-pure here")
def test_a_renderer_failure_is_one_line_and_keeps_the_dot(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="failed on"):
        render("digraph g { a -> }", tmp_path / "bad.svg", "svg")
    assert (tmp_path / "bad.dot").is_file() and not (tmp_path / "bad.svg").exists()


@pytest.mark.skipif(find_renderer("svg") is None, reason="no dot or graphviz-pure here")
def test_bench_render_measure_smoke() -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_render.py"
    spec = importlib.util.spec_from_file_location("bench_render", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.measure(repeats=1, bptt=3, nlayers=1, process=False)
    assert 0 < report["flow_seconds"] < 30 and 0 < report["bptt_seconds"] < 30
    assert report["targets"] == {"flow_seconds": 1.0, "bptt_seconds": 5.0}
