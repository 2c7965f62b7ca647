"""Check a rendered site in headless Chromium through Selenium 4.

The tests open the site twice: from disk (file://) and over HTTP under a
sub-path, as GitHub Pages serves a project site (/project-name/). On each
load they check console errors and JavaScript exceptions, images, links and
where resources come from. At a 390 px phone width they check that the page
does not scroll sideways. They also write full-page screenshots (desktop and
phone, light and dark colour scheme) for a person to look at.

Chromium and chromedriver come from the system (Debian: `apt-get install
chromium chromium-driver`). Selenium gets the chromedriver path, so Selenium
Manager never downloads a driver. Without them the tests skip, unless the
environment sets STUDY_REQUIRE_BROWSER=1, as CI does, and then they fail.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import io
import os
import re
import shutil
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from conftest import ROOT

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMEDRIVER_NAMES = ("chromedriver",)
INSTALL_HINT = "apt-get install chromium chromium-driver"
REQUIRE_ENV = "STUDY_REQUIRE_BROWSER"
SCREENSHOTS_ENV = "STUDY_SCREENSHOTS"
DEFAULT_SCREENSHOTS = ROOT / "build" / "screenshots"

CHROME_ARGUMENTS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    # Loopback only: the HTTP checks must never go through a proxy from the environment.
    "--no-proxy-server",
)
DESKTOP = (1280, 800)
PHONE = (390, 844)
SUB_PATH = "project-name"
WAIT_SECONDS = 10

# Installed before any page script runs, so it records every uncaught exception,
# rejected promise and element that failed to load.
ERROR_RECORDER = """
window.__pageErrors = [];
window.addEventListener('error', (event) => {
  const target = event.target;
  if (target && target !== window && (target.src || target.href)) {
    window.__pageErrors.push('failed to load ' + (target.src || target.href));
  } else {
    window.__pageErrors.push(String(event.message));
  }
}, true);
window.addEventListener('unhandledrejection', (event) => {
  window.__pageErrors.push('unhandled rejection: ' + String(event.reason));
});
"""

LINKS_SCRIPT = """
return Array.from(document.querySelectorAll('[href], [src]')).map((element) => {
  const attribute = element.hasAttribute('src') ? 'src' : 'href';
  return {tag: element.tagName.toLowerCase(), attribute: attribute,
          value: element.getAttribute(attribute),
          resolved: new URL(element.getAttribute(attribute), document.baseURI).href};
});
"""

IMAGES_SCRIPT = """
return Array.from(document.images).map((image) => ({
  src: image.getAttribute('src'), alt: image.getAttribute('alt'),
  complete: image.complete, naturalWidth: image.naturalWidth}));
"""

# Elements whose right edge passes the viewport, widest first: the usual
# culprits when a page scrolls sideways.
OVERFLOW_SCRIPT = """
const limit = document.documentElement.clientWidth + 1;
return Array.from(document.querySelectorAll('body *'))
  .map((element) => [element, element.getBoundingClientRect().right])
  .filter(([element, right]) => right > limit)
  .sort((a, b) => b[1] - a[1]).slice(0, 5)
  .map(([element, right]) => element.tagName.toLowerCase()
       + (element.id ? '#' + element.id : '')
       + (element.className && typeof element.className === 'string'
          ? '.' + element.className.trim().split(/\\s+/).join('.') : '')
       + ' ends at ' + Math.round(right) + ' px');
"""

BACKGROUND_SCRIPT = """
const style = (element) => getComputedStyle(element);
return {body: style(document.body).backgroundColor,
        html: style(document.documentElement).backgroundColor,
        text: style(document.body).color};
"""

DARK_SCHEME_RULE = re.compile(r"@media[^{]*prefers-color-scheme\s*:\s*dark", re.IGNORECASE)


def find_browser() -> tuple[str, str] | None:
    """Return the paths of Chromium and chromedriver, or None when either is missing."""
    chromium = _first_on_path(CHROMIUM_NAMES)
    chromedriver = _first_on_path(CHROMEDRIVER_NAMES)
    if chromium is None or chromedriver is None:
        return None
    return chromium, chromedriver


def _first_on_path(names: tuple[str, ...]) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def require_browser() -> tuple[str, str]:
    """Return Chromium's and chromedriver's paths, or skip the test when one is missing.

    With STUDY_REQUIRE_BROWSER=1 in the environment, a missing browser
    fails the test instead, so CI cannot pass without running the checks.
    """
    found = find_browser()
    if found is not None:
        return found
    reason = (f"Chromium or chromedriver not found on PATH (looked for "
              f"{', '.join(CHROMIUM_NAMES + CHROMEDRIVER_NAMES)}); install them with: "
              f"{INSTALL_HINT}")
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}. {REQUIRE_ENV}=1 requires the browser checks.")
    pytest.skip(reason)


@contextlib.contextmanager
def chromium_driver() -> Iterator:
    """Start headless Chromium with browser logging, and quit it on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = require_browser()
    # With both paths given Selenium Manager is not run; should a later Selenium
    # run it anyway, it must not send usage statistics.
    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in CHROME_ARGUMENTS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                               {"source": ERROR_RECORDER})
        yield driver
    finally:
        driver.quit()


@dataclass
class SiteServer:
    """A site served over HTTP on the loopback interface, under `url`."""

    url: str
    requests: list[tuple[str, int]] = field(default_factory=list)


class _QuietServer(http.server.ThreadingHTTPServer):
    """An HTTP server that ignores clients closing the connection early.

    Chromium drops the rest of a response when it leaves a page, for
    example the print stylesheet it fetches at low priority.
    """

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve_site(site_dir: Path, sub_path: str = SUB_PATH) -> Iterator[SiteServer]:
    """Serve a copy of `site_dir` at http://127.0.0.1:PORT/<sub_path>/, as GitHub Pages would.

    The server listens on loopback only, on a free port, in a thread. It
    records each request's path and status in the returned SiteServer.
    """
    with tempfile.TemporaryDirectory(prefix="site-server-") as root:
        shutil.copytree(site_dir, Path(root) / sub_path)
        requests: list[tuple[str, int]] = []

        class RecordingHandler(http.server.SimpleHTTPRequestHandler):
            def log_request(self, code="-", size="-"):
                requests.append((self.path, int(code)))

            def log_message(self, format, *args):
                pass

        handler = functools.partial(RecordingHandler, directory=root)
        server = _QuietServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.server_address[1]
            yield SiteServer(f"http://127.0.0.1:{port}/{sub_path}/", requests)
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def set_viewport(driver, size: tuple[int, int], *, mobile: bool = False) -> None:
    """Emulate a viewport of `size` CSS pixels (width, height) at a device scale of 1."""
    width, height = size
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def set_colour_scheme(driver, scheme: str) -> None:
    """Emulate `prefers-color-scheme: <scheme>` ("light" or "dark") for the next pages."""
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "media": "", "features": [{"name": "prefers-color-scheme", "value": scheme}]})


@dataclass
class PageLoad:
    """What one page load produced: its URL and the errors seen while loading it."""

    url: str
    console_errors: list[str]


def open_page(driver, url: str, *, size: tuple[int, int] = DESKTOP, mobile: bool = False,
              scheme: str = "light") -> PageLoad:
    """Load `url` in the given viewport and colour scheme and wait for its images.

    Returns the SEVERE browser-log entries and the JavaScript exceptions of
    this load. The request a browser makes on its own for /favicon.ico at
    the host root is left out, because it lies outside the site's folder.
    """
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drops the entries of earlier pages
    set_viewport(driver, size, mobile=mobile)
    set_colour_scheme(driver, scheme)
    driver.get(url)
    WebDriverWait(driver, WAIT_SECONDS).until(lambda current: current.execute_script(
        "return Array.from(document.images).every((image) => image.complete)"))

    errors = [entry["message"] for entry in driver.get_log("browser")
              if entry["level"] == "SEVERE" and not is_browser_favicon(entry["message"], url)]
    errors += [f"JavaScript: {message}"
               for message in driver.execute_script("return window.__pageErrors || []")]
    return PageLoad(url, errors)


def is_browser_favicon(text: str, page_url: str) -> bool:
    """Tell whether `text` starts with the /favicon.ico URL at the host root of `page_url`.

    Chromium requests that icon on its own for pages served over HTTP. For a
    site under a sub-path it lies outside the site, so the checks leave it out.
    """
    parts = urlsplit(page_url)
    return text.startswith(f"{parts.scheme}://{parts.netloc}/favicon.ico")


def site_base(url: str) -> str:
    """Return the folder URL of the page at `url`, which every site file lies under."""
    return url.rsplit("/", 1)[0] + "/"


def image_problems(driver) -> list[str]:
    """List images that did not load (not complete, or no natural width) or lack alt text."""
    problems = []
    images = driver.execute_script(IMAGES_SCRIPT)
    if not images:
        problems.append("the page has no images")
    for image in images:
        if not (image["complete"] and image["naturalWidth"] > 0):
            problems.append(f"image {image['src']} did not load")
        if not (image["alt"] or "").strip():
            problems.append(f"image {image['src']} has no alt text")
    return problems


def link_problems(driver, site_dir: Path) -> list[str]:
    """List links and sources that break on the loaded page.

    An in-page anchor (#id) must name an element of the page. Any other
    link must be relative and lead to a file of the site: on disk it must
    exist in `site_dir`, and over HTTP the server must return status 200.
    Absolute URLs (http:, https:, //host) and root paths (/file) are
    reported, because they load from another host or break under a sub-path.
    """
    problems = []
    base = site_base(driver.current_url)
    for link in driver.execute_script(LINKS_SCRIPT):
        where = f"<{link['tag']} {link['attribute']}=\"{link['value']}\">"
        problem = _link_problem(driver, link["value"], link["resolved"], base, site_dir)
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def _link_problem(driver, value: str, resolved: str, base: str, site_dir: Path) -> str | None:
    parts = urlsplit(value)
    if value.startswith("#"):
        fragment = unquote(value[1:])
        if not fragment:
            return "empty in-page anchor"
        found = driver.execute_script("return document.getElementById(arguments[0]) !== null",
                                      fragment)
        return None if found else f"no element has the id {fragment!r}"
    if parts.scheme in ("data", "mailto"):
        return None
    if parts.scheme or parts.netloc:
        return "absolute URL: the site must load nothing from another host"
    if value.startswith("/"):
        return "root path: it breaks when the site is served under a sub-path"
    if not resolved.startswith(base):
        return f"leads outside the site folder to {resolved}"
    return _target_problem(resolved, base, site_dir)


def _target_problem(resolved: str, base: str, site_dir: Path) -> str | None:
    relative = unquote(urlsplit(resolved[len(base):]).path)
    if resolved.startswith("file:"):
        return None if (site_dir / relative).is_file() else f"{relative} is not in the site"
    # A loopback URL of the test server: ProxyHandler({}) keeps proxies out.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(resolved.split("#", 1)[0], timeout=WAIT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return None if status == 200 else f"the server returned status {status} for {resolved}"


def resource_problems(driver) -> list[str]:
    """List resources the page loaded from outside its own folder.

    Reads the page's Resource Timing entries. Chromium records none for
    file:// pages, so this check finds problems only over HTTP, where the
    server's request log (see `request_problems`) confirms them. The browser's own
    /favicon.ico request, which Chromium records on a first visit, is left out.
    """
    url = driver.current_url
    base = site_base(url)
    names = driver.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name)")
    return [f"loaded {name}, outside {base}" for name in names
            if not (name.startswith(base) or is_browser_favicon(name, url))]


def stylesheet_problems(site_dir: Path) -> list[str]:
    """List url() and @import references to other hosts in the site's stylesheets."""
    external = re.compile(r"(?:url\(\s*['\"]?|@import\s+['\"])\s*((?:https?:)?//[^'\")\s]+)",
                          re.IGNORECASE)
    problems = []
    for stylesheet in sorted(site_dir.glob("*.css")):
        for match in external.finditer(stylesheet.read_text(encoding="utf-8")):
            problems.append(f"{stylesheet.name} loads {match.group(1)} from another host")
    return problems


def request_problems(server: SiteServer) -> list[str]:
    """List requests that failed (status 400 or above) or left the site's sub-path.

    The browser's own /favicon.ico request at the host root is not counted.
    """
    prefix = "/" + urlsplit(server.url).path.strip("/") + "/"
    problems = []
    for path, status in server.requests:
        if path == "/favicon.ico":
            continue
        if not path.startswith(prefix):
            problems.append(f"request for {path} outside {prefix}")
        if status >= 400:
            problems.append(f"request for {path} returned status {status}")
    return problems


def sideways_scroll(driver) -> list[str]:
    """Return a problem when the page is wider than the viewport, naming the widest elements.

    The viewport width is the root element's clientWidth. Under mobile
    emulation, window.innerWidth grows to fit a page that is too wide, so
    it cannot show the overflow.
    """
    widths = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    scroll_width, viewport_width = widths
    if scroll_width <= viewport_width + 1:
        return []
    culprits = driver.execute_script(OVERFLOW_SCRIPT)
    return [f"the page is {scroll_width} px wide in a {viewport_width} px viewport; "
            f"widest elements: {'; '.join(culprits)}"]


def has_dark_scheme(site_dir: Path) -> bool:
    """Tell whether a stylesheet of the site has an @media (prefers-color-scheme: dark) rule."""
    return any(DARK_SCHEME_RULE.search(stylesheet.read_text(encoding="utf-8"))
               for stylesheet in site_dir.glob("*.css"))


def screenshot_dir() -> Path:
    """Return the screenshot folder: $STUDY_SCREENSHOTS, else build/screenshots/ in the repo."""
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or DEFAULT_SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Screenshot:
    """A full-page screenshot and the page colours measured when it was taken."""

    path: Path
    width: int
    scheme: str
    background: tuple[int, int, int]
    text: tuple[int, int, int]


def take_screenshot(driver, url: str, path: Path, *, size: tuple[int, int], mobile: bool,
                    scheme: str) -> Screenshot:
    """Load `url` and write a PNG of the whole page, as tall as the document, to `path`."""
    open_page(driver, url, size=size, mobile=mobile, scheme=scheme)
    width = size[0]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    captured = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    png = base64.b64decode(captured["data"])
    path.write_bytes(png)
    colours = driver.execute_script(BACKGROUND_SCRIPT)
    background = page_background(colours["body"], colours["html"], png)
    return Screenshot(path, width, scheme, background, parse_colour(colours["text"]))


def take_screenshots(driver, url: str, folder: Path, label: str) -> list[Screenshot]:
    """Write desktop and phone screenshots, each in the light and dark colour scheme."""
    shots = []
    for device, size, mobile in (("desktop", DESKTOP, False), ("phone", PHONE, True)):
        for scheme in ("light", "dark"):
            path = folder / f"{label}-{device}-{scheme}.png"
            shots.append(take_screenshot(driver, url, path, size=size, mobile=mobile,
                                         scheme=scheme))
    return shots


def parse_colour(css: str) -> tuple[int, int, int] | None:
    """Parse a computed "rgb(r, g, b)" colour; return None for a transparent one."""
    numbers = [float(number) for number in re.findall(r"[\d.]+", css)]
    if len(numbers) == 4 and numbers[3] == 0:
        return None
    return tuple(round(number) for number in numbers[:3])


def page_background(body: str, html: str, png: bytes) -> tuple[int, int, int]:
    """Return the colour behind the text: the body's, else the root's, else the canvas's.

    When both are transparent, the canvas shows through (dark when the page
    sets `color-scheme: dark`), so the screenshot's most common colour is used.
    """
    colour = parse_colour(body) or parse_colour(html)
    if colour is not None:
        return colour
    with Image.open(io.BytesIO(png)) as image:
        thumbnail = image.convert("RGB").resize((64, 64))
    return max(thumbnail.getcolors(64 * 64))[1]


def luminance(colour: tuple[int, int, int]) -> float:
    """Return the WCAG 2 relative luminance of an sRGB colour, from 0 (black) to 1 (white)."""
    def linear(channel: int) -> float:
        value = channel / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = map(linear, colour)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: tuple[int, int, int], second: tuple[int, int, int]) -> float:
    """Return the WCAG 2 contrast ratio of two colours, from 1 to 21."""
    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def screenshot_problems(shot: Screenshot) -> list[str]:
    """List what makes a screenshot useless: too small a file, the wrong width, one colour."""
    problems = []
    size = shot.path.stat().st_size
    if size < 10_000:
        problems.append(f"{shot.path.name} is only {size} bytes")
    with Image.open(shot.path) as image:
        width, height = image.size
        colours = image.convert("RGB").resize((128, 128)).getcolors(128 * 128)
    if width != shot.width:
        problems.append(f"{shot.path.name} is {width} px wide, not {shot.width}")
    if height <= PHONE[1]:
        problems.append(f"{shot.path.name} is {height} px tall: not the full page")
    if len(colours) < 16:
        problems.append(f"{shot.path.name} has only {len(colours)} colours")
    return problems


def scheme_problems(shot: Screenshot, site_dir: Path) -> list[str]:
    """Check a screenshot's colours against its colour scheme.

    Text must contrast with the background at WCAG AA's 4.5:1 in both
    schemes. The light scheme must have a light background. The dark one
    must have a dark background only when a stylesheet has a
    `prefers-color-scheme: dark` rule, because without one the page stays light.
    """
    problems = []
    name = shot.path.name
    if shot.text is not None and contrast_ratio(shot.text, shot.background) < 4.5:
        problems.append(f"{name}: text {shot.text} on {shot.background} has a contrast "
                        f"below 4.5:1")
    shade = luminance(shot.background)
    if shot.scheme == "light" and shade < 0.5:
        problems.append(f"{name}: background {shot.background} is dark in the light scheme")
    if shot.scheme == "dark" and has_dark_scheme(site_dir) and shade > 0.2:
        problems.append(f"{name}: background {shot.background} is not dark, although the "
                        f"stylesheet has a prefers-color-scheme: dark rule")
    return problems


def load_problems(driver, url: str, site_dir: Path) -> dict[str, list[str]]:
    """Load `url` at desktop width and list its problems by check."""
    loaded = open_page(driver, url)
    return {
        "console errors": loaded.console_errors,
        "images": image_problems(driver),
        "links": link_problems(driver, site_dir),
        "resources": resource_problems(driver),
    }


def check_site(site_dir: Path, label: str) -> dict[str, list[str]]:
    """Run every browser check on `site_dir` and write its screenshots; return the problems.

    Keys name a check and how the page was loaded ("file: links", "http:
    images", ...). Screenshots are written to `screenshot_dir()` as
    `<label>-<desktop|phone>-<light|dark>.png`, and their paths printed.
    """
    site_dir = Path(site_dir).resolve()
    problems: dict[str, list[str]] = {"stylesheets": stylesheet_problems(site_dir)}
    with chromium_driver() as driver, serve_site(site_dir) as server:
        for scheme, url in (("file", (site_dir / "index.html").as_uri()),
                            ("http", server.url)):
            for check, found in load_problems(driver, url, site_dir).items():
                problems[f"{scheme}: {check}"] = found
            open_page(driver, url, size=PHONE, mobile=True)
            problems[f"{scheme}: phone width"] = sideways_scroll(driver)
        problems["http: requests"] = request_problems(server)

        shots = take_screenshots(driver, server.url, screenshot_dir(), label)
    for shot in shots:
        print(f"screenshot: {shot.path}")
        problems[f"screenshot {shot.path.name}"] = (screenshot_problems(shot)
                                                    + scheme_problems(shot, site_dir))
    return problems
