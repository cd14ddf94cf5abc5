"""The lesson notebook runs end to end in a real Jupyter kernel, and its cells display tables and SVG."""

from __future__ import annotations

from pathlib import Path

import pytest

LESSON = Path(__file__).resolve().parents[1] / "examples" / "lesson.ipynb"
nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extra: pip install -e '.[test]'")
nbformat = pytest.importorskip("nbformat", reason="nbformat is in the test extra")
pytest.importorskip("ipykernel", reason="ipykernel is in the test extra")


def test_lesson_outputs_are_cleared_in_git() -> None:
    nb = nbformat.read(LESSON, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.get("outputs") and c.get("execution_count") is None for c in code)


@pytest.mark.slow
def test_lesson_notebook_executes_with_tables_and_svg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = nbformat.read(LESSON, as_version=4)
    monkeypatch.setenv("LMPROF_LESSON", "tiny")  # every step in seconds: the lesson's own cells, smaller sizes
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors[0].get("evalue") if errors else ""
    html = [str(o.get("data", {}).get("text/html", "")) for o in outputs]
    svgs = [str(o.get("data", {}).get("image/svg+xml", "")) for o in outputs]
    assert any("<table" in h and "backward (BPTT)" in h for h in html), "no phase table in the profile cell"
    assert sum("<svg" in s for s in svgs) >= 2, "the flow chart and the BPTT graph are not inline SVG"
    assert any("within noise" in h or "faster" in h or "slower" in h for h in html), "no comparison table"
    section6 = next((h for h in html if "Phases: time per batch" in h), "")  # lmprof.compare(lstm, gru)
    assert "verdict" in section6 and "rnn (LSTM vs GRU)" in section6, "section 6: no phase verdicts or rnn pair"
    assert not any("Flow chart, shaded by measured time" in h for h in html), "the flow chart is shown twice"
    assert (tmp_path / "runs").is_dir()  # the runs went to the notebook's folder, not the project's
