"""Tables and figures from hand-written result rows with known numbers: every cell is checked."""
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from fastdrop.report import (DASH, build_tables, compute_tables, figures_main, load_rows, paper_flops,
                             paper_numbers, tables_main)

UNITS = ["conv1", "conv2", "conv3", "conv4", "classifier"]
_counter = iter(range(10**6))


def make_row(strategy, seed, T_min, A, *, model="vgg11", data="mnist_mini", width=0.25, epochs=3, device="cpu",
             device_name="cpu (2 cores, 2 threads)", batch_size=256, precision="32-true", status="completed",
             full=100_000_000, fwd=None, finished_at="2026-01-01T00:00:00+00:00", run_id=None):
    fwd = fwd or [full] * epochs
    history = []
    for i in range(1, epochs + 1):
        cut = 0 if strategy == "sgd" else min(i - 1, 2)
        live = UNITS[cut:4]
        history.append({
            "epoch": i, "lr": 0.05, "train_time_s": T_min * 60 / epochs,
            "cache_time_s": 1.5 if strategy == "dropping" and i == 2 else 0.0, "eval_time_s": 0.1,
            "train_loss": 1.0 / i, "test_acc": A - (epochs - i), "dropped_units": UNITS[:cut],
            "trained_params": 1_000_000 - 100_000 * cut, "fwd_macs_per_sample": fwd[i - 1],
            "scores": {u: 0.2 + 0.1 * j + 0.05 * i for j, u in enumerate(live)},
            "scores_std": {u: 0.0 for u in live},
            "aapd": {u: 10.0 ** -(j + i) for j, u in enumerate(live)},
        })
    rid = run_id or f"{model}-{data}-{strategy}-s{seed}-{next(_counter):06d}"
    return {"run_id": rid, "status": status, "status_reason": "" if status == "completed" else "loss is nan",
            "model": model, "width": width, "data": data, "strategy": strategy,
            "policy": "none" if strategy == "sgd" else "learn_and_drop", "experiment": "offline", "tag": "",
            "seed": seed, "epochs": epochs, "epochs_done": epochs, "batch_size": batch_size, "precision": precision,
            "warmup": 1, "device": device, "device_name": device_name, "T_min": T_min, "train_time_s": T_min * 60,
            "cache_time_s": 1.5 if strategy == "dropping" else 0.0, "A": A, "unit_names": UNITS,
            "unit_macs_per_sample": [full // 5] * 5, "fwd_macs_full_per_sample": full, "params_total": 1_000_000,
            "finished_at": finished_at, "history": history}


def write(results: Path, row=None, name=None, text=None) -> Path:
    runs = results / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    p = runs / (name or f"{row['run_id']}.json")
    p.write_text(text if text is not None else json.dumps(row))
    return p


def only(df, **kv) -> pd.Series:
    m = pd.Series(True, index=df.index)
    for k, v in kv.items():
        m &= df[k] == v
    assert m.sum() == 1, (kv, df)
    return df[m].iloc[0]


# -- Table 1, one seed ------------------------------------------------------------------------------------
def test_single_seed_every_cell(tmp_path):
    write(tmp_path, make_row("sgd", 0, 10.0, 98.0))
    write(tmp_path, make_row("freezing", 0, 9.0, 97.5))
    write(tmp_path, make_row("dropping", 0, 4.0, 97.0))
    df, warns = load_rows(tmp_path)
    assert warns == [] and len(df) == 3
    w = []
    t = build_tables(df, w)
    assert w == []
    assert t["table2_resnet"].empty
    t1 = t["table1_vgg"]
    assert t1.to_dict("records") == [{
        "Network": "vgg11", "Dataset": "mnist_mini", "Width": "0.25", "Epochs": "3", "Batch": "256",
        "Precision": "32-true", "Device": "cpu (2 cores, 2 threads)", "Seeds": "0",
        "SGD T (min)": "10.00", "SGD A (%)": "98.00",
        "Freezing T (min)": "9.00", "Freezing A (%)": "97.50", "Freezing ΔT (%)": "10.00",
        "Dropping T (min)": "4.00", "Dropping A (%)": "97.00", "Dropping ΔT (%)": "60.00"}]


# -- Table 2, several seeds: mean ± sample std, ΔT per seed pair -----------------------------------------
def test_seeds_mean_std_and_per_pair_delta(tmp_path):
    kw = dict(model="resnet18", data="cifar10")
    write(tmp_path, make_row("sgd", 0, 10.0, 90.0, **kw))
    write(tmp_path, make_row("sgd", 1, 12.0, 92.0, **kw))
    write(tmp_path, make_row("dropping", 0, 5.0, 89.0, **kw))
    write(tmp_path, make_row("dropping", 1, 9.0, 90.0, **kw))
    df, _ = load_rows(tmp_path)
    w = []
    num = compute_tables(df, w)
    assert w == []
    r = num["table2_resnet"].iloc[0]
    # per pair: 50 % and 25 % -> 37.5 ± 17.68 (not (11 - 7) / 11 = 36.36 from the means)
    assert r["dropping_dT"] == pytest.approx(37.5)
    assert r["dropping_dT_std"] == pytest.approx(math.sqrt(2 * 12.5 ** 2))
    assert r["dropping_dT_n"] == 2
    assert r["dropping_Adrop"] == pytest.approx(1.5)  # (90-89 + 92-90) / 2
    assert math.isnan(r["freezing_T_min"]) and r["freezing_n"] == 0
    row = build_tables(df)["table2_resnet"].iloc[0].to_dict()
    assert row == {
        "Network": "resnet18", "Dataset": "cifar10", "Width": "0.25", "Epochs": "3", "Batch": "256",
        "Precision": "32-true", "Device": "cpu (2 cores, 2 threads)", "Seeds": "0, 1",
        "SGD T (min)": "11.00 ± 1.41", "SGD A (%)": "91.00 ± 1.41",
        "Freezing T (min)": DASH, "Freezing A (%)": DASH, "Freezing ΔT (%)": DASH,
        "Dropping T (min)": "7.00 ± 2.83", "Dropping A (%)": "89.50 ± 0.71", "Dropping ΔT (%)": "37.50 ± 17.68"}
    assert build_tables(df)["table1_vgg"].empty


# -- "–": nothing comparable, never mixed ---------------------------------------------------------------
def test_incomparable_runs_show_dash_and_warn(tmp_path):
    write(tmp_path, make_row("sgd", 0, 10.0, 98.0, model="vgg16", epochs=3))
    d_ep = write(tmp_path, make_row("dropping", 0, 4.0, 97.0, model="vgg16", epochs=5))        # other epochs
    d_w = write(tmp_path, make_row("dropping", 0, 4.0, 97.0, model="vgg16", width=1.0))         # other width
    d_dev = write(tmp_path, make_row("freezing", 0, 2.0, 97.0, model="vgg16", device="cuda",
                                     device_name="NVIDIA H100 80GB HBM3"))                          # other device
    d_seed = write(tmp_path, make_row("dropping", 7, 4.0, 96.0, model="vgg16"))                 # no sgd seed 7
    d_none = write(tmp_path, make_row("dropping", 0, 4.0, 96.0, model="vgg19"))                 # no sgd at all
    df, _ = load_rows(tmp_path)
    w = []
    t1 = build_tables(df, w)["table1_vgg"]
    assert len(t1) == 5
    base = only(t1, Network="vgg16", Width="0.25", Epochs="3", Device="cpu (2 cores, 2 threads)")
    assert base["Seeds"] == "0, 7"
    assert base["SGD T (min)"] == "10.00" and base["SGD A (%)"] == "98.00"
    assert base["Dropping T (min)"] == "4.00" and base["Dropping A (%)"] == "96.00"  # seed 7 only
    assert base["Dropping ΔT (%)"] == DASH and base["Freezing T (min)"] == DASH
    for kv in [dict(Epochs="5"), dict(Width="1"), dict(Device="NVIDIA H100 80GB HBM3")]:
        r = only(t1, Network="vgg16", **kv)
        assert r["SGD T (min)"] == DASH and r["SGD A (%)"] == DASH
        assert r["Dropping ΔT (%)"] == DASH and r["Freezing ΔT (%)"] == DASH
    assert only(t1, Device="NVIDIA H100 80GB HBM3")["Freezing T (min)"] == "2.00"
    r = only(t1, Network="vgg19")
    assert r["SGD T (min)"] == DASH and r["Dropping T (min)"] == "4.00" and r["Dropping ΔT (%)"] == DASH
    text = "\n".join(w)
    for p in (d_ep, d_w, d_dev, d_seed, d_none):
        assert str(p) in text
    assert "epochs (3 vs 5)" in text and "width (0.25 vs 1.0)" in text and "device (cpu vs cuda)" in text
    assert "seed (0 vs 7)" in text and "no completed SGD run of vgg19 on mnist_mini" in text
    # the comparison table shows the dash as well
    cmp = build_tables(df)["paper_comparison"]
    assert set(cmp["ΔT ours (%)"]) == {DASH} and set(cmp["ΔT ours − paper (pp)"]) == {DASH}


# -- bad files, partial rows, unfinished runs, duplicates ------------------------------------------------
def test_bad_files_skipped_with_warning_naming_them(tmp_path, capsys):
    good = [make_row("sgd", 0, 10.0, 98.0), make_row("dropping", 0, 5.0, 97.0)]
    for r in good:
        write(tmp_path, r)
    broken = write(tmp_path, name="broken.json", text='{"run_id": "x", "status": ')
    notobj = write(tmp_path, name="list.json", text="[1, 2]")
    nokeys = make_row("sgd", 1, 10.0, 98.0)
    del nokeys["T_min"], nokeys["device"]
    nokeys_p = write(tmp_path, nokeys, name="nokeys.json")
    partial = make_row("freezing", 0, 8.0, 97.0)
    partial["history"] = partial["history"][:1]
    partial_p = write(tmp_path, partial, name="partial.json")
    wrongtype = make_row("freezing", 0, 8.0, 97.0)
    wrongtype["seed"] = "zero"
    wrongtype_p = write(tmp_path, wrongtype, name="wrongtype.json")
    diverged = make_row("freezing", 0, 8.0, 97.0, status="diverged")
    diverged["A"] = None
    diverged_p = write(tmp_path, diverged)
    older = make_row("dropping", 0, 6.0, 90.0, finished_at="2025-01-01T00:00:00+00:00")
    older_p = write(tmp_path, older)

    df, warns = load_rows(tmp_path)
    assert sorted(df["run_id"]) == sorted([r["run_id"] for r in good] + [diverged["run_id"], older["run_id"]])
    text = "\n".join(warns)
    assert f"{broken}: skipped: not valid JSON" in text
    assert f"{notobj}: skipped" in text
    assert f"{nokeys_p}: skipped: missing keys: device, T_min" in text
    assert f"{partial_p}: skipped: partial row" in text
    assert f"{wrongtype_p}: skipped: key 'seed' has the wrong type" in text
    assert len(warns) == 5

    out = tmp_path / "tables"
    assert tables_main(["--results", str(tmp_path), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    wtxt = (out / "warnings.txt").read_text()
    for p in (broken, notobj, nokeys_p, partial_p, wrongtype_p):
        assert str(p) in err and str(p) in wtxt
    assert f"{diverged_p}: excluded from the tables: status diverged: loss is nan" in wtxt
    assert f"{older_p}: superseded by" in wtxt
    t1 = pd.read_csv(out / "table1_vgg.csv")
    assert len(t1) == 1
    r = t1.iloc[0]
    assert r["dropping_T_min"] == 5.0 and r["dropping_dT"] == 50.0 and r["freezing_n"] == 0
    assert math.isnan(r["freezing_T_min"])


# -- Table 3 ----------------------------------------------------------------------------------------------
def test_table3_mean_over_epochs_mmac_and_mflops(tmp_path):
    write(tmp_path, make_row("sgd", 0, 10.0, 98.0))
    write(tmp_path, make_row("dropping", 0, 4.0, 97.0, fwd=[100_000_000, 60_000_000, 20_000_000]))
    write(tmp_path, make_row("dropping", 1, 4.0, 97.0, fwd=[100_000_000, 100_000_000, 40_000_000]))
    df, _ = load_rows(tmp_path)
    w = []
    t3 = build_tables(df, w)["table3_flops"]
    assert len(t3) == 1
    # seed 0: mean 60 MMAC (-40 %), seed 1: 80 MMAC (-20 %)
    assert t3.iloc[0].to_dict() == {
        "Network": "vgg11", "Dataset": "mnist_mini", "Width": "0.25", "Epochs": "3", "Batch": "256",
        "Precision": "32-true", "Device": "cpu (2 cores, 2 threads)", "Seeds": "0, 1",
        "SGD (MMAC)": "100.00 ± 0.00", "Dropping (MMAC)": "70.00 ± 14.14",
        "SGD (MFLOPs)": "200.00 ± 0.00", "Dropping (MFLOPs)": "140.00 ± 28.28",
        "ΔFLOPs (%)": "30.00 ± 14.14",
        "Paper SGD (M)": "31203.60", "Paper Dropping (M)": "25847.02", "Paper ΔFLOPs (%)": "17.17"}
    # a model the paper has no row for: paper columns are dashes
    write(tmp_path, make_row("dropping", 0, 4.0, 97.0, model="resnet34", fwd=[100, 50, 30], full=100))
    df, _ = load_rows(tmp_path)
    t3 = build_tables(df)["table3_flops"]
    r = only(t3, Network="resnet34")
    assert r["ΔFLOPs (%)"] == "40.00" and r["SGD (MMAC)"] == "0.00" and r["Paper SGD (M)"] == DASH


# -- comparison with the paper ---------------------------------------------------------------------------
def test_paper_comparison_cells(tmp_path):
    write(tmp_path, make_row("sgd", 0, 10.0, 98.0))
    write(tmp_path, make_row("freezing", 0, 9.0, 97.5))
    write(tmp_path, make_row("dropping", 0, 4.0, 97.0))
    df, _ = load_rows(tmp_path)
    cmp = build_tables(df)["paper_comparison"]
    assert list(cmp["Strategy"]) == ["Freezing", "Dropping"]
    assert (cmp["Paper dataset"] == "mnist").all()  # mnist_mini against the paper's MNIST row
    f, d = cmp.iloc[0], cmp.iloc[1]
    # paper vgg11/mnist: SGD A 98.64, Freezing 98.25 / ΔT 6.00, Dropping 98.25 / ΔT 58.04
    assert (f["ΔT ours (%)"], f["ΔT paper (%)"], f["ΔT ours − paper (pp)"]) == ("10.00", "6.00", "+4.00")
    assert (f["Acc. drop ours (pp)"], f["Acc. drop paper (pp)"], f["Acc. drop ours − paper (pp)"]) == \
        ("0.50", "0.39", "+0.11")
    assert (d["ΔT ours (%)"], d["ΔT paper (%)"], d["ΔT ours − paper (pp)"]) == ("60.00", "58.04", "+1.96")
    assert (d["Acc. drop ours (pp)"], d["Acc. drop paper (pp)"], d["Acc. drop ours − paper (pp)"]) == \
        ("1.00", "0.39", "+0.61")


def test_paper_numbers_are_packaged():
    pn, pf = paper_numbers(), paper_flops()
    assert len(pn) == 21 and len(pf) == 7
    assert pf.set_index("network").loc["resnet18", "sgd_fwd_flops_M"] == pytest.approx(1987.80)


# -- the CLI writes .md, .csv, .tex ----------------------------------------------------------------------
def test_tables_main_writes_all_formats(tmp_path):
    for s in (0, 1):
        write(tmp_path, make_row("sgd", s, 10.0 + s, 98.0))
        write(tmp_path, make_row("dropping", s, 4.0, 97.0))
    assert tables_main(["--results", str(tmp_path)]) == 0
    out = tmp_path / "tables"
    for name in ("table1_vgg", "table2_resnet", "table3_flops", "paper_comparison"):
        for suf in (".md", ".csv", ".tex"):
            assert (out / f"{name}{suf}").stat().st_size > 0, name + suf
    md = (out / "table1_vgg.md").read_text()
    assert "| vgg11" in md and "10.50 ± 0.71" in md and DASH in md
    tex = (out / "table1_vgg.tex").read_text()
    assert r"\toprule" in tex and r"10.50 $\pm$ 0.71" in tex and "±" not in tex and DASH not in tex
    assert r"$\Delta$T (\%)" in tex
    assert "MMAC" in (out / "table3_flops.md").read_text()
    assert (out / "warnings.txt").read_text() == ""
    assert tables_main(["--results", str(tmp_path / "nothing")]) == 1


# -- figures ----------------------------------------------------------------------------------------------
def test_figures_written(tmp_path):
    for s in ("sgd", "freezing", "dropping"):
        write(tmp_path, make_row(s, 0, 1.0, 97.0, fwd=[100_000_000, 60_000_000, 20_000_000]))
    write(tmp_path, make_row("dropping", 0, 1.0, 97.0, model="resnet18"))  # a group with no sgd run
    out = tmp_path / "figs"
    assert figures_main(["--results", str(tmp_path), "--out", str(out)]) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    stem = "vgg11_mnist_mini_w0.25_e3_s0_cpu"
    for f in ("fig1_aapd", "fig3_scores", "fig5_acc_time", "fig6_params_macs"):
        assert f"{f}_{stem}.png" in pngs
        assert f"{f}_resnet18_mnist_mini_w0.25_e3_s0_cpu.png" in pngs
    assert len(pngs) == 8
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_figures_run_id_selects_group(tmp_path):
    rows = [make_row(s, 0, 1.0, 97.0) for s in ("sgd", "dropping")]
    for r in rows:
        write(tmp_path, r)
    write(tmp_path, make_row("sgd", 1, 1.0, 97.0))
    out = tmp_path / "figs"
    assert figures_main(["--results", str(tmp_path), "--out", str(out), "--run-id", rows[1]["run_id"]]) == 0
    assert len(list(out.glob("*_s0_*.png"))) == 4 and not list(out.glob("*_s1_*.png"))
    assert figures_main(["--results", str(tmp_path / "nothing"), "--out", str(out)]) == 1


def test_custom_model_without_width(tmp_path):
    # the trainer writes width null for a custom chain; such rows still pair with each other
    rows = [make_row(s, 0, t, 97.0, model="chain-custom") for s, t in (("sgd", 2.0), ("dropping", 1.0))]
    for r in rows:
        r["width"] = None
        write(tmp_path, r)
    df, warns = load_rows(tmp_path)
    assert warns == [] and len(df) == 2
    w = []
    num = compute_tables(df, w)
    assert num["table1_vgg"].empty and num["table2_resnet"].empty
    assert "network chain-custom is neither VGG nor ResNet: not in Tables 1-2" in w
    r = build_tables(df)["table3_flops"].iloc[0]
    assert r["Width"] == DASH and r["Network"] == "chain-custom"


def test_fine_tuned_runs_are_compared_only_with_runs_from_the_same_weights(tmp_path):
    def tuned(row, weights="/data/runs/yesterday"):
        row["weights"] = weights
        return row

    write(tmp_path, make_row("sgd", 0, 10.0, 98.0))                            # from scratch
    lone = write(tmp_path, tuned(make_row("dropping", 0, 4.0, 97.0), "IMAGENET1K_V1"))  # no tuned sgd
    write(tmp_path, tuned(make_row("sgd", 0, 8.0, 99.0)))
    write(tmp_path, tuned(make_row("dropping", 0, 2.0, 98.5)))
    df, _ = load_rows(tmp_path)
    w = []
    t1 = build_tables(df, w)["table1_vgg"]
    scratch, tuned_row = only(t1, Network="vgg11"), only(t1, Network="vgg11 (from yesterday)")
    assert scratch["SGD T (min)"] == "10.00" and scratch["Dropping T (min)"] == DASH
    assert tuned_row["SGD T (min)"] == "8.00" and tuned_row["Dropping ΔT (%)"] == "75.00"
    r = only(t1, Network="vgg11 (from IMAGENET1K_V1)")
    assert r["SGD T (min)"] == DASH and r["Dropping ΔT (%)"] == DASH
    text = "\n".join(w)
    assert str(lone) in text and "starting weights (none vs IMAGENET1K_V1)" in text
