#!/usr/bin/env bash
# The paper's Table 1-2 rows on one GPU, from real data copied next to the checkout.
#
#   bash scripts/gpu_paper_rows.sh prepare            # here: data into .data/, hydra wheels into .whl/
#   bash scripts/gpu_paper_rows.sh mnist [overrides]  # on the GPU: resnet18, vgg11 x sgd/freezing/dropping
#   bash scripts/gpu_paper_rows.sh more  [overrides]  # on the GPU: the other five networks on MNIST
#   bash scripts/gpu_paper_rows.sh cifar [overrides]  # on the GPU: resnet18, vgg11 on the CIFAR-10 JPEG copy
#   bash scripts/gpu_paper_rows.sh tables             # rebuild results/paper-gpu/tables from the rows
#
# Every run uses the paper preset, bf16 autocast and channels_last for all three strategies alike, and
# writes its row to results/paper-gpu/runs/. Extra overrides (e.g. epochs=1 data.train_subset=2048 for
# a dry run on CPU) are passed to every run.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/data}
OUT=${RESULTS:-results/paper-gpu}
what=${1:?prepare|mnist|more|cifar|tables}; shift || true

use_wheels() {  # the GPU image has torch, pandas, tabulate, matplotlib, tqdm, but not hydra/omegaconf
    if ! python3 -c "import hydra, omegaconf" 2>/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
}

sweep() {  # sweep <experiment> <models> [overrides]
    local exp=$1 models=$2; shift 2
    python3 -m fastdrop.cli run -m "experiment=$exp" "model=$models" strategy=sgd,freezing,dropping \
        precision=bf16-mixed data.root=.data "results_dir=$OUT" progress=false "$@"
}

case $what in
prepare)
    rm -rf .data && mkdir -p .data .whl .git/info   # fresh: a dry run leaves extracted files (too big to carry)
    for p in /.data/ /.whl/; do grep -qxF "$p" .git/info/exclude || echo "$p" >> .git/info/exclude; done
    # ~32 MB travels (the device copies at most 64 MiB): the CIFAR tarball is unpacked on the GPU side.
    cp -r "$SHARED/MNIST" .data/
    cp "$SHARED/cifar10-jpeg-q75.tar.gz" .data/
    python3 -m pip download -q --no-deps --only-binary=:all: -d .whl hydra-core==1.3.2 omegaconf==2.3.0
    python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3   # sdist only on PyPI
    du -sh .data .whl ;;
mnist) use_wheels; sweep paper_mnist resnet18,vgg11 "$@" ;;
more)  use_wheels; sweep paper_mnist vgg16,vgg19,resnet50,resnet101,resnet152 "$@" ;;
cifar) use_wheels
       [ -d .data/cifar10-jpeg ] || tar -xzf .data/cifar10-jpeg-q75.tar.gz -C .data
       sweep paper_cifar10 resnet18,vgg11 data=cifar10_jpeg "tag=CIFAR-10 JPEG q75 copy" "$@" ;;
tables) python3 scripts/make_tables.py --results "$OUT" --out "$OUT/tables"
        python3 scripts/make_figures.py --results "$OUT" --out "$OUT/figures" ;;
*) echo "unknown step $what" >&2; exit 2 ;;
esac
