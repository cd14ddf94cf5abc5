"""Views of a trace and of achieved speed: the operator table, the memory table, the FLOP/s lines.

Each function takes a RunResult and returns a rich renderable or a string;
none prints. ``lmprof trace`` shows the first two and ``trace_hint``; the
FLOP/s lines go under the phase table of ``lmprof profile``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from lmprof.record.files import TRACE_DIR
from lmprof.record.sections import (CPU_MEMORY_BYTES, CUDA_SHARE, GFLOPS_PER_S, INPUT_SHAPES, SELF_CPU_MEMORY_BYTES,
    SELF_CPU_SECONDS, SELF_CUDA_MEMORY_BYTES, SELF_CUDA_SECONDS, SHARE_OF_PEAK, SORT_BY, STEP_FLOPS,
    TOTAL_SELF_CPU_SECONDS, TOTAL_SELF_CUDA_SECONDS, TRACE_DIR_KEY, TRACE_FILES)
from lmprof.views.format import size

if TYPE_CHECKING:
    from rich.console import RenderableType

    from lmprof.record.result import RunResult

BAR_WIDTH = 12
SHORT_NAME_LIMIT = 60


def ops_table(result: "RunResult", row_limit: int = 15) -> "RenderableType":
    """The heaviest operators of the recorded steps: calls, self time (CPU, and GPU on CUDA), share, bar."""
    from rich.table import Table
    from rich.text import Text

    ops = result.ops
    rows = ops.get("rows") or []
    if not rows:
        return Text("no operators recorded (the run ended before the trace's active steps)")
    on_cuda = ops.get("device") == "cuda"
    by_cuda = ops.get(SORT_BY) == "self_cuda"
    steps = ops.get("steps", 0)
    total = ops.get(TOTAL_SELF_CUDA_SECONDS if by_cuda else TOTAL_SELF_CPU_SECONDS) or 0.0
    title = (f"Top operators by self {'CUDA' if by_cuda else 'CPU'} time · "
             f"{steps} traced step{'s' if steps != 1 else ''}, {_ms(total)} in all")
    table = Table(title=title, title_justify="left", header_style="bold", min_width=len(title))
    shown = rows[:row_limit]
    table.add_column("operator", overflow="fold", min_width=min(max(len(short_op_name(r["name"])) for r in shown), 36))
    if ops.get("group_by_shape"):
        table.add_column("input shapes", overflow="fold", style="dim")
    table.add_column("calls", justify="right")
    table.add_column("self CPU", justify="right")
    if on_cuda:
        table.add_column("self CUDA", justify="right")
    table.add_column("share", justify="right")
    table.add_column("", no_wrap=True)
    share_key = CUDA_SHARE if by_cuda else "share"
    for row in shown:
        share = row.get(share_key) or 0.0
        cells = [short_op_name(row["name"])]
        if ops.get("group_by_shape"):
            cells.append(row.get(INPUT_SHAPES, ""))
        cells += [str(row["calls"]), _ms(row[SELF_CPU_SECONDS])]
        if on_cuda:
            cells.append(_ms(row.get(SELF_CUDA_SECONDS, 0.0)))
        cells += [f"{share:.1%}", _bar(share)]
        table.add_row(*cells)
    rest = rows[row_limit:]
    caption = f"{len(rest)} more operator{'s' if len(rest) != 1 else ''} ({sum(r.get(share_key) or 0.0 for r in rest):.1%}). " if rest else ""
    if not by_cuda:
        in_ops = sum(r.get(share_key) or 0.0 for r in rows)
        caption += f"Operators take {in_ops:.1%} of the traced CPU time; the rest is Python between them."
    table.caption, table.caption_justify = caption.strip(), "left"
    return table


# --- CUDA kernel names ------------------------------------------------------------------------
# torch.profiler names a CUDA kernel by its C++ signature, often 200 characters of templates
# ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, ...>(...)").
# Tables show the kernel's own name, the library it comes from, and, for torch's generic
# element-wise and reduction kernels, the functor that says what they compute; result.json and
# the report's hover text keep the full name.
_LIBRARIES = ("cutlass", "cudnn", "cub", "cublas", "cublasLt", "flash", "nccl")
_CUDNN_KERNEL = re.compile(r"^(LSTM_|RNN_|GRU_|elemWiseRNNcell|cudnn)")
_CUBLAS_KERNEL = re.compile(r"^(sm\d+_xmma_|ampere_|volta_|turing_|hopper_|gemv|gemmk|gemmSN|splitKreduce)")
_CUTLASS_GEMM = re.compile(r"cutlass_\d+_(tensorop|simt|wmma)_(\w+?gemm)_(\d+x\d+)_\d+x\d+_([nt]{2})")
_XMMA_GEMM = re.compile(r"sm(\d+)_xmma_gemm_(\w+?)_([nt]{2})_[nt]_tilesize(\d+x\d+x\d+)")
_GENERIC_KERNEL = {"kernel", "Kernel", "Kernel2", "device_kernel"}
_WRAPPER_FUNCTORS = {"BinaryFunctor", "AUnaryFunctor", "BUnaryFunctor", "UnaryFunctor"}
_FUNCTOR = re.compile(r"([A-Za-z]\w*?(?:_functor|Functor\w*|_kernel_cuda|_cuda_out|Epilogue))\b")


def short_op_name(name: str) -> str:
    """A table's name for an operator: a CUDA kernel's C++ signature shortened, every other name as it is.

    >>> short_op_name("void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_64x64_16x6_nn_align4>"
    ...               "(cutlass_80_tensorop_s1688gemm_64x64_16x6_nn_align4::Params)")
    'cutlass tensorop s1688gemm 64x64 nn'
    >>> short_op_name("aten::addmm")
    'aten::addmm'
    """
    if not (name.startswith("void ") or "<" in name):
        return _short_plain_kernel(name)
    text = name.replace("(anonymous namespace)::", "")
    head = text[:_top_level(text, "(")[0]] if _top_level(text, "(") else text  # before the parameter list
    spaces = _top_level(head, " ")
    head = head[spaces[-1] + 1:] if spaces else head  # after the return type ("void", "std::enable_if<...>::type")
    opens = _top_level(head, "<")
    base, args = (head[:opens[0]], head[opens[0] + 1:]) if opens else (head, "")
    *namespaces, kernel = base.split("::")
    if kernel in _GENERIC_KERNEL:  # cutlass::Kernel2<cutlass_80_tensorop_...>: the name is the argument
        gemm = _CUTLASS_GEMM.search(args)
        if gemm:
            return "cutlass " + " ".join(gemm.groups())
        kernel = f"{namespaces[-1]} {kernel}" if namespaces else kernel
    library = next((n for n in namespaces if n in _LIBRARIES), "")
    if not library and _CUDNN_KERNEL.match(kernel):
        library = "cudnn"
    elif not library and "cublas" in args:
        library = "cublas"
    functor = next((f for f in _FUNCTOR.findall(args) if f not in _WRAPPER_FUNCTORS), "")
    short = " ".join(part for part in (library, kernel) if part) + (f" · {functor}" if functor else "")
    return _cut(short)


def _short_plain_kernel(name: str) -> str:
    """Kernels named without a signature: cuBLAS's and cutlass's tile names, cuDNN's RNN kernels."""
    gemm = _CUTLASS_GEMM.search(name)
    if gemm:
        return "cutlass " + " ".join(gemm.groups())
    xmma = _XMMA_GEMM.match(name)
    if xmma:
        arch, types, layout, tile = xmma.groups()
        kind = next((t for t in ("tf32", "bf16", "f16", "f64") if t in types), types.split("_")[0])
        return f"cublas sm{arch} xmma gemm {kind} {layout} {tile}"
    if _CUBLAS_KERNEL.match(name):
        return _cut(f"cublas {name}")
    if _CUDNN_KERNEL.match(name) and not name.startswith("cudnn"):
        return _cut(f"cudnn {name}")
    return name if "::" in name or " " in name else _cut(name)


def _top_level(text: str, char: str) -> list[int]:
    """Where ``char`` occurs outside every <...> and (...) of ``text``."""
    depth, found = 0, []
    for i, c in enumerate(text):
        if depth == 0 and c == char:
            found.append(i)
        if c in "<(":
            depth += 1
        elif c in ">)":
            depth = max(depth - 1, 0)
    return found


def _cut(text: str) -> str:
    return text if len(text) <= SHORT_NAME_LIMIT else text[:SHORT_NAME_LIMIT - 1] + "…"


def memory_table(result: "RunResult", row_limit: int = 15) -> "RenderableType":
    """Operators by the memory they allocated themselves (net of what they freed), with --memory."""
    from rich.table import Table
    from rich.text import Text

    ops = result.ops
    if not ops.get("memory"):
        return Text("no memory figures (run `lmprof trace --memory`)")
    on_cuda = ops.get("device") == "cuda"
    key = SELF_CUDA_MEMORY_BYTES if on_cuda else SELF_CPU_MEMORY_BYTES
    rows = sorted((r for r in ops.get("rows", []) if r.get(key)), key=lambda r: -r[key])
    title = f"Memory allocated by each operator over the traced steps ({'CUDA' if on_cuda else 'CPU'})"
    table = Table(title=title, title_justify="left", header_style="bold", min_width=len(title))
    table.add_column("operator", overflow="fold")
    if ops.get("group_by_shape"):
        table.add_column("input shapes", overflow="fold", style="dim")
    table.add_column("calls", justify="right")
    table.add_column("self", justify="right")
    if not on_cuda:  # torch.profiler totals memory with children on the CPU side only
        table.add_column("with children", justify="right")
    for row in rows[:row_limit]:
        cells = [short_op_name(row["name"])] + ([row.get(INPUT_SHAPES, "")] if ops.get("group_by_shape") else [])
        cells += [str(row["calls"]), size(row[key])]
        if not on_cuda:
            cells.append(size(row.get(CPU_MEMORY_BYTES, 0)))
        table.add_row(*cells)
    return table


def flops_lines(result: "RunResult") -> list[str]:
    """One line per phase, e.g. "backward: 31 GFLOP/s, 42% of this machine's matmul peak"."""
    flops = result.flops
    lines = []
    for row in flops.get("phases", []):
        if GFLOPS_PER_S not in row:  # a row that names its FLOPs but not their rate (compare reads those)
            continue
        line = f"{row['name']}: {_rate(row[GFLOPS_PER_S])} GFLOP/s"
        if row.get(SHARE_OF_PEAK) is not None:
            line += f", {row[SHARE_OF_PEAK]:.0%} of this machine's matmul peak"
        lines.append(line)
    return lines


def flops_text(result: "RunResult") -> str:
    """The FLOP/s lines and where their numbers come from; empty when the run has no ``flops``."""
    lines = flops_lines(result)
    if not lines:
        return ""
    flops = result.flops
    peak = flops.get("peak", {})
    step = flops.get(STEP_FLOPS, {})
    lines.append(f"  (peak: {_rate(peak.get('gflops', 0.0))} GFLOP/s, {peak.get('dtype', 'float32')} "
                 f"{peak.get('size')}x{peak.get('size')} matmul on {peak.get('device', '?')}{peak_when(peak)}; one step: "
                 f"forward {step.get('forward', 0) / 1e9:.3g} GFLOP, backward {step.get('backward', 0) / 1e9:.3g} "
                 f"GFLOP, matrix products only)")
    return "\n".join(lines)


def peak_when(peak: dict[str, Any]) -> str:
    """When and under what load the peak was measured, and whether this run measured it or read the cache."""
    parts = []
    if peak.get("measured_at"):
        parts.append(f"measured {peak['measured_at']}")
    if peak.get("threads"):
        parts.append(f"{peak['threads']} thread(s)")
    if peak.get("load") is not None:
        parts.append(f"load average {peak['load']:.2f}")
    if "cached" in peak:
        parts.append("from the cache (--remeasure-peak to measure again)" if peak["cached"] else "measured by this run")
    return f", {', '.join(parts)}" if parts else ""


def trace_hint(result: "RunResult") -> str:
    """How to open the trace: TensorBoard's profiler plugin and Perfetto."""
    from pathlib import Path

    run_dir = Path(result.run_dir or ".")
    trace_dir = run_dir / result.ops.get(TRACE_DIR_KEY, TRACE_DIR)
    files = result.ops.get(TRACE_FILES) or []
    if not files:
        return "no trace was written (the run ended before the schedule's active steps)"
    first = trace_dir / files[0]
    return "\n".join([
        "Open the trace:",
        f"  TensorBoard  tensorboard --logdir {trace_dir}",
        "               then http://localhost:6006/#pytorch_profiler (views: Overview, Operator, Trace)",
        f"  Perfetto     https://ui.perfetto.dev -> Open trace file -> {first}",
        "               (Chrome trace JSON: chrome://tracing opens it too)",
    ])


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms" if ms >= 0.1 else f"{ms * 1e3:.0f} µs"


def _rate(gflops: float) -> str:
    """Two or three significant figures: 312, 31, 3.1, 0.31."""
    return f"{gflops:.0f}" if round(gflops, 1) >= 10 else f"{gflops:.1f}" if round(gflops, 2) >= 1 else f"{gflops:.2f}"


def _bar(share: float) -> str:
    filled = round(max(0.0, min(share, 1.0)) * BAR_WIDTH)
    return "█" * filled

