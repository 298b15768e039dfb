"""bench/cli.py: one entry, a subcommand per benchmark, `run` when none is named."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from bench import cli
from bench.cli import GPU_CHECKS as CHECKS

SUBCOMMANDS = [[name] for name in cli.BENCHMARKS] + [["gpu", name] for name in CHECKS]


def test_help_lists_every_benchmark_without_importing_them(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.BENCHMARKS)
    # In a fresh interpreter: the list comes from the table, not from the modules.
    probe = "from bench.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    probe += "import sys\nprint(sorted(m for m in ('torch', 'bench.full') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip().endswith("[]"), result.stdout[-500:] + result.stderr[-500:]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_its_help(words: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main([*words, "--help"])
    assert stop.value.code == 0
    assert "--" in capsys.readouterr().out  # its own options are listed


@pytest.mark.parametrize(
    "argv",
    [[], ["--size", "tiny", "--skip-media"], ["run", "--size", "tiny", "--skip-media"]],
    ids=["nothing", "options-only", "named"],
)
def test_no_benchmark_named_is_the_full_run(argv: list[str], monkeypatch) -> None:
    seen: list[argparse.Namespace] = []
    monkeypatch.setattr("bench.full.run", lambda args: seen.append(args) or 0)
    assert cli.main(argv) == 0
    (args,) = seen
    assert args.size == ("tiny" if argv else "small")
    assert args.skip_media is bool(argv)
    # bench.json's "config" is vars(args): nothing of the dispatcher's in it.
    assert set(vars(args)) == set(vars(cli.build_parser(["run"]).parse_args(["run"])))


def test_pandagpt_bench_reaches_the_same_entry(monkeypatch) -> None:
    from service.cli import main as pandagpt

    seen: list[argparse.Namespace] = []
    monkeypatch.setattr("bench.structured.run", lambda args: seen.append(args) or 3)
    assert pandagpt(["bench", "structured", "--requests", "5"]) == 3
    assert seen[0].requests == 5 and seen[0].concurrency == 32


def test_an_unknown_option_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["encoder", "--no-such-option"])
    assert stop.value.code == 2
    assert "--no-such-option" in capsys.readouterr().err
