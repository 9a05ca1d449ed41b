"""Test accuracy of the whole model (the paper tests the full network: the cut units run too), apart
from training time (torchvision's `evaluate`): eval mode, no gradients, one host read at the end."""
from __future__ import annotations

import torch

from .distributed import World
from ..data import ImageData
from ..models import Chain
from ..strategies import RunContext


def evaluate(chain: Chain, data: ImageData, ctx: RunContext,
             world: World = World()) -> float:
    """Test accuracy (%) of the full chain (tail + head), eval mode; under DDP each rank scores its
    share of the test split and the counts are summed."""
    chain.eval()
    correct = torch.zeros((), dtype=torch.long, device=data.test.y.device)
    slices = [slice(s, s + ctx.eval_batch_size) for s in range(0, len(data.test), ctx.eval_batch_size)]
    with torch.no_grad(), ctx.autocast_ctx():
        for s, images in zip(slices, data.test.batches(slices)):
            logits = chain(ctx.inputs(data, images))
            correct += (logits.argmax(1) == data.test.y[s]).sum()
    counts = world.all_sum(torch.stack([correct, torch.tensor(len(data.test), device=correct.device)]))
    return 100.0 * counts[0].item() / max(int(counts[1].item()), 1)
