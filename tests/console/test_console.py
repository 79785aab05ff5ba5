#!/usr/bin/env python3
"""The web console in a real browser (issue 22): headless Debian chromium driven by selenium
through chromium-driver, against a debug server this script starts on loopback with its own data
folder and bootstrap admin, and stops at the end. Run it through tests/console/run.sh (which
makes the venv). Screenshots of each page go to docs/console/.

  test_console.py --work DIR [--port N] [--only NAME,...]

The tests run in order on one browser session, each building on the last (sign in, then the
pages, then a second role); each failure is reported with its screenshot in DIR, and the last
line is `console: N passed, M failed`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "reliability"))

from common import (ADMIN_EMAIL, ADMIN_PASSWORD, ROOT, TESTDATA, Server, free_port, json_body,  # noqa: E402
                    login, request)
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,  # noqa: E402
                                        TimeoutException)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SHOTS = os.path.join(ROOT, "docs", "console")
USER_EMAIL, USER_PASSWORD = "console-user@example.com", "console-user-password-1"
# Image signatures that must never appear in the browser's storage (JPEG, PNG, WebP, base64 JPEG).
IMAGE_MARKERS = ("\xff\xd8\xff", "\x89PNG", "RIFF", "/9j/", "iVBORw0KGgo", "data:image")


def photo(name: str) -> str:
    return os.path.abspath(os.path.join(TESTDATA, name))


class Console:
    """The browser, the server and the checks the tests share."""

    def __init__(self, port: int, work: str):
        self.port, self.work = port, work
        self.base = f"http://127.0.0.1:{port}"
        options = webdriver.ChromeOptions()
        options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
                    f"--user-data-dir={os.path.join(work, 'chromium-profile')}"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"),
                          log_output=os.path.join(work, "chromedriver.log"))
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.set_script_timeout(30)
        self.paths: set[str] = set()  # every same-origin path the page requested
        self.console_errors: list[str] = []

    # --- browser helpers -------------------------------------------------------------------

    def open(self, fragment: str = "") -> None:
        self.collect()
        self.driver.get(f"{self.base}/console{fragment}")
        self.driver.execute_script("performance.setResourceTimingBufferSize(100000)")
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")

    def go(self, page: str) -> None:
        self.driver.execute_script(f"location.hash = '#{page}'")
        self.wait(lambda d: not self.find(f"#page-{page}").get_attribute("hidden")
                  or not self.find("#page-denied").get_attribute("hidden"))

    def wait(self, condition, timeout: float = 120, what: str = ""):
        try:
            # The models page re-renders every two seconds: an element found a moment ago may be gone.
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2,
                                 ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)
                                 ).until(condition)
        except TimeoutException:
            error = self.error_text()
            raise AssertionError(f"timed out waiting for {what or condition}" + (f"; console error: {error}" if error else ""))

    def text(self, css: str) -> str:
        """An element's text, read again if the page replaced it meanwhile."""
        return self.wait(lambda d: self.find(css).text or " ", timeout=10, what=css).strip()

    def find(self, css: str):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def visible(self, css: str) -> bool:
        return any(e.is_displayed() for e in self.all(css))

    def error_text(self) -> str:
        try:
            region = self.find("#error")
            return "" if region.get_attribute("hidden") is not None else region.text
        except Exception:
            return ""

    def idle(self) -> None:
        """Waits until no call is in flight (the page's main region is not aria-busy)."""
        self.wait(lambda d: d.execute_script("return document.getElementById('main').getAttribute('aria-busy') !== 'true'"),
                  what="the calls in flight to end")

    def upload(self, css: str, name: str) -> None:
        self.find(css).send_keys(photo(name))

    def screenshot(self, name: str, width: int = 1280, mobile: bool = False) -> str:
        """The whole page at `width` CSS pixels (height up to 2400), into docs/console/NAME.png."""
        os.makedirs(SHOTS, exist_ok=True)
        d = self.driver
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": mobile})
        time.sleep(0.3)
        height = min(2400, d.execute_script("return document.documentElement.scrollHeight"))
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
        time.sleep(0.3)
        path = os.path.join(SHOTS, f"{name}.png")
        d.save_screenshot(path)
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        return path

    def collect(self) -> None:
        """Keeps the paths the page requested and the console's errors before they are lost."""
        try:
            names = self.driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)"
                ".concat(performance.getEntriesByType('navigation').map(e => e.name))")
        except Exception:
            names = []
        for name in names:
            if name.startswith(self.base):
                self.paths.add(name[len(self.base):].split("?")[0].split("#")[0])
        for entry in self.driver.get_log("browser"):
            message = entry.get("message", "")
            # Refused calls the tests cause on purpose show as failed loads; those are fine.
            # Script errors and Content-Security-Policy violations are not.
            if "Content Security Policy" in message or "Uncaught" in message or "SyntaxError" in message:
                self.console_errors.append(message)

    def sign_in_with_form(self, email: str, password: str) -> None:
        self.go("signin")
        for field, value in (("#signin-email", email), ("#signin-password", password + Keys.ENTER)):
            self.find(field).clear()
            self.find(field).send_keys(value)
        self.wait(lambda d: email in self.find("#who").text, what=f"{email} signed in")

    def sign_out(self) -> None:
        if self.visible("#sign-out"):
            self.find("#sign-out").click()
            self.wait(lambda d: "Not signed in" in self.find("#who").text, what="signed out")

    def quit(self) -> None:
        try:
            self.collect()
        finally:
            self.driver.quit()


# --- the tests, in order -------------------------------------------------------------------------


def test_served_with_security_headers(c: Console) -> None:
    """/console and its files: content types, CSP without inline script, frame denial; no traversal."""
    r = request(c.port, "GET", "/console")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html"), r.short()
    csp = r.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
    assert r.headers.get("x-frame-options") == "DENY" and r.headers.get("x-content-type-options") == "nosniff"
    assert r.headers.get("referrer-policy") == "no-referrer"
    html = r.body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script in index.html"
    assert " style=" not in html and "<style" not in html, "inline style in index.html"
    for path, kind in (("/console/app.js", "text/javascript"), ("/console/console.css", "text/css"),
                       ("/console/icon.svg", "image/svg+xml")):
        r = request(c.port, "GET", path)
        assert r.status == 200 and r.headers["content-type"].startswith(kind), f"{path}: {r.short()}"
        assert "frame-ancestors 'none'" in r.headers.get("content-security-policy", ""), path
    for path in ("/console/../Package.swift", "/console/%2e%2e/Package.swift", "/console/..%2fPackage.swift",
                 "/console/%2e%2e%2fPackage.swift", "/console/..%5cPackage.swift", "/console/.%2e/.%2e/README.md",
                 "/console/web/index.html", "/console/ConsoleRoutes.swift", "/console//etc/passwd",
                 "/console/%2fetc%2fpasswd", "/console/..", "/console/.env"):
        r = request(c.port, "GET", path)
        assert r.status == 404 and r.code == "NOT_FOUND", f"{path}: {r.short()}"
        assert b"PackageDescription" not in r.body and b"root:" not in r.body, path
        assert "frame-ancestors 'none'" in r.headers.get("content-security-policy", ""), f"{path}: no CSP on the 404"


def test_analyze_before_sign_in(c: Console) -> None:
    """Development lets anonymous callers analyse: /console opens on Analyze and works at once."""
    c.open()
    assert c.visible("#page-analyze") and c.find("#h-analyze").text == "Analyze"
    assert "Not signed in" in c.find("#who").text
    assert not c.visible('[data-page-link="models"]') and not c.visible('[data-page-link="audit"]')
    c.upload("#analyze-file", "obama.jpg")
    c.wait(lambda d: len(c.all("#analyze-result [data-face-box]")) == 1, what="one face box")


def test_sign_in_with_the_keyboard_only(c: Console) -> None:
    """Tab to the sign-in link, Enter, type, Enter: signed in, the admin's pages appear."""
    c.open()
    body = c.find("body")
    reached = []
    for _ in range(40):
        body = c.driver.switch_to.active_element
        body.send_keys(Keys.TAB)
        active = c.driver.switch_to.active_element
        reached.append(active.get_attribute("id") or active.get_attribute("href") or active.tag_name)
        if active.get_attribute("id") == "sign-in-link":
            break
    assert c.driver.switch_to.active_element.get_attribute("id") == "sign-in-link", f"tab order: {reached}"
    outline = c.driver.execute_script(
        "const s = getComputedStyle(document.activeElement); return s.outlineStyle + ' ' + s.outlineWidth")
    assert not outline.startswith("none"), f"no visible focus: {outline}"
    c.driver.switch_to.active_element.send_keys(Keys.ENTER)
    c.wait(lambda d: c.visible("#page-signin"), what="the sign-in page")
    for _ in range(10):
        if c.driver.switch_to.active_element.get_attribute("id") == "signin-email":
            break
        c.driver.switch_to.active_element.send_keys(Keys.TAB)
    assert c.driver.switch_to.active_element.get_attribute("id") == "signin-email", "Tab did not reach the email field"
    c.driver.switch_to.active_element.send_keys(ADMIN_EMAIL + Keys.TAB)
    c.driver.switch_to.active_element.send_keys(ADMIN_PASSWORD + Keys.ENTER)
    c.wait(lambda d: ADMIN_EMAIL in c.find("#who").text, what="signed in")
    assert "admin" in c.find("#who").text
    for page in ("galleries", "models", "audit"):
        assert c.visible(f'[data-page-link="{page}"]'), f"the admin does not see {page}"
    c.wait(lambda d: c.visible("#page-analyze"), what="back on Analyze")


def test_a_wrong_password_shows_the_api_error(c: Console) -> None:
    c.sign_out()
    c.go("signin")
    assert not c.find("#signin-email").get_attribute("value"), "the form kept the last email after sign-out"
    c.find("#signin-email").send_keys(ADMIN_EMAIL)
    c.find("#signin-password").send_keys("not-the-password" + Keys.ENTER)
    c.wait(lambda d: "UNAUTHORIZED" in c.error_text(), what="the UNAUTHORIZED error shown")
    c.sign_in_with_form(ADMIN_EMAIL, ADMIN_PASSWORD)


def test_analyze_draws_six_faces(c: Console) -> None:
    c.go("analyze")
    c.find("#page-analyze details.settings summary").click()
    mesh = c.find('#page-analyze input[value="landmarks"]')
    if not mesh.is_selected():
        mesh.click()
    c.upload("#analyze-file", "group6_t1.jpg")
    c.wait(lambda d: len(c.all("#analyze-result [data-face-box]")) == 6, what="six face boxes")
    c.wait(lambda d: c.all("#analyze-result .timing table"), what="the models of the call")
    cards = c.all("#analyze-result .faces > li")
    assert len(cards) == 6, f"{len(cards)} face cards"
    text = c.find("#analyze-result").text
    for word in ("Age", "Gender", "Liveness", "Quality", "Head pose", "Mesh", "yunet", "p50"):
        assert word in text, f"{word!r} missing from the analysis"
    assert len(c.all("#analyze-result .landmark")) == 30, "five landmarks per face"
    assert c.all("#analyze-result canvas.mesh"), "no mesh drawn"
    # Each model of the call with its time in this call (meta.model_ms), the mesh's from the mesh.
    rows = c.all("#analyze-result [data-model-time]")
    labels = {row.get_attribute("data-model-time").split("@")[0] for row in rows}
    assert {"yunet", "face-mesh", "age", "gender", "minifas"} <= labels, f"models of the call: {labels}"
    for row in rows:
        spent = row.find_elements(By.TAG_NAME, "td")[1].text
        assert spent.endswith("ms") and float(spent.split()[0]) > 0, f"{row.text!r}: no time in this call"
    assert "(from the 468-point mesh)" in text, "the pose comes from the mesh when it ran"
    c.screenshot("analyze")


def test_an_invalid_image_shows_the_api_error(c: Console) -> None:
    bad = os.path.join(c.work, "not-an-image.jpg")
    with open(bad, "wb") as f:
        f.write(b"this is not an image at all" * 10)
    c.find("#analyze-file").send_keys(bad)
    c.wait(lambda d: "INVALID_IMAGE_FORMAT" in c.error_text(), what="the INVALID_IMAGE_FORMAT error shown")
    assert "(422)" in c.error_text()


def test_verify_a_same_person_pair(c: Console) -> None:
    c.go("verify")
    c.upload("#verify-file1", "obama.jpg")
    c.upload("#verify-file2", "obama2.jpg")
    c.wait(lambda d: c.all('[data-verdict="match"]'), what="the pair matched")
    assert len(c.all("#page-verify [data-face-box]")) == 2
    assert "threshold" in c.find("#verify-result").text
    c.screenshot("verify")
    c.upload("#verify-file2", "biden.jpg")
    c.wait(lambda d: c.all('[data-verdict="no-match"]'), what="Obama and Biden told apart")


def test_galleries_enrol_and_identify(c: Console) -> None:
    c.go("galleries")
    name = f"console-{uuid.uuid4().hex[:6]}"
    c.find("#collection-name").send_keys(name + Keys.ENTER)
    c.wait(lambda d: c.all("#subject-name"), what="the new collection open")
    for person, image in (("Barack Obama", "obama.jpg"), ("Joe Biden", "biden.jpg")):
        c.find("#subject-name").send_keys(person + Keys.ENTER)
        slug = person.lower().replace(" ", "-")
        c.wait(lambda d: c.all(f'[data-subject="{slug}"] input[type=file]'), what=f"{person} added")
        c.idle()
        c.find(f'[data-subject="{slug}"] input[type=file]').send_keys(photo(image))
        c.wait(lambda d: c.all(f'[data-subject="{slug}"] canvas.thumb'), what=f"{person}'s thumbnail")
        c.idle()
    assert "1 face enrolled" in c.find('[data-subject="joe-biden"]').text
    c.upload("#identify-file", "obama_and_biden.jpg")
    c.wait(lambda d: len(c.all("#identify-result [data-face-box]")) >= 2, what="the faces identified")
    labels = [e.text for e in c.all("#identify-result [data-face-box] .tag")]
    named = {e.get_attribute("data-identified") for e in c.all("#identify-result [data-identified]")}
    assert {"Barack Obama", "Joe Biden"} <= set(labels), f"box labels {labels}"
    assert {"Barack Obama", "Joe Biden"} <= named, f"face cards {named}"
    c.screenshot("galleries")
    # Export: the subject's stored data as a download (fetched by the page, so the call is checked).
    c.find('[data-subject="joe-biden"] .actions button').click()
    c.idle()
    assert not c.error_text(), c.error_text()
    # Erase: two steps.
    erase = c.find('[data-subject="joe-biden"] button.danger')
    erase.click()
    armed = c.find('[data-subject="joe-biden"] button.danger')
    assert armed.text.startswith("Confirm: erase Joe Biden"), armed.text
    assert c.all('[data-subject="joe-biden"]'), "the first click erased"
    armed.click()
    c.wait(lambda d: not c.all('[data-subject="joe-biden"]'), what="Joe Biden erased")


def test_the_non_commercial_model_needs_the_operators_opt_in(c: Console) -> None:
    """A collection on w600k_mbf from a server without the licence opt-in: the API's reason shown."""
    c.go("galleries")
    Select(c.find("#collection-model")).select_by_value("w600k_mbf")
    c.find("#collection-name").send_keys(f"w600k-{uuid.uuid4().hex[:6]}" + Keys.ENTER)
    c.wait(lambda d: "MODEL_LICENCE_NOT_ACCEPTED" in c.error_text(), what="the licence refusal shown")
    assert "insightface-noncommercial" in c.error_text(), c.error_text()
    Select(c.find("#collection-model")).select_by_value("sface")
    c.find("#collection-name").clear()


def test_unnamed_faces_grouped_and_named(c: Console) -> None:
    """Photos added without names in the collection the previous test left open (Barack Obama
    enrolled): obama2 and obama3 form one group, rose_leslie_img1 another; the first joins Barack
    Obama, the second becomes a new person."""
    c.go("galleries")
    c.wait(lambda d: c.all('[data-subject="barack-obama"]'), what="the collection with Barack Obama open")
    c.idle()
    c.find("#unnamed-file").send_keys("\n".join(photo(n) for n in ("obama2.jpg", "obama3.jpg", "rose_leslie_img1.jpg")))
    c.wait(lambda d: sorted(e.get_attribute("data-cluster-size") for e in c.all("[data-cluster-size]")) == ["1", "2"],
           what="two groups of unnamed faces (2 and 1)")
    c.idle()
    assert len(c.all('[data-cluster-size="2"] canvas.thumb')) == 2, "the pair's thumbnails"
    c.screenshot("galleries-unnamed")
    Select(c.find('[data-cluster-size="2"] select')).select_by_visible_text("Barack Obama")
    c.find('[data-cluster-size="2"] button[type=submit]').click()
    c.wait(lambda d: "3 faces enrolled" in c.find('[data-subject="barack-obama"]').text,
           what="the pair added to Barack Obama")
    c.idle()
    c.find('[data-cluster-size="1"] input').send_keys("Rose Leslie" + Keys.ENTER)
    c.wait(lambda d: c.all('[data-subject="rose-leslie"]'), what="Rose Leslie made from the last group")
    c.idle()
    assert not c.all("[data-cluster-size]"), "no group left"
    assert "No unnamed faces." in c.find("#unnamed").text
    assert not c.error_text(), c.error_text()
    # Identify with "keep unknown faces": Kit Harington matches nobody and is kept as a group of
    # one, with the face cut from the photo; his second photo, added unnamed, joins the group; one
    # face is taken out of it again ("Not this person", two clicks); the group's Erase takes two.
    c.find("#identify-keep").click()
    c.upload("#identify-file", "kit_harington_john1.jpeg")
    c.wait(lambda d: c.all('#identify-result [data-kept]'), what="the unknown face kept")
    c.wait(lambda d: c.all('[data-cluster-size="1"] canvas.thumb'), what="the kept face as a group with its thumbnail")
    c.idle()
    assert c.find("#identify-keep").is_selected(), "the box stays checked across the page's refresh"
    assert c.find('#identify-result [data-identified]').get_attribute("data-identified") == "unknown"
    c.upload("#unnamed-file", "kit_harington_john2.jpeg")
    c.wait(lambda d: c.all('[data-cluster-size="2"]'), what="the second photo joins the kept face")
    c.idle()
    assert len(c.all('[data-cluster-size="2"] canvas.thumb')) == 2, "both faces shown"
    c.find('[data-cluster-size="2"] .cluster-face button.danger').click()
    armed = c.find('[data-cluster-size="2"] .cluster-face button.danger')
    assert armed.text == "Confirm: erase this face", armed.text
    armed.click()
    c.wait(lambda d: not c.all('[data-cluster-size="2"]') and c.all('[data-cluster-size="1"]'),
           what="one face taken out of the group")
    c.idle()
    c.find('[data-cluster-size="1"] .actions button.danger').click()
    armed = c.find('[data-cluster-size="1"] .actions button.danger')
    assert armed.text == "Confirm: erase this face", armed.text
    armed.click()
    c.wait(lambda d: not c.all("[data-cluster-size]"), what="the kept group erased")
    assert not c.error_text(), c.error_text()


def model_state(c: Console, model: str) -> str:
    token = login(c.port)
    r = request(c.port, "GET", "/system/models", headers={"Authorization": f"Bearer {token}"})
    return next(m["state"] for m in r.json()["data"]["models"] if m["id"] == model)


def test_models_unload_and_load(c: Console) -> None:
    c.go("models")
    c.wait(lambda d: c.all('[data-model="age"] [data-state]'), what="the models table")
    assert c.all('[data-device="CPU"] .bar'), "no CPU bar"
    row = '[data-model="age"]'
    if c.text(f"{row} [data-state]") != "loaded":
        c.find(f'{row} [data-action="load"]').click()
        c.wait(lambda d: c.find(f"{row} [data-state]").text == "loaded", what="age loaded")
    c.find(f'{row} [data-action="unload"]').click()
    c.wait(lambda d: c.find(f"{row} [data-state]").text == "unloaded", what="age unloaded")
    assert model_state(c, "age") == "unloaded"
    # A pinned model refuses, and the page says why.
    c.find('[data-model="yunet"] [data-action="unload"]').click()
    c.wait(lambda d: "CONFLICT" in c.error_text(), what="the 409 for a pinned model")
    c.find(f'{row} [data-action="load"]').click()
    c.wait(lambda d: c.find(f"{row} [data-state]").text == "loaded", what="age loaded again")
    assert model_state(c, "age") == "loaded"
    # Live: the numbers refresh by themselves.
    first = c.text("#models-updated")
    c.wait(lambda d: c.find("#models-updated").text.strip() != first, timeout=10, what="a live refresh")
    c.screenshot("models")


def test_audit_log_with_filters(c: Console) -> None:
    c.go("audit")
    c.wait(lambda d: c.all("#audit-table tbody tr"), what="audit rows")
    form = c.find("#audit-form")
    form.find_element(By.NAME, "action").send_keys("subject.*")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    c.wait(lambda d: all(r.get_attribute("data-action").startswith("subject.") for r in c.all("#audit-table tbody tr"))
           and c.all("#audit-table tbody tr"), what="only subject.* events")
    actions = c.wait(lambda d: {r.get_attribute("data-action") for r in c.all("#audit-table tbody tr")})
    assert {"subject.export", "subject.erase"} <= actions, actions
    form.find_element(By.NAME, "action").clear()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    c.wait(lambda d: any(r.get_attribute("data-action") == "auth.login" for r in c.all("#audit-table tbody tr")),
           what="every event again")
    c.screenshot("audit")


def test_narrow_screen(c: Console) -> None:
    """At 360 px the pages fit: nothing wider than the screen but inside a scrolling table box."""
    c.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                             {"width": 360, "height": 800, "deviceScaleFactor": 1, "mobile": True})
    try:
        for page in ("analyze", "verify", "galleries", "models", "audit"):
            c.go(page)
            time.sleep(0.5)
            width = c.driver.execute_script("return document.documentElement.scrollWidth")
            assert width <= 360, f"{page} is {width} px wide at 360"
        c.go("analyze")
        c.upload("#analyze-file", "group6_t1.jpg")
        c.wait(lambda d: len(c.all("#analyze-result [data-face-box]")) == 6, what="six face boxes at 360 px")
        c.idle()
        width = c.driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 360, f"the analysis is {width} px wide at 360"
    finally:
        c.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    c.screenshot("narrow-360", width=360, mobile=True)


def test_user_role_sees_no_admin_page(c: Console) -> None:
    token = login(c.port)
    body, headers = json_body({"email": USER_EMAIL, "password": USER_PASSWORD, "role": "user"})
    r = request(c.port, "POST", "/v1/users", body, {**headers, "Authorization": f"Bearer {token}"})
    assert r.status == 201, r.short()
    c.sign_out()
    c.sign_in_with_form(USER_EMAIL, USER_PASSWORD)
    assert "(user)" in c.find("#who").text
    for page in ("models", "audit"):
        assert not c.visible(f'[data-page-link="{page}"]'), f"a user sees the {page} link"
        c.go(page)
        assert c.visible("#page-denied") and not c.visible(f"#page-{page}"), f"a user sees the {page} page"
    assert "admin:system" in c.find("#denied-text").text
    # The API refuses the same, whatever the page shows.
    body, headers = json_body({"email": USER_EMAIL, "password": USER_PASSWORD})
    user_token = request(c.port, "POST", "/v1/auth/login", body, headers).json()["data"]["access_token"]
    for method, path in (("GET", "/v1/audit"), ("POST", "/system/models/age/unload")):
        r = request(c.port, method, path, headers={"Authorization": f"Bearer {user_token}"})
        assert r.status == 403 and r.code == "FORBIDDEN", f"{method} {path}: {r.short()}"


def test_a_reload_signs_out_and_storage_holds_nothing(c: Console) -> None:
    storage = c.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        (async () => {
          const local = Object.keys(localStorage).map(k => k + '=' + localStorage.getItem(k));
          const session = Object.keys(sessionStorage).map(k => k + '=' + sessionStorage.getItem(k));
          const databases = indexedDB.databases ? (await indexedDB.databases()).map(d => d.name) : [];
          const caches_ = 'caches' in window ? await caches.keys() : [];
          done({local, session, databases, caches: caches_, cookie: document.cookie});
        })().catch(e => done({error: String(e)}));
    """)
    assert storage == {"local": [], "session": [], "databases": [], "caches": [], "cookie": ""}, storage
    text = json.dumps(storage)
    assert not any(marker in text for marker in IMAGE_MARKERS)
    c.open()
    assert "Not signed in" in c.find("#who").text, "a reload kept the session"


def test_only_documented_paths(c: Console) -> None:
    """Every path the console requested is in the OpenAPI document."""
    c.collect()
    document = request(c.port, "GET", "/openapi.json").json()
    patterns = [re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(p)) + "$") for p in document["paths"]]
    undocumented = sorted(p for p in c.paths if not any(rx.match(p) for rx in patterns))
    assert not undocumented, f"requested but not in /openapi.json: {undocumented}"
    for expected in ("/console", "/v1/analyze", "/v1/verify", "/v1/auth/login", "/system/models"):
        assert expected in c.paths, f"{expected} never requested: {sorted(c.paths)}"
    assert not c.console_errors, f"script errors or CSP violations: {c.console_errors[:5]}"


TESTS = [test_served_with_security_headers, test_analyze_before_sign_in, test_sign_in_with_the_keyboard_only,
         test_a_wrong_password_shows_the_api_error, test_analyze_draws_six_faces,
         test_an_invalid_image_shows_the_api_error, test_verify_a_same_person_pair, test_galleries_enrol_and_identify,
         test_unnamed_faces_grouped_and_named, test_the_non_commercial_model_needs_the_operators_opt_in,
         test_models_unload_and_load, test_audit_log_with_filters, test_narrow_screen,
         test_user_role_sees_no_admin_page, test_a_reload_signs_out_and_storage_holds_nothing,
         test_only_documented_paths]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--port", type=int, default=18461)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    port = args.port
    while not free_port(port):
        port += 1
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    server = Server("console", port, args.work, env={
        "FACESOCIAL_PROFILE": "development",
        # Tokens long enough for the run; the console refreshes them on a 401 anyway.
        "FACESOCIAL_ACCESS_TOKEN_TTL_SECONDS": "3600",
    })
    passed, failed = 0, []
    t0 = time.time()
    server.start()
    print(f"console: server on 127.0.0.1:{port} ({time.time() - t0:.1f} s to ready)", flush=True)
    console = None
    try:
        console = Console(port, args.work)
        for test in TESTS:
            if only and test.__name__ not in only and test.__name__.removeprefix("test_") not in only:
                continue
            started = time.time()
            try:
                test(console)
                passed += 1
                print(f"  ok    {test.__name__} ({time.time() - started:.1f} s)", flush=True)
            except Exception as error:  # noqa: BLE001 - every failure is reported, the run goes on
                failed.append(test.__name__)
                shot = os.path.join(args.work, f"failed-{test.__name__}.png")
                try:
                    console.driver.save_screenshot(shot)
                except Exception:
                    shot = "(no screenshot)"
                print(f"  FAIL  {test.__name__} ({time.time() - started:.1f} s): {error}\n        screenshot {shot}",
                      flush=True)
                traceback.print_exc(limit=3)
    finally:
        if console:
            console.quit()
        rc = server.stop()
        crashed = server.log_crash_lines()
        if rc not in (0, None) or crashed:
            failed.append(f"server exit {rc} {crashed[:3]}")
    print(f"console: {time.time() - t0:.0f} s in all" + (f"; failed: {', '.join(failed)}" if failed else ""))
    print(f"console: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
