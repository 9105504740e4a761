"""The web UI in a real browser: Debian's headless Chromium, driven by Selenium through
the version-matched chromium-driver, against a `cairn server` seeded through its own
CLI and MLflow's REST API.

Environment:
  CHROMIUM, CHROMEDRIVER   the browser and its driver (default /usr/bin/chromium,
                           /usr/bin/chromedriver)
  CAIRN_UI_SCREENSHOTS     a directory for the pages' screenshots (default: a temporary
                           one); `docs/screenshots` refreshes the README's
"""

import os
import sys
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))

from infra import CairnServer, cairn  # noqa: E402

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not download

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
EXTRA_VERSIONS = 53  # with v1 and v2: 55 versions, two pages of 50


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


def seed_registry(url, work):
    """Two models; `churn` has 55 versions (v2 derives from v1 and differs from it in one
    file, one renamed file, two metrics, a param, the data and requirements.txt),
    aliases moved and rolled back; one experiment with two runs and metric histories."""
    reg = ("--registry", url)
    v1, v2 = work / "v1", work / "v2"
    write(v1 / "model.bin", b"weights-one" * 500)
    write(v1 / "config.json", '{"layers": 3}\n')
    write(v1 / "requirements.txt", "numpy==1.26.4\nscikit-learn==1.4.2\n")
    write(v2 / "model.bin", b"weights-two" * 600)
    write(v2 / "settings.json", '{"layers": 3}\n')
    write(v2 / "requirements.txt", "numpy==1.26.4\nscikit-learn==1.5.0\n")
    data = work / "data"
    write(data / "train.csv", "x,y\n1,0\n2,1\n")
    cairn(*reg, "push", "--model", "churn", str(v1), "--no-git", "--metric", "auc=0.81",
          "--metric", "loss=0.52", "--param", "lr=0.1", "--data", str(data),
          "--env", str(v1 / "requirements.txt"), "--description", "baseline")
    write(data / "train.csv", "x,y\n1,0\n2,1\n3,1\n")
    cairn(*reg, "push", "--model", "churn", str(v2), "--no-git", "--metric", "auc=0.86",
          "--metric", "loss=0.41", "--param", "lr=0.05", "--data", str(data),
          "--env", str(v2 / "requirements.txt"), "--parent", "churn@1")
    for i in range(EXTRA_VERSIONS):
        d = work / f"extra{i}"
        write(d / "model.bin", f"weights-{i}")
        # auc peaks at version 3 + 37 = 40.
        auc = 0.95 - abs(i - 37) / 1000
        cairn(*reg, "push", "--model", "churn", str(d), "--no-git", "--metric", f"auc={auc}")
    cairn(*reg, "alias", "set", "churn", "production", "1", "--reason", "first release")
    cairn(*reg, "alias", "set", "churn", "production", "2", "--reason", "better auc")
    cairn(*reg, "rollback", "churn", "production")
    cairn(*reg, "alias", "set", "churn", "staging", "2")
    write(work / "fraud" / "model.onnx", b"onnx-bytes")
    cairn(*reg, "push", "--model", "fraud-detector", str(work / "fraud"), "--no-git",
          "--metric", "precision=0.9")

    api = f"{url}/api/2.0/mlflow"
    experiment = requests.post(f"{api}/experiments/create", json={"name": "churn-training"},
                               timeout=10).json()["experiment_id"]
    runs = {}
    for name, acc, lr in (("good-run", 0.93, "0.05"), ("weak-run", 0.71, "0.1")):
        run = requests.post(f"{api}/runs/create", json={
            "experiment_id": experiment, "run_name": name, "start_time": int(time.time() * 1000),
        }, timeout=10).json()["run"]["info"]["run_id"]
        runs[name] = run
        metrics = [{"key": "loss", "value": 1.0 / (1 + step / 50), "timestamp": 1_700_000_000_000 + step,
                    "step": step} for step in range(1000)]
        metrics.append({"key": "acc", "value": acc, "timestamp": 1_700_000_000_000, "step": 0})
        r = requests.post(f"{api}/runs/log-batch", json={
            "run_id": run, "metrics": metrics[:1000], "params": [{"key": "lr", "value": lr}],
        }, timeout=30)
        assert r.ok, r.text
        r = requests.post(f"{api}/runs/log-batch", json={"run_id": run, "metrics": metrics[1000:]},
                          timeout=30)
        assert r.ok, r.text
        info = requests.get(f"{api}/runs/get", params={"run_id": run}, timeout=10).json()
        location = info["run"]["info"]["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
        r = requests.put(f"{url}/api/2.0/mlflow-artifacts/artifacts/{location}/model/weights.bin",
                         data=f"weights of {name}".encode(), timeout=10)
        assert r.ok, r.text
    return {"experiment": experiment, "runs": runs}


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    work = tmp_path_factory.mktemp("ui")
    server = CairnServer("--data", str(work / "registry"))
    try:
        seeded = seed_registry(server.url, work)
        yield {"url": server.url, **seeded}
    finally:
        server.stop()


def new_driver():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1360,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture(scope="session")
def browser():
    driver = new_driver()
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory):
    where = os.environ.get("CAIRN_UI_SCREENSHOTS")
    directory = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)

    def take(driver, name):
        path = directory / f"{name}.png"
        driver.save_screenshot(str(path))
        assert path.stat().st_size > 10_000, f"{name}: an empty screenshot"
        return path

    return take
