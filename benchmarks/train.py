"""Benchmark: training cost of ResNet-18, -34 and -50 on 224×224 spectrograms (CPU here; CUDA when present).

What one training step of :mod:`seisgrid.seismic.train` does, timed alone: a batch of (batch, 3, 224, 224)
float32 images (random: the cost does not depend on the values) → forward, cross-entropy, backward, AdamW
step, with the same device conventions as training (CUDA: channels_last + bf16 autocast; CPU: float32 on
all of torch's threads). Per architecture: ``--steps`` timed steps after ``--warmup`` steps; the median
step time gives windows/s and the minutes one epoch over ``--windows`` training windows takes (the
recipe's cross-region train split holds 3,736). Inference (eval mode, ``torch.inference_mode``) is timed
the same way for the validation and detection cost.

    python benchmarks/train.py [--archs resnet18,resnet34,resnet50] [--windows 3736] [--quick]

Human lines go to stderr; the last stdout line is the JSON result, also written to
``benchmarks/results/train.json`` (``train-quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def _step_times(model, device, batch: int, steps: int, warmup: int, train: bool) -> list[float]:
    import torch

    from seisgrid.seismic import train as tr

    x = torch.randn(batch, 3, 224, 224)
    y = torch.randint(0, 2, (batch,))
    xd = tr._to_device(x.numpy(), device)
    yd = y.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        if train:
            model.train()
            with tr._autocast(device):
                logits = model(xd)
            loss = torch.nn.functional.cross_entropy(logits.float(), yd)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        else:
            model.eval()
            with torch.inference_mode(), tr._autocast(device):
                model(xd)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="resnet18,resnet34,resnet50")
    parser.add_argument("--batch", type=int, default=32, help="training batch (the recipe's 32)")
    parser.add_argument("--windows", type=int, default=3736, help="training windows per epoch (the recipe's)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default=None)
    parser.add_argument("--quick", action="store_true", help="2 timed steps of batch 8")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.batch = 2, 8

    import torch

    from seisgrid.seismic import models

    device = models.pick_device(args.device)
    loads = [common.load_average()]
    rows = []
    for arch in args.archs.split(","):
        torch.manual_seed(0)
        model = models.build(arch).to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        train_s = common.median(_step_times(model, device, args.batch, args.steps, args.warmup, True))
        infer_s = common.median(_step_times(model, device, args.batch, args.steps, args.warmup, False))
        row = {"arch": arch, "parameters": models.parameter_count(model), "batch": args.batch,
               "train_step_s_median": round(train_s, 4), "train_windows_per_s": round(args.batch / train_s, 2),
               "epoch_minutes": round(args.windows / (args.batch / train_s) / 60, 2),
               "inference_windows_per_s": round(args.batch / infer_s, 2)}
        common.log(f"{arch}: {row['train_windows_per_s']} windows/s training, {row['epoch_minutes']} min per epoch "
                   f"of {args.windows} windows, {row['inference_windows_per_s']} windows/s inference")
        rows.append(row)
        del model
    loads.append(common.load_average())
    flags = "".join(f" --{k} {v}" for k, v in (("archs", args.archs), ("windows", args.windows)))
    result = {"benchmark": "train", "metric": "train_windows_per_s", "device": str(device),
              "torch_threads": torch.get_num_threads(), "windows_per_epoch": args.windows, "rows": rows,
              "load_average": loads, "steps": args.steps, "quick": args.quick,
              **common.provenance("train", flags + (" --quick" if args.quick else ""), ("seisgrid", "torch"))}
    common.write_result(result, "train", args.quick, args.output)
    return result


if __name__ == "__main__":
    main()
