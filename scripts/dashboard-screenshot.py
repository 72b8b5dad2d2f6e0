#!/usr/bin/env python3
"""Takes a full-page screenshot of a running dashboard with Debian's headless chromium (through selenium, installed in
.venv by scripts/setup.sh), e.g. for the README while `make demo` runs:

    .venv/bin/python scripts/dashboard-screenshot.py 'http://127.0.0.1:51051/#/training' docs/dashboard.png
    .venv/bin/python scripts/dashboard-screenshot.py URL out.png --width 390 --scheme dark --wait 5
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("output")
    parser.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels (a phone's below 600)")
    parser.add_argument("--scheme", choices=["light", "dark"], default="light", help="prefers-color-scheme")
    parser.add_argument("--wait", type=float, default=4.0, help="seconds to let the page load and update")
    parser.add_argument("--scale", type=float, default=1.0, help="device pixel ratio")
    args = parser.parse_args()

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        sys.exit("dashboard-screenshot: chromium and chromedriver are needed: run scripts/setup.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        metrics = {"width": args.width, "deviceScaleFactor": args.scale, "mobile": args.width < 600}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": 900})
        driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": args.scheme}]}
        )
        driver.get(args.url)
        time.sleep(args.wait)
        # As tall as the content (the body), not the initial viewport.
        height = int(driver.execute_script("return Math.ceil(document.body.getBoundingClientRect().height)"))
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": min(height, 6000)})
        time.sleep(0.5)  # charts redraw at the new size
        if not driver.save_screenshot(args.output):
            sys.exit(f"dashboard-screenshot: chromium wrote no screenshot to {args.output}")
    finally:
        driver.quit()
    print(f"dashboard-screenshot: {args.url} -> {args.output}")


if __name__ == "__main__":
    main()
