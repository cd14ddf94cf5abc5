"""views/ops.py: the FLOP/s lines and the trace hint, from result.json's numbers."""

from __future__ import annotations

from pathlib import Path

from lmprof.record.result import RunResult
from lmprof.views.ops import flops_lines, flops_text, trace_hint


def test_flops_lines_round_and_name_the_peak(profile_result: RunResult) -> None:
    profile_result.flops = {
        "phases": [{"name": "forward", "gflops_per_s": 132.4, "share_of_peak": 0.6},
                   {"name": "backward", "gflops_per_s": 3.14159, "share_of_peak": None}],
        "peak": {"gflops": 220.0, "size": 1024, "device": "cpu", "threads": 2, "cached": True},
        "step_flops": {"forward": 2.99e9, "backward": 5.97e9}}
    assert flops_lines(profile_result) == ["forward: 132 GFLOP/s, 60% of this machine's matmul peak",
                                           "backward: 3.1 GFLOP/s"]
    text = flops_text(profile_result)
    assert "peak: 220 GFLOP/s, float32 1024x1024 matmul on cpu, 2 thread(s), from the cache" in text
    assert "forward 2.99 GFLOP, backward 5.97 GFLOP" in text


def test_no_flops_no_text(empty_result: RunResult) -> None:
    assert flops_lines(empty_result) == [] and flops_text(empty_result) == ""


def test_trace_hint_names_the_first_trace_file(profile_result: RunResult, tmp_path: Path) -> None:
    assert trace_hint(profile_result).startswith("no trace was written")
    profile_result.run_dir = str(tmp_path)
    profile_result.ops = {"trace_dir": "trace", "trace_files": ["host_1.pt.trace.json"]}
    hint = trace_hint(profile_result)
    assert f"tensorboard --logdir {tmp_path / 'trace'}" in hint
    assert str(tmp_path / "trace" / "host_1.pt.trace.json") in hint


# CUDA kernels as torch.profiler names them (torch 2.x traces of the LSTM step on CUDA): C++ signatures
KERNELS = {
    "void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_64x64_16x6_nn_align4>"
    "(cutlass_80_tensorop_s1688gemm_64x64_16x6_nn_align4::Params)": "cutlass tensorop s1688gemm 64x64 nn",
    "void LSTM_elementWise_bp1<float, float, float>(int, int, float*, float*, float*, float*, float*, float*, "
    "float*, float*, float*, int, int)": "cudnn LSTM_elementWise_bp1",
    "void elemWiseRNNcell<float, float, float, (cudnnRNNMode_t)2, (cudnnRNNBiasMode_t)2>(int, int, int, int, int, "
    "bool, float const*, float const*, float*, cudnnRNNClipMode_t, cudnnNanPropagation_t, float, float)":
        "cudnn elemWiseRNNcell",
    "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, std::array<char*, 1ul> >"
    "(int, at::native::FillFunctor<float>, std::array<char*, 1ul>)": "vectorized_elementwise_kernel · FillFunctor",
    "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::func_wrapper_t<float, "
    "at::native::sum_functor<float, float, float>::operator()(at::TensorIterator&)::{lambda(float, float)#1}>, "
    "unsigned int, float, 4, 4> >(at::native::ReduceOp<float, at::native::func_wrapper_t<float, "
    "at::native::sum_functor<float, float, float>::operator()(at::TensorIterator&)::{lambda(float, float)#1}>, "
    "unsigned int, float, 4, 4>)": "reduce_kernel · sum_functor",
    "void at::native::elementwise_kernel<128, 2, at::native::gpu_kernel_impl_nocast<at::native::BinaryFunctor<"
    "float, float, float, at::native::binary_internal::MulFunctor<float> > >(at::TensorIteratorBase&, "
    "at::native::BinaryFunctor<float, float, float, at::native::binary_internal::MulFunctor<float> > const&)"
    "::{lambda(int)#1}>(int, at::native::gpu_kernel_impl_nocast<at::native::BinaryFunctor<float, float, float, "
    "at::native::binary_internal::MulFunctor<float> > >(at::TensorIteratorBase&, at::native::BinaryFunctor<float, "
    "float, float, at::native::binary_internal::MulFunctor<float> > const&)::{lambda(int)#1})":
        "elementwise_kernel · MulFunctor",
    "void at::native::(anonymous namespace)::fused_dropout_kernel_vec<float, float, unsigned int, 1, 4, bool>("
    "at::cuda::detail::TensorInfo<float const, unsigned int>, at::cuda::detail::TensorInfo<float, unsigned int>, "
    "at::cuda::detail::TensorInfo<bool, unsigned int>, unsigned int, float, at::PhiloxCudaState)":
        "fused_dropout_kernel_vec",
    "std::enable_if<!(false), void>::type internal::gemvx::kernel<int, int, float, float, float, float, false, true, "
    "true, false, 7, false, cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<float const>, "
    "cublasGemvTensorStridedBatched<float>, float> >(cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<float "
    "const>, cublasGemvTensorStridedBatched<float>, float>)": "cublas gemvx kernel",
    "sm90_xmma_gemm_f32f32_tf32f32_f32_nn_n_tilesize128x64x32_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_"
    "cublas": "cublas sm90 xmma gemm tf32 nn 128x64x32",
}
NOT_KERNELS = ["aten::addmm", "autograd::engine::evaluate_function: AddmmBackward0", "Memcpy HtoD (Pageable -> Device)",
               "cudaLaunchKernel", "Optimizer.step#SGD.step"]


def test_kernel_signatures_get_short_names_and_other_names_stay() -> None:
    from lmprof.views.ops import short_op_name

    assert {full: short_op_name(full) for full in KERNELS} == KERNELS
    assert [short_op_name(name) for name in NOT_KERNELS] == NOT_KERNELS


def test_cuda_op_table_shows_one_line_per_kernel_and_the_report_keeps_the_full_name(
        profile_result: RunResult, tmp_path: Path) -> None:
    import io
    import re

    from rich.console import Console

    from lmprof.views.ops import ops_table
    from lmprof.views.report import run_report

    names = list(KERNELS)[:4] + ["aten::addmm"]
    profile_result.ops = {"device": "cuda", "sort_by": "self_cuda", "steps": 2, "trace_dir": "trace",
                          "trace_files": [], "total_self_cuda_seconds": 0.015, "rows": [
                              {"name": name, "calls": 4, "self_cpu_seconds": 0.0, "self_cuda_seconds": 0.001 * (5 - i),
                               "share": 0.0, "cuda_share": (5 - i) / 15} for i, name in enumerate(names)]}
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(ops_table(profile_result))
    text = console.export_text()
    body = [line for line in text.splitlines() if re.search(r"\d%", line)]  # the rows: one line each
    assert [line.split("  ")[0].strip(" │┃|") for line in body] == [KERNELS[n] for n in names[:4]] + ["aten::addmm"]
    assert "<" not in text and "Params" not in text
    page = run_report(profile_result, tmp_path)
    title = re.search(r'<td class="mono" title="([^"]*)">cutlass tensorop s1688gemm 64x64 nn</td>', page)
    assert title and title.group(1).startswith("void cutlass::Kernel2&lt;cutlass_80_tensorop_s1688gemm_64x64")
    assert '<td class="mono">aten::addmm</td>' in page  # nothing to hover over when the name is already short
