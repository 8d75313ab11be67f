// Drives the control plane's console in Debian's headless chromium for
// test_console.py. argv: URL TOKEN USER_DATA_DIR SCREENSHOT. Prints one JSON
// line per phase on stdout; waits for a line on stdin between the phases.
"use strict";
const { chromium } = require("playwright-core");
const readline = require("readline");

const [url, token, userDataDir, screenshot] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin });
// Lines may arrive before anyone waits for them: queue them.
const queued = [];
let waiting = null;
lines.on("line", (l) => { if (waiting) { waiting(l); waiting = null; } else queued.push(l); });
const nextLine = () => new Promise((resolve) => {
  if (queued.length) resolve(queued.shift()); else waiting = resolve;
});
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");

(async () => {
  const ctx = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
  });
  const errors = [];
  try {
    const page = ctx.pages()[0] || (await ctx.newPage());
    page.on("pageerror", (e) => errors.push(String(e)));
    // Failed loads (the refused token's 401) are expected; script errors are not.
    page.on("console", (m) => {
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
    });
    await page.goto(url, { waitUntil: "load" });
    const title = await page.title();
    // A wrong token is refused in the page.
    await page.fill("#token", "wrong-token");
    await page.click("#login button[type=submit]");
    await page.waitForFunction(() => document.querySelector("#login-error").textContent !== "");
    const refused = await page.textContent("#login-error");
    await page.fill("#token", token);
    await page.click("#login button[type=submit]");
    await page.waitForSelector("#main:not([hidden])");
    await page.waitForFunction(() => document.querySelector("#instances tbody").textContent.includes("edge-a"));
    const text = (sel) => page.textContent(sel);
    say({ phase: "first", title, refused, revision: await text("#revision"),
          instances: await text("#instances tbody"), resources: await text("#resources tbody"),
          policies: await text("#policies tbody"), logs: await text("#logs tbody") });
    await page.screenshot({ path: screenshot, fullPage: true });
    await nextLine(); // the test adds an instance, a policy and a record
    await page.waitForFunction(() =>
      document.querySelector("#instances tbody").textContent.includes("edge-late") &&
      document.querySelector("#logs tbody").textContent.includes("late-query") &&
      document.querySelector("#policies tbody").textContent.includes("late-policy"),
      null, { timeout: 15000 });
    say({ phase: "live", revision: await text("#revision"), instances: await text("#instances tbody"),
          logs: await text("#logs tbody"), errors });
    await page.screenshot({ path: screenshot, fullPage: true });
  } catch (e) {
    say({ phase: "error", error: String(e), errors });
    process.exitCode = 1;
  } finally {
    await ctx.close();
    lines.close();
  }
})();
