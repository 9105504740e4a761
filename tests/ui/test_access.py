"""The UI under the registry's access rules (`cairn server --auth`): a reader of one
model sees only that model, the tabs of what it may not read are not offered, a
lineage link to a model it may not read names nothing, and refusals are pages."""

import pytest
import requests
from selenium.webdriver.common.by import By

from conftest import new_driver, write
from infra import CairnServer, cairn


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    work = tmp_path_factory.mktemp("guarded")
    data = str(work / "registry")
    admin = cairn("--registry", data, "token", "create", "--user", "ada", "--role", "admin").stdout.strip()
    server = CairnServer("--auth", "--data", data)
    as_admin = {"CAIRN_TOKEN": admin}
    try:
        write(work / "secret" / "model.bin", b"secret-weights")
        write(work / "public" / "model.bin", b"public-weights")
        cairn("--registry", server.url, "push", "--model", "fraud-detector", str(work / "secret"),
              "--no-git", env=as_admin)
        cairn("--registry", server.url, "push", "--model", "churn", str(work / "public"), "--no-git",
              "--parent", "fraud-detector@1", env=as_admin)
        reader = cairn("--registry", server.url, "token", "create", "--user", "rita", "--role",
                       "reader", "--models", "churn", env=as_admin).stdout.strip()
        yield server.url, reader
    finally:
        server.stop()


@pytest.fixture(scope="module")
def reader_browser(guarded):
    _, reader = guarded
    driver = new_driver()
    # Every request of this browser carries the reader's token.
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                           {"headers": {"Authorization": f"Bearer {reader}"}})
    yield driver
    driver.quit()


def test_a_reader_sees_only_what_it_may_read(guarded, reader_browser):
    url, _ = guarded
    b = reader_browser
    b.get(f"{url}/")
    assert [e.text for e in b.find_elements(By.CSS_SELECTOR, "table#models a.model")] == ["churn"]
    assert b.find_element(By.CSS_SELECTOR, "header .user").text == "rita"
    tabs = [a.text for a in b.find_elements(By.CSS_SELECTOR, "header nav a")]
    assert tabs == ["Models"]
    b.get(f"{url}/models/churn/versions/1")
    lineage = b.find_element(By.ID, "lineage").text
    assert "a version you may not read" in lineage and "fraud-detector" not in lineage
    b.get(f"{url}/models/fraud-detector")
    assert b.find_element(By.TAG_NAME, "h1").text == "403 Forbidden"
    assert "fraud-detector" in b.find_element(By.CSS_SELECTOR, "p.error").text


def test_refusals_are_pages_with_their_status(guarded):
    url, reader = guarded
    r = requests.get(f"{url}/", timeout=10)
    assert r.status_code == 401 and "Basic" in r.headers["www-authenticate"]
    assert r.headers["content-type"].startswith("text/html") and "sign in" in r.text
    as_reader = {"Authorization": f"Bearer {reader}"}
    for path in ("/audit", "/compare?v=churn@1&v=fraud-detector@1", "/experiments/0"):
        r = requests.get(f"{url}{path}", headers=as_reader, timeout=10)
        assert r.status_code == 403, (path, r.text)
        assert r.headers["content-type"].startswith("text/html"), path
