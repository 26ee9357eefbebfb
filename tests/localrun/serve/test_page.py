"""serve's web page in Debian's headless Chromium (Selenium 4 + chromedriver)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from panorama_cli.localrun.serve.http import HttpServer
from panorama_cli.localrun.serve.metrics import ModelLatency
from tests.localrun.serve.fake_view import FakeView, FrameThread, served_with_token
from tests.support.ci import unavailable

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        unavailable(
            "Debian's chromium and chromium-driver are not installed (/usr/bin/chromium, /usr/bin/chromedriver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
    ):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium", ignore_errors=True)


@pytest.fixture
def served(tmp_path):
    view = FakeView(tmp_path / "state")
    server = HttpServer(view, "127.0.0.1", 0, ModelLatency())
    with FrameThread(view.live_frames["cam1"]):
        server.start()
        try:
            yield view, server
        finally:
            server.stop()


def test_page_shows_stream_graph_and_live_tables(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    view, server = served
    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 10)

    # the MJPEG stream really decodes in the browser
    img = browser.find_element(By.CSS_SELECTOR, "img.stream#stream-cam1")
    assert img.get_attribute("src").endswith("/streams/cam1.mjpeg")
    wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", img) > 0)
    assert browser.execute_script("return arguments[0].naturalHeight", img) == 240

    # one SVG box per graph node, one arrow per edge
    names = {n["name"] for n in view.graph()["nodes"]}
    boxes = browser.find_elements(By.CSS_SELECTOR, "svg#graph g.node")
    assert {b.get_attribute("data-node") for b in boxes} == names
    kinds = {b.get_attribute("data-node"): b.get_attribute("data-kind") for b in boxes}
    assert kinds["model_node"] == "model" and kinds["hdmi"] == "hdmi"
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg#graph line.edge")) == 3

    # the tables come from /api/status and follow it
    def state_cell(d):
        cells = d.find_elements(By.CSS_SELECTOR, '#nodes-table tr[data-node="code_node"] td.state')
        return cells[0].text if cells else None

    wait.until(lambda d: state_cell(d) == "running")
    from selenium.common.exceptions import StaleElementReferenceException

    # the tables are replaced every second: read a row's text within one look
    cam2 = WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_element(By.CSS_SELECTOR, '#cameras-table tr[data-camera="cam2"]').text
    )
    assert "rtsp://***@h/x" in cam2
    assert browser.find_elements(By.CSS_SELECTOR, '#models-table tr[data-model="model_node"]')

    # a model node has no edge: its call arrow shows once the node has called it
    call = browser.find_element(
        By.CSS_SELECTOR,
        'svg#graph line.call[data-producer="code_node"][data-consumer="model_node"]',
    )

    def shown(d):  # computed style: Selenium calls a flat (horizontal) line invisible
        return d.execute_script("return getComputedStyle(arguments[0]).display", call) != "none"

    assert not shown(browser)
    view.callers = ["code_node"]
    WebDriverWait(browser, 5).until(shown)
    view.node_state, view.restarts = "failed", 5
    WebDriverWait(browser, 5).until(lambda d: state_cell(d) == "failed")
    row = browser.find_element(By.CSS_SELECTOR, '#nodes-table tr[data-node="code_node"]')
    assert row.find_elements(By.TAG_NAME, "td")[3].text == "5"
    failed = browser.find_element(By.CSS_SELECTOR, 'svg#graph g.node[data-node="code_node"]')
    assert "state-failed" in failed.get_attribute("class")

    # the clip list links to the clip
    link = wait.until(
        lambda d: d.find_elements(
            By.CSS_SELECTOR, '#clips-table tr[data-clip="code_node/event-1.mp4"] a'
        )
    )[0]
    assert link.get_attribute("href") == server.url + "/clips/code_node/event-1.mp4"


@pytest.fixture
def served_with_login(tmp_path):
    with served_with_token(tmp_path / "state") as served:
        yield served


def test_the_browser_logs_in_with_the_form_or_the_login_url(browser, served_with_login):
    """Without a session the browser gets the login form (no stream, no graph); the token
    pasted there, or the login URL, gives a session cookie JavaScript cannot read, and the
    page's stream and tables then load through it; the token leaves the address bar."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, token = served_with_login
    wait = WebDriverWait(browser, 10)
    browser.get(server.url + "/")
    assert browser.find_elements(By.CSS_SELECTOR, "form#login")
    assert not browser.find_elements(By.CSS_SELECTOR, "img.stream, svg#graph")

    field = browser.find_element(By.CSS_SELECTOR, "input#token")
    field.send_keys("not the token")
    field.submit()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#login-error"))
    assert "wrong token" in browser.find_element(By.CSS_SELECTOR, "#login-error").text

    field = browser.find_element(By.CSS_SELECTOR, "input#token")
    field.send_keys(token)
    field.submit()
    img = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "img.stream#stream-cam1"))[0]
    assert browser.current_url == server.url + "/"
    wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", img) > 0)
    wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '#nodes-table tr[data-node="code_node"]')
    )  # /api/status answered the page's script (the cookie went with fetch)
    cookie = browser.get_cookie(server.auth.cookie)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # not readable by scripts

    browser.delete_all_cookies()
    browser.get(server.url + "/")
    assert browser.find_elements(By.CSS_SELECTOR, "form#login")
    browser.get(f"{server.url}/?token={token}")  # the login URL serve printed
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "img.stream#stream-cam1"))
    assert browser.current_url == server.url + "/" and token not in browser.current_url
    # CSP: nothing inline beyond the nonced script ran into a violation
    logs = [e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not logs, logs
