"""The GPU-only benchmarks run under ``make bench`` on a CPU too: they say there is nothing to measure and exit 0."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: these would run")
@pytest.mark.parametrize("name", ["bench_gpu_training", "bench_gpu_concurrency"])
def test_gpu_benchmarks_exit_cleanly_without_a_gpu(name, capsys):
    assert _load(name).main(["--no-write"]) == 0
    assert "no CUDA device" in capsys.readouterr().out

