"""The desk page in a real headless Chromium against a running worker."""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timezone

import orjson
import pytest

from kafka_helpers import produce, read_topic, run

pytestmark = pytest.mark.kafka

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver, which bin/setup --test-tools installs as root",
)
def test_the_seed_alert_appears_on_the_desk_page_with_its_chart_briefs_and_timeline(wirewatch_settings, wirewatch_env, start_worker, seed_page, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    start_worker(wirewatch_env)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        browser.get(f"http://127.0.0.1:{wirewatch_env['WIREWATCH_WEB_PORT']}/")
        assert browser.find_element(By.ID, "spikes").text in ("", "No topic is spiking.")

        # Markup the parser does not remove must show as text, never as HTML.
        hostile = seed_page.replace("Het Europees Parlement laakt", "<marquee onstart=\"document.title='pwned'\">Het Europees Parlement laakt")
        envelope = {"source": "seed", "fetched_at": datetime.now(timezone.utc).isoformat(), "body": hostile}
        run(produce(wirewatch_settings, wirewatch_settings.topic_raw, orjson.dumps(envelope), key=b"seed"))

        deadline = time.monotonic() + 60
        spikes = []
        while time.monotonic() < deadline:
            spikes = browser.find_elements(By.CSS_SELECTOR, "#spikes .spike")
            if spikes and "4 briefs" in spikes[0].text:
                break
            time.sleep(0.5)
        browser.set_window_size(1280, 900)
        browser.save_screenshot(str(tmp_path / "desk.png"))
        assert [spike.get_attribute("data-topic") for spike in spikes] == ["greenland"], "updated without a reload"
        assert "4 briefs" in spikes[0].text

        # The spike's chart: a bar per window step, the four Greenland briefs inside the alert's window,
        # a line for the expected counts, and the moment it was raised.
        chart = spikes[0].find_element(By.CSS_SELECTOR, "svg.chart")
        counts = [int(n) for n in chart.get_attribute("data-counts").split(",")]
        bars = chart.find_elements(By.CSS_SELECTOR, "rect.bar")
        assert len(bars) == len(counts) > 6
        assert sum(int(bar.get_attribute("data-count")) for bar in chart.find_elements(By.CSS_SELECTOR, "rect.in-window")) == 4
        assert chart.find_elements(By.CSS_SELECTOR, "polyline.expected")
        assert chart.find_elements(By.CSS_SELECTOR, "line.marker")

        # The alert opens to its briefs.
        alert = browser.find_element(By.CSS_SELECTOR, "#alerts details[data-topic='greenland']")
        alert.find_element(By.TAG_NAME, "summary").click()
        listed = alert.find_elements(By.TAG_NAME, "li")
        assert len(listed) == 4 and all("Groenland" in item.text for item in listed)
        time.sleep(2.5)  # a refresh keeps it open
        alert = browser.find_element(By.CSS_SELECTOR, "#alerts details[data-topic='greenland']")
        assert alert.get_attribute("open") is not None

        # A story's timeline has a tick per brief.
        # Read in one script: a story that changes is drawn anew, and elements found before that are stale.
        greenland = browser.execute_script(
            "return [...document.querySelectorAll('#stories .story')]"
            ".filter(story => story.textContent.includes('Groenland'))"
            ".map(story => [story.querySelector('.meta').textContent,"
            " story.querySelector('svg.timeline')?.getAttribute('data-briefs')]);"
        )
        assert greenland
        meta, ticks = greenland[0]
        size = int(meta.split(" brief")[0])
        assert size >= 4
        assert ticks == str(size)
        stories = browser.find_element(By.ID, "stories").text
        assert "Groenland" in stories
        assert "<marquee onstart=" in stories, "markup from the wire is shown as text"
        # An unchanged list stays as drawn through refreshes, with a reader's selection and tooltip.
        browser.execute_script("window.markedStory = document.querySelector('#stories .story');")
        time.sleep(2.5)
        assert browser.execute_script("return document.querySelector('#stories .story') === window.markedStory")
        assert browser.title == "wirewatch desk"
        assert not browser.find_elements(By.CSS_SELECTOR, "main marquee")

        # An editor calls the alert noise: the verdict lands on wire.feedback.
        alert = browser.find_element(By.CSS_SELECTOR, "#alerts details[data-topic='greenland']")
        if alert.get_attribute("open") is None:
            alert.find_element(By.TAG_NAME, "summary").click()
        alert.find_element(By.CSS_SELECTOR, "button[data-verdict='noise']").click()
        verdicts = run(read_topic(wirewatch_settings, wirewatch_settings.topic_feedback, at_least=1, timeout=30))
        verdict = orjson.loads(verdicts[0].value)
        assert (verdict["topic"], verdict["verdict"], verdict["desk"]) == ("greenland", "noise", "all")
        assert verdict["alert_id"].startswith("alert-") and verdicts[0].key == b"greenland"
    finally:
        browser.quit()
