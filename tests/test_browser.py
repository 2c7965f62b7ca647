"""The rendered site in headless Chromium: errors, images, links, phone width, colour schemes.

The site is rendered from the synthetic run of report_fixture (no
TensorFlow) and opened from disk and over HTTP under a GitHub-Pages-like
sub-path. A small hand-written broken site shows that each check can fail.
The screenshots go to $STUDY_SCREENSHOTS or build/screenshots/; `pytest -s`
prints their paths. Without Chromium and chromedriver the browser tests
skip, or fail when STUDY_REQUIRE_BROWSER=1.
"""

from pathlib import Path

import pytest
from PIL import Image

import browser
from report.render import render_report
from report_fixture import make_run_dir

BROKEN_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Broken</title>
  <link rel="stylesheet" href="style.css">
</head>
<body>
  <p id="top">
    <a href="#top">top</a> <a href="#nowhere">nowhere</a> <a href="missing.pdf">PDF</a>
    <a href="https://example.org/">elsewhere</a> <a href="/rooted.json">rooted</a>
  </p>
  <img src="pixel.png" alt="">
  <img src="missing.png" alt="a missing image">
  <img src="../outside.png" alt="an image beside the site">
  <div style="width: 900px">a block wider than a phone</div>
  <script>callUndefinedFunction();</script>
</body>
</html>
"""
DARK_CSS = """body { background: #ffffff; color: #202020; }
@media (prefers-color-scheme: dark) {
  body { background: #121417; color: #e8e8e8; }
}
"""


@pytest.fixture(scope="module")
def driver():
    with browser.chromium_driver() as session:
        yield session


@pytest.fixture(scope="module")
def site_dir(driver, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    render_report(make_run_dir(root / "run"), root / "site")
    return root / "site"


@pytest.fixture(scope="module")
def server(site_dir):
    with browser.serve_site(site_dir) as served:
        yield served


@pytest.fixture(params=["file", "http"])
def page_url(request, site_dir, server):
    if request.param == "file":
        return (site_dir / "index.html").as_uri()
    return server.url


@pytest.fixture(scope="module")
def screenshots(driver, server):
    shots = browser.take_screenshots(driver, server.url, browser.screenshot_dir(), "synthetic")
    for shot in shots:
        print(f"screenshot: {shot.path}")
    return shots


@pytest.fixture(scope="module")
def broken_site(driver, tmp_path_factory):
    """A site with one of each fault, inside a folder that also contains outside.png."""
    root = tmp_path_factory.mktemp("broken")
    site = root / "project-name"
    site.mkdir()
    (site / "index.html").write_text(BROKEN_PAGE, encoding="utf-8")
    (site / "style.css").write_text(DARK_CSS, encoding="utf-8")
    Image.new("RGB", (4, 4), "red").save(site / "pixel.png")
    Image.new("RGB", (4, 4), "blue").save(root / "outside.png")
    return site


def test_page_loads_without_errors(driver, page_url):
    loaded = browser.open_page(driver, page_url)
    assert loaded.console_errors == []


def test_page_images_load_with_alt(driver, page_url):
    browser.open_page(driver, page_url)
    assert browser.image_problems(driver) == []


def test_page_links_resolve(driver, page_url, site_dir):
    browser.open_page(driver, page_url)
    assert browser.link_problems(driver, site_dir) == []


def test_page_resources_stay_on_site(driver, page_url, site_dir):
    browser.open_page(driver, page_url)
    assert browser.resource_problems(driver) == []
    assert browser.stylesheet_problems(site_dir) == []


def test_http_requests_stay_under_sub_path(driver, server):
    browser.open_page(driver, server.url)
    assert len(server.requests) > 1
    assert browser.request_problems(server) == []


def test_phone_width_no_sideways_scroll(driver, page_url):
    browser.open_page(driver, page_url, size=browser.PHONE, mobile=True)
    assert driver.execute_script("return document.documentElement.clientWidth") == \
        browser.PHONE[0]
    assert browser.sideways_scroll(driver) == []


def test_screenshots_are_full_pages(screenshots):
    assert [shot.path.name for shot in screenshots] == [
        "synthetic-desktop-light.png", "synthetic-desktop-dark.png",
        "synthetic-phone-light.png", "synthetic-phone-dark.png"]
    for shot in screenshots:
        assert browser.screenshot_problems(shot) == []


def test_colour_schemes_readable(screenshots, site_dir):
    dark_rule = browser.has_dark_scheme(site_dir)
    print(f"site.css has a prefers-color-scheme: dark rule: {dark_rule}")
    for shot in screenshots:
        assert browser.scheme_problems(shot, site_dir) == []


def test_checks_find_broken_page_faults(driver, broken_site):
    loaded = browser.open_page(driver, (broken_site / "index.html").as_uri())
    assert any("callUndefinedFunction" in error for error in loaded.console_errors)
    assert any("missing.png" in error for error in loaded.console_errors)

    images = browser.image_problems(driver)
    assert "image pixel.png has no alt text" in images
    assert "image missing.png did not load" in images

    links = "\n".join(browser.link_problems(driver, broken_site))
    assert 'href="#top"' not in links
    assert "no element has the id 'nowhere'" in links
    assert "missing.pdf is not in the site" in links
    assert '<a href="https://example.org/">: absolute URL' in links
    assert '<a href="/rooted.json">: root path' in links
    assert '<img src="../outside.png">: leads outside the site folder' in links


def test_checks_find_broken_page_faults_over_http(driver, broken_site):
    with browser.serve_site(broken_site) as served:
        browser.open_page(driver, served.url)
        resources = browser.resource_problems(driver)
        links = "\n".join(browser.link_problems(driver, broken_site))
        requests = browser.request_problems(served)
    assert any(problem.endswith("/outside.png, outside " + served.url)
               for problem in resources)
    assert "the server returned status 404" in links
    assert "request for /outside.png outside /project-name/" in requests
    assert "request for /project-name/missing.png returned status 404" in requests


def test_checks_find_wide_phone_page(driver, broken_site):
    browser.open_page(driver, (broken_site / "index.html").as_uri(), size=browser.PHONE,
                      mobile=True)
    problems = browser.sideways_scroll(driver)
    assert len(problems) == 1
    assert "div ends at 9" in problems[0]


def test_dark_rule_darkens_background(driver, broken_site, tmp_path):
    assert browser.has_dark_scheme(broken_site)
    url = (broken_site / "index.html").as_uri()
    shots = {scheme: browser.take_screenshot(driver, url, tmp_path / f"{scheme}.png",
                                             size=browser.DESKTOP, mobile=False,
                                             scheme=scheme)
             for scheme in ("light", "dark")}
    assert shots["light"].background == (255, 255, 255)
    assert shots["dark"].background == (18, 20, 23)
    for shot in shots.values():
        assert browser.scheme_problems(shot, broken_site) == []


def test_scheme_problems_flag_light_dark_page(tmp_path):
    (tmp_path / "site.css").write_text(DARK_CSS, encoding="utf-8")
    shot = browser.Screenshot(tmp_path / "dark.png", 1280, "dark", background=(250, 250, 250),
                              text=(30, 30, 30))
    problems = browser.scheme_problems(shot, tmp_path)
    assert len(problems) == 1
    assert "is not dark" in problems[0]


def test_scheme_problems_flag_low_contrast(tmp_path):
    shot = browser.Screenshot(tmp_path / "light.png", 1280, "light",
                              background=(255, 255, 255), text=(170, 170, 170))
    problems = browser.scheme_problems(shot, tmp_path)
    assert len(problems) == 1
    assert "contrast below 4.5:1" in problems[0]


def test_dark_scheme_rule_detected(tmp_path):
    stylesheet = tmp_path / "site.css"
    stylesheet.write_text("body { color: black; }\n", encoding="utf-8")
    assert not browser.has_dark_scheme(tmp_path)
    stylesheet.write_text("@media screen and (prefers-color-scheme:dark) { body {} }\n",
                          encoding="utf-8")
    assert browser.has_dark_scheme(tmp_path)


def test_stylesheet_problems_flag_other_hosts(tmp_path):
    (tmp_path / "site.css").write_text(
        '@import "https://fonts.example.org/a.css";\n'
        "body { background: url(//cdn.example.org/b.png); }\n"
        'h1 { background: url("figures/local.png"); }\n', encoding="utf-8")
    assert browser.stylesheet_problems(tmp_path) == [
        "site.css loads https://fonts.example.org/a.css from another host",
        "site.css loads //cdn.example.org/b.png from another host",
    ]


def test_missing_browser_skips(monkeypatch):
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.delenv(browser.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium chromium-driver"):
        browser.require_browser()


def test_missing_browser_fails_when_required(monkeypatch):
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.setenv(browser.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="STUDY_REQUIRE_BROWSER=1 requires"):
        browser.require_browser()


def test_screenshot_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(browser.SCREENSHOTS_ENV, str(tmp_path / "shots"))
    assert browser.screenshot_dir() == tmp_path / "shots"
    assert (tmp_path / "shots").is_dir()
    monkeypatch.delenv(browser.SCREENSHOTS_ENV)
    assert browser.screenshot_dir() == Path(browser.ROOT) / "build" / "screenshots"
