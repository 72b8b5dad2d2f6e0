"""The dashboard in a real browser: Debian's chromium, headless, driven by selenium through chromium-driver, against
the real ``dtr serve`` and real SDK worker processes on loopback.

Screenshots of the main views at 1280 and 390 px, light and dark, are written to ``$DTR_ARTIFACTS/dashboard``
(default ``python/tests/artifacts/dashboard``, git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from conftest import DEAD_AFTER, FAST, REPO, free_port, wait_until
from dtruntime import DatasetRegistry

ARTIFACTS = Path(os.environ.get("DTR_ARTIFACTS") or REPO / "python" / "tests" / "artifacts") / "dashboard"
ADMIN_TOKEN = "dashboard-admin-token-0123456789"
# Blue of the first line colour (PALETTE[0] in dashboard/src/components/Charts.tsx).
FIRST_LINE_RGB = (0x3B, 0x82, 0xF6)


class Browser:
    """A headless chromium page with the helpers the tests need."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    def open(self, url: str) -> None:
        self.driver.get(url)

    def emulate(self, width: int, height: int = 900, scheme: str = "light") -> None:
        """A viewport of ``width`` CSS pixels (a phone's below 600) and a prefers-color-scheme."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        self.driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
        )

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def exists(self, css: str) -> bool:
        return bool(self.find_all(css))

    def wait(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Polls ``condition`` (elements that vanish or re-render in between count as "not yet")."""

        def attempt() -> Any:
            try:
                return condition()
            except (NoSuchElementException, StaleElementReferenceException):
                return None

        return wait_until(attempt, timeout=timeout, interval=0.05)

    def wait_for(self, css: str, timeout: float = 10.0) -> WebElement:
        return self.wait(lambda: self.find(css), timeout)

    def text(self, css: str) -> str:
        return self.find(css).text

    def attribute(self, css: str, name: str) -> str | None:
        return self.find(css).get_attribute(name)

    def connection(self) -> str | None:
        """The connection state the header shows (``live``, ``disconnected``, ...)."""
        pills = self.find_all("[data-connection]")
        return pills[0].get_attribute("data-connection") if pills else None

    def wait_live(self, timeout: float = 15.0) -> None:
        """Until the page follows the coordinator's event stream."""
        self.wait(lambda: self.connection() == "live", timeout)

    def console_errors(self) -> list[dict[str, Any]]:
        """Browser console entries at error level since the last call (failed loads, exceptions)."""
        return [entry for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def session_token(self) -> str | None:
        return self.driver.execute_script("return sessionStorage.getItem('dtruntime.admin-token')")

    def screenshot(self, path: Path, width: int) -> None:
        """The whole page (not only the viewport) as a PNG."""
        height = self.driver.execute_script("return Math.ceil(document.body.getBoundingClientRect().height)")
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": min(int(height), 6000), "deviceScaleFactor": 1, "mobile": width < 600},
        )
        time.sleep(0.3)  # charts resize to the new viewport
        path.parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(path)), f"chromium wrote no screenshot to {path}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.fail("chromium and chromedriver are needed: run scripts/setup.sh (Debian's chromium, chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield Browser(driver)
    finally:
        driver.quit()


@pytest.fixture
def page(browser: Browser) -> Iterator[Browser]:
    """The browser at 1280 px, light, with an empty console; left on a blank page (no stream open) afterwards."""
    browser.emulate(1280)
    browser.open("about:blank")
    browser.console_errors()
    yield browser
    browser.open("about:blank")


def fill(field: WebElement, text: str) -> None:
    """Replaces a field's text by typing, as a person would (WebElement.clear() bypasses React's change events)."""
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    if text:
        field.send_keys(text)


def row_status(browser: Browser, worker_id: str) -> str | None:
    rows = browser.find_all(f'tr[data-worker-id="{worker_id}"]')
    return rows[0].get_attribute("data-status") if rows else None


# MARK: loading, live updates, failure detection


def test_the_page_loads_without_console_errors_and_says_how_to_start_workers(coordinator_factory, page):
    coordinator = coordinator_factory()
    page.open(coordinator.http_url + "/")
    page.wait_live()
    empty = page.wait_for(".state-empty").text
    assert "No workers yet" in empty
    assert "dtrun --nproc 4 examples/real_training_simple.py" in empty
    assert "python examples/real_training_simple.py" in empty
    assert f"DTR_COORDINATOR=127.0.0.1:{coordinator.grpc_port}" in empty, "the commands point at this coordinator"
    assert coordinator.get_json("/api/status")["version"] in page.text(".coordinator")
    # Every view renders from the nav, and nothing the page loads comes from another origin.
    for link in page.find_all("nav.tabs a"):
        title = link.text
        link.click()
        page.wait(lambda title=title: page.text("main h1") == title)
    resources = page.driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources, "the page loaded its script and stylesheet"
    assert all(url.startswith(coordinator.http_url + "/") for url in resources), resources
    assert page.console_errors() == []


def test_a_registering_worker_appears_within_two_seconds_without_a_reload(coordinator_factory, spawn_worker, page):
    coordinator = coordinator_factory()
    page.open(coordinator.http_url + "/#/workers")
    page.wait_live()
    page.driver.execute_script("window.dtrNotReloaded = true")
    worker = spawn_worker(coordinator.grpc_address, "w-joiner")
    worker.wait_for(lambda event: event["event"] == "registered")
    registered = time.monotonic()
    page.wait(lambda: row_status(page, "w-joiner") == "healthy", timeout=2.0)
    assert time.monotonic() - registered <= 2.0
    assert page.driver.execute_script("return window.dtrNotReloaded === true"), "the page was not reloaded"
    assert page.console_errors() == []


def test_a_worker_killed_with_sigkill_shows_dead_within_the_dead_timeout(coordinator_factory, spawn_worker, page):
    coordinator = coordinator_factory()
    survivor = spawn_worker(coordinator.grpc_address, "w-survivor")
    doomed = spawn_worker(coordinator.grpc_address, "w-doomed")
    for worker in (survivor, doomed):
        worker.wait_for(lambda event: event["event"] == "registered")
    page.open(coordinator.http_url + "/#/workers")
    page.wait(lambda: row_status(page, "w-doomed") == "healthy")
    doomed.kill()  # SIGKILL
    killed = time.monotonic()
    page.wait(lambda: row_status(page, "w-doomed") == "dead", timeout=DEAD_AFTER + 2.0)
    assert time.monotonic() - killed <= DEAD_AFTER + 2.0
    row = page.find('tr[data-worker-id="w-doomed"]')
    assert "DEAD" in row.text.upper(), "the status is in words, not only in colour"
    assert row_status(page, "w-survivor") == "healthy"
    # The filter is in the URL: a deep link shows the healthy workers only.
    page.open(coordinator.http_url + "/#/workers?status=healthy")
    page.wait(lambda: row_status(page, "w-survivor") == "healthy")
    assert row_status(page, "w-doomed") is None
    assert page.find("#filter-status").get_attribute("value") == "healthy"


COUNT_LINE_PIXELS = """
const canvas = document.querySelector(arguments[0]);
const [r, g, b] = arguments[1];
const height = Math.floor(canvas.height * 0.75);  // above the legend
const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, height).data;
let count = 0;
for (let i = 0; i < data.length; i += 4) {
  const near = Math.abs(data[i] - r) < 48 && Math.abs(data[i + 1] - g) < 48 && Math.abs(data[i + 2] - b) < 48;
  if (data[i + 3] > 128 && near) count++;
}
return count;
"""


def test_a_reported_metric_appears_on_the_training_chart(coordinator_factory, spawn_worker, page):
    coordinator = coordinator_factory()
    worker = spawn_worker(coordinator.grpc_address, "w-metrics", "--task", "mnist")  # reports loss = 1/step
    worker.wait_for(lambda event: event["event"] == "registered")
    page.open(coordinator.http_url + "/#/training?task=mnist")
    figure = 'figure[data-metric="loss"]'
    first = page.wait(lambda: int(page.attribute(figure, "data-latest-step") or 0))
    assert "loss" in page.text(figure + " figcaption") and "1 worker" in page.text(figure + " figcaption")
    # The chart follows the reports as they come.
    page.wait(lambda: int(page.attribute(figure, "data-latest-step") or 0) > first, timeout=10)
    label = page.attribute(figure + " canvas", "aria-label") or ""
    assert "loss against step in task mnist" in label and "w-metrics" in label
    # Drawn: the worker's line (in the first line colour) covers the plot, not just a legend swatch.
    page.wait(lambda: page.driver.execute_script(COUNT_LINE_PIXELS, figure + " canvas", FIRST_LINE_RGB) > 150)
    assert page.console_errors() == []


# MARK: tasks


def test_a_task_created_through_the_form_is_listed_and_its_stop_button_stops_its_workers(
    coordinator_factory, spawn_worker, page
):
    coordinator = coordinator_factory()
    coordinator.post_json("/api/tasks", {"name": "taken"})
    page.open(coordinator.http_url + "/#/tasks")
    name, world_size, config = (page.wait_for(f"#task-{field}") for field in ("name", "world_size", "config"))
    submit = page.find('form.task-form button[type="submit"]')

    # Checked before sending: the errors show on their fields and nothing reaches the coordinator.
    name.send_keys("bad name!")
    config.send_keys("{not json")
    submit.click()
    assert "letters, digits" in page.wait_for("#task-name-error").text
    assert "not valid JSON" in page.text("#task-config-error")
    assert name.get_attribute("aria-invalid") == "true" and config.get_attribute("aria-invalid") == "true"
    assert [task["task_id"] for task in coordinator.get_json("/api/tasks")["tasks"]] == ["taken"]

    # The server's own error, inline on the field it names.
    fill(name, "taken")
    fill(config, "")
    submit.click()
    server_error = coordinator.post_json("/api/tasks", {"name": "taken"})["error"]["message"]
    page.wait(lambda: page.text("#task-name-error") == server_error)

    fill(name, "resnet")
    fill(world_size, "2")
    fill(config, '{"lr": 0.1}')
    submit.click()
    page.wait(lambda: page.attribute('tr[data-task-id="resnet"]', "data-status") == "pending")
    assert "resnet" in page.text(".form-status")
    task = coordinator.get_json("/api/tasks/resnet")
    assert (task["world_size"], task["config"], task["created_by"]) == (2, {"lr": 0.1}, "api")

    workers = [spawn_worker(coordinator.grpc_address, f"r{i}", "--task", "resnet") for i in range(2)]
    for worker in workers:
        worker.wait_for(lambda event: event["event"] == "registered")
    row = 'tr[data-task-id="resnet"]'
    page.wait(lambda: page.attribute(row, "data-status") == "running" and "2 / 2" in page.text(row))

    page.find('button[aria-label="Stop task resnet"]').click()
    dialog = page.wait_for("dialog[open]")
    assert "Stop task resnet?" in dialog.text and "2 workers" in dialog.text
    dialog.find_element(By.XPATH, ".//button[normalize-space()='Stop task']").click()
    for worker in workers:
        worker.wait_for(lambda event: event["event"] == "exited", timeout=15)
        assert worker.process.wait(timeout=15) == 0
    page.wait(lambda: page.attribute(row, "data-status") == "stopped", timeout=15)
    assert not page.exists("dialog[open]")
    unexpected = [entry for entry in page.console_errors() if "/api/tasks - " not in entry["message"]]
    assert unexpected == [], "only the refused POST (409) was logged"


# MARK: connection and token


def test_stopping_the_coordinator_shows_the_banner_and_restarting_it_clears_it(coordinator_factory, spawn_worker, page):
    ports = {"grpc_port": free_port(), "http_port": free_port()}
    coordinator = coordinator_factory(**ports)
    page.open(coordinator.http_url + "/")
    page.wait_live()
    assert not page.exists("[data-testid=disconnected-banner]")

    assert coordinator.stop() == 0
    banner = page.wait(lambda: page.find("[data-testid=disconnected-banner]"), timeout=10)
    assert "Disconnected from the coordinator" in banner.text
    assert re.search(r"retrying in \d+ s", banner.text), banner.text
    assert page.connection() == "disconnected"

    restarted = coordinator_factory(**ports)  # same ports, same data directory
    page.wait(lambda: not page.exists("[data-testid=disconnected-banner]"), timeout=15)
    page.wait_live()
    # The page follows the new run: a worker that joins it shows up.
    worker = spawn_worker(restarted.grpc_address, "w-after-restart")
    worker.wait_for(lambda event: event["event"] == "registered")
    page.open(restarted.http_url + "/#/workers")
    page.wait(lambda: row_status(page, "w-after-restart") == "healthy")


def test_with_an_admin_token_the_page_asks_for_it_and_refuses_a_wrong_one(coordinator_factory, spawn_worker, page):
    coordinator = coordinator_factory(args=[*FAST, "--admin-token", ADMIN_TOKEN])
    page.open(coordinator.http_url + "/")
    field = page.wait_for("#admin-token")
    assert "needs its admin token" in page.text("main")

    field.send_keys("wrong-token-0123456789", Keys.ENTER)
    error = page.wait_for("#admin-token-error").text
    assert "refused" in error and "check it and try again" in error
    assert page.exists("#admin-token") and page.session_token() is None

    field = page.find("#admin-token")
    fill(field, ADMIN_TOKEN)
    field.send_keys(Keys.ENTER)
    page.wait(lambda: not page.exists("#admin-token") and page.exists(".tiles"))
    page.wait_live()  # the event stream took a ticket
    assert page.session_token() == ADMIN_TOKEN

    page.open(coordinator.http_url + "/#/workers")  # kept for the tab: not asked again
    worker = spawn_worker(coordinator.grpc_address, "w-secured")
    worker.wait_for(lambda event: event["event"] == "registered")
    page.wait(lambda: row_status(page, "w-secured") == "healthy")
    assert not page.exists("#admin-token")

    page.find("button.button-quiet").click()  # "Forget token"
    page.wait_for("#admin-token")
    assert page.session_token() is None


# MARK: keyboard, layout, screenshots


def test_the_views_work_from_the_keyboard(coordinator_factory, spawn_worker, page):
    coordinator = coordinator_factory()
    for worker in [spawn_worker(coordinator.grpc_address, f"k{i}") for i in range(2)]:
        worker.wait_for(lambda event: event["event"] == "registered")
    page.open(coordinator.http_url + "/")
    page.wait_for(".tiles")

    def active() -> WebElement:
        return page.driver.switch_to.active_element

    def tab_to(predicate: Callable[[WebElement], bool], limit: int = 40) -> WebElement:
        for _ in range(limit):
            ActionChains(page.driver).send_keys(Keys.TAB).perform()
            if predicate(active()):
                return active()
        raise AssertionError("not reachable with the Tab key")

    skip = tab_to(lambda element: element.text == "Skip to content")
    assert skip.value_of_css_property("outline-style") != "none", "focus is visible"
    tab_to(lambda element: element.text == "Workers" and element.tag_name == "a").send_keys(Keys.ENTER)
    page.wait(lambda: page.text("main h1") == "Workers")
    step_header = 'th[data-column="step"]'
    tab_to(lambda element: element.tag_name == "button" and element.text.startswith("Step")).send_keys(Keys.ENTER)
    page.wait(lambda: page.attribute(step_header, "aria-sort") == "ascending")
    ActionChains(page.driver).send_keys(Keys.ENTER).perform()
    page.wait(lambda: page.attribute(step_header, "aria-sort") == "descending")
    assert "sort=step" in page.driver.current_url and "dir=desc" in page.driver.current_url
    for control in page.find_all("main input, main select"):
        control_id = control.get_attribute("id")
        assert control_id and page.exists(f'label[for="{control_id}"]'), f"{control_id} has a label"


SCREENSHOT_VIEWS = ["", "workers", "training?task=mnist", "datasets", "barriers", "checkpoints", "tasks", "logs"]


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_screenshots_at_1280_and_390_px_light_and_dark(coordinator_factory, spawn_worker, page):
    coordinator = coordinator_factory()
    coordinator.post_json("/api/tasks", {"name": "mnist", "world_size": 3, "dataset": "digits", "epochs": 100})
    DatasetRegistry(coordinator.grpc_address).register("digits", total_samples=1797, shard_size=50, shuffle=True)
    workers = [
        spawn_worker(
            coordinator.grpc_address,
            f"mnist-{i}",
            "--task",
            "mnist",
            "--dataset",
            "digits",
            "--step-seconds",
            "0.15" if i == 2 else "0.05",
            script="dashboard_worker.py",
        )
        for i in range(3)
    ] + [
        spawn_worker(
            coordinator.grpc_address,
            f"resnet-{i}",
            "--task",
            "resnet",
            "--sync-every",
            "20",
            "--world-size",
            "2",
            script="dashboard_worker.py",
        )
        for i in range(2)
    ]
    for worker in workers:
        worker.wait_for(lambda event: event["event"] == "registered")
    wait_until(lambda: coordinator.get_json("/api/checkpoints")["checkpoints"], timeout=30)

    shots = []
    for scheme in ("light", "dark"):
        for width in (1280, 390):
            for view in SCREENSHOT_VIEWS:
                page.emulate(width, scheme=scheme)
                page.open(f"{coordinator.http_url}/#/{view}")
                page.wait_live()
                page.wait(lambda: page.exists("main h1") and not page.exists(".state-loading"))
                time.sleep(0.5)  # let the charts draw
                overflow = page.driver.execute_script("return document.documentElement.scrollWidth")
                assert overflow <= width, f"#/{view} is {overflow} px wide at {width} px: it scrolls sideways"
                name = (view.split("?")[0] or "overview") + f"-{width}-{scheme}.png"
                page.screenshot(ARTIFACTS / name, width)
                shots.append(ARTIFACTS / name)
    for shot in shots:
        assert png_size(shot)[0] == int(shot.stem.split("-")[-2]), f"{shot} has the width of its viewport"
    assert page.console_errors() == []
