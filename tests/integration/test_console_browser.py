"""The console in a real browser: headless Chromium (Debian's chromium and chromium-driver,
driven by selenium) opens /console of a running embedded worker, finds data in every panel,
serves a model with a click, starts a training job from a file and sees it finish."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stream_aimass.testing import (
    BrokerProcess,
    WorkerProcess,
    produce,
    produce_documents,
    ready_worker,
    write_intent_csv,
)
from stream_aimass.tools.corpus import generate_documents, generate_events

pytestmark = pytest.mark.integration

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ADMIN = "console-admin-key"


@pytest.fixture()
def browser() -> Iterator[Any]:
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1400,2200", "--disable-gpu"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture()
def worker(broker_process: BrokerProcess, tmp_path: Path, topic_library: Path) -> Iterator[Any]:
    env = {"AIMASS_API_KEYS": json.dumps({"acme": "acme-key"}), "AIMASS_API_ADMIN_KEY": ADMIN,
           "AIMASS_MODELS_DIR": str(topic_library), "AIMASS_MODEL_RELOAD_INTERVAL_S": "0.2",
           "AIMASS_CLASSIFIERS_FILE": str(tmp_path / "classifiers.json")}  # fmt: skip
    with ready_worker("all", broker_process.bootstrap, tmp_path / "worker", "console", env) as w:
        yield w


@pytest.fixture()
def topic_library(tmp_path: Path, enricher: Any) -> Path:
    from stream_aimass.training.classifier import TrainConfig, train_classifier
    from stream_aimass.training.data import LabelledTexts

    docs = generate_documents(120, seed=5)
    texts = [str(d["text"]) for d in docs]
    labels = [(str(d["meta"]["category_hint"]),) for d in docs]  # type: ignore[index]
    models = tmp_path / "models"
    train_classifier(
        LabelledTexts(texts, labels, False), None, models / "topic-head", name="topic-head",
        encoder_dir=enricher.encoder.model_dir, encoder_name="all-MiniLM-L6-v2",
        config=TrainConfig(mode="head", epochs=10, seed=1),
    )  # fmt: skip
    return models


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except Exception:  # the element is being redrawn
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def rows(driver: Any, table: str) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    body = driver.find_element(By.CSS_SELECTOR, f"#{table} tbody")
    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in body.find_elements(By.TAG_NAME, "tr")]  # fmt: skip


def test_every_panel_shows_data_and_a_training_job_finishes(
    worker: WorkerProcess, broker_process: BrokerProcess, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    docs = generate_documents(40, seed=17)
    produce_documents(broker_process.bootstrap, docs, bad=[b"{broken json"])
    events = generate_events(docs, 60, seed=18)
    produce(broker_process.bootstrap, "aimass.events",
            [json.dumps(e).encode() for e in events],
            [f"{e['tenant']}:{e['user_id']}".encode() for e in events])  # fmt: skip

    browser.get(f"http://127.0.0.1:{worker.port}/console")
    key = browser.find_element(By.ID, "key")
    key.send_keys(ADMIN)
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)

    # Health, refreshing live: documents enriched, lag per group, latency, dead letters.
    wait_for("throughput", lambda: any(r[:2] == ["enrich", "enriched"] and int(r[2]) >= 40
                                       for r in rows(browser, "throughput")))  # fmt: skip
    assert browser.find_element(By.ID, "ready").text == "ready"
    wait_for("lag", lambda: rows(browser, "lag"))
    latency = wait_for("latency", lambda: rows(browser, "latency"))
    assert any(r[0].startswith("enrich/") for r in latency), latency
    wait_for("dead letters", lambda: ["decode", "1"] in rows(browser, "dead"))

    # The model library, and serving a version with a click.
    library = wait_for("library", lambda: rows(browser, "library"))
    assert library[0][0] == "topic-head" and library[0][1] == "classifier"
    browser.find_element(By.CSS_SELECTOR, "#library button.serve").click()
    wait_for("served", lambda: rows(browser, "library")[0][5] == "topic-head")

    # Usage per tenant and hour (a chart and its table), top entities, category mix.
    wait_for("usage", lambda: rows(browser, "usage-table"), timeout=60)
    tenants = {r[0] for r in rows(browser, "usage-table")}
    assert tenants == {d["tenant"] for d in docs}
    wait_for("entities", lambda: rows(browser, "entities"), timeout=60)
    wait_for("categories", lambda: rows(browser, "categories"), timeout=60)
    painted = browser.execute_script(
        "const c = document.getElementById('usage-chart');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;"
    )
    assert painted > 500, "the usage chart drew nothing"

    # Recommendations for a tenant and a user.
    tenant = str(events[0]["tenant"])
    for field, value in (("recs-tenant", tenant), ("recs-user", str(events[0]["user_id"]))):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    browser.find_element(By.ID, "recs-go").click()
    items = wait_for("recommendations", lambda: rows(browser, "recs-items"))
    assert items[0][0] == "1" and len(items) == 10

    # A training job from a file, followed to the end; its model joins the library.
    data = write_intent_csv(tmp_path / "intents.csv")
    browser.find_element(By.ID, "job-file").send_keys(str(data))
    browser.find_element(By.ID, "job-epochs").send_keys("2")
    browser.find_element(By.ID, "job-name").send_keys("intent")
    browser.find_element(By.ID, "job-start").click()
    wait_for("job", lambda: rows(browser, "jobs"))
    state = wait_for("job finished", lambda: (rows(browser, "jobs")[0][3]
                     if rows(browser, "jobs")[0][3] in ("succeeded", "failed") else None),
                     timeout=300)  # fmt: skip
    log = browser.find_element(By.ID, "job-log").text
    assert state == "succeeded", log
    assert "epoch 2" in log and rows(browser, "jobs")[0][6].startswith("intent ")
    wait_for("new model", lambda: any(r[0] == "intent" for r in rows(browser, "library")), 30)
    assert browser.find_element(By.ID, "jobs-error").text == ""

    shot = os.environ.get("AIMASS_CONSOLE_SCREENSHOT") or str(tmp_path / "console.png")
    browser.save_screenshot(shot)
    assert Path(shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
