#!/usr/bin/env python3
"""Drives the gateway's dashboard in headless Chromium (Debian chromium + chromedriver, through
python3-selenium), as an operator would: sees the queue's counts, opens its dead letters,
requeues one by clicking, and keeps a screenshot. Exit 0 and "ok" when every step held; any
failure is a traceback naming the step.

Usage: dashboard_check.py URL QUEUE DEAD_TASK_ID SCREENSHOT_PATH
"""
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

url, queue, dead_id, shot = sys.argv[1:5]

opts = Options()
opts.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
          "--window-size=1400,1000"):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
wait = WebDriverWait(driver, 30)


def cell(name):
    return driver.find_element(
        By.CSS_SELECTOR, '#queues tbody tr[data-queue="%s"] td.%s' % (queue, name)).text


def click(selector):
    """Clicks the element, again if the page replaced it meanwhile."""
    def attempt():
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    step("clicking " + selector, attempt)


def step(what, pred):
    try:
        wait.until(lambda d: pred())
    except Exception:
        driver.save_screenshot(shot)
        raise AssertionError("dashboard: " + what + " (screenshot: " + shot + ")")


try:
    driver.get(url)
    step("the queue's row shows 3 ready, 1 dead and 1 completed",
         lambda: cell("ready") == "3" and cell("dead") == "1" and cell("completed") == "1")
    click('#queues tbody tr[data-queue="%s"]' % queue)
    step("the ready list shows the 3 tasks",
         lambda: len(driver.find_elements(By.CSS_SELECTOR, "#list tbody tr")) == 3)
    click('nav button[data-tab="dead"]')
    step("the dead letter is listed with a requeue button",
         lambda: driver.find_elements(By.CSS_SELECTOR, 'button.requeue[data-id="%s"]' % dead_id))
    # Its detail: state, the error it died of, and its history (the failed run, then dead).
    click('#list tbody tr[data-id="%s"] a.task' % dead_id)
    step("the task's detail shows it dead, with its error",
         lambda: "dead" in driver.find_element(By.CSS_SELECTOR, "#task-fields td.state").text
         and "poisoned" in driver.find_element(By.CSS_SELECTOR, "#task-fields td.error").text)
    step("the task's history lists its enqueue and the failed run",
         lambda: [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#task-history tbody td:nth-child(2)")][:2]
         == ["enqueued", "run failed: poisoned"])
    click('button.requeue[data-id="%s"]' % dead_id)
    step("after the click the queue shows 0 dead and 4 ready",
         lambda: cell("dead") == "0" and cell("ready") == "4")
    step("the task's detail shows it ready again",
         lambda: driver.find_element(By.CSS_SELECTOR, "#task-fields td.state").text == "ready")
    time.sleep(1.5)  # a second sample for the chart
    driver.save_screenshot(shot)
    print("ok")
finally:
    driver.quit()
