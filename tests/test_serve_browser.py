"""The dashboard in headless Chromium (Debian's chromium, driven by Playwright; no browser
is downloaded): a goal submitted through the API, its run page watched until success.
The screenshot is kept in .artifacts/ as a test artifact."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from serve_server import DEMO, serving, write_script

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / ".artifacts"
HOSTILE_GOAL = 'Fix restock() so the inventory tests pass <img src=x onerror="window.pwned=1">'


def _chromium() -> str:
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    raise AssertionError("chromium is missing: make setup installs it (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


def _script(root: Path) -> str:
    """The demo's two attempts, the first one slow enough to be watched, and printing
    markup that must stay text."""
    wrong = {
        "purpose": "plan",
        "json": {
            "steps": [
                {
                    "intent": "Make restock add to the current count",
                    "actions": [
                        {
                            "kind": "edit",
                            "path": "inventory.py",
                            "search": "    updated[item] = count\n",
                            "replace": "    updated[item] += count\n",
                        },
                        {
                            "kind": "shell",
                            "command": "echo '<script>window.pwned=2</script>'; sleep 2",
                        },
                    ],
                }
            ]
        },
    }
    lines = [line for line in (DEMO / "script.jsonl").read_text().splitlines() if line[:1] == "{"]
    answers = [json.loads(line) for line in lines]
    second = [n for n, a in enumerate(answers) if a.get("purpose") == "plan"][1]
    rest = answers[second:]  # the demo's second attempt: its plan and its code
    return "scripted:" + write_script(root / "browser.jsonl", wrong, *rest)


def test_run_page_shows_the_loop_live_until_success(browser: Browser, tmp_path: Path) -> None:
    with serving(tmp_path / "root", tmp_path / "runs.db") as server, server.client() as client:
        server.demo_workspace("demo")
        page: Page = browser.new_page(viewport={"width": 1200, "height": 1100})
        submitted = client.post(
            "/api/runs",
            json={
                "text": HOSTILE_GOAL,
                "workspace": "demo",
                "checks": ["python3 -m unittest -q"],
                "model": _script(server.root),
                "budget": {"max_iterations": 4},
            },
        )
        assert submitted.status_code == 202, submitted.text
        run_id = submitted.json()["id"]
        # As `zerog serve` prints it: the token in the fragment, kept by the tab.
        page.goto(f"{server.url}/runs/{run_id}#token={server.token}")
        assert "token" not in page.url

        # Live: the first iteration is on the page while the run is still going.
        expect(page.locator('[data-iteration="1"] [data-step-state="running"]')).to_be_visible(
            timeout=20_000
        )
        assert page.locator("#final").count() == 0
        expect(page.locator("#conn")).to_have_text("live")

        expect(page.locator('#final[data-status="success"]')).to_be_visible(timeout=30_000)
        expect(page.locator(".summary .badge")).to_have_text("success")
        assert page.locator("[data-iteration]").count() == 3  # the preflight and 2 iterations
        assert page.locator('[data-iteration="0"] [data-check="failed"]').count() == 1
        expect(page.locator('[data-iteration="0"] h2')).to_contain_text("Preflight")
        expect(page.locator('[data-preflight="failed"]')).to_contain_text("feedback to the first")
        assert page.locator('[data-iteration="1"] [data-check="failed"]').count() == 1
        assert page.locator('[data-iteration="2"] [data-check="passed"]').count() == 1
        expect(page.locator(".note.rollback")).to_contain_text("rolled back")
        assert page.locator("#chart svg rect").count() == 4  # in/out bars, 2 iterations
        expect(page.locator(".summary h1")).to_have_text(HOSTILE_GOAL)
        printed = page.locator("pre.out", has_text="<script>window.pwned=2</script>")
        expect(printed).to_have_count(1)
        assert page.evaluate("window.pwned === undefined")
        assert page.locator("main img, main script").count() == 0
        assert page.locator("#cancel").is_disabled()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "serve-run-page.png"), full_page=True)

        page.goto(server.url + "/")
        row = page.locator(f'tr[data-run="{run_id}"]')
        expect(row.locator(".badge")).to_have_text("success")
        expect(row).to_contain_text("<img src=x")
        page.screenshot(path=str(ARTIFACTS / "serve-runs.png"))
        page.close()


def test_dashboard_asks_for_the_token(browser: Browser, tmp_path: Path) -> None:
    token = "k" * 43
    with serving(tmp_path / "root", tmp_path / "runs.db", token=token) as server:
        page = browser.new_page()
        page.goto(server.url + "/")
        form = page.locator("form.token")
        expect(form).to_be_visible(timeout=10_000)
        form.locator("input").fill(token)
        form.locator("button").click()
        expect(page.locator("main")).to_contain_text("No runs yet")
        assert httpx.get(server.url + "/api/runs").status_code == 401
        # The form posts the same JSON as the API and shows its refusal.
        page.locator("#new-run summary").click()
        page.locator("#goal-json").fill('{"text": "x", "workspace": "nowhere", "checks": ["true"]}')
        page.locator("form.submit button").click()
        expect(page.locator("#submit-error")).to_contain_text("not a directory")
        page.close()


def test_run_page_shows_what_the_run_changed(browser: Browser, tmp_path: Path) -> None:
    """The Changes panel: loaded when the run ends, one entry per file, diff lines as
    text (a file named and filled with markup stays text; escapes are shown)."""
    name = '<img src=x onerror="window.pwned=3">.html'
    fix = {
        "purpose": "plan",
        "json": {
            "steps": [
                {
                    "intent": "Fix restock and leave a note",
                    "actions": [
                        {
                            "kind": "edit",
                            "path": "inventory.py",
                            "search": "    updated[item] = count\n",
                            "replace": "    updated[item] = updated.get(item, 0) + count\n",
                        },
                        {
                            "kind": "write_file",
                            "path": name,
                            "content": "<script>window.pwned=4</script>\n\x1b[31mred\n",
                        },
                    ],
                }
            ]
        },
    }
    with serving(tmp_path / "root", tmp_path / "runs.db") as server, server.client() as client:
        server.demo_workspace("demo")
        model = "scripted:" + write_script(server.root / "fix.jsonl", fix)
        submitted = client.post(
            "/api/runs",
            json={
                "text": "Fix restock() so the inventory tests pass",
                "workspace": "demo",
                "checks": ["python3 -m unittest -q"],
                "model": model,
                "budget": {"max_iterations": 1},
            },
        )
        assert submitted.status_code == 202, submitted.text
        run_id = submitted.json()["id"]
        token = getattr(server, "token", None)
        page: Page = browser.new_page(viewport={"width": 1200, "height": 1100})
        page.goto(f"{server.url}/runs/{run_id}" + (f"#token={token}" if token else ""))
        expect(page.locator('#final[data-status="success"]')).to_be_visible(timeout=30_000)
        changes = page.locator("#changes")
        expect(changes.locator(".file")).to_have_count(2, timeout=10_000)
        fixed = changes.locator('.file[data-path="inventory.py"]')
        expect(fixed.locator(".badge")).to_have_text("changed")
        expect(fixed.locator("pre.diff .add")).to_contain_text("updated.get(item, 0) + count")
        expect(fixed.locator("pre.diff .del")).to_contain_text("updated[item] = count")
        hostile = changes.locator('.file[data-status="added"]')
        expect(hostile.locator(".what")).to_have_text(name)
        expect(hostile.locator("pre.diff .add").first).to_have_text(
            "+<script>window.pwned=4</script>"
        )
        expect(hostile.locator("pre.diff .add").nth(1)).to_have_text("+\\x1b[31mred")
        assert page.evaluate("window.pwned === undefined")
        assert page.locator("main img, main script").count() == 0
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "serve-run-changes.png"), full_page=True)
        page.close()
