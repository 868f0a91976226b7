"""What an attendee does in the browser, as Playwright steps: log in, start a server, wait for
JupyterLab, read the OPU status-bar item, run a notebook."""

from __future__ import annotations

import re

LAB_READY = "#jp-main-dock-panel"  # JupyterLab's main area: the app has started
STATUS_ITEM = "#opuhub-status"


def log_in(page, base_url: str, user: str, password: str) -> None:
    """Fill the hub's login form and submit it; the caller checks where it lands."""
    page.goto(f"{base_url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")


def wait_for_lab(page, user: str, timeout: float = 180_000) -> None:
    """Until JupyterLab (of ``user``'s server) has started in ``page``."""
    page.wait_for_url(re.compile(rf"/user/{re.escape(user)}/lab"), timeout=timeout)
    page.wait_for_selector(LAB_READY, timeout=timeout)


def status_text(page, expected: str | re.Pattern, timeout: float = 60_000) -> str:
    """The OPU item's text once it contains ``expected`` (the first poll may still be out)."""
    item = page.locator(STATUS_ITEM)
    item.wait_for(timeout=timeout)
    if isinstance(expected, str):
        expected = re.compile(re.escape(expected))
    page.wait_for_function(
        "([sel, src, flags]) => { const n = document.querySelector(sel);"
        " return n && new RegExp(src, flags).test(n.textContent); }",
        arg=[STATUS_ITEM, expected.pattern, "i" if expected.flags & re.I else ""],
        timeout=timeout,
    )
    return item.inner_text()


def api_json(page, base_url: str, path: str) -> dict:
    """GET a URL of the hub's proxy with the page's cookies (as the logged-in user)."""
    resp = page.request.get(f"{base_url}{path}")
    assert resp.ok, f"{path}: HTTP {resp.status} {resp.text()[:300]}"
    return resp.json()


def open_notebook(page, base_url: str, user: str, path: str) -> None:
    page.goto(f"{base_url}/user/{user}/lab/tree/{path}")
    page.wait_for_selector(LAB_READY)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
    # the notebook's kernel has started (the toolbar names it) and is idle
    page.wait_for_function(
        """() => { const n = document.querySelector('.jp-NotebookPanel .jp-KernelName');
                   return n && n.textContent.trim() !== 'No Kernel'
                          && !/Kernel/.test(n.textContent.trim()) ; }""",
        timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=120_000)


def kernel_name(page) -> str:
    return page.locator(".jp-NotebookPanel .jp-KernelName").first.inner_text().strip()


def run_all(page, timeout: float = 300_000) -> None:
    """Run → Run All Cells, then wait until no cell is queued or running and every code cell
    has an execution count."""
    page.click("div.lm-MenuBar-itemLabel:text-is('Run')")
    page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
    page.wait_for_function(
        """() => {
          const prompts = [...document.querySelectorAll(
            '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')];
          return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""",
        timeout=timeout,
    )


def save_and_read(page, base_url: str, user: str, path: str) -> dict:
    """Save the open notebook (Ctrl+S) and read it back from the server, outputs included."""
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => !document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)')"
        "        ?.closest('.lm-DockPanel')?.querySelector('.lm-TabBar-tab.jp-mod-dirty')")
    return api_json(page, base_url, f"/user/{user}/api/contents/{path}?content=1")["content"]
