"""What a model costs: parameters, floating-point operations of a forward pass, CPU time per image."""

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_gflops(build, size: tuple[int, int]) -> float:
    """GFLOPs (a multiply-add counts two) of one eval-mode forward pass of build() on one
    3 x size image. The model is built on the meta device: shapes only, no weights, no time."""
    with torch.device("meta"):
        model = build().eval()
        x = torch.zeros(1, 3, *size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 1e9


def forward_ms(model: torch.nn.Module, size: tuple[int, int], repeats: int = 3, device="cpu") -> float:
    """Median wall milliseconds of an eval-mode forward pass on one random 3 x size image, after
    one untimed pass (allocator and kernel selection)."""
    model = model.to(device).eval()
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0)).to(device)
    times = []
    with torch.no_grad():
        for index in range(repeats + 1):
            started = time.perf_counter()
            model(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            if index:
                times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)
