"""CIFAR-10 through torchvision, from the python pickle batches (no md5 check, so copies load too)."""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from .containers import DataError, Split


def _cifar10(root: Path, download: bool, train: bool) -> Split:
    from torchvision.datasets import CIFAR10

    class _CIFAR10(CIFAR10):
        # torchvision checks the official md5 of every batch file on each load; we check the files are
        # there and let unpickling catch damage, so copies and test fixtures load too.
        def _check_integrity(self):
            return all((Path(self.root) / self.base_folder / f).exists() for f, _ in self.train_list + self.test_list)

        def _load_meta(self):  # torchvision md5-checks batches.meta here too
            path = Path(self.root) / self.base_folder / self.meta["filename"]
            if not path.is_file():
                raise RuntimeError("Dataset metadata file not found")
            with open(path, "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    folder = root / CIFAR10.base_folder
    try:
        ds = _CIFAR10(str(root), train=train, download=download)
    except RuntimeError:
        raise DataError(f"CIFAR-10 not found under {folder} (python pickle batches, 'cifar-10-python.tar.gz' "
                        "extracted); set data.root, or data.download=true when online") from None
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError) as e:
        raise DataError(f"CIFAR-10 batches under {folder} are corrupted ({type(e).__name__}: {e}); "
                        "delete the folder and fetch it again") from None
    except OSError as e:
        raise DataError(f"CIFAR-10 download/read failed under {folder}: {e}") from None
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return Split(x, torch.tensor(ds.targets, dtype=torch.long))
