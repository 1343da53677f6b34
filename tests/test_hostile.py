"""Hostile input and faults: each case is answered with one clear line or handled correctly, and no
work is lost. One test per case; the module grows with every case found."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from transtailor.cli import main
from transtailor.config import SearchConfig
from transtailor.errors import ConfigError
from transtailor.runs import file_mode
from transtailor.methods import search

from conftest import TINY


def _iterations(run):
    return json.loads((run / "iterations.json").read_text())


def test_resume_after_a_kill_between_the_list_and_the_state_redoes_the_iteration_once(tiny_folder, tmp_path):
    """A kill after ``iterations.json`` took iteration 2 but before ``state.json`` committed it."""
    whole = tmp_path / "whole"
    search(SearchConfig(data=str(tiny_folder), out=str(whole), max_iterations=3, stop_rule="none", **TINY))
    done = _iterations(whole)
    assert [r["iteration"] for r in done] == [0, 1, 2, 3]

    killed = tmp_path / "killed"
    shutil.copytree(whole, killed)
    for name in ("summary.json", "best"):  # the run had not finished
        path = killed / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(killed / "iter_003")
    (killed / "iterations.json").write_text(json.dumps(done[:3]))  # iteration 2 in the list ...
    state = {"completed": 1, "best": 1, "best_val": done[1]["val_top1"], "macs_original": done[0]["macs"],
             "stopped": None}
    (killed / "state.json").write_text(json.dumps(state))  # ... but the state still at iteration 1

    search(SearchConfig(resume=str(killed)))
    resumed = _iterations(killed)
    keys = ("iteration", "val_top1", "test_top1", "macs", "filters_removed")
    assert [{k: r.get(k) for k in keys} for r in resumed] == [{k: r.get(k) for k in keys} for r in done]
    assert json.loads((killed / "summary.json").read_text())["stopped"] == "max_iterations"


def test_resume_with_a_committed_iteration_unreadable_says_so(tiny_folder, tmp_path):
    run = tmp_path / "run"
    search(SearchConfig(data=str(tiny_folder), out=str(run), max_iterations=2, stop_rule="none", **TINY))
    state = json.loads((run / "state.json").read_text())
    state.update(stopped=None)
    (run / "state.json").write_text(json.dumps(state))
    (run / "iter_001" / "metrics.json").write_text('{"iterat')  # truncated by a full disk
    with pytest.raises(ConfigError, match="iteration 1 is committed but .*metrics.json cannot be read"):
        search(SearchConfig(resume=str(run)))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished one-iteration search; tests that change it work on a copy."""
    from conftest import make_tiny_folder

    root = tmp_path_factory.mktemp("hostile")
    run = root / "run"
    search(SearchConfig(data=str(make_tiny_folder(root / "data")), out=str(run), max_iterations=1, stop_rule="none",
                        **TINY))
    return run


@pytest.mark.parametrize("target", ["summary.json", "state.json", "best/model.pt", "iter_001/model.pt", "config.yaml"])
def test_export_never_replaces_a_runs_own_files(finished_run, target, capsys):
    before = (finished_run / target).read_bytes()
    assert main(["export", str(finished_run), "--output", str(finished_run / target), "--force"]) == 2
    assert "one of the run's own files" in capsys.readouterr().err
    assert (finished_run / target).read_bytes() == before


def test_export_refuses_an_existing_file_without_force(finished_run, tmp_path, capsys):
    out = tmp_path / "mine.torchscript.pt"
    out.write_text("keep me")
    assert main(["export", str(finished_run), "--output", str(out)]) == 2
    assert "exists: pass --force" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert main(["export", str(finished_run), "--output", str(out), "--force"]) == 0
    assert torch.jit.load(str(out)) is not None
    assert oct(out.stat().st_mode & 0o777) == oct(file_mode())  # not mkstemp's 0600


def test_export_to_a_folder_or_an_unwritable_place_is_one_line(finished_run, tmp_path, capsys):
    assert main(["export", str(finished_run), "--output", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["export", str(finished_run), "--output", str(blocker / "sub" / "m.onnx"), "--format", "onnx"]) == 2
    assert "cannot write there" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--lr-head=nan", "--lr-backbone=inf", "--weight-decay=-inf", "--momentum=NaN"])
def test_non_finite_float_options_are_one_line(tiny_folder, tmp_path, flag, capsys):
    out = tmp_path / "run"
    assert main(["finetune", "--data", str(tiny_folder), "--out", str(out), flag]) == 2
    assert "must be a finite number" in capsys.readouterr().err
    assert not out.exists()


def test_tau_inf_still_means_never_stop():
    from transtailor.config import from_dict

    assert from_dict(SearchConfig, {"tau": "inf"}).tau == float("inf")


def test_a_diverged_model_is_not_saved(tmp_path):
    from transtailor.errors import ModelError
    from transtailor.models import create_model
    from transtailor.models.serialize import save_model

    bundle = create_model("resnet18", num_classes=3, weights="none")
    with torch.no_grad():
        bundle.model.fc.weight[0, 0] = float("nan")
    with pytest.raises(ModelError, match="training diverged"):
        save_model(tmp_path / "model.pt", bundle)
    assert not (tmp_path / "model.pt").exists()


def test_a_16_bit_png_is_scaled_not_clipped_to_white(tmp_path):
    import numpy as np
    from PIL import Image

    from transtailor.data.images import LabeledImages

    ramp = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode in ("I;16", "I")
    got = np.asarray(LabeledImages([str(path)], [0], ["a"]).load(0))
    assert got.shape == (48, 64, 3)
    np.testing.assert_allclose(got[..., 0], ramp / 257.0, atol=0.51)


def test_a_one_class_data_set_is_refused(tmp_path, capsys):
    from conftest import write_folder

    data = tmp_path / "data"
    write_folder(data, {"ants": 6}, "train")
    write_folder(data, {"ants": 2}, "test", seed=1)
    out = tmp_path / "run"
    assert main(["finetune", "--data", str(data), "--out", str(out), "--model", "resnet18", "--weights", "none",
                 "--image-size", "32", "--epochs", "1", "--no-latency"]) == 2
    assert "needs at least 2 class" in capsys.readouterr().err
    assert not out.exists()  # bad input writes nothing


def _symlink_case(tmp_path, kind):
    import os

    from conftest import write_folder

    data = tmp_path / "data"
    write_folder(data, {"ants": 4, "bees": 4}, "train")
    write_folder(data, {"ants": 2, "bees": 2}, "test", seed=1)
    if kind == "loop":
        os.symlink(data / "train", data / "train" / "bees" / "again")  # a link to a parent
    elif kind == "folder":
        os.symlink(data / "train" / "bees", data / "test" / "ants" / "more")  # bees also labelled ants in test
    else:
        first = next((data / "train" / "bees").iterdir())
        os.symlink(first, data / "train" / "ants" / "copy.png")
    return data


@pytest.mark.parametrize("kind,message", [("loop", "again, through a symbolic link"),
                                          ("folder", "again, through a symbolic link"),
                                          ("file", "are the same file")])
def test_symbolic_link_loops_and_repeats_in_the_data_are_refused(tmp_path, kind, message, capsys):
    data = _symlink_case(tmp_path, kind)
    out = tmp_path / "run"
    assert main(["finetune", "--data", str(data), "--out", str(out), "--model", "resnet18", "--weights", "none",
                 "--image-size", "32", "--epochs", "1", "--no-latency"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_resume_from_another_folder_after_a_relative_data_path(tiny_folder, tmp_path, monkeypatch):
    import yaml

    monkeypatch.chdir(tiny_folder.parent)
    search(SearchConfig(data=tiny_folder.name, out="run", max_iterations=2, stop_rule="none", **TINY))
    run = tiny_folder.parent / "run"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"] == str(tiny_folder.resolve()) and saved["out"] == str(run.resolve())
    state = json.loads((run / "state.json").read_text())
    state.update(completed=1, stopped=None)  # as if killed after iteration 1
    (run / "state.json").write_text(json.dumps(state))
    shutil.rmtree(run / "iter_002")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    search(SearchConfig(resume=str(run)))
    assert [r["iteration"] for r in _iterations(run)] == [0, 1, 2]


@pytest.mark.parametrize("name,content,message", [
    ("state.json", '{"compl', "state.json cannot be read"),
    ("state.json", '{"completed": "x"}', "is not a run state"),
    ("config.yaml", "::: [", "config.yaml cannot be read"),
    ("config.yaml", "just text", "is not a run's configuration"),
])
def test_resume_with_a_damaged_run_file_is_one_line(finished_run, tmp_path, name, content, message, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / name).write_text(content)
    assert main(["search", "--resume", str(run)]) == 2
    assert message in capsys.readouterr().err


def test_resume_cleans_the_temporary_file_a_kill_left(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / ".state.json.abc123.tmp").write_text('{"half')
    search(SearchConfig(resume=str(run)))
    assert not list(run.rglob(".*.tmp"))


def test_report_on_a_damaged_iterations_file_is_one_line(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "iterations.json").write_text("[{")
    assert main(["report", str(run)]) == 2
    assert "iterations.json cannot be read" in capsys.readouterr().err


def test_bad_config_file_and_out_under_a_file_are_one_line(tiny_folder, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe epochs: 2")
    assert main(["finetune", "--config", str(bad), "--data", str(tiny_folder)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert main(["finetune", "--data", str(tiny_folder), "--out", str(blocker / "run"), "--model", "resnet18",
                 "--weights", "none", "--image-size", "32", "--epochs", "1", "--no-latency"]) == 2
    assert "cannot create the folder" in capsys.readouterr().err


def test_an_image_size_the_network_cannot_take_is_one_line_and_writes_nothing(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["finetune", "--data", str(tiny_folder), "--out", str(out), "--model", "vgg11", "--weights", "none",
                 "--image-size", "7", "--epochs", "1", "--no-latency"]) == 2
    assert "--image-size 7 is too small for vgg11" in capsys.readouterr().err
    assert not out.exists()


def test_resume_refuses_an_option_that_differs_from_the_runs(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    assert main(["search", "--resume", str(run), "--momentum", "0.5", "--flops-step", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "--momentum 0.5 (the run has 0.9)" in err and "--flops-step 0.2" in err


def test_resume_takes_a_new_data_location(finished_run, tmp_path):
    import yaml

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    old = tmp_path / "old"
    shutil.copytree(config["data"], old)  # the run's own data, in a place this test may move
    config["data"] = str(old)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    moved = tmp_path / "moved"
    state = json.loads((run / "state.json").read_text())
    state.update(completed=0, stopped=None)  # redo iteration 1, which reads the data
    (run / "state.json").write_text(json.dumps(state))
    shutil.rmtree(run / "iter_001")
    old.rename(moved)
    search(SearchConfig(resume=str(run), data=str(moved)))
    assert [r["iteration"] for r in _iterations(run)] == [0, 1]


def test_export_format_export_writes_a_pt2_that_runs_any_batch(finished_run, tmp_path):
    out = tmp_path / "model.pt2"
    assert main(["export", str(finished_run), "--format", "export", "--output", str(out)]) == 0
    program = torch.export.load(str(out)).module()
    from transtailor.models import load_model

    model = load_model(finished_run).eval()
    for batch in (1, 3):
        x = torch.randn(batch, 3, 32, 32)
        torch.testing.assert_close(program(x), model(x), rtol=1e-4, atol=1e-4)


def test_an_unreadable_image_is_skipped_with_its_reason(tmp_path):
    from conftest import write_folder
    from PIL import Image

    from transtailor.data.images import why_unreadable

    data = tmp_path / "data"
    write_folder(data, {"a": 4, "b": 4}, "train")
    write_folder(data, {"a": 2, "b": 2}, "test", seed=1)
    huge = data / "train" / "a" / "huge.png"
    Image.new("L", (16000, 14100)).save(huge)  # 225.6 million pixels: above Pillow's bomb limit
    assert "resize the image" in why_unreadable(str(huge))
    broken = data / "train" / "b" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    assert "UnidentifiedImageError" in why_unreadable(str(broken))


def test_weights_that_are_a_folder_or_text_say_what_they_are(tiny_folder, tmp_path, capsys):
    text = tmp_path / "w.pth"
    text.write_text("hello")
    base = ["finetune", "--data", str(tiny_folder), "--out", str(tmp_path / "run"), "--model", "resnet18",
            "--image-size", "32", "--epochs", "1", "--no-latency"]
    assert main([*base, "--weights", str(tmp_path)]) == 2
    assert "is a folder, not a file" in capsys.readouterr().err
    assert main([*base, "--weights", str(text)]) == 2
    assert "is not a PyTorch file" in capsys.readouterr().err


def test_timm_weights_offline_fail_at_once_naming_the_file(tmp_path, monkeypatch):
    import time

    from transtailor.errors import ModelError
    from transtailor.models import create_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    t = time.perf_counter()
    with pytest.raises(ModelError, match=r"huggingface\.co/timm/resnet18\.a1_in1k"):
        create_model("timm:resnet18", num_classes=3, weights="default")
    assert time.perf_counter() - t < 20  # the hub client alone retried for about a minute


class _Killed(BaseException):
    """Stands for kill -9 at one write: nothing after it runs."""


@pytest.fixture(scope="module")
def one_iteration_run(finished_run, tmp_path_factory):
    """The finished one-iteration search, and the iterations of its copy carried on to iteration 2."""
    whole = tmp_path_factory.mktemp("commit") / "whole"
    _continue_to_two(finished_run, whole)
    search(SearchConfig(resume=str(whole)))
    return finished_run, _iterations(whole)


def _continue_to_two(base, dst):
    """A copy of the one-iteration run set to go on to iteration 2 (as if it had been asked for 2)."""
    import yaml

    shutil.copytree(base, dst)
    config = yaml.safe_load((dst / "config.yaml").read_text())
    config.update(max_iterations=2, out=str(dst))
    (dst / "config.yaml").write_text(yaml.safe_dump(config))
    state = json.loads((dst / "state.json").read_text())
    state["stopped"] = None
    (dst / "state.json").write_text(json.dumps(state))
    for name in ("summary.json", "best"):
        shutil.rmtree(dst / name) if (dst / name).is_dir() else (dst / name).unlink()


# iteration 2's commit renames, in order: iter_002/model.pt, importance.pt, pruning.json, metrics.json,
# then iterations.json, then state.json (the commit itself)
@pytest.mark.parametrize("kill_at", [1, 2, 3, 4, 5, 6])
def test_a_kill_at_any_write_of_a_commit_resumes_to_the_same_run(one_iteration_run, tmp_path, monkeypatch, kill_at):
    import os

    base, whole = one_iteration_run
    run = tmp_path / "run"
    _continue_to_two(base, run)
    real = os.replace
    writes: list[str] = []

    def replace(src, dst):
        name = str(dst)
        if "iter_002" in name or (writes and os.path.basename(name) in ("iterations.json", "state.json")):
            writes.append(name)
            if len(writes) == kill_at:
                raise _Killed(name)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(_Killed):
        search(SearchConfig(resume=str(run)))
    monkeypatch.setattr(os, "replace", real)
    assert json.loads((run / "state.json").read_text())["completed"] == 1  # the commit did not happen
    search(SearchConfig(resume=str(run)))
    keys = ("iteration", "val_top1", "test_top1", "macs", "filters_removed")
    assert [{k: r.get(k) for k in keys} for r in _iterations(run)] == [{k: r.get(k) for k in keys} for r in whole]
    assert not list(run.rglob(".*.tmp"))


def test_resume_refuses_an_earlier_iteration_cut_short(one_iteration_run, tmp_path, capsys):
    base, _ = one_iteration_run
    run = tmp_path / "run"
    _continue_to_two(base, run)
    model = run / "iter_000" / "model.pt"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    assert main(["search", "--resume", str(run)]) == 2
    assert "iter_000/model.pt is missing or changed" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs a POSIX file size limit")
def test_a_full_disk_during_a_write_is_one_line(tiny_folder, tmp_path):
    import resource
    import subprocess
    import sys

    def limit():  # as `ulimit -f`: writes past 10 MB fail (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (10 << 20, 10 << 20))

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "transtailor", "finetune", "--data", str(tiny_folder), "--out",
                           str(out), "--model", "resnet18", "--weights", "none", "--image-size", "32", "--epochs", "1",
                           "--no-latency", "--threads", "1"], capture_output=True, text=True, preexec_fn=limit)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "free some disk space" in proc.stderr.strip().splitlines()[-1]
    assert not list(out.glob(".*.tmp"))  # the half-written file is gone


def test_a_deleted_iteration_folder_is_one_line_for_resume_and_report(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / "iter_001")
    assert main(["search", "--resume", str(run)]) == 2
    assert "iter_001/model.pt is missing" in capsys.readouterr().err
    assert main(["report", str(run)]) == 2
    assert "iter_001" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc to see torch being loaded")
@pytest.mark.parametrize("after", [0.0, 1.0])
def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path, after):
    # torch's import takes seconds; an interrupt then (or just after) is answered like one during training
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "transtailor", "search", "--out", str(tmp_path / "r")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + 60
    while "libtorch" not in maps.read_text() and time.monotonic() < deadline:  # torch is being imported
        time.sleep(0.005)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    # 130, or ended by SIGINT itself, which a shell reports as 130 too: after an interrupt inside torch's
    # import, CPython sometimes ends the process that way although main caught the interrupt
    assert proc.returncode in (130, -signal.SIGINT), err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("transtailor search: interrupted")


def test_the_package_imports_without_torch_until_a_name_needs_it():
    import subprocess
    import sys

    code = ("import sys, transtailor, transtailor.cli.main; assert 'torch' not in sys.modules; "
            "transtailor.SearchConfig; assert 'torch' not in sys.modules; transtailor.load_model; "
            "assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_version_help_and_finetune_flags_answer_without_torch():
    # only prune, search and compare list the criteria registry, which needs torch
    import subprocess
    import sys

    code = ("import sys, contextlib, io; from transtailor.cli.main import main\n"
            "for argv in (['--version'], ['--help'], ['finetune', '--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try: main(argv)\n"
            "        except SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- no command that writes a file the user names overwrites a run's own files ------------------------------

BENCH = ["--latency-target", "cpu", "--rounds", "1", "--latency-batch", "2", "--threads", "1"]


@pytest.mark.parametrize("target", ["best/model.pt", "iter_001/model.pt", "summary.json", "iterations.json"])
def test_benchmark_never_replaces_a_runs_own_files(finished_run, target, capsys):
    before = (finished_run / target).read_bytes()
    assert main(["benchmark", str(finished_run), "--output", str(finished_run / target), "--force", *BENCH]) == 2
    assert "one of the run's own files" in capsys.readouterr().err
    assert (finished_run / target).read_bytes() == before


def test_benchmark_refuses_an_existing_file_without_force_and_a_folder_without_the_disk_hint(finished_run, tmp_path,
                                                                                             capsys):
    mine = tmp_path / "notes.json"
    mine.write_text("keep me")
    assert main(["benchmark", str(finished_run / "best" / "model.pt"), "--output", str(mine), *BENCH]) == 2
    assert "exists: pass --force" in capsys.readouterr().err
    assert mine.read_text() == "keep me"
    assert main(["benchmark", str(finished_run / "best" / "model.pt"), "--output", str(tmp_path), *BENCH]) == 2
    err = capsys.readouterr().err
    assert "is a folder: name a file in it" in err and "disk space" not in err


def test_benchmarks_of_two_files_in_one_folder_keep_their_own_tables(finished_run, tmp_path):
    for name in ("a.pt", "b.pt"):
        shutil.copy(finished_run / "best" / "model.pt", tmp_path / name)
        assert main(["benchmark", str(tmp_path / name), *BENCH]) == 0
    tables = {name: json.loads((tmp_path / f"{name}.latency.json").read_text()) for name in ("a.pt", "b.pt")}
    assert [t["models"][0]["name"] for t in tables.values()] == ["a.pt", "b.pt"]


def test_a_model_file_cut_short_is_one_whole_sentence(finished_run, tmp_path, capsys):
    cut = tmp_path / "model.pt"
    cut.write_bytes((finished_run / "best" / "model.pt").read_bytes()[:5000])
    assert main(["benchmark", str(cut), *BENCH]) == 2
    err = capsys.readouterr().err.strip()
    assert "is damaged or cut short" in err and err.endswith("save or copy the model again")
    json_file = tmp_path / "latency.pt"
    json_file.write_text('{"models": []}')  # what an overwrite by a JSON writer would have left
    assert main(["benchmark", str(json_file), *BENCH]) == 2
    err = capsys.readouterr().err
    assert "is not a model file" in err and "arbitrary code" not in err


@pytest.fixture(scope="module")
def onnx_file(finished_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "sub.onnx"
    assert main(["export", str(finished_run), "--format", "onnx", "--output", str(out)]) == 0
    return out


@pytest.mark.parametrize("case", ["garbage", "empty", "garbage reference", "other size"])
def test_a_bad_or_mismatched_onnx_file_is_one_line(onnx_file, tmp_path, case, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"" if case == "empty" else b"not a protobuf at all")
    argv = {"garbage": [str(bad)], "empty": [str(bad)], "garbage reference": [str(onnx_file), "--reference", str(bad)],
            "other size": [str(onnx_file), "--image-size", "64"]}[case]
    assert main(["benchmark", *argv, "--rounds", "1", "--latency-batch", "2", "--threads", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    if case == "other size":
        assert "takes inputs of shape batchx3x32x32, not 1x3x64x64: benchmark it with --image-size 32" in err
    else:
        assert f"{bad} is not an ONNX model" in err


def test_an_onnx_file_is_timed_at_the_size_it_was_exported_for(onnx_file):
    assert main(["benchmark", str(onnx_file), "--rounds", "1", "--latency-batch", "2", "--threads", "1"]) == 0
    table = json.loads(onnx_file.with_name("sub.onnx.latency.json").read_text())
    assert table["models"][0]["name"] == "sub.onnx" and table["target"] == "onnxruntime"


def test_an_empty_budget_list_is_refused(tiny_folder, tmp_path, capsys):
    assert main(["compare", "--data", str(tiny_folder), "--out", str(tmp_path / "cmp"), "--budgets", ","]) == 2
    assert "--budgets needs at least one budget" in capsys.readouterr().err
    assert not (tmp_path / "cmp").exists()


def test_a_round_to_wider_than_every_layer_is_refused_before_training(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["search", "--data", str(tiny_folder), "--out", str(out), "--model", "resnet18", "--weights", "none",
            "--image-size", "32", "--no-latency", "--round-to"]
    assert main([*argv, "512"]) == 2  # resnet18's widest layer has 512 channels
    assert "the widest has 512 channels" in capsys.readouterr().err
    assert not out.exists()


# --- two processes never share a run folder -----------------------------------------------------------------

def _holder(folder: Path):
    """Another process that holds ``folder`` as a run in progress does (until it is killed)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "import sys, time; from transtailor.runs import RunDir; "
                             "RunDir(sys.argv[1]).create(); print('held', flush=True); time.sleep(600)", str(folder)],
                            stdout=subprocess.PIPE, text=True)
    if proc.stdout is None or proc.stdout.readline().strip() != "held":
        proc.kill()
        pytest.fail(f"the process meant to hold {folder} did not start")
    return proc


def test_a_run_folder_held_by_another_process_is_refused_for_a_new_run_resume_and_compare(finished_run, tiny_folder,
                                                                                          tmp_path, capsys):
    run = tmp_path / "resumable"
    _continue_to_two(finished_run, run)
    cmp_dir = tmp_path / "cmp"
    cmp_dir.mkdir()
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    holders = []
    try:
        for folder in (run, cmp_dir, tmp_path / "fresh"):
            holders.append(_holder(folder))
        assert main(["search", "--resume", str(run)]) == 2
        assert "is being written by another TransTailor process (PID" in capsys.readouterr().err
        assert main(["compare", "--data", str(tiny_folder), "--out", str(cmp_dir), "--methods", "ft",
                     "--model", "resnet18", "--weights", "none", "--image-size", "32", "--no-latency"]) == 2
        assert "is being written by another TransTailor process" in capsys.readouterr().err
        assert main(["finetune", "--data", str(tiny_folder), "--out", str(tmp_path / "fresh"), "--model", "resnet18",
                     "--weights", "none", "--image-size", "32", "--epochs", "1", "--no-latency"]) == 2
        assert "is being written by another TransTailor process" in capsys.readouterr().err
    finally:
        for proc in holders:
            proc.kill()  # as kill -9: the lock goes with the process, its file stays behind
            proc.wait()
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".transtailor.lock"} == before
    assert (tmp_path / "fresh" / ".transtailor.lock").is_file()
    assert main(["finetune", "--data", str(tiny_folder), "--out", str(tmp_path / "fresh"), "--model", "resnet18",
                 "--weights", "none", "--image-size", "32", "--epochs", "1", "--no-latency", "--threads", "1",
                 "--workers", "0"]) == 0  # a dead holder's lock does not block
    assert not (tmp_path / "fresh" / ".transtailor.lock").exists()  # released when the run ended


def test_two_searches_started_together_into_one_folder_one_stops_with_one_line(tiny_folder, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "transtailor", "search", "--data", str(tiny_folder), "--out", str(out),
            "--model", "resnet18", "--weights", "none", "--image-size", "32", "--epochs", "1", "--no-latency",
            "--max-iterations", "1", "--stop-rule", "none", "--threads", "1", "--workers", "0",
            "--recover-epochs", "0", "--seed"]
    procs = [subprocess.Popen([*argv, str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (0, 1)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    err = next(e for code, e in results if code == 2).strip().splitlines()[-1]
    assert "Traceback" not in err and ("being written by another TransTailor process" in err
                                       or "already holds a run" in err)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r.get("epoch")) for r in records].count(("ft", 1)) == 1  # one run's records, not two
    assert [r["iteration"] for r in _iterations(out)] == [0, 1]
