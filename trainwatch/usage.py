"""What ``trainwatch --help`` says, and shell completion.

``trainwatch`` with no subcommand opens the live app, so its help is the
app's: paths and main options, the other commands, examples, exit codes and
where the config file is. Completion for bash, zsh and fish comes from
argcomplete (maintained, and unlike shtab it covers fish): the shell calls
``trainwatch`` with ``_ARGCOMPLETE`` set and this module answers, imported
only then, so a normal start pays nothing for it.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Iterable
from typing import Any, NamedTuple

SHELLS = ("bash", "zsh", "fish")

WATCH_USAGE = """trainwatch [PATH ...] [options]
       trainwatch {snapshot,serve-metrics,alert,demo,completion} ..."""

WATCH_DESCRIPTION = """\
A live terminal monitor for LLM training runs: one row per run (progress,
loss, s/iter, tokens/hour, MFU, ETA, finish time), updated as its log grows.
Reads nanoGPT and its forks, HF Trainer, Megatron-LM, torchtitan, MaxText,
OLMo, Composer, litgpt, torchtune, llm.c, LLaMA-Factory, ms-swift and
Lightning logs and TensorBoard event files as they are."""


def watch_epilog(config_file: str) -> str:
    """The end of the help: the other commands, examples, keys, exit codes, config."""
    return f"""\
commands:
  snapshot PATH...      print one row per run and exit (table, md, csv, json, html)
  serve-metrics PATH... serve Prometheus /metrics without the app, until Ctrl-C
  alert PATH...         push alerts (--notify URL) without the app, until SIGTERM
  demo                  simulate four training runs and watch them
  completion SHELL      print the tab-completion script for bash, zsh or fish
  (trainwatch COMMAND --help for each)

examples:
  trainwatch                              watch the runs under this folder
  trainwatch ~/runs /scratch/job-*        files or folders, searched recursively
  trainwatch gpu1:/scratch/runs           runs on another host, over your ssh
  trainwatch --poll 2 /nfs/runs           poll instead of inotify (NFS, Lustre)
  trainwatch snapshot ~/runs -f json      the stable machine-readable form
  trainwatch alert ~/runs --notify URL    a push when a run needs you (apprise URLs)
  eval "$(trainwatch completion bash)"    tab completion (add it to ~/.bashrc)

in the app: ? lists the keys; q or Ctrl-C quits, Ctrl-Z suspends.

exit status:
  0    quit with q
  1    no run found (snapshot), or a path that does not exist
  2    bad arguments, a config file that cannot be read, a metrics port in use
  130  Ctrl-C or SIGINT (129 SIGHUP, 143 SIGTERM: the terminal is restored)

config file (run names, TOML): --config FILE, else $TRAINWATCH_CONFIG, else
./trainwatch.toml, else {config_file}
  [runs.run_20251113_225009]
  name = "Qwen3 1.8B Optimal\""""


def shell_code(shell: str) -> str:
    """The script that makes ``shell`` complete ``trainwatch``'s arguments."""
    import argcomplete

    return str(argcomplete.shellcode(["trainwatch"], shell=shell))


def complete(parsers: Parsers, subcommands: Iterable[str]) -> None:
    """Answer the shell's completion request and exit, when this run is one.

    Without a subcommand ``trainwatch`` takes paths (the app), so the first
    word completes to a command name or a path, and options are the app's.
    """
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete
    from argcomplete.completers import FilesCompleter

    commands = tuple(subcommands)
    line = os.environ.get("COMP_LINE", "")[: int(os.environ.get("COMP_POINT", "0") or 0)]
    try:
        typed = shlex.split(line + "x")[1:-1]  # the words before the one being completed
    except ValueError:  # an open quote
        typed = line.split()[1:]
    parser = parsers.top if any(word in commands for word in typed) else parsers.watch
    files = FilesCompleter()

    def paths_or_commands(prefix: str, **kwargs: Any) -> list[str]:
        found = [c for c in commands if c.startswith(prefix) and not typed]
        return found + list(files(prefix, **kwargs))

    for action in parsers.paths:
        action.completer = paths_or_commands  # type: ignore[attr-defined]
    argcomplete.autocomplete(parser, default_completer=files)


class Parsers(NamedTuple):
    """The command line's parsers: the whole, the app's (``trainwatch PATH...``), and the PATH arguments."""

    top: argparse.ArgumentParser
    watch: argparse.ArgumentParser
    paths: list[argparse.Action]
