"""Winograd F(4x4, 3x3) against PyTorch's direct convolution, shape by shape, on this CPU.

    python bench/convolutions.py

For each of PointRend's 3x3 convolution shapes at the default input size (1333x800): the median time of the
direct convolution (``F.conv2d``, oneDNN) and of ``winograd_conv3x3`` with its per-call weight transform, on
torch's threads, interleaved, and whether ``handler/model/winograd.py`` uses Winograd there on this CPU
(``reach()``). The ratios decide ``REACH``: where Winograd is not faster, the direct path stays. The last line
is ``winograd_speedup=<geometric mean over the shapes used> cpu=<torch's dispatch level>``.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handler.model.winograd import reach, transform_weight, winograd_conv3x3

SHAPES = [  # (channels, height, width): where PointRend R50-FPN runs its 3x3 convolutions at 1333x800
    (128, 100, 168),  # res3
    (256, 50, 84),  # res4, FPN p4, RPN on p4
    (512, 25, 42),  # res5
    (256, 200, 336),  # FPN p2 output, RPN on p2
    (256, 100, 168),  # FPN p3, RPN on p3
    (256, 25, 42),  # FPN p5, RPN on p5
]


def median_ms(run, repeats: int = 5) -> float:
    run()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def winograd_with_weights(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return winograd_conv3x3(x, transform_weight(weight), bias)  # the weights are transformed per call, as in use


def main() -> None:
    where = reach()
    print(f"cpu={torch.backends.cpu.get_cpu_capability()} threads={torch.get_num_threads()} reach={where}")
    print(f"{'shape':>16} {'direct ms':>10} {'winograd ms':>12} {'ratio':>6}  used")
    used_ratios = []
    with torch.inference_mode():
        for channels, height, width in SHAPES:
            x = torch.randn(1, channels, height, width)
            weight = torch.randn(channels, channels, 3, 3) * (2 / (9 * channels)) ** 0.5
            bias = torch.randn(channels)
            direct = median_ms(partial(F.conv2d, x, weight, bias, padding=1))
            winograd = median_ms(partial(winograd_with_weights, x, weight, bias))
            used = where.takes(channels) and height * width >= where.min_pixels
            if used:
                used_ratios.append(direct / winograd)
            shape = f"{channels:>5} {height:>4}x{width:<5}"
            print(f"{shape} {direct:>10.1f} {winograd:>12.1f} {direct / winograd:>6.2f}  {used}")
    mean = math.exp(statistics.mean(math.log(r) for r in used_ratios)) if used_ratios else 1.0
    print(f"winograd_speedup={mean:.2f} cpu={torch.backends.cpu.get_cpu_capability()}")


if __name__ == "__main__":
    main()
