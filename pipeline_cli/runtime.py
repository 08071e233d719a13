"""Everything a command does around its body: environment, logging, errors, rendering.

Domain errors become one line on stderr and the error's exit code, in this one place.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, NoReturn

import typer
from typer.core import TyperArgument, TyperGroup

from pipeline_cli.exit_codes import INTERRUPTED, TERMINATED, exit_code
from pipeline_core.errors import Terminated

LOG_DIR = Path("results/logs")
FLOW_RENDERS = ("layers", "inference", "feedback")  # commands that run a Prefect flow: log file, spinner


@dataclass
class Options:
    command: str
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    json: bool = False
    quiet: bool = False
    verbose: bool = False
    debug: bool = False
    log_file: bool = True


class _OneLine(logging.Filter):
    """Keep the console free of tracebacks: the log file has them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or "\n" in record.getMessage():
            record.msg = (record.getMessage().splitlines() or [""])[0]
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def prepare_environment(opts: Options) -> None:
    """Process settings that must be in place before prefect or polars is imported."""
    from pipeline_core.redaction import install_log_redaction
    from pipeline_io.process_tuning import configure_polars_allocator
    from pipeline_io.workarounds import configure_prefect_environment

    install_log_redaction()
    configure_polars_allocator()
    configure_prefect_environment()
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "pipeline_core")
    if not opts.verbose and not opts.debug:
        # The CLI prints its own summary; library logs go to the log file.
        os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
        os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
        # Processes started for the run (Dask workers) inherit this: warnings only on their console.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


def use_running_server() -> str | None:
    """Without PREFECT_API_URL, point Prefect at the server `pipeline-cli server start` runs for this
    directory (its state file, when the process is alive and healthy), instead of a temporary one."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    from deployments.local_server import PREFECT, status

    running = status(_server_state_dir(), PREFECT)
    if running.state != "running" or running.service is None or not running.service.api_url:
        return None
    os.environ["PREFECT_API_URL"] = running.service.api_url
    return running.service.api_url


def running_mlflow_server(tracking_uri: str) -> str | None:
    """URL of the MLflow server `pipeline-cli server start --mlflow` runs on this very tracking store,
    when it answers; None otherwise (read-only registry commands then open the store themselves)."""
    from pipeline_io.registry import same_tracking_store

    served = _mlflow_server()
    return served[0] if served and same_tracking_store(served[1], tracking_uri) else None


def use_running_mlflow_server() -> None:
    """Let the flows' scoring tasks reach their store through the MLflow server `server start --mlflow`
    runs, when it serves that store (`pipeline_io.registry.server_for`)."""
    from pipeline_io.registry import SERVER_ENV

    if SERVER_ENV not in os.environ and (served := _mlflow_server()):
        os.environ[SERVER_ENV] = " ".join(served)


def _mlflow_server() -> tuple[str, str] | None:
    """(URL, backend store URI) of the MLflow server of `server start --mlflow`, when it answers."""
    from deployments.local_server import MLFLOW, backend_store, status

    running = status(_server_state_dir(), MLFLOW)
    if running.state != "running" or running.service is None:
        return None
    store = backend_store(running.service)
    return (running.service.url, store) if store else None


def _server_state_dir() -> Path:
    from deployments.local_server import DEFAULT_STATE_DIR

    return Path(os.environ.get("PIPELINE_SERVER_STATE_DIR") or DEFAULT_STATE_DIR)


def new_log_file(command: str) -> Path:
    """``<time>-<command>.log``, created here: a second command started in the same second gets ``-2`` and so on."""
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}-{command}"
    for n in range(1, 1000):
        path = LOG_DIR / (f"{stamp}.log" if n == 1 else f"{stamp}-{n}.log")
        try:
            path.open("x").close()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"{LOG_DIR}: a thousand logs named {stamp}")


def configure_logging(opts: Options) -> Path | None:
    """A timestamped log file per run; the console shows Prefect logs only with --verbose."""
    # Importing prefect.main configures Prefect's logging from its settings; done later (by the
    # first `from prefect import flow`), it would undo the console levels set below.
    import prefect.main  # noqa: F401

    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    log_path = None
    logging.captureWarnings(True)
    loggers = [logging.getLogger(n) for n in ("prefect", "pipeline_core", "pipeline_io", "pipeline_cli", "tasks", "flows",
                                               "mlflow", "optuna", "py.warnings")]
    if opts.log_file:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_path = new_log_file(opts.command)
        handler = logging.FileHandler(log_path)
        handler.setFormatter(fmt)
        handler.setLevel(logging.INFO)
        for lg in loggers:
            lg.addHandler(handler)
            if lg.level == logging.NOTSET or lg.level > logging.INFO:
                lg.setLevel(logging.INFO)
    for lg in [*loggers, logging.getLogger()]:
        for h in lg.handlers:
            if isinstance(h, logging.FileHandler):
                continue
            if not opts.verbose and not opts.debug:
                h.setLevel(logging.CRITICAL + 1)
            elif not opts.debug:
                h.addFilter(_OneLine())
    return log_path


def _flows_without_heartbeats(body: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``body`` without flow heartbeats if it is a flow command (Prefect already imported for
    its logging by then); other commands stay free of Prefect and its import time."""

    def run() -> Any:
        if "prefect" not in sys.modules:
            return body()
        from pipeline_io.workarounds import without_flow_heartbeats

        with without_flow_heartbeats():
            return body()

    return run


def _with_status(out: Any, command: str, log_path: Any, body: Callable[[], Any]) -> Any:
    """A spinner line that long stages update (`pipeline_core.progress`): training shows its budget being spent."""
    from pipeline_core import progress

    with out.status(f"[bold]{command}[/]: running (log: {log_path})", spinner="dots") as status:
        def show(stage: str, done: int, total: int) -> None:
            status.update(f"[bold]{command}[/]: {stage}" + (f" {done}/{total}" if total else ""))

        progress.set_reporter(show)
        try:
            return body()
        finally:
            progress.set_reporter(None)


STOP_GRACE_SECONDS = 10.0


@contextmanager
def stoppable() -> Iterator[None]:
    """SIGTERM and SIGINT stop the command within `STOP_GRACE_SECONDS`.

    The main thread unwinds (the training run is marked failed, outputs are taken back); model
    threads start no further fold or trial; a fit already running in one cannot be interrupted,
    so after the grace period the process exits without waiting for it.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        from pipeline_core.modeling.tuning import request_stop

        request_stop()
        code = TERMINATED if signum == signal.SIGTERM else INTERRUPTED
        watchdog = threading.Timer(STOP_GRACE_SECONDS, lambda: os._exit(code))
        watchdog.daemon = True
        watchdog.start()
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


PIPED_WIDTH = 200


# click's exceptions where this Typer release keeps them (recent releases vendor click privately)
_clicks = sys.modules[typer.BadParameter.__module__]


class OneLineErrors(TyperGroup):
    """The CLI's group: a usage error (bad option value, unknown command) is one line, `error: ...`, exit 2,
    like every other error, instead of Typer's usage-and-panel block."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _clicks.NoArgsIsHelpError as exc:  # the help was the answer
            sys.exit(exc.exit_code)
        except _clicks.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "pipeline-cli"
            message = " ".join(exc.format_message().split())
            typer.echo(f"error: {message} (see `{where} --help`)", err=True)
            sys.exit(exc.exit_code)
        except _clicks.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    # Typer lists a flag (--help, --install-completion) with the metavar `<bool>`; a flag takes no value, so it shows none.
    def get_params(self, ctx: Any) -> Any:
        return _without_metavar(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_flags(command, ctx)
        return command


def _without_metavar(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif type(param) is TyperArgument:
            param.__class__ = PlainArgument
    return params


class PlainArgument(TyperArgument):
    """An argument as command-line readers know it: ``NAME`` (required) or ``[NAME]`` in the usage line, and
    its help says what it is. Typer writes ``{NAME}`` and the Python type (``<str>``) beside the name."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def _plain_flags(command: Any, ctx: Any) -> None:
    _without_metavar([*command.params, *filter(None, [command.get_help_option(ctx)])])
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub, ctx)


def execute(opts: Options, body: Callable[[], Any], render: str, after: Callable[[Any], None] | None = None) -> None:
    """Run ``body``, render its result, then ``after(result)`` (which may raise a domain error):
    every domain error becomes one line on stderr and its exit code (`exit_codes`)."""
    from rich.console import Console

    out = Console(emoji=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(width=PIPED_WIDTH, emoji=False)  # rich assumes 80 columns when piped and would cut the tables' columns
    err = Console(stderr=True, emoji=False)
    prepare_environment(opts)
    body = _flows_without_heartbeats(body)
    log_path = None
    start = time.perf_counter()
    try:
        if render in FLOW_RENDERS:
            server = use_running_server()
            use_running_mlflow_server()
            log_path = configure_logging(opts)
            if server:
                logging.getLogger(__name__).info("using the Prefect server at %s (started by `pipeline-cli server start`)", server)
            with stoppable():
                if opts.quiet or opts.json or render == "inference":  # inference draws its own progress bar
                    result = body()
                else:
                    result = _with_status(out, opts.command, log_path, body)
        else:
            result = body()
    except KeyboardInterrupt:
        err.print("interrupted; nothing half-written was kept")
        raise typer.Exit(INTERRUPTED) from None
    except Terminated:
        err.print("terminated; nothing half-written was kept")
        raise typer.Exit(TERMINATED) from None
    except Exception as exc:
        fail(exc, opts.debug, log_path)
    elapsed = time.perf_counter() - start
    show(opts, result, elapsed, log_path, render, out)
    if after is not None:
        try:
            after(result)
        except Exception as exc:
            fail(exc, opts.debug, log_path)


def fail(exc: Exception, debug: bool, log_path: Path | None = None) -> NoReturn:
    """A domain error as one line on stderr and its exit code; anything else as an internal error."""
    from rich.console import Console

    from pipeline_core.errors import PipelineError, environment_fault

    if debug:
        raise exc
    from pipeline_core.redaction import redact

    if not isinstance(exc, PipelineError):
        exc = environment_fault(exc) or exc

    err = Console(stderr=True, emoji=False)
    if isinstance(exc, PipelineError):
        err.print(f"error: {redact(str(exc))}", markup=False, highlight=False, soft_wrap=True)
    else:
        hint = f"; details in {log_path}" if log_path else ""
        err.print(f"internal error: {type(exc).__name__}: {redact(str(exc))} (rerun with --debug for the traceback{hint})", markup=False, soft_wrap=True)
    raise typer.Exit(exit_code(exc)) from None


def show(opts: Options, result: Any, elapsed: float, log_path: Path | None, render: str, out: Any) -> None:
    if opts.json:
        payload = {"command": opts.command, "seconds": round(elapsed, 3), "result": result}
        if log_path:
            payload["log_file"] = str(log_path)
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    if opts.quiet:
        return
    from pipeline_cli import render as renderers

    getattr(renderers, render)(out, result, elapsed, log_path)
