"""The ``trainwatch`` command: the live app, ``snapshot``, ``serve-metrics``, ``alert`` and ``demo``.

Every failure a user can cause (a bad flag, a missing path, an unreadable
file, a config typo) ends as one line on stderr and an exit status from
docs/SNAPSHOT.md: 0 with at least one run, 1 when no run was found,
2 for bad arguments. Never a traceback.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import io
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast

from trainwatch import __version__, argtypes

if TYPE_CHECKING:
    from trainwatch.core.names import Names
    from trainwatch.core.options import RunOptions
    from trainwatch.core.rows import Snapshot
    from trainwatch.ingest.grouping import GroupRules
    from trainwatch.outputs.prometheus import MetricsServer
    from trainwatch.usage import Parsers

EXIT_OK, EXIT_NO_RUNS, EXIT_USAGE = 0, 1, 2
SUBCOMMANDS = ("watch", "snapshot", "serve-metrics", "alert", "demo", "completion")
#: Columns of the ``snapshot`` table when it is not printed to a terminal
#: (a pipe, a file): what a mail, a pager or a review diff shows whole.
PIPED_WIDTH = 100


class UsageError(Exception):
    """Bad arguments: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors on one line instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    # Never a UnicodeEncodeError on output: a file name that is not UTF-8 is
    # printed as its bytes (as ls prints it), any other character the
    # terminal's encoding lacks (an ISO-8859-1 locale, PYTHONIOENCODING=ascii) as "?".
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        codecs.register_error(_LENIENT, _lenient)
        reconfigure(errors=_LENIENT)
    if argv is None:
        from trainwatch.usage import complete

        complete(parsers(), SUBCOMMANDS[1:])  # answers a shell's tab completion and exits, if it asked
    args_in = list(sys.argv[1:] if argv is None else argv)
    if not args_in or (args_in[0] not in SUBCOMMANDS and args_in[0] != "--version"):
        args_in.insert(0, "watch")  # `trainwatch [PATH...]` opens the app; its --help is trainwatch's
    try:
        args = build_parser().parse_args(args_in)
        return int(args.run(args))
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `trainwatch snapshot | head`
        with contextlib.suppress(OSError, ValueError):  # the exit's flush of stdout must not fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.stderr.close()
        return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    return parsers().top


def parsers() -> Parsers:
    """The command line: every subcommand's parser; ``watch``'s is ``trainwatch``'s own."""
    from trainwatch import usage
    from trainwatch.config import default_config_file

    parser = _Parser(prog="trainwatch", description="Live terminal monitor for LLM training runs.")
    parser.add_argument("--version", action="version", version=f"trainwatch {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    watch = sub.add_parser(
        "watch",
        help="open the live monitor (the default)",
        prog="trainwatch",
        usage=usage.WATCH_USAGE,
        description=usage.WATCH_DESCRIPTION,
        epilog=usage.watch_epilog(str(default_config_file())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    paths = [watch.add_argument("paths", nargs="*", type=Path, default=[Path(".")], metavar="PATH", help=PATHS_HELP)]
    watch.add_argument("--version", action="version", version=f"trainwatch {__version__}")
    _run_options(watch)
    _watch_options(watch)
    watch.add_argument(
        "--metrics-port", type=argtypes.port, metavar="PORT", help="also serve Prometheus metrics on PORT"
    )
    watch.add_argument("--bell", action="store_true", help="ring the terminal bell on alerts")
    watch.add_argument(
        "--ascii", action="store_true", help="ASCII glyphs only (the default where the terminal cannot show ✓ ● ⚑)"
    )
    watch.add_argument(
        "--export-dir",
        type=Path,
        metavar="DIR",
        help="where the export key and the palette's screenshot write (default: the current folder, "
        "or ~/trainwatch-exports when that is watched)",
    )
    watch.add_argument(
        "--desktop-notify",
        nargs="?",
        const="osc9",
        choices=("osc9", "osc777"),
        help="also raise desktop notifications through the terminal (OSC 9, or OSC 777; over SSH too)",
    )
    _notify_option(watch)
    watch.set_defaults(run=_cmd_watch)

    snap = sub.add_parser("snapshot", help="print one row per run and exit", description=SNAPSHOT_DESCRIPTION)
    paths.append(snap.add_argument("paths", nargs="+", type=Path, metavar="PATH", help=SOME_PATHS_HELP))
    snap.add_argument(
        "--format",
        "-f",
        choices=("table", "md", "csv", "json", "html"),
        default="table",
        help="table for people (fits the terminal, 100 columns when piped); json is the stable contract "
        "(docs/SNAPSHOT.md); md, csv and html for reports (default: table)",
    )
    snap.add_argument("--now", type=argtypes.moment, metavar="ISO", help="evaluate ETA/stall as of this time")
    snap.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (atomically)")
    snap.add_argument(
        "--ascii", action="store_true", help="ASCII glyphs only (the default where the terminal cannot show ✓ ● ⚑)"
    )
    _run_options(snap)
    snap.set_defaults(run=_cmd_snapshot)

    serve = sub.add_parser("serve-metrics", help="serve Prometheus metrics without a UI until stopped")
    paths.append(serve.add_argument("paths", nargs="+", type=Path, metavar="PATH", help=SOME_PATHS_HELP))
    _run_options(serve)
    _watch_options(serve)
    serve.add_argument(
        "--metrics-port", type=argtypes.port, metavar="PORT", help="port to serve /metrics on (default 9184)"
    )
    _notify_option(serve)
    serve.set_defaults(run=_cmd_serve_metrics)

    alert = sub.add_parser("alert", help="send push alerts without a UI until stopped (SIGTERM, Ctrl-C)")
    paths.append(alert.add_argument("paths", nargs="+", type=Path, metavar="PATH", help=SOME_PATHS_HELP))
    _run_options(alert)
    _watch_options(alert)
    _notify_option(alert)
    alert.set_defaults(run=_cmd_alert)

    demo = sub.add_parser("demo", help="simulate four training runs and watch them")
    demo.add_argument("--speed", type=argtypes.positive_float, default=60.0, help="simulated seconds per second")
    demo.add_argument("--dir", type=Path, metavar="DIR", help="write the demo runs here (default: a temp dir)")
    demo.add_argument("--headless", action="store_true", help="only write the runs; do not open the app")
    demo.add_argument("--duration", type=argtypes.positive_float, metavar="SECONDS", help="stop after this long")
    demo.set_defaults(run=_cmd_demo)

    completion = sub.add_parser(
        "completion",
        help="print the tab-completion script for a shell",
        description="Print the script that makes SHELL complete trainwatch's commands, options and paths. "
        'bash: eval "$(trainwatch completion bash)" in ~/.bashrc; zsh: the same in ~/.zshrc; '
        "fish: trainwatch completion fish > ~/.config/fish/completions/trainwatch.fish",
    )
    completion.add_argument("shell", choices=usage.SHELLS, metavar="SHELL", help="bash, zsh or fish")
    completion.set_defaults(run=_cmd_completion)
    return usage.Parsers(parser, watch, paths)


SOME_PATHS_HELP = "log files or folders, searched recursively; [user@]host:/path reads another host over ssh"
PATHS_HELP = SOME_PATHS_HELP + " (default: the current folder)"
SNAPSHOT_DESCRIPTION = (
    "Read the logs under PATH once and print one row per run: the same figures as the app, "
    "evaluated now (or --now). Exit status 0 with a run, 1 with none (one line on stderr says why), "
    "2 for bad arguments."
)


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        type=argtypes.count,
        metavar="N",
        help="iterations to count progress and ETA to (default: what each log says, else 2,000)",
    )
    parser.add_argument(
        "--tokens-per-iter",
        type=argtypes.positive_int,
        metavar="N",
        help="tokens per iteration, over what the log shows",
    )
    parser.add_argument("--params", type=argtypes.positive_int, metavar="N", help="parameter count, for derived MFU")
    parser.add_argument("--gpu", metavar="NAME", help="GPU model, for derived MFU (e.g. H100)")
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML file with run names (and [jsonl] keys)")
    parser.add_argument(
        "--jsonl-keys",
        metavar="ROLE=KEY,...",
        help="which keys of a JSON-lines log hold what, e.g. step=trainer/global_step,loss=train/loss|loss",
    )


def _notify_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="push alerts to this apprise URL (ntfy://, slack://, json://host/path ...); repeatable",
    )


def _watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--poll",
        type=argtypes.positive_float,
        metavar="SECONDS",
        help="poll files every SECONDS instead of filesystem events (NFS, Lustre, sshfs)",
    )
    parser.add_argument(
        "--poll-network",
        type=argtypes.positive_float,
        metavar="SECONDS",
        help="polling interval for network mounts and [user@]host:/path roots (default 2)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address the metrics endpoint binds (default 127.0.0.1)",
    )


# ------------------------------------------------------------------ commands


def _cmd_snapshot(args: argparse.Namespace) -> int:
    from trainwatch.ingest.publish import build
    from trainwatch.outputs import export
    from trainwatch.outputs.reasons import no_runs_reason

    names = _names(args.config)
    from trainwatch.oneoff import box_facts, load

    sources, problems, groups = load(args.paths, _options(args), _grouping(args.config))
    # Who writes each log is a fact of now: not looked up for a snapshot "as of" another moment.
    facts = box_facts(sources) if args.now is None else None
    snapshot = build(sources, names, args.now or datetime.now(), groups=groups, facts=facts)
    if args.now is None:  # Slurm knows the present only: a snapshot "as of" another time goes without
        from trainwatch.system.slurm import lookup_once

        snapshot = lookup_once(snapshot)
    if not snapshot.rows:
        where = ", ".join(str(p) for p in args.paths)
        return _fail(no_runs_reason(where, problems, snapshot.unrecognised), EXIT_NO_RUNS)
    for problem in _summarised(problems):
        _warn(problem)
    # Where the terminal cannot show ✓ ● ⚑ (or --ascii), each format in what it can.
    encoding = "ascii" if args.ascii else (sys.stdout.encoding or "utf-8")
    legacy = args.ascii or (args.output is None and not export.encodes_glyphs(encoding))
    if args.format == "table":
        text = _table_text(snapshot, to_terminal=args.output is None, encoding=encoding if legacy else None)
    else:
        text = export.render(snapshot, args.format)
        if args.format != "json":
            for line in _summarised([f"unrecognised: {path} ({reason})" for path, reason in snapshot.unrecognised]):
                _warn(line)
    if legacy:
        text = export.legacy_text(text, args.format, encoding)
    if args.output is None:
        if text:
            sys.stdout.write(text)
        return EXIT_OK
    try:
        export.write_atomic(args.output, text)
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc.strerror or exc}", EXIT_USAGE)
    return EXIT_OK


def _cmd_watch(args: argparse.Namespace) -> int:
    from trainwatch.tui.app import run_app
    from trainwatch.wiring import watcher_factory

    names = _names(args.config)
    grouping = _grouping(args.config)
    if (missing := _missing(args.paths)) is not None:
        return _fail(f"no such file or directory: {missing}", EXIT_NO_RUNS)
    options = _options(args)
    notify = _notify_urls(args)
    server = _metrics_server(args) if args.metrics_port is not None else None

    factory = watcher_factory(
        args.paths,
        options,
        names,
        poll=args.poll,
        network_poll=args.poll_network,
        also=server.publish if server is not None else None,  # prometheus_client: imported only when asked for
        grouping=grouping,
        notify=notify,
    )
    try:
        return run_app(
            args.paths,
            source_factory=factory,
            bell=args.bell,
            export_dir=args.export_dir,
            ascii_glyphs=args.ascii or None,  # (None: ASCII only where the terminal needs it)
            desktop=args.desktop_notify,
        )
    finally:
        if server is not None:
            server.stop()


def _cmd_serve_metrics(args: argparse.Namespace) -> int:
    from trainwatch import wiring
    from trainwatch.outputs import prometheus

    names = _names(args.config)
    grouping = _grouping(args.config)
    if (missing := _missing(args.paths)) is not None:
        return _fail(f"no such file or directory: {missing}", EXIT_NO_RUNS)
    options = _options(args)
    notify = _notify_urls(args)
    if args.metrics_port is None:
        args.metrics_port = prometheus.DEFAULT_PORT
    server = _metrics_server(args)
    return wiring.serve(
        server,
        args.paths,
        options,
        names,
        poll=args.poll,
        network_poll=args.poll_network,
        grouping=grouping,
        notify=notify,
    )


def _cmd_alert(args: argparse.Namespace) -> int:
    from trainwatch import wiring

    names = _names(args.config)
    grouping = _grouping(args.config)
    if (missing := _missing(args.paths)) is not None:
        return _fail(f"no such file or directory: {missing}", EXIT_NO_RUNS)
    options = _options(args)
    notify = _notify_urls(args)
    if not notify:
        raise UsageError("alert needs somewhere to send: --notify URL, or notify = [...] in the config")
    return wiring.serve(
        None,
        args.paths,
        options,
        names,
        poll=args.poll,
        network_poll=args.poll_network,
        grouping=grouping,
        notify=notify,
    )


def _cmd_completion(args: argparse.Namespace) -> int:
    from trainwatch.usage import shell_code

    sys.stdout.write(shell_code(args.shell))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from trainwatch.demo import run_demo

    return run_demo(folder=args.dir, speed=args.speed, headless=args.headless, duration=args.duration)


# ------------------------------------------------------------------- helpers


def _metrics_server(args: argparse.Namespace) -> MetricsServer:
    """The metrics endpoint, listening; a port in use or a bad address is a usage error."""
    from trainwatch.outputs.prometheus import MetricsServer

    server = MetricsServer(args.metrics_port, args.metrics_host)
    try:
        server.start()
    except OSError as exc:
        raise UsageError(
            f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: {exc.strerror or exc}"
        ) from exc
    return server


def _notify_urls(args: argparse.Namespace) -> list[str]:
    """The apprise URLs of the config and ``--notify``, each checked (a bad one is a usage error)."""
    from trainwatch.config import ConfigError, load_notify

    try:
        urls = load_notify(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    urls += [u for u in args.notify if u not in urls]
    if not urls:
        return []
    from trainwatch.system.notify import check_urls

    bad = check_urls(urls)
    if bad:
        scheme = bad[0].split("://", 1)[0] if "://" in bad[0] else bad[0][:20]
        # Only the scheme: the rest of a notification URL is often a secret token.
        raise UsageError(f"--notify: apprise cannot send to a URL starting {scheme}:// (see its list of services)")
    return urls


def _missing(paths: list[Path]) -> Path | None:
    """The first local path that does not exist (``[user@]host:/path`` roots are checked on their host)."""
    from trainwatch.ingest.remote import split_roots

    return next((p for p in split_roots(paths)[1] if not p.exists()), None)


def _grouping(config: Path | None) -> GroupRules:
    """The config's ``[[group]]`` / ``[[split]]`` overrides (a bad entry is a usage error)."""
    from trainwatch.config import ConfigError, load_grouping

    try:
        return load_grouping(config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def _options(args: argparse.Namespace) -> RunOptions:
    """The overrides for every run: the flags, and the JSONL keys of the config and ``--jsonl-keys``."""
    from trainwatch.config import ConfigError, load_jsonl_keys
    from trainwatch.core.options import RunOptions
    from trainwatch.parsers.jsonl_metrics import KeyMappingError, parse_keys

    try:
        keys = load_jsonl_keys(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    if args.jsonl_keys is not None:
        try:
            keys.update(parse_keys(args.jsonl_keys))  # the command line wins, role by role
        except KeyMappingError as exc:
            raise UsageError(f"--jsonl-keys: {exc}") from exc
    return RunOptions(args.target, args.tokens_per_iter, args.params, args.gpu, tuple(keys.items()))


def _names(config: Path | None) -> Names:
    from trainwatch.config import ConfigError, load_names

    try:
        return load_names(config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def _table_text(snapshot: Snapshot, to_terminal: bool, encoding: str | None = None) -> str:
    """The terminal table: printed on stdout (``""`` returned), or as text
    for a file. ``encoding``: a terminal that lacks trainwatch's glyphs."""
    from rich.console import Console

    from trainwatch.outputs.export import rich_table

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError  # Rich would exit with status 1, "no runs" in SNAPSHOT.md terms

    if to_terminal:
        probe = Console(highlight=False)
        width = probe.width if probe.is_terminal else PIPED_WIDTH
        out = sys.stdout if encoding is None else cast(IO[str], _Legacy(sys.stdout, encoding))
        terminal = _Console(highlight=False, width=width, file=out)
        terminal.print(rich_table(snapshot, width), soft_wrap=not terminal.is_terminal)
        return ""
    console = Console(record=True, width=PIPED_WIDTH, file=io.StringIO(), color_system=None, highlight=False)
    console.print(rich_table(snapshot, PIPED_WIDTH))
    return console.export_text()


class _Legacy:
    """A terminal that lacks trainwatch's glyphs, as Rich's file: each write
    in ASCII glyphs (one cell each: the columns stay aligned), colours kept."""

    def __init__(self, out: Any, encoding: str) -> None:
        self._out, self.encoding = out, encoding

    def write(self, text: str) -> int:
        from trainwatch.outputs.export import legacy_text

        return int(self._out.write(legacy_text(text, "table", self.encoding)))

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return bool(self._out.isatty())

    def fileno(self) -> int:
        return int(self._out.fileno())


#: Lines of one kind (problems, unrecognised files) printed before the rest are counted.
_SHOWN = 10


def _summarised(lines: list[str]) -> list[str]:
    """``lines``, or the first ``_SHOWN`` and a count of the rest: 50,000 files
    that are no logs are not 50,000 lines of stderr."""
    if len(lines) <= _SHOWN + 1:
        return lines
    return [*lines[:_SHOWN], f"… and {len(lines) - _SHOWN:,} more like these"]


_LENIENT = "trainwatch-lenient"


def _lenient(error: UnicodeError) -> tuple[str | bytes, int]:
    """Encoding errors on stdout: a file name's undecodable bytes (surrogates)
    as those bytes, any other character the encoding lacks as ``?``."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    bad = error.object[error.start : error.end]
    if all("\udc80" <= c <= "\udcff" for c in bad):
        return bytes(ord(c) - 0xDC00 for c in bad), error.end
    return "?" * len(bad), error.end


def _warn(message: str) -> None:
    from trainwatch.outputs.export import safe_text  # paths and reasons can carry escape sequences

    sys.stderr.write(f"trainwatch: {safe_text(message)}\n")


def _fail(message: str, status: int) -> int:
    _warn(message)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
