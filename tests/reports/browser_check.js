// Opens a report's index.html in headless Chromium (playwright-core, Debian's chromium),
// collects console errors and failed requests, checks that the guarantee matrix and the
// timeline are drawn, saves a full-page screenshot, and prints one JSON line.
// Usage: node browser_check.js INDEX_HTML SCREENSHOT_PNG USER_DATA_DIR
const path = require("path");
const { chromium } = require("playwright-core");

async function main() {
  const [index, shot, userDataDir] = process.argv.slice(2);
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
    timeout: 60000,
  });
  const errors = [];
  const requests = [];
  try {
    const page = await context.newPage();
    page.on("console", (msg) => { if (msg.type() === "error") errors.push(msg.text()); });
    page.on("pageerror", (err) => errors.push(String(err)));
    page.on("request", (req) => { if (!req.url().startsWith("file:")) requests.push(req.url()); });
    await page.goto("file://" + path.resolve(index), { waitUntil: "load", timeout: 30000 });
    const facts = await page.evaluate(() => {
      const box = (el) => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
      const matrix = document.querySelector("#guarantee-matrix");
      const timelines = [...document.querySelectorAll(".chart.timeline svg")];
      return {
        title: document.title,
        verdict: document.querySelector("#verdict")?.textContent.trim(),
        matrixCells: matrix ? matrix.querySelectorAll("td[data-state]").length : 0,
        matrixStates: matrix ? [...matrix.querySelectorAll("td[data-state]")].map((td) => td.dataset.state) : [],
        matrixBox: matrix ? box(matrix) : [0, 0],
        timelines: timelines.length,
        timelineBox: timelines.length ? box(timelines[0]) : [0, 0],
        timelineText: timelines.length ? timelines[0].textContent : "",
      };
    });
    await page.screenshot({ path: shot, fullPage: true });
    console.log(JSON.stringify({ errors, requests, ...facts }));
  } finally {
    await context.close();
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
