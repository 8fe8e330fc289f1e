"""The model library: ``models list|show|use``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from stream_aimass.cli.support import (
    DataDir,
    JsonFlag,
    ModelsDir,
    console,
    fail,
    out,
    settings_or_exit,
)

models_app = typer.Typer(
    help="The model library and the models a worker serves.", no_args_is_help=True
)


@models_app.command("list")
def models_list(
    as_json: JsonFlag = False, data_dir: DataDir = None, models_dir: ModelsDir = None
) -> None:
    """Every model version in the library: name, kind, version, metrics, created."""
    from stream_aimass.models.encoder import ModelLoadError
    from stream_aimass.models.library import list_models

    settings = settings_or_exit(data_dir=data_dir, models_dir=models_dir)
    try:
        found = [m.summary() for m in list_models(settings.resolved_models_dir)]
    except ModelLoadError as exc:
        raise fail(str(exc)) from None
    if as_json:
        out.print_json(
            json.dumps({"models_dir": str(settings.resolved_models_dir), "models": found})
        )
        return
    if not found:
        hint = "(train one: `stream-aimass train classifier`)"
        out.print(f"no models in {settings.resolved_models_dir} {hint}")
        return
    table = Table("name", "kind", "mode", "version", "labels", "accuracy", "macro_f1", "created")
    for m in found:
        table.add_row(
            m["name"], m["kind"], m["mode"], m["version"], str(m["labels"]),
            _fmt(m["accuracy"]), _fmt(m["macro_f1"]), m["created"],
        )  # fmt: skip
        for head, h in (m.get("heads") or {}).items():  # a multitask model's heads
            table.add_row(
                f"  {m['name']}/{head}", f"{h['kind']} head", "", "", str(h["labels"]),
                _fmt(h.get("accuracy", h.get("f1"))), _fmt(h.get("macro_f1")), "",
            )  # fmt: skip
    out.print(table)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))


@models_app.command("show")
def models_show(
    model: Annotated[str, typer.Argument(help="Model directory, NAME or NAME@VERSION.")],
    data_dir: DataDir = None,
    models_dir: ModelsDir = None,
) -> None:
    """Everything ``model.json`` records about one version (JSON)."""
    from stream_aimass.models.encoder import ModelLoadError
    from stream_aimass.models.library import read_model, resolve_model

    settings = settings_or_exit(data_dir=data_dir, models_dir=models_dir)
    try:
        info = read_model(resolve_model(model, settings.resolved_models_dir))
    except ModelLoadError as exc:
        raise fail(str(exc)) from None
    out.print_json(json.dumps(info.meta | {"path": str(info.path)}))


@models_app.command("use")
def models_use(
    name: Annotated[str, typer.Argument(help="Classifier name (its key in the output).")],
    model: Annotated[
        str | None, typer.Argument(help="Model directory, NAME or NAME@VERSION.")
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Stop serving this classifier.")] = False,
    head: Annotated[
        str | None,
        typer.Option("--head", help="The classifier head to serve, when MODEL is multitask."),
    ] = None,
    data_dir: DataDir = None,
    models_dir: ModelsDir = None,
    classifiers_file: Annotated[
        Path | None,
        typer.Option("--classifiers-file", help="[env AIMASS_CLASSIFIERS_FILE]"),
    ] = None,
) -> None:
    """Serve MODEL as classifier NAME: running workers hot-swap to it between batches."""
    from stream_aimass.enrich.reload import (
        classifier_spec,
        current_specs,
        write_classifier_file,
    )
    from stream_aimass.models.encoder import ModelLoadError

    settings = settings_or_exit(
        data_dir=data_dir, models_dir=models_dir, classifiers_file=classifiers_file
    )
    if (model is None) == (not remove):
        raise fail("give a MODEL to serve, or --remove")
    try:
        specs = current_specs(settings)
    except ModelLoadError as exc:
        raise fail(str(exc)) from None
    if remove:
        if name not in specs:
            raise fail(f"no classifier {name!r} is configured (have: {', '.join(specs) or 'none'})")
        del specs[name]
    else:
        assert model is not None
        try:
            specs[name], info = classifier_spec(model, head, settings.resolved_models_dir)
        except ModelLoadError as exc:
            raise fail(str(exc)) from None
        console.print(f"classifier {name}: {info.name} version {info.version}")
    write_classifier_file(settings.resolved_classifiers_file, specs)
    out.print(f"wrote {settings.resolved_classifiers_file}")
