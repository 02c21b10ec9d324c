"""``deepsound``: a thin command line over :class:`deepsound.pipeline.Pipeline`, one module per command."""

from __future__ import annotations

import sys

from deepsound.cli.app import app, err_console, setup_logging, user_errors

__all__ = ["app", "err_console", "main", "setup_logging", "user_errors"]


def _register_commands() -> None:
    from deepsound.cli.ask import ask_command
    from deepsound.cli.batch import batch_command
    from deepsound.cli.config_cmd import config_app
    from deepsound.cli.dataset import build_command, dataset_app
    from deepsound.cli.evaluate import evaluate_command
    from deepsound.cli.experiment import experiment_command
    from deepsound.cli.finetune import finetune_command
    from deepsound.cli.generate import generate_command
    from deepsound.cli.judge import judge_command
    from deepsound.cli.reference import build_command as reference_build_command
    from deepsound.cli.reference import reference_app
    from deepsound.cli.separate import separate_command
    from deepsound.cli.ui import ui_command
    from deepsound.cli.vo_rate import vo_rate_command
    from deepsound.cli.weights import weights_app

    app.command("generate")(user_errors(generate_command))
    app.command("batch")(user_errors(batch_command))
    app.command("separate")(user_errors(separate_command))
    app.command("judge")(user_errors(judge_command))
    app.command("ui")(user_errors(ui_command))
    app.command("ask")(user_errors(ask_command))
    app.command("vo-rate")(user_errors(vo_rate_command))
    app.command("evaluate")(user_errors(evaluate_command))
    app.command("experiment")(user_errors(experiment_command))
    app.add_typer(weights_app, name="weights", help="List, download and verify published weights.")
    dataset_app.command("build")(user_errors(build_command))
    app.add_typer(
        dataset_app, name="dataset", help="Build the CoT-V2A fine-tuning data from your own videos."
    )
    app.command("finetune")(user_errors(finetune_command))
    reference_app.command("build")(user_errors(reference_build_command))
    app.add_typer(reference_app, name="reference", help="Reference sets for the evaluation (VO-Free).")
    app.add_typer(config_app, name="config", help="Show the effective configuration and the presets.")


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
