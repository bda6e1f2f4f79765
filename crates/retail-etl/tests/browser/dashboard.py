#!/usr/bin/python3
"""Drives the live dashboard in headless Chromium, as an operator would.

Opens the page while `demo` runs, sees the sales numbers grow, presses Pause on a source, sees
its ingest rate fall to zero, presses Resume, sees it come back, sets a lower rate from the page
and sees the ingest rate follow, lists the log's topics and groups and reads records of the
sales topic in the log view, and saves screenshots at a laptop and at a phone width. Prints one JSON line with what it measured; exits 1 with the step
that failed. Run by crates/retail-etl/tests/dashboard.rs (Debian packages chromium,
chromium-driver and python3-selenium; ./scripts/test installs them).
"""
import argparse
import json
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


class Failed(Exception):
    pass


def number(driver, element_id):
    """The tile's value as a float (locale separators removed); None while it shows '–'."""
    raw = driver.find_element(By.ID, element_id).text.strip()
    digits = "".join(c for c in raw if c.isdigit() or c in ".-")
    try:
        return float(digits)
    except ValueError:
        return None


def wait_for(what, limit_s, check):
    deadline = time.monotonic() + limit_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {limit_s}s waiting for {what}")
        time.sleep(0.1)


def click(driver, action, source):
    selector = f'button[data-action="{action}"][data-name="{source}"]'
    buttons = driver.find_elements(By.CSS_SELECTOR, selector)
    visible = [b for b in buttons if b.is_displayed()]
    if not visible:
        raise Failed(f"no visible {selector} on the page")
    visible[0].click()
    return time.monotonic()


def run(args):
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1200"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(args.chromedriver), options=options)
    result = {}
    try:
        driver.get(args.url)
        wait_for("the live stream to connect", 20,
                 lambda: "on" in driver.find_element(By.ID, "conn").get_attribute("class"))
        first = wait_for("sales to show on the page", 30,
                         lambda: (number(driver, "sales-landed") or 0) > 0 and number(driver, "sales-landed"))
        grown = wait_for("the sales number to grow", 20,
                         lambda: (number(driver, "sales-landed") or 0) > first and number(driver, "sales-landed"))
        result["sales_landed_first"], result["sales_landed_later"] = first, grown
        if args.expect_store:
            result["sales_today"] = wait_for(
                "today's sales from the store", 30, lambda: (number(driver, "sales-today") or 0) > 0
                and number(driver, "sales-today"))
        result["rate_before"] = wait_for("a positive ingest rate", 20,
                                         lambda: (number(driver, "in-rate") or 0) > 0 and number(driver, "in-rate"))

        pressed = click(driver, "pause", args.source)
        wait_for("the ingest rate to drop to zero after Pause", 10,
                 lambda: number(driver, "in-rate") == 0)
        result["pause_to_zero_s"] = round(time.monotonic() - pressed, 2)
        badge = driver.find_element(By.CSS_SELECTOR, f'[data-control="source:{args.source}"] .state')
        wait_for("the source to show as paused", 5, lambda: badge.text == "paused")
        driver.save_screenshot(args.screenshot.replace(".png", "-paused.png"))

        pressed = click(driver, "resume", args.source)
        wait_for("the ingest rate to come back after Resume", 10,
                 lambda: (number(driver, "in-rate") or 0) > 0)
        result["resume_to_flowing_s"] = round(time.monotonic() - pressed, 2)

        # Throttle from the page: the source reports the new rate and the ingest rate follows.
        field = driver.find_element(By.CSS_SELECTOR, f'input[data-rate-for="{args.source}"]')
        field.clear()
        field.send_keys(str(args.set_rate))
        pressed = click(driver, "rate", args.source)
        row = f'[data-control="source:{args.source}"]'
        wait_for(f"the source to report {args.set_rate} ev/s", 10,
                 lambda: driver.find_element(By.CSS_SELECTOR, row + " .rate-now").text.startswith(str(args.set_rate)))
        result["rate_set_to_shown_s"] = round(time.monotonic() - pressed, 2)
        wait_for(f"the ingest rate to follow the new rate of {args.set_rate}/s", 15,
                 lambda: 0 < (number(driver, "in-rate") or 0) <= args.set_rate * 1.5)
        result["rate_set_to_followed_s"] = round(time.monotonic() - pressed, 2)
        result["rate_after"] = number(driver, "in-rate")
        wait_for("the store figures to fill the tables", 20 if args.expect_store else 0.1,
                 lambda: not args.expect_store or driver.find_elements(By.CSS_SELECTOR, "#top-cities tr"))
        # The log view: topics and groups listed, and the record browser reads the sales topic.
        wait_for("the log view to list the topics and groups", 15,
                 lambda: driver.find_elements(By.CSS_SELECTOR, "#log-topics tr")
                 and driver.find_elements(By.CSS_SELECTOR, "#log-groups tr"))
        result["log_topics"] = [r.find_elements(By.TAG_NAME, "td")[0].text
                                for r in driver.find_elements(By.CSS_SELECTOR, "#log-topics tr")]
        from selenium.webdriver.support.ui import Select
        Select(driver.find_element(By.ID, "browse-topic")).select_by_value("sales")
        driver.find_element(By.CSS_SELECTOR, "#browse button[type=submit]").click()
        wait_for("the record browser to show sales records", 10,
                 lambda: any("event_type=sale" in r.text
                             for r in driver.find_elements(By.CSS_SELECTOR, "#browse-records tr")))
        result["browsed_records"] = len(driver.find_elements(By.CSS_SELECTOR, "#browse-records tr"))
        time.sleep(1.5)  # let the chart take a couple of ticks before the picture
        driver.save_screenshot(args.screenshot)

        driver.set_window_size(390, 844)  # a phone
        time.sleep(1.0)
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        result["phone_horizontal_overflow_px"] = overflow
        if overflow > 0:
            raise Failed(f"the page is {overflow}px wider than a 390px phone screen")
        driver.save_screenshot(args.screenshot.replace(".png", "-phone.png"))
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        if errors:
            raise Failed(f"the page logged errors: {errors}")
    finally:
        driver.quit()
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--screenshot", required=True, help="path of the laptop-width PNG")
    p.add_argument("--source", default="generator")
    p.add_argument("--set-rate", type=int, default=150, help="the rate the test sets from the page")
    p.add_argument("--expect-store", action="store_true", help="also wait for the store's figures")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = p.parse_args()
    try:
        print(json.dumps(run(args)))
    except (Failed, WebDriverException) as e:
        print(f"dashboard test failed: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
