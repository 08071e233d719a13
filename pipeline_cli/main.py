"""`pipeline-cli`: parse options, call a flow, render the result. No ML logic lives here.

Heavy libraries (prefect, polars, ...) are imported inside command bodies so that `--help`
answers instantly.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Callable, Optional

import typer

from pipeline_cli.runtime import Options, execute

app = typer.Typer(
    name="pipeline-cli",
    help="Config-driven tabular binary-classification pipeline: bronze -> silver -> gold on Prefect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check a config file or print its JSON Schema.", no_args_is_help=True)
demo_app = typer.Typer(help="Write deterministic synthetic datasets for the worked examples.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(demo_app, name="demo-data")

ConfigOpt = Annotated[str, typer.Option("--config", "-c", help="Pipeline YAML config.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config value: KEY.PATH=VALUE (repeatable).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON summary instead of tables.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Also print Prefect's run logs.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")]


def _layer_command(name: str, flow_name: str) -> Callable[..., None]:
    def command(
        config: ConfigOpt, set_: SetOpt = None, json_: JsonOpt = False, quiet: QuietOpt = False,
        verbose: VerboseOpt = False, debug: DebugOpt = False,
    ) -> None:
        opts = Options(command=name, config=config, overrides=set_ or [], json=json_, quiet=quiet, verbose=verbose, debug=debug)

        def body() -> Any:
            from pipeline_core.config import load_config

            load_config(config, opts.overrides)  # fail fast, before any Prefect start-up
            from flows import layers

            flow = getattr(layers, flow_name)
            result = flow(config, opts.overrides)
            return result if isinstance(result, list) else [result]

        execute(opts, body, render="layers")

    return command


_LAYERS = [
    ("bronze", "bronze_flow", "Ingest the configured source as a new append-only bronze batch."),
    ("silver", "silver_flow", "Clean and validate bronze into silver; quarantine failing rows with reasons."),
    ("features", "features_flow", "Engineer features from silver into gold (+ metadata and preprocessing config)."),
    ("run", "run_flow", "Run every stage in order: bronze -> silver -> gold."),
]
for _name, _flow, _help in _LAYERS:
    app.command(_name, help=_help)(_layer_command(_name, _flow))
app.command("feature-pipeline", help="Alias of `features`.", hidden=False)(_layer_command("feature-pipeline", "features_flow"))
app.command("full-pipeline", help="Alias of `run`.")(_layer_command("full-pipeline", "run_flow"))


@config_app.command("validate", help="Validate a config file (with overrides) and print the resolved config.")
def config_validate(config: ConfigOpt, set_: SetOpt = None, json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    opts = Options(command="config-validate", config=config, overrides=set_ or [], json=json_, debug=debug, log_file=False)

    def body() -> Any:
        from pipeline_core.config import load_config

        return load_config(config, opts.overrides).model_dump(mode="json")

    execute(opts, body, render="config")


@config_app.command("schema", help="Print the config's JSON Schema (for editor completion and checks).")
def config_schema() -> None:
    from pipeline_core.config import config_json_schema

    typer.echo(json.dumps(config_json_schema(), indent=2))


RowsOpt = Annotated[int, typer.Option("--rows", "-n", min=10, help="Number of rows (before a few injected duplicates).")]
SeedOpt = Annotated[int, typer.Option("--seed", "-s", help="Random seed: same seed, same file.")]


@demo_app.command("credit-default", help="Credit-card default data (UCI schema) as CSV.")
def demo_credit(
    out: Annotated[str, typer.Option("--out", "-o", help="CSV file to write.")] = "data/demo/credit_default.csv",
    rows: RowsOpt = 30_000, seed: SeedOpt = 42, json_: JsonOpt = False, debug: DebugOpt = False,
) -> None:
    _demo("credit_default_frame", "write_csv", out, rows, seed, json_, debug)


@demo_app.command("phishing", help="Phishing-websites data as a SQLite database (table 'websites').")
def demo_phishing(
    out: Annotated[str, typer.Option("--out", "-o", help="SQLite file to write.")] = "data/demo/phishing.sqlite",
    rows: RowsOpt = 10_000, seed: SeedOpt = 42, json_: JsonOpt = False, debug: DebugOpt = False,
) -> None:
    _demo("phishing_frame", "write_sqlite", out, rows, seed, json_, debug)


def _demo(make: str, write: str, out: str, rows: int, seed: int, json_: bool, debug: bool) -> None:
    opts = Options(command="demo-data", json=json_, debug=debug, log_file=False)

    def body() -> Any:
        from pathlib import Path

        from pipeline_core import demo_data

        frame = getattr(demo_data, make)(rows, seed)
        getattr(demo_data, write)(frame, Path(out))
        target = frame.columns[-1]
        positives = int((frame[target].cast(str) == "1").sum())
        return {"path": out, "rows": frame.height, "columns": frame.width, "positive_rate": round(positives / frame.height, 4), "seed": seed}

    execute(opts, body, render="mapping")


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="pipeline-cli")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
