"""Run by tests/test_lightning.py: the Lightning callback under Lightning's DDP (strategy="ddp": this
script is started again for rank 1), 2 CPU processes on gloo, in freeze then drop mode. Each rank writes
what it cut, its scores, and a digest of its weights to <out>/<mode>-rank<r>.json."""
import json
import sys
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fastdrop.data import load_data
from fastdrop.engine import Indexed
from fastdrop.lightning import LearnAndDrop
from fastdrop.policies.cut_schedule import CutSchedule

torch.set_num_threads(1)
EPOCHS = 3


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        block = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),  # noqa: E731
                                           nn.MaxPool2d(2))
        self.model = nn.Sequential(block(1, 4), block(4, 8), block(8, 8), nn.Flatten(), nn.Linear(72, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch[:2]
        return F.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def main(out: Path) -> None:
    data = load_data("mnist_mini", train_subset=192)
    ds = Indexed(TensorDataset(data.normalize(data.train.x, torch.float32), data.train.y))
    for mode in ("freeze", "drop"):
        # freeze mode: the schedule told to read the gradient scores, so they are accumulated, all-reduced and
        # recorded, and the ranks' agreement on them is checked with a cut that does not depend on them
        CutSchedule.uses_scores = mode == "freeze"
        cb = LearnAndDrop(policy="schedule", mode=mode, schedule={1: 1, 2: 2})
        model = Classifier()
        trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=2, strategy="ddp", callbacks=[cb],
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False,
                            default_root_dir=out)
        trainer.fit(model, DataLoader(ds, batch_size=24, shuffle=True, generator=torch.Generator().manual_seed(0)))
        digest = sum(float(p.detach().double().sum()) for p in model.model.parameters())
        (out / f"{mode}-rank{trainer.global_rank}.json").write_text(json.dumps({
            "world_size": trainer.world_size, "epochs": EPOCHS, "cut_history": cb.cut_history,
            "reasons": [h["decision_reason"] for h in cb.history], "scores": [h.get("scores") for h in cb.history],
            "wrapped_at": cb._wrapped_at, "weights": round(digest, 6)}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
