"""The ``transtailor`` command.

Each subcommand's flags are generated from its config dataclass (``--field-name`` for every
field), so a YAML file given with ``--config`` accepts exactly the same options; flags given on
the command line win over the file. Problems with the user's input print one line and exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from ..config import (BenchmarkConfig, CompareConfig, EvaluateConfig, ExportConfig, FinetuneConfig, PruneConfig, ReportConfig,
                      SearchConfig, resolve)
from ..errors import TransTailorError
from ..records import FinetuneSummary, SearchSummary

# torch is imported only once a command runs (inside main's try), so Ctrl-C during its import
# is answered like any other interruption

POSITIONAL = {"model_path": "MODEL_OR_RUN", "run_dir": "RUN_DIR"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _registry_choices() -> dict[str, list[str]]:
    """Options whose choices are the registered criteria."""
    from ..pruning.criteria import criterion_names

    return {"method": criterion_names(), "importance": criterion_names(soft=False)}


def _criteria_epilog() -> str:
    from ..pruning.criteria import CRITERIA

    return "criteria:\n" + "\n".join(f"  {name:8s} {c.summary}" for name, c in CRITERIA.items())


def _config_fields(cls: type) -> list[dataclasses.Field]:
    """The config's fields, with the criteria's own options in place of its ``method_options`` dict."""
    out: list[dataclasses.Field] = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli") is False:  # recorded by the run itself, not given as a flag
            continue
        if f.metadata.get("flat"):
            from ..config import method_option_fields
            from ..pruning import criteria  # noqa: F401  (registers every criterion's options)

            out.extend(field for _, field in method_option_fields().values())
        else:
            out.append(f)
    return out


def _add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    registry = _registry_choices() if any(f.name in ("method", "importance") for f in dataclasses.fields(cls)) else {}
    for f in _config_fields(cls):
        help_text = f.metadata.get("help", "")
        if f.default is not None and f.default != "":
            help_text += f" (default: {f.default})"
        if f.name in POSITIONAL:
            parser.add_argument(f.name, metavar=POSITIONAL[f.name], help=f.metadata.get("help"))
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, help=help_text,
                                choices=registry.get(f.name, f.metadata.get("choices")), metavar=f.name.upper())
    parser.add_argument("--config", dest="_config", default=None, metavar="YAML",
                        help="read options from a YAML file; command-line flags win")


def _cmd_finetune(args: dict[str, Any], config_file: str | None) -> int:
    from ..methods import finetune

    cfg = resolve(FinetuneConfig, flags=args, config_file=config_file)
    result = finetune(cfg)
    _print_summary(result.summary, result.run_dir)
    return 0


def _cmd_search(args: dict[str, Any], config_file: str | None) -> int:
    from ..methods import search

    return _iterative(search(resolve(SearchConfig, flags=args, config_file=config_file)))


def _cmd_prune(args: dict[str, Any], config_file: str | None) -> int:
    from ..methods import prune

    return _iterative(prune(resolve(PruneConfig, flags=args, config_file=config_file)))


def _cmd_compare(args: dict[str, Any], config_file: str | None) -> int:
    from ..methods.compare import compare

    result = compare(resolve(CompareConfig, flags=args, config_file=config_file))
    print(result.table)
    print(f"-> {result.run_dir}")
    return 0


def _iterative(result: Any) -> int:
    from ..reporting import search_table

    print(search_table(result.run_dir))
    print(f"-> {result.run_dir} (summary.json, iterations.json, plots; `transtailor report` for every column)")
    return 0


def _cmd_export(args: dict[str, Any], config_file: str | None) -> int:
    from ..methods.export import export_model

    cfg = resolve(ExportConfig, flags=args, config_file=config_file)
    path, diff = export_model(cfg.model_path, cfg.format, cfg.output, cfg.image_size, force=cfg.force)
    print(f"wrote {path} (max abs difference from the model: {diff:.2e})")
    return 0


def _cmd_benchmark(args: dict[str, Any], config_file: str | None) -> int:
    from ..methods.benchmark import benchmark

    result = benchmark(resolve(BenchmarkConfig, flags=args, config_file=config_file))
    print(result.table)
    print(f"wrote {result.path}")
    return 0


def _cmd_report(args: dict[str, Any], config_file: str | None) -> int:
    from ..reporting import draw_search_plots, iteration_table, search_table

    cfg = resolve(ReportConfig, flags=args, config_file=config_file)
    print(iteration_table(cfg.run_dir))
    if (Path(cfg.run_dir) / "summary.json").is_file():  # finished: what it returned, beside the alternatives
        print()
        print(search_table(cfg.run_dir))
    for p in draw_search_plots(cfg.run_dir):
        print(f"drew {p}")
    return 0


def _cmd_evaluate(args: dict[str, Any], config_file: str | None) -> int:
    from ..methods import evaluate_saved

    cfg = resolve(EvaluateConfig, flags=args, config_file=config_file)
    print(json.dumps(evaluate_saved(cfg), indent=2))
    return 0


def _cmd_models(args: dict[str, Any], config_file: str | None) -> int:
    from ..models import count_macs_params, create_model
    from ..models.zoo import BUILTINS, torchvision_names
    from ..reporting.tables import markdown_table

    rows = []
    for name, builtin in BUILTINS.items():
        model = create_model(name, weights="none").model  # the architecture is all that is counted
        macs, params = count_macs_params(model, builtin.image_size)
        rows.append([name, str(builtin.image_size), f"{params / 1e6:.2f}", f"{macs / 1e6:.0f}"])
    print("Pretrained models whose ImageNet weights install with TransTailor (they work offline):\n")
    print(markdown_table(["model", "native px", "M params", "M MACs at native px"], rows))
    print("\ntorchvision models (their ImageNet weights download once, or give a file with --weights):\n")
    print("\n".join(torchvision_names()))
    print("\n... and any timm model as timm:NAME")
    return 0


COMMANDS: dict[str, tuple[type | None, Callable[[dict[str, Any], str | None], int], str]] = {
    "search": (SearchConfig, _cmd_search, "the TransTailor search: prune and fine-tune, keep the best sub-model"),
    "finetune": (FinetuneConfig, _cmd_finetune, "FT (--mode head) or FT-Full (--mode full)"),
    "prune": (PruneConfig, _cmd_prune, "prune with one criterion (listed below) to a FLOPs or speed-up budget"),
    "compare": (CompareConfig, _cmd_compare, "methods x seeds (x FLOPs budgets) on one data set: a table and a plot"),
    "evaluate": (EvaluateConfig, _cmd_evaluate, "re-evaluate a saved model or run folder on a data set"),
    "export": (ExportConfig, _cmd_export, "write a TorchScript or ONNX file of a saved model or run"),
    "benchmark": (BenchmarkConfig, _cmd_benchmark, "re-measure the speed-up of every sub-model of a run (or a "
                  "model file) on this machine; writes latency.json"),
    "report": (ReportConfig, _cmd_report, "print a search run's per-iteration table and redraw its plots"),
    "models": (None, _cmd_models, "list the model names accepted by --model"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, the flags of that command alone ("" for none): the flags of prune, search
    and compare list the criteria registry, which imports torch, which ``--version``, ``--help`` and the
    other commands' flags do not need."""
    parser = _Parser(prog="transtailor", description="Prune and fine-tune a pretrained CNN for your task.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="_command", metavar="COMMAND", parser_class=_Parser)
    for name, (cls, _, help_text) in COMMANDS.items():
        lists_criteria = name in ("prune", "search", "compare") and only in (None, name)
        p = sub.add_parser(name, help=help_text, description=help_text,
                           epilog=_criteria_epilog() if lists_criteria else None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if cls is not None and only in (None, name):
            _add_config_flags(p, cls)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # the command is the first word that is not a flag (the top level's flags take no value); it is named
    # before its parser is built, which may load the criteria registry (and torch)
    command = next((a for a in args if not a.startswith("-")), "command")
    from ..interrupts import install

    install()  # a Ctrl-C that some library swallows is raised again at the next step
    try:
        parser = build_parser(only=command if command in COMMANDS else "")  # no command: no command's flags
        ns = vars(parser.parse_args(args))
        command = ns.pop("_command")
        if command is None:
            parser.print_help()
            return 2
        quiet = ns.pop("quiet")
        follower = int(os.environ.get("RANK", "0")) > 0  # under torchrun, rank 0 alone prints and logs
        if follower:
            sys.stdout = open(os.devnull, "w")
        logging.basicConfig(level=logging.WARNING if quiet or follower else logging.INFO, format="%(message)s",
                            stream=sys.stderr)
        config_file = ns.pop("_config", None)
        return COMMANDS[command][1](ns, config_file)
    except TransTailorError as exc:
        print(f"transtailor {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"transtailor {command}: interrupted; completed files in the run folder are kept", file=sys.stderr)
        logging.disable(logging.INFO)  # torch's exit hooks log statistics when cut off in the middle of its import
        return 130
    finally:
        if "transtailor.distributed" in sys.modules:  # nothing to shut down before torch was imported
            sys.modules["transtailor.distributed"].shutdown()


def _print_summary(summary: FinetuneSummary | SearchSummary, run_dir: Any) -> None:
    """The headline fields of a run's summary as JSON."""
    keys = ("method", "criterion", "best_iteration", "stopped", "flops_reduction", "val_top1", "test_top1",
            "test_top5", "macs", "params", "latency_target", "latency_ms_b1", "latency_ms_batch", "speedup_b1",
            "speedup_batch", "wall_seconds", "skipped_files")
    data = summary.to_json()
    print(json.dumps({k: data[k] for k in keys if k in data} | {"run_dir": str(run_dir)}, indent=2))


def _version() -> str:
    from .. import __version__

    return __version__


if __name__ == "__main__":
    raise SystemExit(main())
