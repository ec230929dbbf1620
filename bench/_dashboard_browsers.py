"""Dashboards open during a fan-out measurement (`bench/fanout.py --dashboards`).

Started as its own process: `python bench/_dashboard_browsers.py PORT COUNT`. Launches
COUNT headless Debian Chromium browsers, each with the dashboard's Market view (the SSE
price stream) and its Signals view (the WebSocket) open, waits until every feed badge
says live, prints `ready`, then keeps them open until stdin closes; it then prints
`live K/N` (feeds still live) and exits.
"""

from __future__ import annotations

import sys

from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    port, count = int(sys.argv[1]), int(sys.argv[2])
    base = f"http://127.0.0.1:{port}/"
    with sync_playwright() as playwright:
        badges = []
        browsers = []
        for _ in range(count):
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            browsers.append(browser)
            for view, feed in (("#market", "#feed-prices"), ("#signals", "#feed-signals")):
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(base + view)
                badge = page.locator(feed)
                expect(badge).to_have_attribute("data-state", "live", timeout=60_000)
                badges.append(badge)
        print("ready", flush=True)
        sys.stdin.read()  # the bench closes our stdin when its window is over
        live = sum(1 for b in badges if b.get_attribute("data-state") == "live")
        print(f"live {live}/{len(badges)}", flush=True)
        for browser in browsers:
            browser.close()


if __name__ == "__main__":
    main()
