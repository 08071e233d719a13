"""`pipeline-cli`: parse options, call a flow, render the result. No ML logic lives here.

Heavy libraries (prefect, polars, ...) are imported inside command bodies so that `--help`
answers instantly.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, Any, Callable, Optional

import typer

from pipeline_cli import orchestration
from pipeline_cli.runtime import OneLineErrors, Options, execute

app = typer.Typer(
    name="pipeline-cli",
    help="Config-driven tabular binary-classification pipeline: bronze -> silver -> gold on Prefect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,
)
config_app = typer.Typer(help="Check a config file or print its JSON Schema.", no_args_is_help=True)
demo_app = typer.Typer(help="Write deterministic synthetic datasets for the worked examples.", no_args_is_help=True)
app.add_typer(config_app, name="config")
models_app = typer.Typer(help="Inspect the MLflow model registry and move the champion alias.", no_args_is_help=True)
store_app = typer.Typer(help="The store's Delta tables: commit history, bronze batches and vacuum.", no_args_is_help=True)
app.add_typer(demo_app, name="demo-data")
app.add_typer(models_app, name="models")
app.add_typer(store_app, name="store")
report_app = typer.Typer(help="The HTML reports: one per training run, one per scored batch.", no_args_is_help=True)
app.add_typer(report_app, name="report")

def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"pipeline-cli {version('tabular-pipeline')}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", metavar="", callback=_show_version, is_eager=True,
                                               help="Print the installed version and exit.")] = False) -> None:
    """Config-driven tabular binary-classification pipeline: bronze -> silver -> gold on Prefect."""


ConfigOpt = Annotated[str, typer.Option("--config", "-c", metavar="FILE", help="Pipeline YAML config.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY.PATH=VALUE", help="Override a config value: KEY.PATH=VALUE (repeatable).")]
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print a machine-readable JSON summary instead of tables.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", metavar="", help="Print errors only.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", metavar="", help="Also print Prefect's run logs.")]
DebugOpt = Annotated[bool, typer.Option("--debug", metavar="", help="Show full tracebacks.")]


ThroughOpt = Annotated[str, typer.Option("--through", metavar="STAGE", help="Last stage to run: bronze, silver, gold or training.")]
PredictOpt = Annotated[Optional[tuple[str, str]], typer.Option("--predict", metavar="INPUT OUTPUT", help="After training, score INPUT into OUTPUT (Parquet) with the champion.")]
NWorkersOpt = Annotated[Optional[int], typer.Option(
    "--n-workers", metavar="N", min=1, help="Optuna worker processes sharing one study per model (training.tuning.n_workers).")]
TaskRunnerOpt = Annotated[Optional[str], typer.Option(
    "--task-runner", metavar="thread|dask", help="Where model tasks run: thread or dask (training.concurrency.task_runner).")]
DaskAddressOpt = Annotated[Optional[str], typer.Option(
    "--dask-address", metavar="URL", help="Scheduler of an existing Dask cluster, e.g. tcp://host:8786 (implies --task-runner dask).")]
RefreshOpt = Annotated[bool, typer.Option(
    "--refresh", metavar="", help="Recompute cached stages even when their inputs, config and code are unchanged.")]
FullRefreshOpt = Annotated[bool, typer.Option(
    "--full-refresh", metavar="", help="Rebuild silver and gold from every bronze batch, not only from the new ones.")]
SilverAsOfOpt = Annotated[Optional[str], typer.Option(
    "--as-of", metavar="VERSION|TIME", help="Build gold from silver as it was: a silver version, or an ISO time (2026-11-28T09:00:00Z).")]
GoldAsOfOpt = Annotated[Optional[str], typer.Option(
    "--as-of", metavar="VERSION|TIME", help="Train on gold as it was: a gold version, or an ISO time (2026-11-28T09:00:00Z).")]
PresetOpt = Annotated[Optional[str], typer.Option(
    "--preset", metavar="fast|balanced|best", help="fast (defaults + ensemble, no tuning), balanced or best (training.preset; the config's own keys win).")]
ExportOpt = Annotated[Optional[str], typer.Option(
    "--export", metavar="DIR", help="Also export the registered best model to this local folder, e.g. results/artifacts.")]


def training_overrides(n_workers: int | None, task_runner: str | None, dask_address: str | None, export: str | None,
                       preset: str | None = None) -> list[str]:
    """The training options as config overrides, so they are validated like the YAML and reach nested flows."""
    out = [f"training.preset={json.dumps(preset)}"] if preset is not None else []
    if n_workers is not None:
        out.append(f"training.tuning.n_workers={n_workers}")
    if dask_address is not None:
        task_runner = task_runner or "dask"
        out.append(f"training.concurrency.dask_address={json.dumps(dask_address)}")
    if task_runner is not None:
        out.append(f"training.concurrency.task_runner={json.dumps(task_runner)}")
    if export is not None:
        out.append(f"training.export_dir={json.dumps(export)}")
    return out


def _concealed(value: str) -> str:
    """A command-line location as a flow parameter: Prefect stores parameters, so it goes in without its
    credentials (the flow gets the original back from this process's memory, `pipeline_core.redaction`)."""
    from pipeline_core.redaction import conceal

    return conceal(value)


def _run_flow(opts: Options, flow_module: str, flow_name: str, **kwargs: Any) -> None:
    """Load the config once (failing fast, before any Prefect start-up) and run one flow with it."""

    def body() -> Any:
        import importlib

        from pipeline_core.config import load_config

        config = load_config(opts.config, opts.overrides)
        flow = getattr(importlib.import_module(flow_module), flow_name)
        shown = {k: _concealed(v) if k == "predict_input" and v else v for k, v in kwargs.items()}
        result = flow(opts.config, list(map(_concealed, opts.overrides)), **shown, config=config)
        return result if isinstance(result, list) else [result]

    execute(opts, body, render="layers")


def _options(command: str, config: str, set_: list[str] | None, json_: bool, quiet: bool, verbose: bool, debug: bool,
             extra: list[str] | None = None) -> Options:
    return Options(command=command, config=config, overrides=[*(set_ or []), *(extra or [])], json=json_, quiet=quiet,
                   verbose=verbose, debug=debug)


@app.command("bronze", help="Ingest the configured source as a new append-only bronze batch.")
def bronze(config: ConfigOpt, set_: SetOpt = None, json_: JsonOpt = False, quiet: QuietOpt = False,
           verbose: VerboseOpt = False, debug: DebugOpt = False) -> None:
    _run_flow(_options("bronze", config, set_, json_, quiet, verbose, debug), "flows.layers", "bronze_flow")


@app.command("silver", help="Clean and validate bronze into silver; quarantine failing rows with reasons.")
def silver(config: ConfigOpt, set_: SetOpt = None, refresh: RefreshOpt = False, full_refresh: FullRefreshOpt = False, json_: JsonOpt = False,
           quiet: QuietOpt = False, verbose: VerboseOpt = False, debug: DebugOpt = False) -> None:
    _run_flow(_options("silver", config, set_, json_, quiet, verbose, debug), "flows.layers", "silver_flow", refresh=refresh,
              full_refresh=full_refresh)


@app.command("features", help="Engineer features from silver into gold (+ metadata and preprocessing config).")
def features(config: ConfigOpt, set_: SetOpt = None, refresh: RefreshOpt = False, full_refresh: FullRefreshOpt = False,
             as_of: SilverAsOfOpt = None, json_: JsonOpt = False, quiet: QuietOpt = False, verbose: VerboseOpt = False,
             debug: DebugOpt = False) -> None:
    _run_flow(_options("features", config, set_, json_, quiet, verbose, debug), "flows.layers", "features_flow", refresh=refresh,
              full_refresh=full_refresh, as_of=as_of)


@app.command("train", help="Tune and train every enabled model, register the best in MLflow behind the promotion gate.")
def train(config: ConfigOpt, set_: SetOpt = None, preset: PresetOpt = None, n_workers: NWorkersOpt = None,
          task_runner: TaskRunnerOpt = None, dask_address: DaskAddressOpt = None, export: ExportOpt = None, refresh: RefreshOpt = False,
          as_of: GoldAsOfOpt = None, json_: JsonOpt = False, quiet: QuietOpt = False, verbose: VerboseOpt = False,
          debug: DebugOpt = False) -> None:
    opts = _options("train", config, set_, json_, quiet, verbose, debug,
                    training_overrides(n_workers, task_runner, dask_address, export, preset))
    _run_flow(opts, "flows.training", "training_flow", refresh=refresh, as_of=as_of)


@app.command("run", help="Run every stage in order: bronze -> silver -> gold -> training.")
def run(config: ConfigOpt, set_: SetOpt = None, through: ThroughOpt = "training", predict: PredictOpt = None,
        preset: PresetOpt = None, n_workers: NWorkersOpt = None, task_runner: TaskRunnerOpt = None,
        dask_address: DaskAddressOpt = None, export: ExportOpt = None, refresh: RefreshOpt = False,
        full_refresh: FullRefreshOpt = False, json_: JsonOpt = False, quiet: QuietOpt = False, verbose: VerboseOpt = False,
        debug: DebugOpt = False) -> None:
    opts = _options("run", config, set_, json_, quiet, verbose, debug,
                    training_overrides(n_workers, task_runner, dask_address, export, preset))
    _run_flow(opts, "flows.layers", "run_flow", through=through, predict_input=predict[0] if predict else None,
              predict_output=predict[1] if predict else None, refresh=refresh, full_refresh=full_refresh)


# The stage names of the design documents, kept as aliases.
app.command("gold", help="Alias of `features` (builds the gold layer).")(features)
app.command("feature-pipeline", help="Alias of `features`.")(features)
app.command("training-pipeline", help="Alias of `train`.")(train)
app.command("pipeline", help="Alias of `run`.")(run)
app.command("full-pipeline", help="Alias of `run`.")(run)

# Deployments of prefect.yaml and a local server for them (pipeline_cli/orchestration.py).
app.command("serve")(orchestration.serve)
app.command("deploy", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(orchestration.deploy)
app.add_typer(orchestration.server_app, name="server")


ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", metavar="URI", help="Model URI: models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/model (default: the configured champion).")]
ThresholdOpt = Annotated[Optional[float], typer.Option("--threshold", metavar="P", min=0.0, max=1.0, help="Decision threshold (default: the one chosen in training).")]
ShadowOpt = Annotated[bool, typer.Option("--shadow", metavar="", help="Also score with the challenger; its probability is stored beside the champion's (shadow_probability).")]
AllowEmptyOpt = Annotated[bool, typer.Option("--allow-empty", metavar="", help="On an input without rows, write an empty output with the prediction columns.")]
InputArg = Annotated[str, typer.Argument(metavar="INPUT", help="Raw records: CSV, Parquet, SQLite, http(s):// or s3://.")]
OutputArg = Annotated[str, typer.Argument(metavar="OUTPUT", help="Predictions Parquet, local or s3:// ({timestamp} and {date} are filled in).")]


def _predict(command: str, config: str, input_uri: str, output_uri: str, model: str | None, set_: list[str] | None,
             threshold: float | None, allow_empty: bool, json_: bool, quiet: bool, verbose: bool, debug: bool,
             shadow: bool = False) -> None:
    opts = Options(command=command, config=config, overrides=set_ or [], json=json_, quiet=quiet, verbose=verbose, debug=debug)

    def body() -> Any:
        from pipeline_core.config import load_config

        loaded = load_config(config, opts.overrides)
        if model is not None:
            from pipeline_io.registry import check_model_uri

            check_model_uri(model, "MODEL_URI" if command == "inference-pipeline" else "--model")
        from flows.inference import inference_flow
        from pipeline_core import progress

        def score() -> Any:
            return inference_flow(config, _concealed(input_uri), output_uri, model, list(map(_concealed, opts.overrides)), threshold,
                                  allow_empty, config=loaded, shadow=shadow)

        from rich.console import Console

        console = Console(stderr=True, emoji=False)  # the bar is for a person watching: never in piped output
        if opts.json or opts.quiet or not console.is_terminal:
            return score()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True,
                      console=console) as bar:
            job = bar.add_task(f"{command}: loading model and input", total=None)
            progress.set_reporter(lambda stage, done, total: bar.update(job, description=f"{command}: {stage}", completed=done, total=total))
            try:
                return score()
            finally:
                progress.set_reporter(None)

    execute(opts, body, render="inference")


@app.command("predict", help="Score raw records with the registered model (same cleaning and features) and report drift.")
def predict(input_uri: InputArg, output_uri: OutputArg, config: ConfigOpt, model: ModelOpt = None, set_: SetOpt = None,
            threshold: ThresholdOpt = None, allow_empty: AllowEmptyOpt = False, shadow: ShadowOpt = False, json_: JsonOpt = False,
            quiet: QuietOpt = False, verbose: VerboseOpt = False, debug: DebugOpt = False) -> None:
    _predict("predict", config, input_uri, output_uri, model, set_, threshold, allow_empty, json_, quiet, verbose, debug, shadow)


@app.command("inference-pipeline", help="Score with an explicit model: inference-pipeline MODEL_URI INPUT OUTPUT --config F.")
def inference_pipeline(model_uri: Annotated[str, typer.Argument(metavar="MODEL_URI", help="models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/model.")],
                       input_uri: InputArg, output_uri: OutputArg, config: ConfigOpt, set_: SetOpt = None, threshold: ThresholdOpt = None,
                       allow_empty: AllowEmptyOpt = False, json_: JsonOpt = False, quiet: QuietOpt = False,
                       verbose: VerboseOpt = False, debug: DebugOpt = False) -> None:
    _predict("inference-pipeline", config, input_uri, output_uri, model_uri, set_, threshold, allow_empty, json_, quiet, verbose, debug)


@app.command("monitor", help="Recent scored batches and their drift; --fail-on-drift exits 5 when one of them drifted.")
def monitor(config: ConfigOpt, set_: SetOpt = None,
            last: Annotated[int, typer.Option("--last", "-n", metavar="N", min=1, max=1_000_000,
                                                    help="How many recent batches to show (and check).")] = 10,
            fail_on_drift: Annotated[bool, typer.Option("--fail-on-drift", metavar="", help="Exit 5 when a shown batch crossed a drift threshold.")] = False,
            json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    opts = Options(command="monitor", config=config, overrides=set_ or [], json=json_, debug=debug, log_file=False)

    def body() -> Any:
        from pipeline_core import monitoring
        from pipeline_core.config import load_config
        from pipeline_io import outcomes, records
        from pipeline_io.store import open_existing_store

        cfg = load_config(config, opts.overrides)
        store = open_existing_store(cfg)  # a mistyped store.root must not pass --fail-on-drift as "no batches"
        realized = outcomes.latest_performance(store, cfg.dataset.name)
        shadowed = outcomes.latest_performance(store, cfg.dataset.name, outcomes.SHADOW)
        return [monitoring.batch_row(r, realized.get(outcomes.batch_key(r)), cfg.training.primary_metric, shadowed.get(outcomes.batch_key(r)))
                for r in records.recent_batches(store, cfg.dataset.name, last)]

    def drifted(rows: list[dict[str, Any]]) -> None:
        from pipeline_core.errors import DriftDetected

        if fail_on_drift and any(r["status"] == "drift" for r in rows):
            raise DriftDetected("drift: a recent batch crossed a monitoring threshold (see the table or --json)")

    execute(opts, body, render="monitor", after=drifted)


@app.command("serve-model", help="Serve a registered model over HTTP (MLflow's scoring server) from a copy checked against its registration.")
def serve_model(config: ConfigOpt, set_: SetOpt = None, model: ModelOpt = None,
                host: Annotated[str, typer.Option("--host", metavar="HOST", help="Interface to listen on (non-loopback needs --allow-remote).")] = "127.0.0.1",
                port: Annotated[int, typer.Option("--port", metavar="PORT", min=1, max=65535, help="Port of the scoring server.")] = 5001,
                allow_remote: Annotated[bool, typer.Option("--allow-remote", metavar="", help="Listen on a non-loopback --host (no authentication).")] = False,
                debug: DebugOpt = False) -> None:
    """`mlflow models serve --env-manager local` on a verified local copy: POST raw records to /invocations."""
    opts = Options(command="serve-model", config=config, overrides=set_ or [], debug=debug, log_file=False)

    def body() -> Any:
        import contextlib
        import os
        import signal
        import subprocess
        import tempfile
        from pathlib import Path

        from deployments.local_server import port_free
        from pipeline_core.config import load_config
        from pipeline_core.errors import ConfigError, ModelError, StorageError
        from pipeline_io import model_integrity, registry

        if not orchestration.is_loopback(host) and not allow_remote:
            raise ConfigError(f"--host {host}: the scoring server has no authentication; put it behind an authenticating proxy "
                              "and pass --allow-remote, or use 127.0.0.1")
        cfg = load_config(config, opts.overrides)
        client, _ = registry.connect(cfg, existing=True)
        uri = model or registry.default_model_uri(cfg)
        name, version = registry.registered_version(client, uri)
        if not (name and version):
            raise ModelError(f"--model {uri}: serve a registered version (models:/NAME/VERSION or models:/NAME@ALIAS)")
        try:
            client.get_model_version(name, version)
        except Exception:
            raise ModelError(f"--model {uri}: no such registered version; `pipeline-cli models list` names the models, "
                             "`pipeline-cli models history NAME` their versions") from None
        if not port_free(host, port):
            raise StorageError(f"--port {port}: something already listens on {host}:{port}; pick another --port")
        with tempfile.TemporaryDirectory(prefix="pipeline-serve-") as tmp:
            local = model_integrity.verified_copy(client, name, version, Path(tmp), uri)
            print(f"serving {name} v{version} (files checked against its registration) on http://{host}:{port}/invocations; "
                  "Ctrl-C stops", file=sys.stderr, flush=True)
            # MLflow starts `uvicorn` by name: this interpreter's scripts first, activated or not
            env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
            # its own process group: MLflow runs the server as a child of its own, and a stop must reach both
            server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", str(local), "--env-manager", "local",
                                       "-h", host, "-p", str(port)], env=env, start_new_session=True)

            def stop(*_: Any) -> None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGTERM)

            previous = signal.signal(signal.SIGTERM, stop)
            try:
                code = server.wait()
            except KeyboardInterrupt:
                stop()
                code = server.wait(timeout=30)
            finally:
                signal.signal(signal.SIGTERM, previous)
        if code not in (0, -15, 143):
            raise ModelError(f"the scoring server for {name} v{version} exited with code {code}")
        return {"model": f"{name}/{version}", "exit_code": code}

    execute(opts, body, render="mapping")


@app.command("feedback", help="Record outcomes (id + label) for scored batches: realized metrics per batch and model version.")
def feedback(labels: Annotated[str, typer.Argument(metavar="LABELS", help="Labels: CSV, Parquet, SQLite, http(s):// or s3:// with the id column and the label.")],
             config: ConfigOpt, set_: SetOpt = None,
             label_column: Annotated[Optional[str], typer.Option("--label-column", metavar="COLUMN", help="Column holding the outcome (default: dataset.target).")] = None,
             json_: JsonOpt = False, quiet: QuietOpt = False, verbose: VerboseOpt = False, debug: DebugOpt = False) -> None:
    opts = Options(command="feedback", config=config, overrides=set_ or [], json=json_, quiet=quiet, verbose=verbose, debug=debug)

    def body() -> Any:
        from pipeline_core.config import load_config

        loaded = load_config(config, opts.overrides)
        from flows.feedback import feedback_flow

        return feedback_flow(config, _concealed(labels), list(map(_concealed, opts.overrides)), label_column, config=loaded)

    execute(opts, body, render="feedback")


@app.command("lineage", help="Where predictions (a predictions file) or a model version came from, back to the bronze batches.")
def lineage(target: Annotated[str, typer.Argument(metavar="TARGET", help="A predictions Parquet file, or models:/NAME/VERSION or models:/NAME@ALIAS.")],
            config: ConfigOpt, set_: SetOpt = None, json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    opts = Options(command="lineage", config=config, overrides=set_ or [], json=json_, debug=debug, log_file=False)

    def body() -> Any:
        from pipeline_core.config import load_config
        from pipeline_io.lineage import chain

        return chain(load_config(config, opts.overrides), target)

    execute(opts, body, render="lineage")


TableOpt = Annotated[Optional[str], typer.Option("--table", metavar="TABLE",
                                                  help="Only this table: bronze, silver, quarantine, gold, monitoring or performance.")]


@store_app.command("history", help="The newest commits of the dataset's tables: version, time, operation, rows, run.")
def store_history(config: ConfigOpt, set_: SetOpt = None, table: TableOpt = None,
                  limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", min=1, max=1_000_000, help="Commits per table.")] = 10,
                  json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    opts = Options(command="store-history", config=config, overrides=set_ or [], json=json_, debug=debug, log_file=False)

    def body() -> Any:
        from pipeline_core.config import load_config
        from pipeline_core.errors import ConfigError
        from pipeline_io import maintenance

        if table is not None and table not in maintenance.TABLES:
            raise ConfigError(f"--table {table!r}: choose {', '.join(maintenance.TABLES[:-1])} or {maintenance.TABLES[-1]}")
        return maintenance.history(load_config(config, opts.overrides), table, limit)

    execute(opts, body, render="store_history")


@store_app.command("vacuum", help="Delete the files of table versions older than store.retention.days (they can no longer be read as of).")
def store_vacuum(config: ConfigOpt, set_: SetOpt = None,
                 dry_run: Annotated[bool, typer.Option("--dry-run", metavar="", help="Only count the files that would be deleted.")] = False,
                 json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    opts = Options(command="store-vacuum", config=config, overrides=set_ or [], json=json_, debug=debug, log_file=False)

    def body() -> Any:
        from pipeline_core.config import load_config
        from pipeline_io import maintenance

        return maintenance.vacuum(load_config(config, opts.overrides), dry_run)

    execute(opts, body, render="mapping")


@store_app.command("batches", help="The dataset's bronze batches, oldest first: id, source, ingestion time, rows.")
def store_batches(config: ConfigOpt, set_: SetOpt = None, json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    opts = Options(command="store-batches", config=config, overrides=set_ or [], json=json_, debug=debug, log_file=False)

    def body() -> Any:
        from pipeline_core.config import load_config
        from pipeline_io import maintenance

        return maintenance.batches(load_config(config, opts.overrides))

    execute(opts, body, render="store_batches")


@store_app.command("drop-batch", help="Remove one bronze batch that should never have been stored (one commit; older versions keep it "
                                      "until vacuumed); the next feature run rebuilds silver and gold without it.")
def store_drop_batch(batch_id: Annotated[str, typer.Argument(metavar="BATCH_ID", help="A batch id from `store batches`, or a unique prefix of one.")],
                     config: ConfigOpt, set_: SetOpt = None,
                     dry_run: Annotated[bool, typer.Option("--dry-run", metavar="", help="Only show the batch that would be dropped.")] = False,
                     json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    opts = Options(command="store-drop-batch", config=config, overrides=set_ or [], json=json_, debug=debug, log_file=False)

    def body() -> Any:
        from pipeline_core.config import load_config
        from pipeline_io import maintenance

        return maintenance.drop_batch(load_config(config, opts.overrides), batch_id, dry_run)

    execute(opts, body, render="dropped_batch")


KindOpt = Annotated[str, typer.Option("--kind", metavar="KIND", help="training (default) or scoring.")]


@report_app.command("open", help="Print the path of the newest report (open it in any browser; it needs no network).")
def report_open(config: ConfigOpt, set_: SetOpt = None, kind: KindOpt = "training", json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    opts = Options(command="report-open", config=config, overrides=set_ or [], json=json_, debug=debug, log_file=False)

    def body() -> Any:
        from pipeline_core.config import load_config
        from pipeline_core.errors import ConfigError, DataError
        from tasks.reporting import latest_report

        if kind not in ("training", "scoring"):
            raise ConfigError(f"--kind {kind!r}: choose training or scoring")
        loaded = load_config(config, opts.overrides)
        page = latest_report(loaded, kind)
        if page is None:
            doing = "`pipeline-cli train`" if kind == "training" else "`pipeline-cli predict`"
            raise DataError(f"no {kind} report for dataset '{loaded.dataset.name}' yet; {doing} writes one")
        return {"path": str(page)}

    execute(opts, body, render="path")


@report_app.command("list", help="Every report of the dataset, newest last.")
def report_list(config: ConfigOpt, set_: SetOpt = None, json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    opts = Options(command="report-list", config=config, overrides=set_ or [], json=json_, debug=debug, log_file=False)

    def body() -> Any:
        from pipeline_core.config import load_config
        from pipeline_io import layout

        loaded = load_config(config, opts.overrides)
        folder = layout.reports_dir(loaded.store.root, loaded.dataset.name)
        pages = sorted(folder.glob("*.html"), key=lambda p: p.name.split("-", 1)[1]) if folder.is_dir() else []
        return [{"kind": p.name.split("-", 1)[0], "path": str(p)} for p in pages]

    execute(opts, body, render="reports")


@config_app.command("validate", help="Validate a config file (with overrides) and print the resolved config.")
def config_validate(config: ConfigOpt, set_: SetOpt = None, json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    opts = Options(command="config-validate", config=config, overrides=set_ or [], json=json_, debug=debug, log_file=False)

    def body() -> Any:
        from pipeline_core.config import load_config
        from pipeline_core.modeling.specs import check_model_params

        loaded = load_config(config, opts.overrides)
        check_model_params(loaded.training.models)  # names and values the models' libraries reject
        return loaded.model_dump(mode="json", by_alias=True)

    execute(opts, body, render="config")


@config_app.command("schema", help="Print the config's JSON Schema (for editor completion and checks).")
def config_schema() -> None:
    from pipeline_core.config import config_json_schema

    typer.echo(json.dumps(config_json_schema(), indent=2))


def _registry(command: str, config: str, set_: list[str] | None, json_: bool, debug: bool, call: Callable[..., Any], render: str,
              server_may_answer: bool = False) -> None:
    """``server_may_answer``: ``call`` only reads, so the MLflow server of `server start --mlflow` on
    this store may answer it over REST (`pipeline_io.registry_rest`), without loading MLflow here."""
    opts = Options(command=command, config=config, overrides=set_ or [], json=json_, debug=debug, log_file=False)

    def body() -> Any:
        from pipeline_core.config import load_config
        from pipeline_io import registry

        cfg = load_config(config, opts.overrides)
        if server_may_answer:
            from pipeline_cli.runtime import running_mlflow_server
            from pipeline_io.registry_rest import RestRegistry, ServerUnavailable

            if url := running_mlflow_server(registry.tracking_uri(cfg, create=False)):
                try:
                    return call(registry, RestRegistry(url))
                except ServerUnavailable as exc:  # it stopped meanwhile: the store itself answers
                    logging.getLogger(__name__).warning("MLflow server did not answer (%s); reading the store directly", exc)
        # every models command needs a registered model: a missing store is a mistyped location, not one to create
        client, _ = registry.connect(cfg, existing=True)
        return call(registry, client)

    execute(opts, body, render=render)


NameArg = Annotated[str, typer.Argument(metavar="NAME", help="A registered model's name (see `models list`).")]


@models_app.command("list", help="Registered models with their aliases.")
def models_list(config: ConfigOpt, set_: SetOpt = None, json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    _registry("models-list", config, set_, json_, debug, lambda t, c: t.list_models(c), "models", server_may_answer=True)


@models_app.command("describe", help="Every version of a model: aliases, threshold, holdout metrics.")
def models_describe(name: NameArg, config: ConfigOpt, set_: SetOpt = None, json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    _registry("models-describe", config, set_, json_, debug, lambda t, c: t.describe_model(c, name), "model_versions",
              server_may_answer=True)


@models_app.command("history", help="Every alias move of a model: when, which version, which metrics, why.")
def models_history(name: NameArg, config: ConfigOpt, set_: SetOpt = None, json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    _registry("models-history", config, set_, json_, debug, lambda t, c: t.model_history(c, name), "alias_history",
              server_may_answer=True)


@models_app.command("promote", help="Make VERSION the champion by hand (recorded in the history).")
def models_promote(
    name: NameArg, version: Annotated[str, typer.Argument(metavar="VERSION", help="The version to make champion.")], config: ConfigOpt, set_: SetOpt = None, json_: JsonOpt = False, debug: DebugOpt = False,
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why; kept in the history.")] = "manual promotion",
) -> None:
    _registry("models-promote", config, set_, json_, debug, lambda t, c: t.promote(c, name, version, reason), "mapping")


@models_app.command("rollback", help="Move champion back to the previous champion (recorded in the history).")
def models_rollback(
    name: NameArg, config: ConfigOpt, set_: SetOpt = None, json_: JsonOpt = False, debug: DebugOpt = False,
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why; kept in the history.")] = "manual rollback",
) -> None:
    _registry("models-rollback", config, set_, json_, debug, lambda t, c: t.rollback(c, name, reason), "mapping")


RowsOpt = Annotated[int, typer.Option("--rows", "-n", metavar="N", min=10, help="Number of rows (before a few injected duplicates).")]
SeedOpt = Annotated[int, typer.Option("--seed", "-s", metavar="N", min=0, max=2**32 - 1, help="Random seed: same seed, same file.")]
# what each demo file is, by the extensions its readers (dataset.format: auto) take it for
DEMO_KINDS = {"write_csv": ("a CSV file", (".csv", ".txt")), "write_sqlite": ("a SQLite database", (".sqlite", ".sqlite3", ".db"))}


@demo_app.command("credit-default", help="Credit-card default data (UCI schema) as CSV.")
def demo_credit(
    out: Annotated[str, typer.Option("--out", "-o", metavar="FILE", help="CSV file to write.")] = "data/demo/credit_default.csv",
    rows: RowsOpt = 30_000, seed: SeedOpt = 42, json_: JsonOpt = False, debug: DebugOpt = False,
) -> None:
    _demo("credit_default_frame", "write_csv", out, rows, seed, json_, debug)


@demo_app.command("phishing", help="Phishing-websites data as a SQLite database (table 'websites').")
def demo_phishing(
    out: Annotated[str, typer.Option("--out", "-o", metavar="FILE", help="SQLite file to write.")] = "data/demo/phishing.sqlite",
    rows: RowsOpt = 10_000, seed: SeedOpt = 42, json_: JsonOpt = False, debug: DebugOpt = False,
) -> None:
    _demo("phishing_frame", "write_sqlite", out, rows, seed, json_, debug)


def _demo(make: str, write: str, out: str, rows: int, seed: int, json_: bool, debug: bool) -> None:
    opts = Options(command="demo-data", json=json_, debug=debug, log_file=False)

    def body() -> Any:
        from pathlib import Path

        from pipeline_core import demo_data
        from pipeline_core.errors import ConfigError, StorageError
        from pipeline_io import demo_files

        kind, extensions = DEMO_KINDS[write]
        if not out.strip() or Path(out).is_dir():
            raise ConfigError(f"--out {out!r}: give the path of a file to write")
        if not out.lower().endswith(extensions):
            raise ConfigError(f"--out {out}: this demo data is {kind}; name it *{extensions[0]} so that the pipeline reads it as one")
        frame = getattr(demo_data, make)(rows, seed)
        try:
            getattr(demo_files, write)(frame, Path(out))
        except OSError as exc:
            raise StorageError(f"--out {out}: cannot write it ({exc.strerror or str(exc).split(': ')[0]})") from None
        target = frame.columns[-1]
        positives = int((frame[target].cast(str) == "1").sum())
        return {"path": out, "rows": frame.height, "columns": frame.width, "positive_rate": round(positives / frame.height, 4), "seed": seed}

    execute(opts, body, render="mapping")


def main() -> None:
    """The `pipeline-cli` executable."""
    from pipeline_io.workarounds import end_without_teardown

    with end_without_teardown():
        app(prog_name="pipeline-cli")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
