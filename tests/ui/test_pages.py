"""Each page of the web UI, driven as a person would in headless Chromium: asserting on
what the page shows, and taking its screenshot."""

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def rows(driver, table):
    return driver.find_elements(By.CSS_SELECTOR, f"table#{table} tbody tr")


def follow(driver, element):
    """Clicks a link or a submit button and waits for the next page to replace this one."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 10).until(EC.staleness_of(page))


def submit(driver, field):
    page = driver.find_element(By.TAG_NAME, "html")
    field.submit()
    WebDriverWait(driver, 10).until(EC.staleness_of(page))


def heading(driver):
    return driver.find_element(By.TAG_NAME, "h1").text


def test_models_list_is_the_root_page_and_searches(registry, browser, screenshots):
    r = requests.get(f"{registry['url']}/", allow_redirects=False, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    browser.get(f"{registry['url']}/")
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "table#models a.model")]
    assert names == ["churn", "fraud-detector"]
    churn = rows(browser, "models")[0].text
    assert "55" in churn and "v55" in churn and "production → v1" in churn
    screenshots(browser, "models")
    box = browser.find_element(By.NAME, "q")
    box.send_keys("fraud")
    submit(browser, box)
    assert "q=fraud" in browser.current_url
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "table#models a.model")]
    assert names == ["fraud-detector"]


def test_model_page_pages_sorts_and_shows_the_alias_timeline(registry, browser, screenshots):
    browser.get(f"{registry['url']}/")
    follow(browser, browser.find_element(By.LINK_TEXT, "churn"))
    assert heading(browser) == "churn"
    versions = rows(browser, "versions")
    assert len(versions) == 50
    assert versions[0].get_attribute("data-version") == "55"
    assert versions[-1].get_attribute("data-version") == "6"
    timeline = rows(browser, "timeline")
    # Newest first: staging set, the rollback (marked), then the two moves of production.
    assert [t.find_elements(By.TAG_NAME, "td")[3].text for t in timeline] == [
        "set", "rollback", "set", "set"]
    assert "rollback" in timeline[1].get_attribute("class")
    assert "v2 → v1" in timeline[1].text and "better auc" in timeline[2].text
    screenshots(browser, "model")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "a[rel=next]"))
    assert [v.get_attribute("data-version") for v in rows(browser, "versions")] == [
        "5", "4", "3", "2", "1"]
    # Sorted by a metric: the best auc first.
    follow(browser, browser.find_element(By.LINK_TEXT, "auc"))
    assert "sort=metric%3Aauc" in browser.current_url or "sort=metric:auc" in browser.current_url
    assert rows(browser, "versions")[0].get_attribute("data-version") == "40"


def test_version_page_links_to_its_parent_through_the_lineage_graph(registry, browser, screenshots):
    browser.get(f"{registry['url']}/models/churn/versions/2")
    assert heading(browser) == "churn@2"
    files = [r.find_element(By.TAG_NAME, "a").text for r in rows(browser, "files")]
    assert files == ["model.bin", "requirements.txt", "settings.json"]
    metrics = browser.find_element(By.ID, "metrics").text
    assert "auc 0.86" in metrics and "loss 0.41" in metrics
    lineage = browser.find_element(By.ID, "lineage")
    assert "data" in lineage.text and "requirements.txt" in lineage.text
    audit = rows(browser, "audit")
    assert any(r.get_attribute("data-action") == "version.create" for r in audit)
    screenshots(browser, "version")
    download = browser.find_element(By.LINK_TEXT, "settings.json").get_attribute("href")
    assert requests.get(download, timeout=10).text == '{"layers": 3}\n'
    follow(browser, lineage.find_element(By.LINK_TEXT, "churn@1"))
    assert heading(browser) == "churn@1"
    # The parent knows its child.
    assert browser.find_element(By.ID, "lineage").find_element(By.LINK_TEXT, "churn@2")


def test_compare_highlights_changes_and_charts_shared_metrics(registry, browser, screenshots):
    browser.get(f"{registry['url']}/models/churn?page=2")
    for version in ("1", "2"):
        browser.find_element(By.CSS_SELECTOR, f"input[name=v][value='churn@{version}']").click()
    follow(browser, browser.find_element(By.CSS_SELECTOR, "#versions-form button[type=submit]"))
    assert heading(browser) == "Compare versions"
    metrics = {r.get_attribute("data-key"): r for r in rows(browser, "metrics")}
    assert set(metrics) == {"auc", "loss"}
    for key in ("auc", "loss"):
        cells = metrics[key].find_elements(By.TAG_NAME, "td")
        assert "changed" not in cells[0].get_attribute("class")
        assert "changed" in cells[1].get_attribute("class")
    assert "+0.05" in metrics["auc"].text
    charts = browser.find_elements(By.CSS_SELECTOR, ".bar-chart")
    assert sorted(c.get_attribute("data-metric") for c in charts) == ["auc", "loss"]
    assert all(len(c.find_elements(By.TAG_NAME, "rect")) == 2 for c in charts)
    params = {r.get_attribute("data-key"): r for r in rows(browser, "params")}
    assert "changed" in params["lr"].find_elements(By.TAG_NAME, "td")[1].get_attribute("class")
    diff = browser.find_element(By.CSS_SELECTOR, ".diff").text
    assert "config.json renamed → settings.json" in diff
    assert "model.bin changed" in diff and "data changed" in diff
    assert "+scikit-learn==1.5.0" in diff and "-scikit-learn==1.4.2" in diff
    screenshots(browser, "compare")


def test_audit_log_filters_and_shows_the_chain(registry, browser, screenshots):
    browser.get(f"{registry['url']}/audit")
    chain = browser.find_element(By.ID, "chain").text
    assert "chain verified" in chain
    # Every entry fits one page (100): 55 + 1 versions (a push creates its model), 4
    # alias moves.
    entries = int(chain.split("—")[1].split()[0])
    assert entries == 60
    assert [int(r.find_element(By.TAG_NAME, "td").text) for r in rows(browser, "audit")] == list(
        range(entries, 0, -1))
    screenshots(browser, "audit")
    box = browser.find_element(By.NAME, "action")
    box.send_keys("alias")
    submit(browser, box)
    assert "action=alias" in browser.current_url
    actions = [r.get_attribute("data-action") for r in rows(browser, "audit")]
    assert len(actions) == 4 and all(a.startswith("alias.") for a in actions)
    browser.get(f"{registry['url']}/audit?model=fraud-detector")
    targets = [r.find_elements(By.TAG_NAME, "td")[4].text for r in rows(browser, "audit")]
    assert targets and all(t.startswith("fraud-detector") for t in targets)


def test_runs_filter_and_the_metric_chart_draws(registry, browser, screenshots):
    browser.get(f"{registry['url']}/experiments")
    follow(browser, browser.find_element(By.LINK_TEXT, "churn-training"))
    assert sorted(r.find_element(By.TAG_NAME, "a").text for r in rows(browser, "runs")) == [
        "good-run", "weak-run"]
    screenshots(browser, "experiment")
    box = browser.find_element(By.NAME, "filter")
    box.send_keys("metrics.acc > 0.9")
    submit(browser, box)
    assert "filter=" in browser.current_url
    assert [r.find_element(By.TAG_NAME, "a").text for r in rows(browser, "runs")] == ["good-run"]
    follow(browser, browser.find_element(By.LINK_TEXT, "good-run"))
    chart = browser.find_element(By.CSS_SELECTOR, ".chart[data-metric=loss]")
    WebDriverWait(browser, 10).until(lambda _: chart.get_attribute("data-points"))
    assert chart.get_attribute("data-points") == "1000"
    assert chart.find_element(By.TAG_NAME, "canvas").size["width"] > 300
    assert "lr" in browser.find_element(By.ID, "params").text
    screenshots(browser, "run")
    follow(browser, browser.find_element(By.LINK_TEXT, "model/"))
    weights = browser.find_element(By.LINK_TEXT, "weights.bin").get_attribute("href")
    assert requests.get(weights, timeout=10).content == b"weights of good-run"


def test_errors_are_pages(registry, browser):
    browser.get(f"{registry['url']}/models/no-such-model")
    assert heading(browser) == "404 Not Found"
    assert "does not exist" in browser.find_element(By.CSS_SELECTOR, "p.error").text
    r = requests.get(f"{registry['url']}/compare?v=churn@1", timeout=10)
    assert r.status_code == 400 and "compare takes 2 to 5 versions" in r.text
    r = requests.get(f"{registry['url']}/models/churn?sort=size", timeout=10)
    assert r.status_code == 400 and "cannot sort by" in r.text
