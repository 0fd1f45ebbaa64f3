"""``netslim slim`` and ``netslim prune`` end to end on tiny IDX data built in tmp."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

import netslim
from helpers import write_tiny_mnist
from netslim.cli import main
from netslim.io import read_checkpoint
from netslim.models import create


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("data"), n_train=320)


def common(data: Path) -> list[str]:
    return [
        "--dataset",
        "mnist",
        "--data-dir",
        str(data),
        "--val-size",
        "64",
        "--batch-size",
        "32",
        "--no-progress",
        "--device",
        "cpu",
    ]


@pytest.fixture(scope="module")
def slim_run(data_dir, tmp_path_factory) -> tuple[Path, str]:
    """One `netslim slim` run shared by the tests that inspect its outputs."""
    run = tmp_path_factory.mktemp("runs") / "slim"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(
            [
                "slim",
                "--model",
                "vgg11",
                "--width",
                "0.125",
                *common(data_dir),
                "--epochs",
                "1",
                "--lr",
                "0.05",
                "--sparsity",
                "1e-4",
                "--ratio",
                "0.5",
                "--finetune-epochs",
                "1",
                "--bn-recalibration",
                "2",
                "--finetune-no-augment",
                "--run-dir",
                str(run),
            ]
        )
    assert code == 0
    return run, buf.getvalue()


def test_slim_writes_the_run_folder(slim_run, data_dir) -> None:
    run, _ = slim_run
    names = {p.name for p in run.iterdir()}
    assert {
        "config.json",
        "plan.json",
        "sparse.pt",
        "pruned.pt",
        "finetuned.pt",
        "results.json",
        "sparsity",
        "finetune",
    } <= names
    assert (run / "sparsity" / "gamma_hist.jsonl").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["ratio"] == 0.5 and config["train"]["epochs"] == 1 and config["finetune"]["lr"] == 0.01
    assert config["l1_strength"] == 1e-4 and "sparsity" not in config, "--sparsity is the old name of --l1"
    assert config["data_folder"] == str(data_dir.resolve())
    assert config["bn_recalibration"] == 2
    assert config["finetune_augment"] is False and config["data_kwargs"]["augment"] is True
    assert config["versions"]["netslim"] == netslim.__version__ and config["versions"]["torch"]
    plan = json.loads((run / "plan.json").read_text())
    assert plan["meta"]["ratio"] == 0.5
    results = json.loads((run / "results.json").read_text())
    before, after = results["before"], results["after"]
    assert after["params"] < before["params"] and after["flops"] < before["flops"]
    assert 0.0 <= after["test_acc"] <= 1.0 and results["after_prune"]["params"] == after["params"]
    assert results["plain_cut"] is not None and len(results["passes"]) == 1
    assert results["distill"] is None and results["l1_strength"] == 1e-4
    assert results["passes"][0]["sparsity_training"]["bn_recalibration"]["batches"] == 2
    report = (run / "report.md").read_text()
    assert (run / "report.html").is_file() and "params" in report
    metrics = (run / "sparsity" / "metrics.jsonl").read_text().splitlines()
    assert "gamma_frac_below_1e-2" in json.loads(metrics[-1])


def test_slim_saved_models_load_and_match_the_report(slim_run) -> None:
    run, _ = slim_run
    final = netslim.load(run / "finetuned.pt")
    results = json.loads((run / "results.json").read_text())
    assert sum(p.numel() for p in final.parameters()) == results["after"]["params"]
    assert len(final.netslim_plans) == 1
    assert read_checkpoint(run / "sparse.pt").meta["extra"]["stage"] == "sparsity"


def test_slim_prints_the_before_after_table(slim_run) -> None:
    run, out = slim_run
    for row in (
        "| test accuracy |",
        "| params |",
        "| FLOPs |",
        "| CPU latency, batch 1 |",
        "right after the cut",
        "plain cut",
    ):
        assert row in out
    assert str(run) in out


def test_slim_from_checkpoint_multipass(slim_run, data_dir, tmp_path, capsys) -> None:
    run, _ = slim_run
    out_dir = tmp_path / "again"
    code = main(
        [
            "slim",
            "--checkpoint",
            str(run / "sparse.pt"),
            *common(data_dir),
            "--epochs",
            "1",
            "--ratio",
            "0.3",
            "--passes",
            "2",
            "--finetune-epochs",
            "1",
            "--no-latency",
            "--no-plain-cut",
            "--no-plots",
            "--run-dir",
            str(out_dir),
        ]
    )
    assert code == 0
    names = {p.name for p in out_dir.iterdir()}
    assert "sparsity" not in names and "sparsity-pass2" in names and "finetune-pass2" in names
    plans = json.loads((out_dir / "plan.json").read_text())
    assert isinstance(plans, list) and len(plans) == 2
    results = json.loads((out_dir / "results.json").read_text())
    assert [p["pass"] for p in results["passes"]] == [1, 2]
    assert all(p["max_layer_ratio"] == 0.5 for p in results["passes"]), "multi-pass caps layers at 50%"
    assert len(netslim.load(out_dir / "finetuned.pt").netslim_plans) == 2
    assert "CPU latency" not in capsys.readouterr().out


def test_prune_cli(slim_run, data_dir, tmp_path, capsys) -> None:
    run, _ = slim_run
    out = tmp_path / "pruned.pt"
    assert main(["prune", str(run / "sparse.pt"), "--dry-run", "--ratio", "0.6"]) == 0
    assert "PruningPlan" in capsys.readouterr().out and not out.exists()

    code = main(
        [
            "prune",
            str(run / "sparse.pt"),
            "--ratio",
            "0.6",
            "-o",
            str(out),
            "--plan-out",
            str(tmp_path / "plan.json"),
            *common(data_dir)[:6],
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and out.is_file() and (tmp_path / "plan.json").is_file()
    assert "test accuracy" in text and "params" in text
    pruned, sparse = netslim.load(out), netslim.load(run / "sparse.pt")
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in sparse.parameters())
    assert read_checkpoint(out).meta["extra"]["ratio"] == 0.6
    assert not pruned.netslim_plans[-1]["added_border"]  # the default folds the spatial mean


def test_prune_cli_exact_fold(slim_run, data_dir, tmp_path) -> None:
    import torch

    from netslim.slimming.api import masked_model

    run, _ = slim_run
    out = tmp_path / "exact.pt"
    args = [str(run / "sparse.pt"), "--ratio", "0.6", "-o", str(out), "--plan-out", str(tmp_path / "p.json")]
    assert main(["prune", *args, *common(data_dir)[:6], "--fold-beta", "exact"]) == 0
    exact, sparse = netslim.load(out).eval(), netslim.load(run / "sparse.pt").eval()
    assert exact.netslim_plans[-1]["added_border"]
    plan = netslim.PruningPlan.from_dict(json.loads((tmp_path / "p.json").read_text()))
    x = torch.randn(4, *next(iter(sparse.parameters())).shape[1:2], 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(exact(x), masked_model(sparse, plan, zero_beta=False).eval()(x))


def test_prune_cli_names_a_fold_that_moved_the_outputs(slim_run, tmp_path, monkeypatch, capsys) -> None:
    from netslim.pipelines import slimming

    monkeypatch.setattr(slimming, "FOLD_DRIFT_WARN", 0.0)  # any drift at all is named
    run, _ = slim_run
    args = [str(run / "sparse.pt"), "--ratio", "0.6"]
    assert main(["prune", *args, "-o", str(tmp_path / "mean.pt")]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if "beta fold moved" in x]
    assert (
        len(lines) == 1
        and lines[0].startswith("warning: the mean beta fold")
        and "--fold-beta exact" in lines[0]
    )
    assert main(["prune", *args, "-o", str(tmp_path / "exact.pt"), "--fold-beta", "exact"]) == 0
    assert "beta fold moved" not in capsys.readouterr().out


def test_prune_cli_recomputes_bn_statistics_before_the_cut(slim_run, data_dir, tmp_path, capsys) -> None:
    import torch

    run, _ = slim_run
    args = [str(run / "sparse.pt"), "--ratio", "0.5", *common(data_dir)[:6], "--no-augment"]
    plain, recomputed = tmp_path / "plain.pt", tmp_path / "recomputed.pt"
    assert main(["prune", *args, "-o", str(plain)]) == 0
    assert "BN statistics recomputed" not in capsys.readouterr().out
    assert main(["prune", *args, "-o", str(recomputed), "--bn-recalibration", "3"]) == 0
    assert "BN statistics recomputed for the checkpoint's weights over 3 training batches" in (
        capsys.readouterr().out
    )
    assert read_checkpoint(recomputed).meta["extra"]["bn_recalibration"] == 3
    assert "bn_recalibration" not in read_checkpoint(plain).meta["extra"]
    a, b = netslim.load(plain), netslim.load(recomputed)
    assert [tuple(t.shape) for t in a.state_dict().values()] == [
        tuple(t.shape) for t in b.state_dict().values()
    ]
    means = [(k, v) for k, v in b.state_dict().items() if k.endswith("running_mean")]
    assert means and any(not torch.equal(v, a.state_dict()[k]) for k, v in means)
    weights = [k for k in b.state_dict() if k.endswith("weight")]
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in weights)


def test_slim_distills_from_a_teacher_file(slim_run, data_dir, tmp_path, capsys) -> None:
    run, _ = slim_run
    teacher = run / "finetuned.pt"  # any trained net of the data set; a cut one loads as well
    out_dir = tmp_path / "taught"
    argv = ["slim", "--checkpoint", str(run / "sparse.pt"), *common(data_dir), "--ratio", "0.3"]
    argv += ["--finetune-epochs", "1", "--max-batches", "2", "--no-latency", "--no-plots", "--no-plain-cut"]
    assert main([*argv, "--distill-teacher", str(teacher), "--run-dir", str(out_dir)]) == 0
    assert f"distilled from {teacher} (T=4, alpha=0.9)" in capsys.readouterr().out
    results = json.loads((out_dir / "results.json").read_text())
    assert results["distill"] == {"temperature": 4.0, "alpha": 0.9, "teacher": str(teacher)}
    assert json.loads((out_dir / "config.json").read_text())["distill"] is True, "a teacher file implies it"


def test_a_teacher_for_other_data_is_refused_before_training(data_dir, tmp_path, capsys) -> None:
    other = tmp_path / "five-classes.pt"
    netslim.save(create("vgg11", num_classes=5, in_channels=1, input_size=28, width=0.125), other)
    out_dir = tmp_path / "refused"
    argv = ["slim", "--model", "vgg11", "--width", "0.125", *common(data_dir), "--epochs", "1"]
    assert main([*argv, "--distill-teacher", str(other), "--run-dir", str(out_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "outputs [1, 5] for one image, the data set has 10 classes" in err
    assert not out_dir.exists() or not any(out_dir.iterdir()), "nothing is left of a refused run"
    assert main([*argv, "--distill-teacher", str(tmp_path / "missing.pt")]) == 2
    assert "distillation teacher" in capsys.readouterr().err, "the message names the teacher"


@pytest.mark.parametrize(
    "argv",
    [
        ["slim", "--model", "vgg11", "--ratio", "1.5"],
        ["slim", "--ratio", "0.5"],
        ["slim", "--model", "vgg11", "--ratio", "0.5", "--passes", "0"],
        ["slim", "--model", "vgg11", "--sparsity=-1e-4"],
        ["slim", "--model", "vgg11", "--distill", "--distill-alpha", "1.5"],
        ["slim", "--model", "vgg11", "--distill", "--distill-temperature", "0"],
        ["slim", "--model", "vgg11", "--distill-teacher", "no-such-teacher.pt"],
        ["slim", "--model", "vgg11", "--l1", "auto", "--l1-target", "1.2"],
        ["slim", "--model", "vgg11", "--l1", "auto", "--l1-ramp", "1.5"],
        ["slim", "--model", "vgg11", "--l1", "1e-4", "--l1-ramp", "0.3"],
        ["slim", "--model", "vgg11", "--bn-recalibration", "-5"],
        ["prune", "CKPT", "--ratio", "0", "-o", "x.pt"],
        ["prune", "CKPT", "--ratio", "0.5"],
        ["prune", "CKPT", "--bn-recalibration", "3", "-o", "x.pt"],
        ["prune", "CKPT", "--bn-recalibration", "-1", "-o", "x.pt"],
        ["prune", "CKPT", "--fold-beta", "sideways", "-o", "x.pt"],
        ["prune", "CKPT", "--fold-beta", "exact", "--no-fold-beta", "-o", "x.pt"],
    ],
)
def test_bad_input_is_a_one_line_error(argv, slim_run, data_dir, capsys) -> None:
    run, _ = slim_run
    argv = [str(run / "sparse.pt") if a == "CKPT" else a for a in argv]
    if argv[0] == "slim":
        argv += ["--data-dir", str(data_dir), "--dataset", "mnist"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"netslim {argv[0]}: error:")


def test_usage_errors_are_one_line_and_exit_2(capsys) -> None:
    assert main(["prune", "x.pt", "--scope", "sideways"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "netslim prune: error: argument --scope: invalid choice: 'sideways' (choose from 'global', 'local') "
        "(see 'netslim prune --help')"
    )
    assert main(["no-such-command"]) == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["prune", "--help"]) == 0 and "usage: netslim prune" in capsys.readouterr().out
