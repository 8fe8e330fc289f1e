"""``train classifier|ner|linking|distill|multitask``: models trained on your data."""

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
    context: Annotated[
        int,
        typer.Option(
            "--context",
            min=0,
            help="Word pieces of the neighbouring sentences of the same -DOCSTART- document "
            "on each side of a sentence (the worker tags whole documents); 0: sentences alone.",
        ),
    ] = 0,
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
        seed=seed, dtype=settings.dtype, threads=settings.torch_threads, context=context,
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


def distill_texts(paths: list[Path], generated: int, seed: int) -> list[str]:
    """Unlabelled texts: each file's (a CSV's ``text`` column, else its first; a CoNLL
    file's sentences; any other file's non-empty lines), then ``generated`` documents of
    the demo corpus generator (title and text)."""
    import csv

    from stream_aimass.tools.corpus import generate_documents
    from stream_aimass.training.conll import read_conll

    texts: list[str] = []
    for path in paths:
        try:
            if path.suffix.lower() == ".csv":
                with path.open(newline="", encoding="utf-8-sig") as fh:
                    rows = list(csv.reader(fh))
                column = rows[0].index("text") if rows and "text" in rows[0] else 0
                texts += [r[column] for r in rows[1:] if len(r) > column and r[column].strip()]
            elif path.suffix.lower() == ".conll":
                texts += [" ".join(s.tokens) for s in read_conll(path) if s.tokens]
            else:
                lines = path.read_text(encoding="utf-8").splitlines()
                texts += [line.strip() for line in lines if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"cannot read {path}: {exc}") from None
    for doc in generate_documents(generated, seed=seed) if generated else []:
        texts.append(f"{doc['title']}. {doc['text']}" if doc.get("title") else str(doc["text"]))
    return texts


@train_app.command("distill")
def train_distill_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory of the student encoder.")],
    texts: Annotated[
        list[Path] | None,
        typer.Option("--texts", help="Unlabelled text: CSV (text column), CoNLL or lines."),
    ] = None,
    generated: Annotated[
        int, typer.Option("--generated", min=0, help="Demo-corpus documents added.")
    ] = 20000,
    layers: Annotated[
        str | None,
        typer.Option("--layers", help="Teacher layers kept, e.g. 0,2,4 (default: every other)."),
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 2,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    lr: Annotated[float, typer.Option("--lr", min=0.0)] = 1e-4,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=8)] = 128,
    seed: Annotated[int, typer.Option("--seed")] = 13,
    as_json: JsonFlag = False,
    model_dir: EncoderDir = None,
) -> None:
    """Distil a smaller student from the shared encoder on unlabelled text; serve it with
    AIMASS_MODEL_DIR."""
    from stream_aimass.training.distill import DistillConfig, distill_encoder

    settings = settings_or_exit(model_dir=model_dir)
    try:
        kept = tuple(int(x) for x in layers.split(",")) if layers else None
    except ValueError:
        raise fail(f"--layers takes comma-separated layer numbers, not {layers!r}") from None
    corpus = distill_texts(list(texts or []), generated, seed)
    config = DistillConfig(
        layers=kept, epochs=epochs, batch_size=batch_size, lr=lr, max_tokens=max_tokens,
        seed=seed,
    )  # fmt: skip
    console.print(f"distilling {settings.resolved_model_dir.name} on {len(corpus)} texts")
    try:
        with progress_bar() as progress:
            report = distill_encoder(
                settings.resolved_model_dir, out_dir, corpus, config, ProgressReporter(progress)
            )
    except ValueError as exc:
        raise fail(str(exc)) from None
    if as_json:
        out.print_json(json.dumps({**report, "out": str(out_dir)}))
    else:
        out.print(
            f"student ({len(report['layers_kept'])} of {report['teacher_layers']} layers) -> "
            f"{out_dir}\nheld-aside cosine to the teacher: mean "
            f"{report['held_aside_cosine_mean']}, lowest {report['held_aside_cosine_min']}; "
            f"trained in {report['seconds']} s"
        )


def _task_spec(spec: str, option: str) -> tuple[str, Path, Path | None]:
    """``NAME=TRAIN[,DEV]`` -> (name, train, dev)."""
    name, sep, files = spec.partition("=")
    parts = [p for p in files.split(",") if p] if sep else []
    if not name or not 1 <= len(parts) <= 2:
        raise fail(f"{option} takes NAME=TRAIN[,DEV], not {spec!r}")
    return name, Path(parts[0]), Path(parts[1]) if len(parts) == 2 else None


@train_app.command("multitask")
def train_multitask_cmd(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Model folder: each run adds a version inside it.")
    ],
    ner: Annotated[
        list[str] | None,
        typer.Option("--ner", help="NAME=TRAIN.conll[,DEV.conll]: a token head (repeatable)."),
    ] = None,
    classifier: Annotated[
        list[str] | None,
        typer.Option(
            "--classifier", help="NAME=TRAIN.csv[,DEV.csv]: a sequence head (repeatable)."
        ),
    ] = None,
    text_column: TextColumnOpt = "text",
    label_column: LabelColumnOpt = "category",
    multi_label: Annotated[
        bool, typer.Option("--multi-label", help="The classifier sets are multi-label.")
    ] = False,
    separator: SeparatorOpt = "|",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 4,
    ner_passes: Annotated[
        int, typer.Option("--ner-passes", min=1, help="Passes over each NER set per epoch.")
    ] = 4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    ner_batch_size: Annotated[int, typer.Option("--ner-batch-size", min=1)] = 16,
    encoder_lr: Annotated[float, typer.Option("--encoder-lr", min=0.0)] = 1e-4,
    distill_weight: Annotated[
        float,
        typer.Option(
            "--distill-weight",
            min=0.0,
            help="Weight of 1 - cos(embedding, the original encoder's): keeps zero-shot, "
            "recommendations and linking working.",
        ),
    ] = 1.0,
    ner_context: Annotated[
        int,
        typer.Option(
            "--ner-context",
            min=0,
            help="Word pieces of neighbouring sentences around each NER sentence (train ner "
            "--context).",
        ),
    ] = 0,
    held_aside: Annotated[
        int,
        typer.Option("--held-aside", min=0, help="Demo documents the cosine is reported on."),
    ] = 500,
    seed: Annotated[int, typer.Option("--seed")] = 13,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=8)] = 128,
    name: Annotated[
        str | None, typer.Option("--name", help="Default: the --out folder name.")
    ] = None,
    model_dir: EncoderDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Fine-tune ONE encoder with a head per data set; serve the result as the shared
    encoder (AIMASS_MODEL_DIR=<version>) and every head reads the one pass."""
    from stream_aimass.models.encoder import ModelLoadError
    from stream_aimass.tools.corpus import generate_documents
    from stream_aimass.training.conll import read_conll
    from stream_aimass.training.data import DataError
    from stream_aimass.training.multitask import (
        ClassifierTask,
        MultitaskConfig,
        NerTask,
        train_multitask,
    )

    settings = settings_or_exit(model_dir=model_dir)
    tasks: list[NerTask | ClassifierTask] = []
    try:
        for spec in ner or []:
            task, train_path, dev_path = _task_spec(spec, "--ner")
            dev_sents = read_conll(dev_path) if dev_path else None
            tasks.append(NerTask(task, read_conll(train_path), dev_sents, train_path, dev_path))
    except DataError as exc:
        raise fail(str(exc)) from None
    for spec in classifier or []:
        task, train_path, dev_path = _task_spec(spec, "--classifier")
        train_data = read_labelled(train_path, text_column, label_column, multi_label, separator)
        dev_data = (
            read_labelled(dev_path, text_column, label_column, multi_label, separator)
            if dev_path
            else None
        )
        tasks.append(ClassifierTask(task, train_data, dev_data))
    config = MultitaskConfig(
        epochs=epochs, batch_size=batch_size, ner_batch_size=ner_batch_size,
        ner_passes=ner_passes, encoder_lr=encoder_lr, distill_weight=distill_weight,
        ner_context=ner_context,
        seed=seed, max_tokens=max_tokens, dtype=settings.dtype, threads=settings.torch_threads,
    )  # fmt: skip
    held = [
        f"{d['title']}. {d['text']}" for d in generate_documents(held_aside, seed=seed + 7919)
    ] if held_aside else []  # fmt: skip
    console.print(
        "training one encoder for "
        + ", ".join(
            f"{t.name} ({'ner' if isinstance(t, NerTask) else 'classifier'})" for t in tasks
        )
    )
    try:
        with progress_bar() as progress:
            info = train_multitask(
                tasks, out_dir, name=name or out_dir.resolve().name,
                encoder_dir=settings.resolved_model_dir, encoder_name=settings.model_name,
                config=config, held_aside=held, reporter=ProgressReporter(progress),
            )  # fmt: skip
    except (DataError, ModelLoadError) as exc:
        raise fail(str(exc)) from None
    heads = {h: m.get("metrics", {}) for h, m in info.meta["heads"].items()}
    summary = {
        "name": info.name, "kind": info.kind, "version": info.version, "path": str(info.path),
        "heads": heads, "seconds": info.meta["training"]["seconds"],
        "held_aside_cosine_to_original": info.metrics.get("held_aside_cosine_to_original"),
    }  # fmt: skip
    if as_json:
        out.print_json(json.dumps(summary))
        return
    out.print(f"model {info.name} version {info.version} -> {info.path}")
    for head, metrics in heads.items():
        shown = {k: metrics[k] for k in ("accuracy", "macro_f1", "f1") if k in metrics}
        out.print(f"  head {head}: {shown or 'no dev set'}")
    out.print(
        f"held-aside cosine to the original: {summary['held_aside_cosine_to_original']}; "
        f"trained in {summary['seconds']} s\nserve it: AIMASS_MODEL_DIR={info.path}"
    )
