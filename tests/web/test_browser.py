"""The web page end to end: Debian's Chromium, headless, driven by Playwright, against a live server.

Skipped (with the reason) when Chromium is missing; ``make browser`` installs
it. With ``YYAI_REQUIRE_BROWSER=1`` a missing Chromium fails instead, so CI
cannot pass by skipping. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.modelkit import png_bytes

CHROMIUM = Path(os.environ.get("YYAI_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Browser:
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM}; run `make browser` (apt-get install chromium)"
        if os.environ.get("YYAI_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    # Playwright's sync API keeps an event loop on this thread; Django's ORM must still run here.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            yield chromium
            chromium.close()


@pytest.fixture
def page(browser: Browser, live_server) -> Page:
    """A fresh page that may only talk to the live server: anything else (a CDN) is refused and fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(15_000)
    outside: list[str] = []

    def only_local(route):
        if route.request.url.startswith(live_server.url) or route.request.url.startswith(("blob:", "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    yield context.new_page()
    context.close()
    assert outside == [], f"the page asked for outside resources: {outside}"


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def drop_file(page: Page, selector: str, data: bytes, name: str, mime: str) -> None:
    """Drop a file on ``selector`` the way a user dragging it from the desktop does."""
    transfer = page.evaluate_handle(
        """([b64, name, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: mime}));
            return transfer;
        }""",
        [base64.b64encode(data).decode(), name, mime],
    )
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_try_apps_with_sample_upload_and_drop(page: Page, live_server, store):
    page.goto(live_server.url + "/")
    expect(page.get_by_role("heading", name="Model apps")).to_be_visible()
    calc = page.locator("#app-calc")
    expect(calc).to_contain_text("AVAILABLE")
    expect(calc).to_contain_text("a.h5")
    expect(page.locator("button.reload")).to_have_count(0)  # staff only

    # calc's sample: two regressors, 8x8 white pixels -> 1.0 * 64 and 2.0 * 64
    page.get_by_label("App", exact=True).select_option("calc")
    page.get_by_role("button", name="Use the app's sample image").click()
    results = page.locator("#results .result")
    expect(results).to_have_count(2)
    expect(results.nth(0)).to_contain_text("a.h5")
    expect(results.nth(0)).to_contain_text("64")
    expect(results.nth(1)).to_contain_text("128")
    expect(page.locator("#predict-status")).to_contain_text("ms on the server")
    assert page.eval_on_selector("#preview", "img => img.complete && img.naturalWidth") == 8

    # a dropped file that is not an image: the API's error, in words
    drop_file(page, "#drop", b"not an image at all", "notes.txt", "text/plain")
    expect(page.locator("#predict-status")).to_contain_text("not_an_image")
    expect(results).to_have_count(0)

    # a dropped image works like a chosen one
    drop_file(page, "#drop", png_bytes(255), "white.png", "image/png")
    expect(results).to_have_count(2)

    # cls has no sample; an uploaded image gives one probability bar per label
    page.get_by_label("App", exact=True).select_option("cls")
    expect(page.get_by_role("button", name="Use the app's sample image")).to_be_disabled()
    page.set_input_files("#image-input", {"name": "grey.png", "mimeType": "image/png", "buffer": png_bytes(128)})
    expect(results).to_have_count(1)
    expect(results.locator("meter")).to_have_count(3)
    for label in ("x", "y", "z"):
        expect(results.get_by_label(label, exact=True)).to_be_visible()
    expect(page.locator("#predict-status")).to_contain_text("Demo weights")
    assert screenshot(page, "web-page.png").stat().st_size > 0

    # any app can be sent a JSON body: the box starts with the app's inputs as zeros
    page.get_by_label("App", exact=True).select_option("calc")
    box = page.get_by_label("Or a JSON body")
    assert json.loads(box.input_value()) == {"inputs": {"pixels": [[[[0.0]] * 8] * 8]}}
    box.fill(json.dumps({"instances": [[[[1.0]] * 8] * 8, [[[0.5]] * 8] * 8]}))
    page.get_by_role("button", name="Send the JSON").click()
    expect(results).to_have_count(4)  # two rows, two models each
    expect(results.nth(1)).to_contain_text("128")
    expect(results.nth(3)).to_contain_text("64")
    box.fill("{not json")
    page.get_by_role("button", name="Send the JSON").click()
    expect(page.locator("#predict-status")).to_contain_text("does not hold JSON")


def test_faces_shows_each_face_with_its_apps_results(page: Page, live_server, faces_store):
    page.goto(live_server.url + "/")
    page.get_by_label("App", exact=True).select_option("faces")
    page.get_by_role("button", name="Use the app's sample image").click()
    face = page.locator("#results > .result")
    expect(face).to_have_count(1)
    expect(face.locator("h3").first).to_contain_text("faces 1: box")
    for model in ("facescore_cnn.h5", "facescore_small.keras", "predictsex_cnn.h5"):
        expect(face).to_contain_text(model)
    expect(page.locator("#predict-status")).to_contain_text("faces, version")


def test_staff_reload_and_history(page: Page, live_server, store, django_user_model):
    django_user_model.objects.create_user("boss", password="pw-boss-123", is_staff=True)
    page.goto(live_server.url + "/admin/login/?next=/")
    page.get_by_label("Username").fill("boss")
    page.get_by_label("Password").fill("pw-boss-123")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Reload history")).to_be_visible()
    expect(page.locator("#reload-history")).to_contain_text("No reloads yet")

    page.get_by_role("button", name="Reload calc").click()
    calc = page.locator("#app-calc")
    expect(calc.locator(".card-status")).to_contain_text("Reloaded:")
    first = page.locator("#reload-history tr").first
    expect(first).to_contain_text("calc")
    expect(first).to_contain_text("boss")
    expect(first).to_contain_text("ok")

    page.get_by_role("button", name="Use the app's sample image").click()  # a staff user predicts with CSRF
    expect(page.locator("#results .result")).to_have_count(2)
    screenshot(page, "web-page-staff.png")


def test_swagger_ui_runs_on_local_assets(page: Page, live_server, store):
    page.goto(live_server.url + "/api/docs/")
    expect(page.get_by_text("Predict on the app's sample image")).to_be_visible()
    expect(page.get_by_text("Reload the app from disk (staff)")).to_be_visible()
