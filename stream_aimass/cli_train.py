"""Commands of the training platform and the model library.

``train classifier``, ``eval classifier``, ``models list|show|use`` and ``data split``.
Registered on the main ``stream-aimass`` app by :mod:`stream_aimass.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from stream_aimass.cli_support import DataDir, JsonFlag, console, fail, out
from stream_aimass.cli_support import settings_or_exit as _settings

train_app = typer.Typer(help="Train models on your labelled data.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate models on labelled data.", no_args_is_help=True)
models_app = typer.Typer(
    help="The model library and the models a worker serves.", no_args_is_help=True
)
data_app = typer.Typer(help="Prepare labelled data.", no_args_is_help=True)

ModelsDir = Annotated[
    Path | None, typer.Option("--models-dir", help="Model library [env AIMASS_MODELS_DIR].")
]
EncoderDir = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Base encoder directory [env AIMASS_MODEL_DIR]."),
]
TextColumnOpt = Annotated[str, typer.Option("--text-column", help="Column holding the text.")]
LabelColumnOpt = Annotated[str, typer.Option("--label-column", help="Column holding the label(s).")]
SeparatorOpt = Annotated[
    str, typer.Option("--separator", help="Multi-label: separator between labels in a cell.")
]


class ProgressReporter:
    """Training progress as rich progress bars on stderr, one per stage."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def start(self, stage: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(stage, total=total)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        shown = "  ".join(f"{k}={v}" for k, v in metrics.items() if k != "epoch")
        self.progress.console.print(f"epoch {epoch}: {shown}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _read(
    path: Path, text_column: str, label_column: str, multi_label: bool, separator: str
) -> Any:
    from stream_aimass.training.data import DataError, read_classification_csv

    try:
        return read_classification_csv(
            path,
            text_column=text_column,
            label_column=label_column,
            multi_label=multi_label,
            separator=separator,
        )
    except DataError as exc:
        raise fail(str(exc)) from None


# -- train ---------------------------------------------------------------------------------


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

    settings = _settings(model_dir=model_dir)
    train_data = _read(data, text_column, label_column, multi_label, separator)
    dev_data = _read(dev, text_column, label_column, multi_label, separator) if dev else None
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
        with _progress() as progress:
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


# -- eval ----------------------------------------------------------------------------------


@eval_app.command("classifier")
def eval_classifier(
    model: Annotated[str, typer.Option("--model", help="Model directory, NAME or NAME@VERSION.")],
    data: Annotated[Path, typer.Option("--data", help="Labelled CSV.")],
    text_column: TextColumnOpt = "text",
    label_column: LabelColumnOpt = "category",
    separator: SeparatorOpt = "|",
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="PNG path (default <data-dir>/reports/...-confusion.png)."),
    ] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    models_dir: ModelsDir = None,
    model_dir: EncoderDir = None,
) -> None:
    """Accuracy, macro F1 and per-class scores of a trained classifier; a confusion PNG."""
    from stream_aimass.models.encoder import Encoder, ModelLoadError
    from stream_aimass.models.library import read_model, refuse_pickle, resolve_model
    from stream_aimass.training.classifier import evaluate_classifier
    from stream_aimass.training.plots import confusion_png, per_class_f1_png

    settings = _settings(data_dir=data_dir, models_dir=models_dir, model_dir=model_dir)
    try:
        path = resolve_model(model, settings.resolved_models_dir)
        refuse_pickle(path)
        info = read_model(path)
    except ModelLoadError as exc:
        raise fail(str(exc)) from None
    multi = bool(info.meta.get("multi_label", False))
    dataset = _read(data, text_column, label_column, multi, separator)
    with console.status(f"evaluating {info.name} {info.version} on {len(dataset.texts)} texts"):
        try:
            shared = Encoder(
                settings.resolved_model_dir,
                device=settings.device,
                dtype=settings.dtype,
                max_tokens=int(info.meta.get("training", {}).get("max_tokens", 128)),
                name=settings.model_name,
                threads=settings.torch_threads,
            )
            report = evaluate_classifier(path, dataset, shared)
        except ModelLoadError as exc:
            raise fail(str(exc)) from None
    png = plot or (
        settings.data_dir / "reports" / f"{info.name}-{info.version}-{data.stem}-confusion.png"
    )
    title = f"{info.name} {info.version} on {data.name}"
    if multi:
        per_class_f1_png(report["per_class"], png, title)
    else:
        confusion_png(report["confusion"], info.labels, png, title)
    report["plot"] = str(png)
    report["data"] = str(data)
    if as_json:
        out.print_json(json.dumps(report))
        return
    out.print(
        f"{title}: accuracy {report['accuracy']:.4f}  macro F1 {report['macro_f1']:.4f}  "
        f"({report['examples']} examples)"
    )
    table = Table("label", "precision", "recall", "f1", "support", title="per class")
    for label, s in sorted(report["per_class"].items(), key=lambda kv: kv[1]["f1"]):
        table.add_row(
            label, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}",
            str(s["support"]),
        )  # fmt: skip
    out.print(table)
    out.print(f"plot: {png}")


# -- models --------------------------------------------------------------------------------


@models_app.command("list")
def models_list(
    as_json: JsonFlag = False, data_dir: DataDir = None, models_dir: ModelsDir = None
) -> None:
    """Every model version in the library: name, kind, version, metrics, created."""
    from stream_aimass.models.encoder import ModelLoadError
    from stream_aimass.models.library import list_models

    settings = _settings(data_dir=data_dir, models_dir=models_dir)
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

    settings = _settings(data_dir=data_dir, models_dir=models_dir)
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
    data_dir: DataDir = None,
    models_dir: ModelsDir = None,
    classifiers_file: Annotated[
        Path | None,
        typer.Option("--classifiers-file", help="[env AIMASS_CLASSIFIERS_FILE]"),
    ] = None,
) -> None:
    """Serve MODEL as classifier NAME: running workers hot-swap to it between batches."""
    from stream_aimass.models.encoder import ModelLoadError
    from stream_aimass.models.library import read_model, resolve_model
    from stream_aimass.models.reload import current_specs, write_classifier_file

    settings = _settings(
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
            path = resolve_model(model, settings.resolved_models_dir)
            info = read_model(path)
        except ModelLoadError as exc:
            raise fail(str(exc)) from None
        # Pin the exact version: the file says which weights serve, not "newest".
        specs[name] = str(path.resolve())
        console.print(f"classifier {name}: {info.name} version {info.version}")
    write_classifier_file(settings.resolved_classifiers_file, specs)
    out.print(f"wrote {settings.resolved_classifiers_file}")


# -- data ----------------------------------------------------------------------------------


@data_app.command("split")
def data_split(
    data: Annotated[Path, typer.Argument(help="Labelled CSV to split.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Writes train.csv and dev.csv.")],
    dev_fraction: Annotated[float, typer.Option("--dev-fraction")] = 0.1,
    seed: Annotated[int, typer.Option("--seed")] = 13,
    text_column: TextColumnOpt = "text",
    label_column: LabelColumnOpt = "category",
    multi_label: Annotated[bool, typer.Option("--multi-label")] = False,
    separator: SeparatorOpt = "|",
) -> None:
    """A stratified, seeded train/dev split of a labelled CSV."""
    from stream_aimass.training.data import stratified_split, write_classification_csv

    if not 0 < dev_fraction < 1:
        raise fail("--dev-fraction must be between 0 and 1")
    dataset = _read(data, text_column, label_column, multi_label, separator)
    train, dev = stratified_split(dataset, dev_fraction, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for part, rows in (("train", train), ("dev", dev)):
        write_classification_csv(
            rows, out_dir / f"{part}.csv", text_column, label_column, separator
        )
    out.print(
        f"{out_dir}/train.csv: {len(train.texts)} rows; {out_dir}/dev.csv: {len(dev.texts)} rows"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.add_typer(eval_app, name="eval")
    app.add_typer(models_app, name="models")
    app.add_typer(data_app, name="data")


# -- NER and linking -------------------------------------------------------------------------


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
    settings = _settings(model_dir=model_dir)
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
        with _progress() as progress:
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


@eval_app.command("ner")
def eval_ner(
    model: Annotated[
        str,
        typer.Option("--model", help="NER model dir, NAME[@VERSION], or a local HF checkpoint."),
    ],
    data: Annotated[Path, typer.Option("--data", help="CoNLL file (IOB1 or BIO2).")],
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG of per-type F1 (default under reports/).")
    ] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    models_dir: ModelsDir = None,
    model_dir: EncoderDir = None,
) -> None:
    """Entity-level strict precision, recall and F1 (overall and per type); a PNG."""
    from stream_aimass.entities.ner import TokenTagger, load_detector
    from stream_aimass.models.encoder import Encoder, ModelLoadError
    from stream_aimass.models.spans import bio_spans
    from stream_aimass.training.conll import read_conll, to_bio2
    from stream_aimass.training.data import DataError
    from stream_aimass.training.ner_metrics import ner_report
    from stream_aimass.training.plots import per_class_f1_png

    if not model.strip():
        raise fail("--model is required: a NER model directory or reference")
    settings = _settings(data_dir=data_dir, models_dir=models_dir, model_dir=model_dir)
    try:
        sentences = read_conll(data)
    except DataError as exc:
        raise fail(str(exc)) from None
    with console.status(f"evaluating {model} on {len(sentences)} sentences"):
        try:
            shared = Encoder(
                settings.resolved_model_dir, device=settings.device, dtype=settings.dtype,
                max_tokens=128, name=settings.model_name,
            )  # fmt: skip
            detector = load_detector(model, None, shared, settings.resolved_models_dir)
        except ModelLoadError as exc:
            raise fail(str(exc)) from None
        if not isinstance(detector, TokenTagger):
            raise fail(f"{model} is not a token-classification model")
        predicted: list[list[str]] = []
        words = [s.tokens for s in sentences]
        for start in range(0, len(words), 64):
            predicted.extend(detector.predict_words(words[start : start + 64], shared))
    gold = [bio_spans(to_bio2(s.tags)) for s in sentences]
    report = ner_report(gold, [bio_spans(tags) for tags in predicted])
    report["model"] = {"name": detector.model.name, "version": detector.model.version}
    png = plot or settings.data_dir / "reports" / (
        f"{detector.model.name}-{detector.model.version}-{data.stem}-ner-f1.png"
    )
    per_class_f1_png(report["per_type"], png, f"{detector.model.name} on {data.name}: F1 per type")
    report["plot"] = str(png)
    report["data"] = str(data)
    if as_json:
        out.print_json(json.dumps(report))
        return
    out.print(
        f"{detector.model.name} {detector.model.version} on {data.name}: precision "
        f"{report['precision']:.4f}  recall {report['recall']:.4f}  F1 {report['f1']:.4f}"
    )
    table = Table("type", "precision", "recall", "f1", "support", title="per type")
    for label, s in sorted(report["per_type"].items()):
        table.add_row(
            label, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}",
            str(s["support"]),
        )  # fmt: skip
    out.print(table)
    out.print(f"plot: {png}")


@eval_app.command("linking")
def eval_linking(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Labelled JSONL (default: the linking set shipped with the demo KB)."
        ),
    ] = None,
    kb: Annotated[Path | None, typer.Option("--kb", help="KB JSONL [env AIMASS_KB_PATH].")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG path.")] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    model_dir: EncoderDir = None,
) -> None:
    """Linking accuracy and NIL precision on gold mentions, against the prior-only baseline."""
    from importlib import resources

    from stream_aimass.entities.evaluate import evaluate_linking, linking_png, read_linking_file
    from stream_aimass.entities.extract import EntityExtractor
    from stream_aimass.entities.kb import KBError
    from stream_aimass.entities.linking import LinkWeights
    from stream_aimass.models.encoder import Encoder
    from stream_aimass.training.data import DataError

    settings = _settings(data_dir=data_dir, model_dir=model_dir, kb_path=kb)
    path = data or Path(
        str(resources.files("stream_aimass") / "resources" / "kb" / "linking-eval.jsonl")
    )
    try:
        examples = read_linking_file(path)
    except DataError as exc:
        raise fail(str(exc)) from None
    with console.status(f"linking {sum(len(e.mentions) for e in examples)} mentions"):
        encoder = Encoder(
            settings.resolved_model_dir, device=settings.device, dtype=settings.dtype,
            max_tokens=settings.max_tokens_per_document, name=settings.model_name,
        )  # fmt: skip
        try:
            extractor = EntityExtractor.build(
                encoder, kb_path=settings.kb_path, ner_model="",
                models_dir=settings.resolved_models_dir, cache_dir=settings.data_dir / "cache",
                weights=LinkWeights(nil_threshold=settings.link_nil_threshold),
            )  # fmt: skip
        except KBError as exc:
            raise fail(str(exc)) from None
        report = evaluate_linking(examples, extractor, encoder)
    png = plot or settings.data_dir / "reports" / f"linking-{path.stem}.png"
    linking_png(report, png, f"entity linking on {path.name} (KB {extractor.kb.name})")
    report["plot"] = str(png)
    report["data"] = str(path)
    if as_json:
        out.print_json(json.dumps(report))
        return
    base = report["prior_baseline"]
    out.print(
        f"{report['mentions']} mentions ({report['nil_mentions']} NIL): accuracy "
        f"{report['accuracy']:.4f} (prior only {base['accuracy']:.4f}), NIL precision "
        f"{report['nil_precision']:.4f}, ambiguous aliases {report['ambiguous']['accuracy']:.4f} "
        f"(prior only {base['ambiguous']['accuracy']:.4f})"
    )
    out.print(f"plot: {png}")


# -- recommendations -------------------------------------------------------------------------


@eval_app.command("recs")
def eval_recs(
    events: Annotated[
        Path | None,
        typer.Option("--events", help="Events JSONL (aimass.events format), replayed in ts order."),
    ] = None,
    items: Annotated[
        Path | None,
        typer.Option(
            "--items",
            help="Items JSONL, documents format: id, tenant, text; optional title, ts, category.",
        ),
    ] = None,
    synthetic: Annotated[
        bool,
        typer.Option(
            "--synthetic",
            help="Evaluate on the demo corpus and generated users with latent topic preferences.",
        ),
    ] = False,
    documents: Annotated[
        int, typer.Option("--documents", help="--synthetic: documents (the items).")
    ] = 2000,
    users: Annotated[int, typer.Option("--users", help="--synthetic: users.")] = 300,
    events_per_user: Annotated[
        int, typer.Option("--events-per-user", help="--synthetic: events per user.")
    ] = 30,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the synthetic data and the random baseline.")
    ] = 13,
    popularity_skew: Annotated[
        float,
        typer.Option(
            "--popularity-skew",
            min=0.0,
            help="--synthetic: Zipf exponent of item appeal within a category (0: no "
            "popularity skew; 1: the top 10 of ~100 items get ~57% of the events).",
        ),
    ] = 0.5,
    k: Annotated[
        int | None, typer.Option("--k", help="Cut-off of recall@k and NDCG@k (env AIMASS_RECS_K).")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="PNG path (default <data-dir>/reports/recs-....png)."),
    ] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    model_dir: EncoderDir = None,
) -> None:
    """Replay events in time order, each user's next novel item the target: recall@k and
    NDCG@k of the recommender against popularity and random baselines; a PNG."""
    import time

    from stream_aimass.corpus import generate_documents
    from stream_aimass.models.encoder import Encoder, ModelLoadError
    from stream_aimass.recs import item_index, profile_config, scoring_config
    from stream_aimass.recs.evaluate import (
        METHODS,
        embed_items,
        events_from_dicts,
        items_from_documents,
        read_events,
        read_items,
        recs_png,
        recs_report,
        replay,
        synthetic_events,
    )
    from stream_aimass.recs.scoring import MODEL_NAME, Scorer
    from stream_aimass.training.data import DataError

    settings = _settings(data_dir=data_dir, model_dir=model_dir, recs_k=k)
    if synthetic and (events or items):
        raise fail("use --events/--items or --synthetic, not both")
    if not synthetic and events is None:
        raise fail("give --events FILE.jsonl and --items FILE.jsonl, or --synthetic")
    if events is not None and items is None:
        raise fail("--items FILE.jsonl is required with --events: the items to recommend")
    for flag, value in (
        ("--documents", documents), ("--users", users), ("--events-per-user", events_per_user)
    ):  # fmt: skip
        if value < 1:
            raise fail(f"{flag} must be at least 1")
    started = time.perf_counter()
    if synthetic:
        docs = generate_documents(documents, seed=seed)
        to_embed = items_from_documents(docs)
        replayed = events_from_dicts(
            synthetic_events(
                docs,
                users=users,
                events_per_user=events_per_user,
                seed=seed,
                zipf_exponent=popularity_skew,
            )
        )
        name = "synthetic"
    else:
        assert events is not None and items is not None
        try:
            replayed = read_events(events)
            to_embed = read_items(items)
        except DataError as exc:
            raise fail(str(exc)) from None
        name = events.stem
    with console.status("loading the encoder"):
        try:
            encoder = Encoder(
                settings.resolved_model_dir, device=settings.device, dtype=settings.dtype,
                max_tokens=settings.max_tokens_per_document, name=settings.model_name,
                threads=settings.torch_threads,
            )  # fmt: skip
        except ModelLoadError as exc:
            raise fail(str(exc)) from None
    scoring = scoring_config(settings)
    index = item_index(settings)
    with _progress() as progress:
        reporter = ProgressReporter(progress)
        vectors = embed_items(to_embed, encoder, reporter)
        result = replay(
            replayed, vectors, index=index, scorer=Scorer(index, scoring),
            profiles=profile_config(settings), k=settings.recs_k, seed=seed, reporter=reporter,
        )  # fmt: skip
    if result.unknown_items * 2 > result.events:
        console.print(
            f"[yellow]warning:[/] {result.unknown_items} of {result.events} events name items "
            "the index does not hold at their time (check --items, and that item ts precede "
            "the events)"
        )
    png = plot or settings.data_dir / "reports" / f"recs-{name}.png"
    recs_png(result, png, f"recommendations on {name} events ({MODEL_NAME} {scoring.version})")
    report = recs_report(
        result,
        synthetic=synthetic,
        model={"name": MODEL_NAME, "version": scoring.version},
        encoder={"name": encoder.name, "version": encoder.version},
        plot=str(png),
        seconds=time.perf_counter() - started,
    )
    if as_json:
        out.print_json(json.dumps(report))
        return
    kk = result.k
    table = Table("method", f"recall@{kk}", f"ndcg@{kk}", title=f"next-item prediction, k={kk}")
    for method in METHODS:
        table.add_row(method, f"{result.recall(method):.4f}", f"{result.ndcg(method):.4f}")
    out.print(table)
    ratio = report["recall_vs_popularity"]
    out.print(
        f"{result.events} events, {result.targets} targets ({result.skipped_repeats} repeats "
        f"skipped, {result.unknown_items} on unknown items), {result.users} users, "
        f"{result.items} items; recall vs popularity "
        + (f"{ratio:.2f}x" if ratio is not None else "n/a (popularity recall is 0)")
        + f"; {report['seconds']} s"
    )
    out.print(f"plot: {png}")
