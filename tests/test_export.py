"""ONNX export of the DiT denoiser: onnxruntime gives eager PyTorch's velocity (fp32, max abs error <= 1e-3),
on inputs other than the export example too, and the report times both."""

import pytest
import torch

from tinyvid.bench_scaling import dit_batch
from tinyvid.export import dit_example, export_denoiser, onnx_parity, onnx_report, onnx_session

pytest.importorskip("onnxruntime", reason="the export extra (pip install tinyvid[export]) is not installed")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model, inputs = dit_example("tiny", latent_shape=(4, 2, 8, 8), batch=2)
    path = export_denoiser(model, inputs, tmp_path_factory.mktemp("onnx") / "dit.onnx")
    return model, inputs, onnx_session(path)


def test_onnxruntime_matches_eager_pytorch(exported):
    model, inputs, session = exported
    assert [i.name for i in session.get_inputs()] == ["x", "t", "context", "context_mask"]
    with torch.no_grad():
        assert model(*inputs).abs().mean() > 0.1  # a real output, not the zero function of an untrained DiT
    assert onnx_parity(model, session, inputs) <= 1e-3


def test_the_graph_holds_for_other_inputs_of_the_same_shape(exported):
    model, _, session = exported
    x, context, mask = dit_batch(2, (4, 2, 8, 8), seed=5)
    mask[0, 1:] = False  # a one-token caption: more padding than the export example had
    inputs = (x, torch.tensor([0.05, 0.9]), context, mask)
    assert onnx_parity(model, session, inputs) <= 1e-3


def test_report_has_parity_and_both_latencies(tmp_path):
    out = onnx_report("tiny", (4, 2, 8, 8), out=tmp_path / "dit.onnx", runs=2)
    assert out["max_abs_error"] <= 1e-3 and out["eager_ms"] > 0 and out["onnxruntime_ms"] > 0
    assert (tmp_path / "dit.onnx").is_file() and out["onnx_mib"] > 0
