"""``train classifier|ner|linking``: models trained on your labelled data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from stream_aimass.cli.support import (
    EncoderDir,
    JsonFlag,
    LabelColumnOpt,
    ProgressReporter,
    SeparatorOpt,
    TextColumnOpt,
    console,
    fail,
    linking_inputs,
    out,
    progress_bar,
    read_labelled,
    settings_or_exit,
)

train_app = typer.Typer(help="Train models on your labelled data.", no_args_is_help=True)


def _check_training_options(mode: str, epochs: int | None) -> None:
    if mode not in ("head", "finetune"):
        raise fail(f"--mode must be head or finetune, not {mode!r}")
    if epochs is not None and epochs < 1:
        raise fail("--epochs must be at least 1")


@train_app.command("classifier")
def train_classifier(
    data: Annotated[Path, typer.Option("--data", help="Training CSV.")],
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Model folder: each run adds a version folder inside it."),
    ],
    dev: Annotated[Path | None, typer.Option("--dev", help="Dev CSV for metrics.")] = None,
    text_column: TextColumnOpt = "text",
    label_column: LabelColumnOpt = "category",
    multi_label: Annotated[
        bool, typer.Option("--multi-label", help="Several labels per text (sigmoid head).")
    ] = False,
    separator: SeparatorOpt = "|",
    mode: Annotated[
        str,
        typer.Option(
            "--mode", help="head: train a head on the frozen shared encoder; finetune: both."
        ),
    ] = "head",
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Default 30 (head), 4 (finetune).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Head learning rate.")] = None,
    encoder_lr: Annotated[
        float, typer.Option("--encoder-lr", help="Encoder learning rate (finetune).")
    ] = 5e-5,
    seed: Annotated[int, typer.Option("--seed")] = 13,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Truncate texts.")] = 128,
    name: Annotated[
        str | None, typer.Option("--name", help="Model name (default: the --out folder name).")
    ] = None,
    model_dir: EncoderDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Train a classifier on the shared encoder; writes a versioned model directory."""
    _check_training_options(mode, epochs)
    from stream_aimass.models.encoder import ModelLoadError
    from stream_aimass.training.classifier import TrainConfig
    from stream_aimass.training.classifier import train_classifier as train
    from stream_aimass.training.data import DataError

    settings = settings_or_exit(model_dir=model_dir)
    train_data = read_labelled(data, text_column, label_column, multi_label, separator)
    dev_data = (
        read_labelled(dev, text_column, label_column, multi_label, separator) if dev else None
    )
    config = TrainConfig(
        mode=mode,  # type: ignore[arg-type]
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        encoder_lr=encoder_lr,
        seed=seed,
        max_tokens=max_tokens,
        device=settings.device,
        dtype=settings.dtype,
        threads=settings.torch_threads,
    )
    console.print(
        f"training {mode} classifier on {len(train_data.texts)} examples, "
        f"{len(train_data.label_names)} labels"
        + (f"; dev {len(dev_data.texts)}" if dev_data else "; no dev set")
    )
    try:
        with progress_bar() as progress:
            info = train(
                train_data,
                dev_data,
                out_dir,
                name=name or out_dir.resolve().name,
                encoder_dir=settings.resolved_model_dir,
                encoder_name=settings.model_name,
                config=config,
                reporter=ProgressReporter(progress),
            )
    except (DataError, ModelLoadError) as exc:
        raise fail(str(exc)) from None
    summary = info.summary() | {"seconds": info.meta["training"]["seconds"]}
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(
            f"model {info.name} version {info.version} -> {info.path}\n"
            f"dev accuracy {summary['accuracy']}  macro F1 {summary['macro_f1']}  "
            f"trained in {summary['seconds']} s"
        )


@train_app.command("ner")
def train_ner_cmd(
    data: Annotated[Path, typer.Option("--data", help="Training CoNLL file (IOB1 or BIO2).")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Model folder: each run adds a version inside it.")
    ],
    dev: Annotated[Path | None, typer.Option("--dev", help="Dev CoNLL for metrics.")] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Default 8 (finetune), 40 (head).")
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="finetune: train the encoder too (own pass in the worker); head: a token "
            "head on the frozen shared encoder (the document's one pass).",
        ),
    ] = "finetune",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 16,
    encoder_lr: Annotated[float, typer.Option("--encoder-lr")] = 1e-4,
    head_lr: Annotated[float, typer.Option("--head-lr")] = 2e-3,
    seed: Annotated[int, typer.Option("--seed")] = 13,
    name: Annotated[
        str | None, typer.Option("--name", help="Default: the --out folder name.")
    ] = None,
    model_dir: EncoderDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Fine-tune the encoder with a token-classification head on CoNLL files."""
    from stream_aimass.training.conll import read_conll
    from stream_aimass.training.data import DataError
    from stream_aimass.training.ner import NerConfig, train_ner

    _check_training_options(mode, epochs)
    settings = settings_or_exit(model_dir=model_dir)
    try:
        train_sents = read_conll(data)
        dev_sents = read_conll(dev) if dev else None
    except DataError as exc:
        raise fail(str(exc)) from None
    config = NerConfig(
        mode=mode,  # type: ignore[arg-type]
        epochs=epochs, batch_size=batch_size, encoder_lr=encoder_lr, head_lr=head_lr,
        seed=seed, dtype=settings.dtype, threads=settings.torch_threads,
    )  # fmt: skip
    console.print(
        f"training {mode} NER on {len(train_sents)} sentences"
        + (f"; dev {len(dev_sents)}" if dev_sents else "; no dev set")
    )
    try:
        with progress_bar() as progress:
            info = train_ner(
                train_sents, dev_sents, out_dir,
                name=name or out_dir.resolve().name,
                encoder_dir=settings.resolved_model_dir, encoder_name=settings.model_name,
                config=config, train_path=data, dev_path=dev,
                reporter=ProgressReporter(progress),
            )  # fmt: skip
    except DataError as exc:
        raise fail(str(exc)) from None
    metrics = info.metrics
    summary = {
        "name": info.name, "mode": info.mode, "version": info.version, "path": str(info.path),
        "precision": metrics.get("precision"), "recall": metrics.get("recall"),
        "f1": metrics.get("f1"), "seconds": info.meta["training"]["seconds"],
    }  # fmt: skip
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(
            f"model {info.name} version {info.version} -> {info.path}\n"
            f"dev F1 {summary['f1']}  P {summary['precision']}  R {summary['recall']}  "
            f"trained in {summary['seconds']} s"
        )


@train_app.command("linking")
def train_linking_cmd(
    data: Annotated[
        Path, typer.Option("--data", help="Labelled linking JSONL (as `eval linking` reads).")
    ],
    out_path: Annotated[Path, typer.Option("--out", help="Weights file (JSON) to write.")],
    kb: Annotated[Path | None, typer.Option("--kb", help="KB JSONL [env AIMASS_KB_PATH].")] = None,
    l2: Annotated[float, typer.Option("--l2", min=0.0, help="L2 penalty on the weights.")] = 1.0,
    as_json: JsonFlag = False,
    model_dir: EncoderDir = None,
) -> None:
    """Fit the linker's weights (logistic regression) and NIL threshold on gold mentions;
    serve them with AIMASS_LINK_WEIGHTS_PATH."""
    import numpy as np

    from stream_aimass.training.linking import (
        candidate_rows,
        decisions,
        fit_link_weights,
        write_weights,
    )

    settings = settings_or_exit(model_dir=model_dir, kb_path=kb)
    with console.status(f"features of the mentions of {data.name}"):
        examples, encoder, extractor = linking_inputs(settings, data)
        rows = candidate_rows(examples, extractor, encoder)
    try:
        weights = fit_link_weights(rows, l2)
    except ValueError as exc:
        raise fail(f"{data}: {exc}") from None
    vector = np.array([weights.mention, weights.context, weights.prior, weights.exact])
    right = decisions(rows, vector, weights.nil_threshold)
    provenance = {
        "data": str(data), "mentions": rows.mentions, "candidate_rows": len(rows.gold),
        "kb": {"name": extractor.kb.name, "version": extractor.kb.version},
        "encoder": {"name": encoder.name, "version": encoder.version}, "l2": l2,
        "accuracy_on_fitting_data": round(float(right.mean()), 4) if len(right) else 0.0,
    }  # fmt: skip
    write_weights(out_path, weights, provenance)
    summary: dict[str, Any] = {
        "weights": {k: getattr(weights, k) for k in weights.__dataclass_fields__}
    }
    summary |= {"out": str(out_path), **provenance}
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(
            f"weights {summary['weights']} -> {out_path}\n"
            f"{rows.mentions} mentions; accuracy on the fitting data "
            f"{provenance['accuracy_on_fitting_data']} (report on another set: eval linking)"
        )
