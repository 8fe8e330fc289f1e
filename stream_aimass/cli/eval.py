"""``eval classifier|zero-shot|ner|linking|recs``: models measured on labelled data."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from stream_aimass.cli.support import (
    DataDir,
    EncoderDir,
    JsonFlag,
    LabelColumnOpt,
    ModelsDir,
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

eval_app = typer.Typer(help="Evaluate models on labelled data.", no_args_is_help=True)


@eval_app.command("classifier")
def eval_classifier(
    model: Annotated[str, typer.Option("--model", help="Model directory, NAME or NAME@VERSION.")],
    data: Annotated[Path, typer.Option("--data", help="Labelled CSV.")],
    head: Annotated[
        str | None,
        typer.Option("--head", help="The head to evaluate, when --model is a multitask model."),
    ] = None,
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
    from stream_aimass.evaluation.plots import confusion_png, per_class_f1_png
    from stream_aimass.models.classify import head_view
    from stream_aimass.models.encoder import Encoder, ModelLoadError
    from stream_aimass.models.library import read_model, refuse_pickle, resolve_model
    from stream_aimass.training.classifier import evaluate_classifier

    settings = settings_or_exit(data_dir=data_dir, models_dir=models_dir, model_dir=model_dir)
    try:
        path = resolve_model(model, settings.resolved_models_dir)
        refuse_pickle(path)
        info = read_model(path)
        if info.kind == "multitask":
            info = head_view(info, head, "classifier")
        elif head is not None:
            raise ModelLoadError(f"--head: {model} is a {info.kind} model, not a multitask one")
    except ModelLoadError as exc:
        raise fail(str(exc)) from None
    multi = bool(info.meta.get("multi_label", False))
    dataset = read_labelled(data, text_column, label_column, multi, separator)
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
            report = evaluate_classifier(path, dataset, shared, head=info.meta.get("head"))
        except ModelLoadError as exc:
            raise fail(str(exc)) from None
    png = plot or (
        settings.data_dir
        / "reports"
        / (f"{info.name.replace('/', '-')}-{info.version}-{data.stem}-confusion.png")
    )
    title = f"{info.name} {info.version} on {data.name}"
    if multi:
        per_class_f1_png(report["per_class"], png, title)
    else:
        confusion_png(report["confusion"], info.labels, png, title)
    report["plot"] = str(png)
    report["data"] = str(data)
    _print_classification(report, title, as_json)


def _print_classification(report: dict[str, Any], title: str, as_json: bool) -> None:
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
    out.print(f"plot: {report['plot']}")


@eval_app.command("zero-shot")
def eval_zero_shot(
    data: Annotated[
        Path | None, typer.Option("--data", help="Labelled CSV (single label per text).")
    ] = None,
    synthetic: Annotated[
        bool,
        typer.Option(
            "--synthetic",
            help="Demo-corpus documents, labelled with the topic they were generated from.",
        ),
    ] = False,
    documents: Annotated[
        int, typer.Option("--documents", min=1, help="--synthetic: documents.")
    ] = 2000,
    text_column: TextColumnOpt = "text",
    label_column: LabelColumnOpt = "category",
    plot: Annotated[Path | None, typer.Option("--plot", help="Confusion PNG path.")] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    model_dir: EncoderDir = None,
) -> None:
    """Accuracy of the zero-shot topic labels (the `labels` setting) on the shared encoder:
    measures label descriptions, or an encoder change (a multitask or distilled model)."""
    import numpy as np

    from stream_aimass.evaluation.classifier import classification_report
    from stream_aimass.evaluation.plots import confusion_png
    from stream_aimass.models.classify import HeadInput, ZeroShotClassifier
    from stream_aimass.models.encoder import Encoder, ModelLoadError

    if (data is None) == (not synthetic):
        raise fail("give --data CSV or --synthetic")
    settings = settings_or_exit(data_dir=data_dir, model_dir=model_dir)
    if not settings.labels:
        raise fail("the labels setting is empty: there is no zero-shot head to evaluate")
    if data is not None:
        dataset = read_labelled(data, text_column, label_column, False, "|")
        texts, gold = list(dataset.texts), [tuple(x) for x in dataset.labels]
        source = data.name
    else:
        from stream_aimass.tools.corpus import generate_documents

        docs = generate_documents(documents, seed=17)
        texts = [f"{d['title']}. {d['text']}" for d in docs]
        metas = [d["meta"] for d in docs]
        gold = [(str(m["category_hint"]) if isinstance(m, dict) else "",) for m in metas]
        source = f"{documents} demo documents"
    with console.status(f"zero-shot labels on {len(texts)} texts"):
        try:
            shared = Encoder(
                settings.resolved_model_dir, device=settings.device, dtype=settings.dtype,
                max_tokens=settings.max_tokens_per_document, name=settings.model_name,
            )  # fmt: skip
        except ModelLoadError as exc:
            raise fail(str(exc)) from None
        topic = ZeroShotClassifier(shared, settings.labels, name="topic")
        ids = shared.tokenize(texts)
        scores = np.zeros((len(texts), len(topic.labels)), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), 64):
            chunk = order[start : start + 64]
            batch = [ids[i] for i in chunk]
            heads = HeadInput(shared.encode_ids(batch).embeddings, batch, [texts[i] for i in chunk])
            scores[chunk] = topic.scores(heads)
    predicted = topic.predict(scores)
    unknown = sorted({g for (g,) in gold} - set(topic.labels))
    if unknown:
        raise fail(f"gold labels not among the zero-shot labels: {', '.join(unknown)}")
    report = classification_report(gold, predicted, topic.labels, False)
    report["encoder"] = {"name": shared.name, "version": shared.version}
    png = plot or settings.data_dir / "reports" / f"zero-shot-{shared.version}-confusion.png"
    title = f"zero-shot labels, encoder {shared.version}, on {source}"
    confusion_png(report["confusion"], topic.labels, png, title)
    report["plot"] = str(png)
    report["data"] = str(data) if data is not None else "synthetic"
    _print_classification(report, title, as_json)


@eval_app.command("ner")
def eval_ner(
    model: Annotated[
        str,
        typer.Option("--model", help="NER model dir, NAME[@VERSION], or a local HF checkpoint."),
    ],
    data: Annotated[Path, typer.Option("--data", help="CoNLL file (IOB1 or BIO2).")],
    head: Annotated[
        str | None,
        typer.Option("--head", help="The head to evaluate, when --model is a multitask model."),
    ] = None,
    decoding: Annotated[
        str,
        typer.Option(
            "--decoding",
            help="constrained: the best valid BIO sequence (what the worker serves); "
            "argmax: each word's top tag.",
        ),
    ] = "constrained",
    context: Annotated[
        int | None,
        typer.Option(
            "--context",
            min=0,
            help="Word pieces of neighbouring sentences (same -DOCSTART- document) around "
            "each sentence; default: what the model was trained with.",
        ),
    ] = None,
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
    from stream_aimass.entities.spans import bio_spans
    from stream_aimass.evaluation.ner import ner_report
    from stream_aimass.evaluation.plots import per_class_f1_png
    from stream_aimass.models.encoder import Encoder, ModelLoadError
    from stream_aimass.training.conll import read_conll, to_bio2
    from stream_aimass.training.data import DataError
    from stream_aimass.training.ner import context_windows

    if not model.strip():
        raise fail("--model is required: a NER model directory or reference")
    if decoding not in ("constrained", "argmax"):
        raise fail(f"--decoding must be constrained or argmax, not {decoding!r}")
    settings = settings_or_exit(data_dir=data_dir, models_dir=models_dir, model_dir=model_dir)
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
            detector = load_detector(model, None, shared, settings.resolved_models_dir, head)
        except ModelLoadError as exc:
            raise fail(str(exc)) from None
        if not isinstance(detector, TokenTagger):
            raise fail(f"{model} is not a token-classification model")
        detector.constrained = decoding == "constrained"
        around = detector.context if context is None else context
        windows = context_windows(detector.word_tokenizer(shared), sentences, 128, around)
        predicted: list[list[str]] = []
        for start in range(0, len(windows), 64):
            chunk = windows[start : start + 64]
            tags = detector.predict_words([w.words for w in chunk], shared)
            predicted.extend(t[w.start : w.end] for t, w in zip(tags, chunk, strict=True))
    gold = [bio_spans(to_bio2(s.tags)) for s in sentences]
    report = ner_report(gold, [bio_spans(tags) for tags in predicted])
    report["model"] = {"name": detector.model.name, "version": detector.model.version}
    report["decoding"] = decoding
    report["context_tokens"] = around
    png = plot or settings.data_dir / "reports" / (
        f"{detector.model.name.replace('/', '-')}-{detector.model.version}-{data.stem}-ner-f1.png"
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

    from stream_aimass.evaluation.linking import evaluate_linking, linking_png

    settings = settings_or_exit(data_dir=data_dir, model_dir=model_dir, kb_path=kb)
    path = data or Path(
        str(resources.files("stream_aimass") / "resources" / "kb" / "linking-eval.jsonl")
    )
    with console.status(f"linking the mentions of {path.name}"):
        examples, encoder, extractor = linking_inputs(settings, path)
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

    from stream_aimass.evaluation.recs import (
        METHODS,
        embed_items,
        events_from_dicts,
        items_from_documents,
        read_events,
        read_items,
        recs_png,
        recs_report,
        replay,
    )
    from stream_aimass.evaluation.recs_synthetic import synthetic_events
    from stream_aimass.models.encoder import Encoder, ModelLoadError
    from stream_aimass.recs import item_index, profile_config, scoring_config
    from stream_aimass.recs.scoring import MODEL_NAME, Scorer
    from stream_aimass.tools.corpus import generate_documents
    from stream_aimass.training.data import DataError

    settings = settings_or_exit(data_dir=data_dir, model_dir=model_dir, recs_k=k)
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
    with progress_bar() as progress:
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
