"""`syllabus config`: print the resolved configuration."""

from __future__ import annotations

import typer


def config_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    default: bool = typer.Option(False, "--default", help="Print the built-in config.yaml, comments included."),
) -> None:
    """Show the configuration in effect (defaults merged with your file).

    Examples:
      syllabus config
      syllabus --config my.yaml config --json
      syllabus config --default > config.yaml    # start your own file
    """
    from pipeline.config import default_config_text, dump_config
    from pipeline.ui import STATE, emit_json, note, out

    if default:
        typer.echo(default_config_text(), nl=False)
        return
    cfg = STATE.config()
    if as_json:
        emit_json(dict(cfg.model_dump(mode="json"), source=cfg.source))
        return
    note(f"# from: {cfg.source}")
    out.print(dump_config(cfg), end="", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("config")(config_cmd)
