"""A generated class for tests/test_class.py and benchmarks/bench_class.py: 300 bundles from 3 real tiny runs.

The real runs are made once (a full epoch of a tiny LSTM, phases and line
table recorded); each student's bundle is one of them perturbed in memory
as its kind of machine would (speed, noise per phase, device, CPU model),
with at most one planted misconception, whose detector key is the truth the
test scores against. A few hostile bundles come along (named evil-*).
"""

from __future__ import annotations

import copy
import io
import json
import math
import random
import statistics
import struct
import zipfile
from pathlib import Path
from typing import Any

# kind -> (device, CPU model, capability, GPU, speed factor against the base runs, reference step ms)
MACHINES: dict[str, tuple[str, str, str, str, float, float]] = {
    "laptop": ("cpu", "Intel(R) Core(TM) i7-1165G7 @ 2.80GHz", "AVX2", "", 1.3, 13.0),
    "lab": ("cpu", "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", "AVX512", "", 0.8, 8.0),
    "ryzen": ("cpu", "AMD Ryzen 7 5800X 8-Core Processor", "AVX2", "", 0.9, 9.0),
    "mac": ("cpu", "Apple M1", "DEFAULT", "", 1.0, 10.0),
    "colab": ("cuda", "Intel(R) Xeon(R) CPU @ 2.20GHz", "AVX2", "Tesla T4", 0.3, 3.0),
    "cluster": ("cuda", "AMD EPYC 7742 64-Core Processor", "AVX2", "NVIDIA A100-SXM4-40GB", 0.1, 1.0),
}
PLANTS = ("no-repackage", "cpu-on-gpu", "hot-sync", "diverged", "tied", "cut", "flags", "outlier")
EXPECT = {"model": "LSTM", "emsize": 16, "nhid": 16, "nlayers": 2, "epochs": 1, "seed": 1111, "bptt": 8,
          "batch_size": 20}
STEP = ("data", "zero_grad", "repackage", "forward", "loss", "backward", "clip", "update", "logging")


def real_runs(folder: Path, corpus: Path, count: int = 3) -> list[dict[str, Any]]:
    """``count`` real full-epoch runs of the assignment's config, as the bundle's result.json holds them."""
    from lmprof.classroom.bundle import record_for_bundle
    from lmprof.config import RunConfig
    from lmprof.instrument.lines import LineInstrument
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.runner import run

    # A throwaway run first: the first run in a process pays torch's lazy start-up in its forward (a share
    # ten points higher), as every student's single run does; the bases are all warm, so alike.
    run(RunConfig(data=str(corpus), emsize=16, nhid=16, epochs=1, bptt=8, max_batches=3, threads=2,
                  device="cpu"),
        command="profile", run_dir=folder / "warm-up", log=lambda line: None, instruments=[PhaseInstrument()])
    docs = []
    for i in range(count):
        cfg = RunConfig(data=str(corpus), model="LSTM", emsize=16, nhid=16, epochs=1, bptt=8, seed=1111, threads=2,
                        device="cpu")  # CPU records, perturbed per machine kind below
        result = run(cfg, command="profile", run_dir=folder / f"base{i}", log=lambda line: None,
                     instruments=[PhaseInstrument(), LineInstrument(["train"])])
        docs.append(record_for_bundle(result))
    return _alike(docs)


def _alike(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each step phase's time set to its median over the real runs (samples scaled with it).

    Three runs of one program on a shared 2-core machine can differ by a third in one phase; a third of
    the class then sits apart from the rest and reads as outliers (or hides the planted ones). The
    machine kinds' perturbations below are the class's spread, so the bases are made alike.
    """
    for name in STEP:
        rows = [next(r for r in doc["phases"] if r["name"] == name) for doc in docs]
        median = statistics.median(r["seconds"] for r in rows)
        for doc, row in zip(docs, rows):
            factor = median / row["seconds"] if row["seconds"] else 1.0
            _scale_times(doc, 1.0, {name: factor})
    return docs


def _scale_times(doc: dict[str, Any], factor: float, per_phase: dict[str, float] | None = None) -> None:
    """Every training time of ``doc`` times ``factor`` (and a phase's own factor): samples, totals, epochs."""
    per_phase = per_phase or {}
    old_step = sum(r["seconds"] for r in doc["phases"] if r["name"] in STEP)
    for row in doc["phases"]:
        f = factor * per_phase.get(row["name"], 1.0)
        for key in ("seconds", "host_seconds", "mean_seconds"):
            if isinstance(row.get(key), (int, float)):
                row[key] *= f
        if row.get("samples"):
            row["samples"] = [s * f for s in row["samples"]]
    new_step = sum(r["seconds"] for r in doc["phases"] if r["name"] in STEP)
    for epoch in doc["metrics"]["epochs"]:
        epoch["train_seconds"] *= new_step / old_step if old_step else factor
        epoch["tokens_per_s"] = epoch["tokens"] / epoch["train_seconds"]


def _machine(doc: dict[str, Any], kind: str, rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    device, cpu, capability, gpu, factor, ref_ms = MACHINES[kind]
    host = f"{kind}-{rng.randrange(10**6)}"
    doc["environment"].update({"device": "cuda:0" if device == "cuda" else "cpu", "cpu": cpu, "host": host})
    doc["environment"].pop("gpu", None)
    if gpu:
        doc["environment"]["gpu"] = gpu
    noise = {name: math.exp(rng.gauss(0, 0.05)) for name in STEP}
    _scale_times(doc, factor * math.exp(rng.gauss(0, 0.08)), noise)
    for epoch in doc["metrics"]["epochs"]:  # another machine's kernels: the last digits of the loss differ
        epoch["val_ppl"] *= math.exp(rng.gauss(0, 0.01))
    doc["metrics"]["test_ppl"] *= math.exp(rng.gauss(0, 0.01))
    packing = {"kind": kind, "host": host, "cpu": cpu, "cpu_capability": capability, "gpus": [gpu] if gpu else [], "mps": False,
               "torch": "2.13.0", "threads": 2}
    calibration = {"device": device, "same_host": True, "matmul_peak_gflops": 100 / factor,
                   "reference_step": {"seconds": ref_ms / 1000 * math.exp(rng.gauss(0, 0.03)), "steps": 10}}
    return packing, calibration


def _train_lines(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return next(f for f in doc["lines"]["functions"] if f["name"] == "train")["lines"]


def plant(kind: str, doc: dict[str, Any], packing: dict[str, Any], calibration: dict[str, Any],
          rng: random.Random) -> None:
    """Give ``doc`` the misconception ``kind`` as a student's run would show it."""
    phases = {r["name"]: r for r in doc["phases"]}
    m, cfg = doc["metrics"], doc["config"]
    if kind == "no-repackage":  # backward (and forward) walk every earlier batch's graph: batch i costs up to i+1
        g = rng.uniform(3.0, len(phases["backward"]["samples"]))  # 3: a graph partly freed, n: none freed
        for name in ("forward", "backward"):
            row, n = phases[name], len(phases[name]["samples"])
            row["samples"] = [s * (1 + g * i / n) for i, s in enumerate(row["samples"])]
            row["seconds"] = sum(row["samples"])
        phases["repackage"]["calls"], phases["repackage"]["seconds"] = 0, 0.0
        phases["repackage"]["samples"] = []
        m["epochs"][0]["train_seconds"] = sum(phases[p]["seconds"] for p in STEP)
    elif kind == "cpu-on-gpu":  # a Colab machine, --device cpu: the run's device is the CPU
        doc["environment"].update({"device": "cpu", "cpu": MACHINES["colab"][1]})
        doc["environment"].pop("gpu", None)
        packing.update({"gpus": ["Tesla T4"], "cpu": MACHINES["colab"][1], "cpu_capability": "AVX2"})
        _scale_times(doc, 1.2 / MACHINES[packing["kind"]][4])  # the Colab VM's CPU, whatever the draw was
        calibration["device"] = "cpu"  # pack calibrates on the run's device: the same CPU
        calibration["reference_step"]["seconds"] = 0.012 * math.exp(rng.gauss(0, 0.03))
    elif kind == "hot-sync":  # loss.item() after every line: the host waits for the GPU each time
        extra = rng.uniform(1.0, 3.0) * sum(phases[p]["seconds"] for p in STEP)
        phases["logging"]["seconds"] += extra
        m["epochs"][0]["train_seconds"] += extra
        lines = _train_lines(doc)
        total = sum(line["seconds"] for line in lines) + extra
        for line in lines:
            line["seconds"] += extra if "loss.item()" in line["source"] else 0.0
            line["share"] = line["seconds"] / total
    elif kind == "diverged":
        cfg["lr"] = rng.choice([200.0, 2000.0])
        how = rng.randrange(3)
        m["epochs"][-1]["val_ppl"] = None if how == 0 else 10 ** rng.uniform(5, 250)
        m["test_ppl"] = None if how == 0 else 10 ** rng.uniform(5, 250)
        if how == 2:
            m["status"] = "diverged"
    elif kind == "tied":  # the flag and the parameter count disagree
        from lmprof.classroom.detectors import parameter_counts

        untied, tied = parameter_counts(cfg, m["ntokens"])
        if rng.random() < 0.5:
            cfg["tied"] = True  # asked, but the model built is untied (nparams unchanged)
        else:
            m["nparams"] = tied  # tied in code, not asked
    elif kind == "cut":
        keep = rng.randrange(3, 8)
        epoch = m["epochs"][0]
        fraction = keep / epoch["batches"]
        cfg["max_batches"] = keep
        epoch.update(batches=keep, tokens=int(epoch["tokens"] * fraction),
                     train_seconds=epoch["train_seconds"] * fraction)
        for name in STEP:
            row = phases[name]
            row["samples"] = row.get("samples", [])[:keep]
            row["calls"], row["seconds"] = keep, sum(row["samples"]) or row["seconds"] * fraction
    elif kind == "flags":
        key, value = rng.choice([("seed", 42), ("nhid", 32), ("emsize", 32), ("epochs", 2), ("nlayers", 3)])
        cfg[key] = value
        if key == "nhid":
            _scale_times(doc, 1.0)  # what runs slower for it stays in the cohort's spread: flagged for the flag
    elif kind == "outlier":  # a busy laptop, or one phase far off (another clip, a slow data loader)
        if rng.random() < 0.5:
            _scale_times(doc, rng.uniform(3.0, 5.0))
        else:
            # The phase gains 30-60% of the step, whatever its own share was in the real base run: ten times
            # a phase that took 0.05% of this machine's step is still inside the cohort's half-point spread.
            name = rng.choice(["clip", "data", "update"])
            step = sum(phases[p]["seconds"] for p in STEP)
            own = phases[name]["seconds"] or step * 1e-3
            _scale_times(doc, 1.0, {name: 1.0 + rng.uniform(0.3, 0.6) * step / own})


def zipped(members: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, value in members.items():
            zf.writestr(name, value if isinstance(value, (str, bytes)) else json.dumps(value))
    return buffer.getvalue()


def make_class(bases: list[dict[str, Any]], n: int = 300, seed: int = 0,
               per_plant: int = 14) -> tuple[dict[str, bytes], dict[str, set[str]]]:
    """``n`` bundles (file name -> bytes) and the truth (run name -> planted detector keys)."""
    rng = random.Random(seed)
    kinds = list(MACHINES)
    plan = [p for p in PLANTS for _ in range(per_plant)] + [""] * (n - per_plant * len(PLANTS))
    rng.shuffle(plan)
    files, truth = {}, {}
    for i, planted in enumerate(plan):
        doc = copy.deepcopy(bases[i % len(bases)])
        kind = rng.choice(kinds)
        if planted == "hot-sync" and MACHINES[kind][0] != "cuda":
            kind = rng.choice(["colab", "cluster"])
        packing, calibration = _machine(doc, kind, rng)
        if planted:
            plant(planted, doc, packing, calibration, rng)
        name = f"student-{i:03d}-{kind}"
        meta = {"format": "lmprof-bundle", "schema_version": 1, "lmprof": "test", "anonymized": False}
        files[f"{name}.zip"] = zipped({"bundle.json": meta, "result.json": doc, "environment.json": packing,
                                       "calibration.json": calibration})
        truth[name] = {planted} if planted else set()
    return files, truth


def _claiming(data: bytes, size: int) -> bytes:
    """A zip whose headers claim every member is ``size`` bytes uncompressed."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = out.find(signature)
        while at >= 0:
            out[at + offset:at + offset + 4] = struct.pack("<I", size)
            at = out.find(signature, at + 4)
    return bytes(out)


def hostile(base: dict[str, Any]) -> dict[str, bytes]:
    """Bundles that must each cost one line: traversal, a 1 GB claim, deep JSON, script in names, not a zip."""
    meta = {"format": "lmprof-bundle", "schema_version": 1}
    good = {"bundle.json": meta, "result.json": base}
    scripted = copy.deepcopy(base)
    scripted["environment"]["cpu"] = "<script>alert('cpu')</script>"
    scripted["config"]["model"] = "LSTM"
    return {
        "evil-traversal.zip": zipped({**good, "../../../tmp/evil.sh": "echo owned"}),
        "evil-absolute.zip": zipped({"/etc/cron.d/evil": "x", **good}),
        "evil-1gb.zip": _claiming(zipped({"bundle.json": meta, "result.json": "{}"}), 1 << 30),
        "evil-deep.zip": zipped({"bundle.json": meta, "result.json": "[" * 200_000 + "]" * 200_000}),
        "evil-deep-dict.zip": zipped({"bundle.json": meta, "result.json": '{"a":' * 500 + "1" + "}" * 500}),
        "evil-notzip.zip": b"not a bundle, only text",
        "evil-pickle.zip": zipped({**good, "model.pt": b"\x80\x04cos\nsystem\n"}),
        "<img src=x onerror=alert(1)>.zip": zipped({**good, "environment.json": {"cpu": "<b>x</b>"}}),
        "scripted-cpu.zip": zipped({"bundle.json": meta, "result.json": scripted}),
    }
