"""`kextlog web` for real: a store written by a real ingest (the simulated
kext and a hostile producer as sources), the server as a subprocess of
`kextlog web`, and Debian's headless Chromium driven through
chromium-driver (`tests/install-packages.sh web` installs them, as `make
test` does; in CI, CI=true, a missing browser fails the tests instead of
skipping them: conftest.unavailable).

The pages are compared with the CLI run as a subprocess with the same
filters: the rows of the log with `kextlog query -r -o json`, its exports
with `kextlog query -o json|csv`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kextlog_store._native import ffi, lib
from tests.conftest import content_checksum, unavailable
from tests.processes import environment, kextlog, start, wait_for_socket
from tests.test_ingest_hostile import Producer

pytestmark = pytest.mark.slow

HOSTILE_MESSAGE = "<script>alert(1)</script><img src=x onerror=alert(2)> & </td></tr>"
HOSTILE_PROCESS = "<img src=x onerror=alert(3)>"
BIG_TID = 2**60 + 7  # beyond 2**53: JavaScript would round it
SIMULATED = 3000
LINES = 200  # the log page's default


# --- the store: a real ingest of the simulated kext and a hostile producer ----------


def loss_frame(first: int, last: int, first_ns: int, last_ns: int) -> bytes:
    frame = ffi.new("struct kextlog_loss_frame *")
    length = lib.kextlog_encode_loss(frame, first, last, first_ns, last_ns, 1)  # ring full
    return bytes(ffi.buffer(frame, length))


def log_frame(seq: int, message: str, process: str, level: int, time_ns: int, tid: int) -> bytes:
    frame = ffi.new("char[]", lib.KEXTLOG_FRAME_MAX)
    log = ffi.cast("struct kextlog_log_frame *", frame)
    text = message.encode()
    length = lib.kextlog_encode_log(
        log, seq, time_ns, 42, 4242, tid, process.encode(), level, 0, text, len(text)
    )
    return bytes(ffi.buffer(frame, length))


@dataclass(frozen=True)
class Store:
    path: Path
    hostile: str  # the hostile producer's instance id
    simulated: str  # the simulated kext's source


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """SIMULATED records of the simulated kext, and from a hostile producer
    records whose message and process name are HTML and script, with seqs
    4..6 lost: all stored by one real ingest."""
    directory = tmp_path_factory.mktemp("web")
    db, sim, hostile_socket = directory / "k.db", directory / "sim.sock", directory / "hostile.sock"
    simulator = start(
        "simulate", "--socket", str(sim), "--rate", "1000", "--count", str(SIMULATED),
        "--quiet-losses",
    )  # fmt: skip
    producer = Producer(hostile_socket, __import__("socket").SOCK_SEQPACKET)
    wait_for_socket(sim)
    ingest = start(
        "ingest", "--source", f"unix:{sim}", "--source", f"unix:{hostile_socket}",
        "--db", str(db), log=directory / "ingest.log",
    )  # fmt: skip
    try:
        producer.accept()
        now = time.time_ns()
        frames = [
            log_frame(1, "an ordinary line", "kernel_task", 3, now - 3_000_000, 1),
            log_frame(2, HOSTILE_MESSAGE, HOSTILE_PROCESS, 5, now - 2_000_000, BIG_TID),
            log_frame(3, "before the loss", "kernel_task", 4, now - 1_000_000, 3),
            loss_frame(4, 6, now - 900_000, now - 500_000),
            log_frame(7, "after the loss", "kernel_task", 3, now, 7),
        ]
        producer.send(*frames)
        producer.wait_for_ack(7)
        out, _ = simulator.communicate(timeout=120)
        assert json.loads(out)["acked"] == SIMULATED
    finally:
        stop(ingest)
        producer.close()
        if simulator.poll() is None:
            simulator.kill()
            simulator.wait()
    return Store(db, producer.instance.hex, f"unix:{sim}")


# --- the server and the browser ------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log: Path  # its stderr

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
        """(status, content type, body) of a GET."""
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.headers["content-type"], response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["content-type"], exc.read().decode()


def serve(log: Path, *args: str) -> Server:
    process = start("web", "--port", "0", *args, log=log)
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"at (http://\S+)/$", line.strip())
    if found is None:
        process.kill()
        process.wait(timeout=30)
        raise AssertionError(f"kextlog web did not start: {line!r} {log.read_text()}")
    return Server(found[1], process, log)


@pytest.fixture(scope="module")
def server(ingested: Store) -> Iterator[Server]:
    running = serve(ingested.path.with_name("web.log"), "--db", str(ingested.path))
    yield running
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=30) == 0
    # Whatever went wrong in a page is in its log, with the traceback.
    assert "Traceback" not in running.log.read_text(), running.log.read_text()


CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
)  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, through chromium-driver and selenium."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        unavailable(
            "no chromium or chromedriver on PATH: tests/install-packages.sh web installs them"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kextlog-chromium-")
    options = webdriver.ChromeOptions()
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def problems(driver: Any) -> list[dict[str, Any]]:
    """The console's errors and warnings since the last call (and an alert
    that a script opened, which is one)."""
    from selenium.common.exceptions import NoAlertPresentException

    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        found = []
    else:
        found = [{"level": "ALERT", "message": alert.text}]
        alert.dismiss()
    return found + [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def wait(driver: Any, condition: str, timeout: float = 30) -> Any:
    """Until the JavaScript expression is truthy; its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: d.execute_script(f"return {condition};")
    )


def click_to_load(driver: Any, element: Any) -> None:
    """Click what loads a new page, and wait until it has loaded (not
    just until the old page is still there)."""
    driver.execute_script("document.documentElement.dataset.old = '1';")
    element.click()
    wait(driver, "!document.documentElement.dataset.old && document.readyState === 'complete'")


def open_log(driver: Any, server: Server, query: str = "") -> None:
    """The log page, once its chart and facets are in (or have failed)."""
    problems(driver)  # what came before is not this page's
    driver.get(server.url + "/" + (f"?{query}" if query else ""))
    wait(driver, "document.querySelector('#facets section.facet') !== null")
    wait(driver, "document.getElementById('rate').dataset.series !== undefined"
                 " || document.querySelector('.chart-box').hidden")  # fmt: skip


def shown_rows(driver: Any) -> list[tuple[str, int]]:
    return [
        (instance, int(seq))
        for instance, seq in driver.execute_script(
            "return [...document.querySelectorAll('#log tr.record')]"
            ".map(tr => [tr.dataset.instance, tr.dataset.seq]);"
        )
    ]


def shown_markers(driver: Any) -> list[str]:
    return driver.execute_script(  # type: ignore[no-any-return]
        "return [...document.querySelectorAll('#log tr.loss td.marker')].map(td => td.textContent);"
    )


def query_json(db: Path, *args: str) -> list[dict[str, Any]]:
    result = kextlog("query", "--db", str(db), "--no-pager", "-o", "json", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def query_markers(db: Path, *args: str) -> list[str]:
    result = kextlog("query", "--db", str(db), "--no-pager", *args)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith("-- ")]


# --- the tests -----------------------------------------------------------------------


def test_the_log_loads_without_console_errors(
    browser: Any, server: Server, ingested: Store
) -> None:
    open_log(browser, server)
    assert problems(browser) == []
    expected = query_json(ingested.path, "-n", str(LINES), "-r")
    assert shown_rows(browser) == [(r["instance"], r["seq"]) for r in expected]
    assert browser.execute_script("return document.querySelectorAll('#facets .facet').length") == 4
    screenshot = os.environ.get("KEXTLOG_WEB_SCREENSHOT")
    if screenshot:  # docs/web.png, for the README: the simulated kext's records
        open_log(browser, server, urllib.parse.urlencode({"source": ingested.simulated}))
        browser.save_screenshot(screenshot)


# Filters as typed into the filter bar, and the same as options of kextlog query.
FILTERS = [
    ({"level": "warning"}, ["--level", "warning"]),
    ({"level": "debug..info", "process": "mds*"}, ["--level", "debug..info", "--process", "mds*"]),
    ({"grep": "DENIED|refused"}, ["--grep", "DENIED|refused"]),
    ({"grep": "denied|refused", "since": "1h"}, ["--grep", "denied|refused", "--since", "1h"]),
    ({"instance": "-1"}, ["--instance", "-1"]),
    ({"process": "kernel_task"}, ["--process", "kernel_task"]),
    ({"level": "err", "until": "now"}, ["--level", "err", "--until", "now"]),
]


@pytest.mark.parametrize(("typed", "options"), FILTERS, ids=lambda x: str(x))
def test_filters_show_what_kextlog_query_shows(
    browser: Any, server: Server, ingested: Store, typed: dict[str, str], options: list[str]
) -> None:
    from selenium.webdriver.common.by import By

    open_log(browser, server)
    form = browser.find_element(By.ID, "filters")
    for name, value in typed.items():
        field = form.find_element(By.CSS_SELECTOR, f"input[name='{name}']")
        field.clear()
        field.send_keys(value)
    click_to_load(browser, browser.find_element(By.ID, "apply"))
    wait(browser, "document.querySelector('#facets section.facet') !== null")
    expected = query_json(ingested.path, *options, "-n", str(LINES), "-r")
    assert shown_rows(browser) == [(r["instance"], r["seq"]) for r in expected]
    assert shown_markers(browser) == query_markers(ingested.path, *options, "-n", str(LINES), "-r")
    assert problems(browser) == []
    # The page's permanent link is this view, and it says which command shows it.
    link = browser.find_element(By.ID, "permalink").get_attribute("href")
    assert all(urllib.parse.quote_plus(v) in link or v in link for v in typed.values())


@pytest.mark.parametrize("query", ["", "level=warning", "grep=denied&process=mds*"])
def test_facets_count_what_kextlog_query_shows(server: Server, ingested: Store, query: str) -> None:
    status, _, body = server.get(f"/-/kextlog/facets.json?{query}")
    assert status == 200, body
    found = {facet["name"]: facet for facet in json.loads(body)["facets"]}
    options = [f"--{name}={value}" for name, value in urllib.parse.parse_qsl(query)]
    records = query_json(ingested.path, *options)
    assert records
    for name in ("level", "instance", "host"):
        counts = {value["value"]: value["count"] for value in found[name]["values"]}
        assert counts == Counter(record[name] for record in records), name
    by_process = Counter(record["process"] for record in records)
    shown = [(value["value"], value["count"]) for value in found["process"]["values"]]
    assert shown == sorted(by_process.items(), key=lambda item: (-item[1], item[0]))[:15]


def test_losses_are_marked_in_place(browser: Any, server: Server, ingested: Store) -> None:
    open_log(browser, server, f"instance={ingested.hostile}")
    cells = browser.execute_script(
        "return [...document.querySelectorAll('#log tbody tr')].map(tr => tr.className.startsWith"
        "('loss') ? 'loss' : tr.dataset.seq);"
    )
    assert cells == ["7", "loss", "3", "2", "1"]  # newest first, the loss between 7 and 3
    (marker,) = shown_markers(browser)
    assert (
        marker == f"-- 3 records lost (seqs 4..6 of instance {ingested.hostile[:8]}, ring full) --"
    )


def test_exports_are_the_cli_output(server: Server, ingested: Store) -> None:
    views = (("", ["-n", str(LINES)]), ("level=warning&n=50", ["-p", "warning", "-n", "50"]))
    for output in ("json", "csv"):
        for query, options in views:
            status, kind, body = server.get(f"/log.{output}" + (f"?{query}" if query else ""))
            cli = kextlog("query", "--db", str(ingested.path), "-o", output, *options)
            assert status == 200 and cli.returncode == 0
            assert body == cli.stdout
            assert kind.startswith("application/x-ndjson" if output == "json" else "text/csv")


def test_the_chart_has_one_series_per_level_present(
    browser: Any, server: Server, ingested: Store
) -> None:
    for query, levels in (("", None), ("level=warning", ["warning", "error"])):
        open_log(browser, server, query)
        if levels is None:
            result = kextlog("sql", "--db", str(ingested.path), "-o", "json",
                             "SELECT DISTINCT level_number, level FROM log ORDER BY 1")  # fmt: skip
            levels = [json.loads(line)["level"] for line in result.stdout.splitlines()]
        series = browser.execute_script(
            "return Chart.getChart(document.getElementById('rate')).data.datasets"
            ".filter(d => d.stack === 'records').map(d => d.label);"
        )
        assert series == levels
        # Every record of the view is in a bucket: the chart adds up to a count.
        charted = browser.execute_script(
            "return Chart.getChart(document.getElementById('rate')).data.datasets"
            ".filter(d => d.stack === 'records')"
            ".reduce((n, d) => n + d.data.reduce((a, b) => a + (b || 0), 0), 0);"
        )
        lowest = 4 if query else 1
        counted = kextlog("sql", "--db", str(ingested.path), "-o", "json",
                          f"SELECT count(*) AS n FROM records WHERE level >= {lowest}")  # fmt: skip
        assert charted == json.loads(counted.stdout)["n"] > 0
        lost = browser.execute_script(
            "return Chart.getChart(document.getElementById('rate')).data.datasets"
            ".filter(d => d.label === 'lost').map(d => d.data.reduce((a, b) => a + (b || 0), 0));"
        )
        assert lost == [3]  # the hostile producer's loss, whatever the level filter
        assert problems(browser) == []


def test_live_shows_a_record_committed_after_the_page_loaded(
    browser: Any, server: Server, ingested: Store, tmp_path: Path
) -> None:
    open_log(browser, server)
    wait(browser, "document.getElementById('live-state').textContent.startsWith('live')")
    # The server's stream is open once it has sent its first bytes; give
    # the first poll a moment to have its snapshot (it reads the ids now).
    shown = set(shown_rows(browser))
    sock = tmp_path / "late.sock"
    simulator = start("simulate", "--socket", str(sock), "--rate", "0", "--count", "5",
                      "--seed", "7", "--quiet-losses")  # fmt: skip
    wait_for_socket(sock)
    ingest = start("ingest", "--source", f"unix:{sock}", "--db", str(ingested.path),
                   log=tmp_path / "ingest.log")  # fmt: skip
    try:
        out, _ = simulator.communicate(timeout=120)
        assert json.loads(out)["acked"] == 5
    finally:
        stop(ingest)
    newest = query_json(ingested.path, "--instance", "0")
    assert len(newest) == 5 and newest[0]["instance"] not in {i for i, _ in shown}
    expected = [(r["instance"], r["seq"]) for r in reversed(newest)]
    wait(browser, "document.querySelectorAll('#log tr.record.live-new').length >= 5", timeout=60)
    arrived = browser.execute_script(
        "return [...document.querySelectorAll('#log tr.record.live-new')]"
        ".map(tr => [tr.dataset.instance, tr.dataset.seq]);"
    )
    assert [(i, int(s)) for i, s in arrived] == expected  # newest at the top
    assert problems(browser) == []


def test_hostile_text_is_shown_as_text(browser: Any, server: Server, ingested: Store) -> None:
    from selenium.webdriver.common.by import By

    pages = [
        f"/?instance={ingested.hostile}",
        "/?" + urllib.parse.urlencode({"grep": "<script>"}),
        f"/record/{ingested.hostile}/2",
        f"/record/{ingested.hostile}/3",
        "/sql?" + urllib.parse.urlencode({"sql": "SELECT process, message FROM log WHERE seq = 2"}),
        "/?" + urllib.parse.urlencode({"process": HOSTILE_PROCESS.replace("[", "[[]")}),
    ]
    for path in pages:
        problems(browser)
        browser.get(server.url + path)
        time.sleep(0.5)  # anything a script would do, it does at load
        assert problems(browser) == [], path
        text = browser.find_element(By.TAG_NAME, "main").text
        assert HOSTILE_MESSAGE in text and HOSTILE_PROCESS in text, path
        # Nothing of it became an element.
        assert browser.execute_script("return document.querySelectorAll('main img').length") == 0
        assert browser.execute_script(
            "return [...document.scripts].every(s => s.src || s.type === 'application/json')"
        )
    # What live mode adds: the server's own event of the record, put in the
    # page by the page's own script.
    open_log(browser, server)
    shown = kextlog("query", "--db", str(ingested.path), "--instance", ingested.hostile,
                    "-g", "ordinary", "--show-cursor")  # fmt: skip
    cursor = shown.stdout.split("-- cursor: ")[1].strip()
    added = browser.execute_async_script(
        "const [query, done] = arguments;"
        "const source = new EventSource('/-/kextlog/live?' + query);"
        "source.onmessage = (event) => {"
        "  source.close();"
        "  document.querySelector('#log tbody').prepend(rowOf(JSON.parse(event.data)));"
        "  setTimeout(() => done(document.querySelector('#log tbody tr').textContent), 500);"
        "};",
        urllib.parse.urlencode({"instance": ingested.hostile, "after": cursor}),
    )
    assert HOSTILE_MESSAGE in added and HOSTILE_PROCESS in added
    assert browser.execute_script("return document.querySelectorAll('main img').length") == 0
    assert problems(browser) == []


def test_large_integers_reach_the_browser_intact(
    browser: Any, server: Server, ingested: Store
) -> None:
    with sqlite3.connect(f"file:{ingested.path}?mode=ro", uri=True) as connection:
        time_ns, tid = connection.execute(
            "SELECT time_ns, tid FROM log WHERE instance = ? AND seq = 2", (ingested.hostile,)
        ).fetchone()
    assert time_ns > 2**53 and tid == BIG_TID
    open_log(browser, server, f"instance={ingested.hostile}")
    found = browser.execute_script(
        "return [...document.querySelectorAll('#log tr.record')].find(tr => tr.dataset.seq === '2')"
        ".dataset.timeNs;"
    )
    assert found == str(time_ns)
    # Datasette's JSON and kextlog's: as strings, exactly.
    rows = browser.execute_async_script(
        "const [tid, done] = arguments;"
        "fetch('/store/records.json?_shape=array&tid=' + tid)"
        ".then(r => r.json()).then(done, e => done(String(e)));",
        str(BIG_TID),
    )
    assert [(row["time_ns"], row["tid"]) for row in rows] == [(str(time_ns), str(BIG_TID))]
    chart = json.loads(server.get(f"/-/kextlog/chart.json?instance={ingested.hostile}")[2])
    assert chart["ok"] is True
    status, _, body = server.get(f"/record/{ingested.hostile}/2")
    assert status == 200 and str(time_ns) in body and str(BIG_TID) in body
    # The SQL page's exports: CSV as kextlog sql -o csv, JSON with the strings.
    sql = f"SELECT time_ns, tid, message FROM log WHERE instance = '{ingested.hostile}' AND seq = 2"
    status, kind, body = server.get("/sql.json?" + urllib.parse.urlencode({"sql": sql}))
    assert kind.startswith("application/x-ndjson")
    assert json.loads(body) == {"time_ns": str(time_ns), "tid": str(BIG_TID),
                                "message": HOSTILE_MESSAGE}  # fmt: skip
    status, kind, body = server.get("/sql.csv?" + urllib.parse.urlencode({"sql": sql}))
    assert body == kextlog("sql", "--db", str(ingested.path), "-o", "csv", sql).stdout


def test_sql_refuses_writes_and_keeps_kextlog_sqls_limits(
    browser: Any, server: Server, ingested: Store
) -> None:
    from selenium.webdriver.common.by import By

    before = content_checksum(ingested.path)
    writes = [
        "DELETE FROM records",
        "UPDATE instances SET high_water = 0",
        "CREATE TABLE x (y)",
        "PRAGMA journal_mode = DELETE",
        f"ATTACH DATABASE '{ingested.path}.evil' AS evil",
        "SELECT 1; DELETE FROM records",
    ]
    for statement in writes:
        problems(browser)
        browser.get(server.url + "/sql")
        box = browser.find_element(By.ID, "sql")
        box.clear()
        box.send_keys(statement)
        click_to_load(browser, browser.find_element(By.ID, "run"))
        message = browser.find_element(By.ID, "error").text
        assert "read-only" in message or "one statement" in message, (statement, message)
        status, _, _ = server.get("/sql?" + urllib.parse.urlencode({"sql": statement}))
        assert status == 400
    # Datasette's own SQL is no way around it.
    status, _, _ = server.get("/store?" + urllib.parse.urlencode({"sql": "SELECT 1"}))
    assert status == 403
    assert not Path(f"{ingested.path}.evil").exists()
    assert content_checksum(ingested.path) == before
    # The cap on rows, as kextlog sql --max-rows.
    many = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    status, _, body = server.get("/sql?" + urllib.parse.urlencode({"sql": many + " LIMIT 20000"}))
    assert status == 200 and 'id="truncated"' in body
    assert body.count("<tr>") == 10_001  # the header and 10,000 rows
    # The time limit, as kextlog sql --timeout (the default, 10 s).
    started = time.monotonic()
    status, _, body = server.get("/sql?" + urllib.parse.urlencode({"sql": "SELECT count(*) FROM ("
                                 + many + ")"}))  # fmt: skip
    assert status == 400 and "time limit of 10 s" in body
    assert time.monotonic() - started < 30


BAD = [
    ("/?pid=abc", "pid: 'abc' is not an integer"),
    ("/?pid=99999999999999999999", "pid: '99999999999999999999' is not an integer"),
    ("/?level=loud", "level: unknown level 'loud'"),
    ("/?since=soonish", "since: "),
    ("/?since=now&until=1h", "is later than until"),
    ("/?grep=(", "--grep: invalid regular expression"),
    ("/?instance=zz", "--instance: 'zz' is not an instance id"),
    ("/?n=0", "n: 0 is out of range"),
    ("/?n=100000", "n: 100000 is out of range"),
    ("/?level=info&level=error", "level: given 2 times, once at most"),
    ("/?colour=red", "unknown parameter 'colour'"),
    ("/?grep=" + "a" * 1001, "grep: longer than 1,000 characters"),
    ("/?grep=a%00b", "grep: contains a NUL character"),
    ("/log.json?pid=x", "pid: 'x' is not an integer"),
    ("/-/kextlog/chart.json?level=x", "level: unknown level 'x'"),
    ("/record/nothex/1", "instance: 'nothex' is not an instance id"),
    ("/record/" + "0" * 32 + "/-1", "seq: -1 is out of range"),
    ("/stats?since=later", "since: "),
    ("/sql?sql=" + "x" * 8001, "sql: longer than 8,000 characters"),
    ("/sql?sql=SELEC", "SQL: "),
    ("/views?x=1", "unknown parameter 'x'"),
]


@pytest.mark.parametrize(("path", "message"), BAD, ids=[path[:40] for path, _ in BAD])
def test_bad_parameters_are_one_line_and_400(server: Server, path: str, message: str) -> None:
    status, kind, body = server.get(path)
    assert status == 400, body[:500]
    assert "Traceback" not in body and 'File "' not in body
    if kind.startswith("application/json"):
        error = json.loads(body)["error"]
    else:
        (error,) = re.findall(r'<p class="error" id="error">(.*?)</p>', body, re.S)
        error = error.replace("&#39;", "'").replace("&amp;", "&")
    assert message in error and "\n" not in error


@pytest.mark.parametrize(
    "path", ["/-/kextlog/record/abc", "/-/nothing", "/nowhere/at/all", "/kextlog/no_such_table"]
)
def test_paths_no_page_has_are_one_line_and_404(server: Server, path: str) -> None:
    """Not Datasette's own handling: it printed a traceback for each, and
    failed itself (HTTP 500) on a path under /-/."""
    status, _, body = server.get(path)
    assert status == 404, body[:500]
    assert "Traceback" not in body and 'File "' not in body
    (error,) = re.findall(r'<p class="error" id="error">(.*?)</p>', body, re.S)
    assert error.strip() and "\n" not in error.strip()
    assert "Traceback" not in server.log.read_text()


def test_a_missing_record_is_404(server: Server, ingested: Store) -> None:
    status, _, body = server.get(f"/record/{ingested.hostile}/5")  # lost
    assert status == 404 and "no record 5 of instance" in body


def test_a_record_shows_its_fields_and_neighbours(
    browser: Any, server: Server, ingested: Store
) -> None:
    from selenium.webdriver.common.by import By

    problems(browser)
    browser.get(server.url + f"/record/{ingested.hostile}/3")
    fields = dict(
        browser.execute_script(
            "return [...document.querySelectorAll('#fields tr')]"
            ".map(tr => [tr.cells[0].textContent, tr.cells[1].textContent]);"
        )
    )
    assert fields["seq"] == "3" and fields["instance"] == ingested.hostile
    assert fields["message"] == "before the loss" and fields["level_name"] == "warning"
    same = browser.execute_script(
        "return [...document.querySelectorAll('#same-instance tbody tr')].map(tr =>"
        " tr.className.startsWith('loss') ? 'loss' : tr.dataset.seq);"
    )
    assert same == ["1", "2", "3", "loss", "7"]  # seqs 3-10..3+10, the loss in place
    around = browser.execute_script(
        "return [...document.querySelectorAll('#around tr.record')].map(tr => tr.dataset.seq + "
        "':' + tr.dataset.instance + ':' + tr.classList.contains('current'));"
    )
    assert f"3:{ingested.hostile}:true" in around
    window = browser.find_element(By.ID, "window").get_attribute("href")
    assert "since=%40" in window and "until=%40" in window
    assert problems(browser) == []
    record = json.loads(server.get(f"/record/{ingested.hostile}/3.json")[2])
    cli = query_json(ingested.path, "--instance", ingested.hostile, "-g", "before the loss")
    assert [record] == cli


def test_pages_of_stats_and_views(browser: Any, server: Server, ingested: Store) -> None:
    from selenium.webdriver.common.by import By

    status, _, body = server.get("/stats.json")
    cli = kextlog("stats", "--db", str(ingested.path), "-o", "json")
    web, expected = json.loads(body), json.loads(cli.stdout)
    for figures in (web, expected):
        figures["database"].pop("wal_bytes")  # the reader's own -shm and -wal may come and go
        figures["database"].pop("file_bytes")
    assert status == 200 and web == expected
    problems(browser)
    browser.get(server.url + "/stats")
    wait(browser, "document.getElementById('rate').dataset.series !== undefined")
    assert f"Records {expected['records']:,}" in browser.find_element(By.ID, "records").text
    for name, needle in (("losses", "ring-full"), ("accounting", ingested.hostile),
                         ("processes", "kernel_task")):  # fmt: skip
        browser.get(server.url + "/views")
        click_to_load(browser, browser.find_element(By.ID, f"view-{name}"))
        assert needle in browser.find_element(By.ID, "result").text
    browser.get(server.url + "/views")
    click_to_load(browser, browser.find_element(By.ID, "view-errors"))
    assert browser.current_url.endswith("/?level=error&since=1h")
    assert problems(browser) == []


def test_reads_past_the_time_limit_say_so(ingested: Store) -> None:
    limited = serve(ingested.path.with_name("limited.log"), "--db", str(ingested.path),
                    "--timeout", "0.001")  # fmt: skip
    try:
        for path in ("/", "/log.json", "/-/kextlog/chart.json", "/stats", "/stats.json"):
            status, _, body = limited.get(path)
            assert status == 400 and "reading took longer than 0.001 s" in body, (path, body)
        status, _, body = limited.get("/-/kextlog/facets.json")
        facets = json.loads(body)["facets"]
        assert status == 200 and {f["name"] for f in facets} == {"level", "process", "instance",
                                                                 "host"}  # fmt: skip
        assert all("reading took longer than 0.001 s" in f["error"] for f in facets)
    finally:
        limited.process.send_signal(signal.SIGTERM)
        assert limited.process.wait(timeout=30) == 0
    assert "Traceback" not in limited.log.read_text()


def test_only_its_own_host_name_is_answered(server: Server) -> None:
    port = urllib.parse.urlsplit(server.url).port
    assert server.get("/", {"Host": f"localhost:{port}"})[0] == 200
    # A page elsewhere whose name resolves to 127.0.0.1 (DNS rebinding).
    status, _, body = server.get("/", {"Host": f"attacker.example:{port}"})
    assert status == 421 and "attacker.example" in body


def test_a_non_loopback_address_needs_allow_remote(ingested: Store) -> None:
    refused = kextlog("web", "--db", str(ingested.path), "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 2
    assert refused.stderr.startswith("kextlog: error: --host '0.0.0.0' is not a loopback")
    assert "--allow-remote" in refused.stderr and refused.stderr.count("\n") == 1
    process = start("web", "--db", str(ingested.path), "--host", "0.0.0.0", "--port", "0",
                    "--allow-remote")  # fmt: skip
    try:
        assert process.stdout is not None
        port = re.search(r":(\d+)/$", process.stdout.readline().strip())
        assert port is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{port[1]}/stats.json", timeout=60) as r:
            assert r.status == 200
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert process.stderr is not None
        assert "without authentication" in process.stderr.read()


def test_a_store_that_is_not_there(tmp_path: Path) -> None:
    result = kextlog("web", "--db", str(tmp_path / "none.db"), "--port", "0")
    assert result.returncode == 1
    assert result.stderr.startswith("kextlog: error: no kextlog database at")
    assert not (tmp_path / "none.db").exists()


def test_query_never_imports_datasette(ingested: Store) -> None:
    program = (
        "import sys\n"
        "from kextlog_store import cli\n"
        "try:\n"
        f"    cli.main(['query', '--db', {str(ingested.path)!r}, '-n', '1'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('\\nloaded:', sorted(m for m in sys.modules if m.split('.')[0] in "
        "('datasette', 'uvicorn', 'jinja2')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=environment(),
        timeout=60,
    )  # fmt: skip
    assert result.stdout.rstrip().endswith("loaded: []"), result.stdout + result.stderr
