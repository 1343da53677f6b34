import json
import subprocess
import sys

import pytest
import torch

from conftest import write_folder, write_image
from transtailor.cli import main

TINY = ["--model", "resnet18", "--weights", "none", "--image-size", "32", "--batch-size", "8", "--workers", "0",
        "--no-latency"]


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_finetune_then_evaluate(tiny_folder, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 5\nmode: head\nlr_head: 0.1\n")
    out = tmp_path / "run"
    code, stdout, _ = _run(capsys, "finetune", "--data", str(tiny_folder), *TINY, "--config", str(cfg),
                           "--epochs", "2", "--out", str(out), "--cache")
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "ft"  # from the file
    assert json.loads(stdout)["test_top1"] == summary["test_top1"]
    import yaml

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["epochs"] == 2 and saved["lr_head"] == 0.1 and saved["cache"] is True  # the flag won
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    code, stdout, _ = _run(capsys, "evaluate", str(out), "--data", str(tiny_folder), "--workers", "0")
    assert code == 0
    assert json.loads(stdout)["test_top1"] == pytest.approx(summary["test_top1"])


def test_corrupt_files_are_reported_in_the_summary(tiny_folder, tmp_path, capsys, caplog):
    (tiny_folder / "train" / "a" / "bad.jpg").write_text("no jpeg here")
    code, _, err = _run(capsys, "finetune", "--data", str(tiny_folder), *TINY, "--epochs", "1",
                        "--out", str(tmp_path / "r"))
    assert code == 0
    assert "skipped 1 unreadable" in caplog.text
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["skipped_files"] == 1 and summary["skipped_examples"][0].endswith("bad.jpg")


def _bad_inputs(tmp_path):
    flat = tmp_path / "flat"
    write_image(flat / "x.jpg")
    empty = write_folder(tmp_path / "empty", {"a": 3}, "train")
    write_folder(empty, {"a": 2}, "test")
    (empty / "train" / "b").mkdir()
    (empty / "test" / "b").mkdir()
    mismatch = write_folder(tmp_path / "mismatch", {"a": 3, "b": 3}, "train")
    write_folder(mismatch, {"a": 2, "c": 2}, "test")
    good = write_folder(tmp_path / "good", {"a": 4, "b": 4})
    wrong = tmp_path / "wrong.pth"
    from torchvision.models import resnet50

    torch.save(resnet50().state_dict(), wrong)
    return [
        (["--data", str(tmp_path / "missing")], "does not exist"),
        (["--data", str(flat)], "no class folders"),
        (["--data", str(empty)], "class 'b' has no images"),
        (["--data", str(mismatch)], "different class folders"),
        (["--data", str(good), "--model", "resnet19"], "did you mean"),
        (["--data", str(good), "--weights", str(wrong)], "tensor 'layer1.0.conv1.weight' has shape (64, 64, 1, 1)"),
        (["--data", str(good), "--epochs", "-2"], "--epochs must not be negative"),
        (["--data", str(good), "--val-fraction", "1.5"], "--val-fraction must be in [0, 1)"),
        (["--data", str(good), "--mode", "half"], "invalid choice"),
        (["--data", str(good), "--epochs", "ten"], "expects int"),
    ]


def test_bad_input_gives_one_line_and_writes_nothing(tmp_path, capsys):
    for extra, words in _bad_inputs(tmp_path):
        out = tmp_path / "never"
        args = ["finetune", *TINY, "--out", str(out), *extra]
        try:
            code, _, err = _run(capsys, *args)
        except SystemExit as exc:  # argparse's own errors
            code, (_, err) = exc.code, capsys.readouterr()
        assert code == 2, (extra, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (extra, err)
        assert "Traceback" not in err
        assert not out.exists(), extra


def test_an_existing_run_is_never_overwritten(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    code, _, err = _run(capsys, "finetune", "--data", str(tiny_folder), *TINY, "--out", str(out))
    assert code == 2 and "already holds a run" in err
    assert (out / "summary.json").read_text() == "{}"


def test_the_installed_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "transtailor", "finetune", "--data", str(tmp_path / "x")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == f"transtailor finetune: error: data path {tmp_path / 'x'} does not exist " \
                                  f"(and is not a recipe: {', '.join(sorted(__import__('transtailor').data.RECIPES))})"
    helped = subprocess.run([sys.executable, "-m", "transtailor", "finetune", "--help"], capture_output=True, text=True)
    assert "--lr-backbone" in helped.stdout and "--val-fraction" in helped.stdout


def test_the_public_names_for_type_checkers_are_those_the_package_loads():
    import ast
    from pathlib import Path

    import transtailor

    tree = ast.parse(Path(transtailor.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    typed = {alias.asname or alias.name for node in block.body for alias in node.names}  # type: ignore[attr-defined]
    assert typed == set(transtailor.__all__)
    assert all(getattr(transtailor, name) is not None for name in transtailor.__all__)
