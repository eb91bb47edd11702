// page.mjs - the search page of `gaze serve` in a real browser: Debian's chromium, headless,
// driven by playwright-core. Type a query and see results, upload an image, click "similar",
// add and delete a product through the API and see the page change; a screenshot is kept.
// Usage: node page.mjs BASE_URL API_KEY IMAGE_FILE SCREENSHOT.png
// Prints one line per check and "page: N passed, M failed"; exits 1 if any failed.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [base, key, imageFile, shot] = process.argv.slice(2);
let passed = 0,
  failed = 0;
function check(what, ok, detail = "") {
  if (ok) passed++;
  else {
    failed++;
    console.error(`FAIL: ${what} ${detail}`);
  }
}

async function api(method, path, body) {
  const r = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return r.status;
}

// Run a query from the search box and wait for the page to report it.
async function searchFor(page, text) {
  const before = await page.textContent("#status");
  await page.fill("#q", text);
  await page.press("#q", "Enter");
  await page.waitForFunction((b) => {
    const s = document.querySelector("#status").textContent;
    return s !== b && !s.startsWith("searching");
  }, before);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base + "/");
  check("page title", (await page.title()) === "gaze");

  // 1. type a query: a grid of cards with loaded thumbnails and scores
  await searchFor(page, "a cat on a table");
  const cards = await page.$$(".card");
  check("text query shows results", cards.length > 0, `(${cards.length} cards)`);
  await page.waitForFunction(() =>
    [...document.querySelectorAll(".card img")].every((i) => i.complete && i.naturalWidth > 0),
  );
  check("thumbnails loaded", (await page.$$(".card img")).length === cards.length);
  check("scores shown", /score -?\d\.\d{4}/.test(await page.textContent(".card .score")));

  // 2. pick an image: the photo itself comes first
  await page.fill("#q", "");
  const before = await page.textContent("#status");
  await page.setInputFiles("#file", imageFile);
  await page.waitForFunction((b) => document.querySelector("#status").textContent !== b && !document.querySelector("#status").textContent.startsWith("searching"), before);
  const firstTitle = await page.textContent(".card .title");
  const name = imageFile.split("/").pop();
  check("image query finds the photo first", firstTitle === name, `(${firstTitle})`);
  check("image query score ~1", /score (0\.999\d|1\.0000)/.test(await page.textContent(".card .score")));
  await page.click("#preview"); // clear the query image

  // 3. "similar" on the second card: that item comes first
  const second = await page.$$eval(".card", (cs) => cs[1].dataset.itemId);
  await page.click(".card:nth-child(2) button.similar");
  await page.waitForFunction((id) => {
    const s = document.querySelector("#status").textContent;
    return s.includes(`similar to #${id}`) && !s.startsWith("searching");
  }, second);
  const top = await page.$eval(".card", (c) => c.dataset.itemId);
  check("similar: the item itself first", top === second, `(${top} vs ${second})`);

  // 4. a product added through the API appears in the products view; deleted, it goes
  await page.selectOption("#mode", "products");
  check("PUT product", (await api("PUT", "/v1/items/shop/zebra-1", { title: "zebra lamp", description: "striped desk lamp", image: readFileSync(imageFile).toString("base64") })) === 201);
  await searchFor(page, "zebra lamp");
  const titles = await page.$$eval(".card .title", (ts) => ts.map((t) => t.textContent));
  check("the added product is shown", titles.includes("zebra lamp"), JSON.stringify(titles));
  check("its description is shown", (await page.content()).includes("striped desk lamp"));
  await page.waitForFunction(() => [...document.querySelectorAll(".card img")].every((i) => i.complete && i.naturalWidth > 0));
  check("its image is shown", (await page.$$(".card img")).length > 0);
  await page.screenshot({ path: shot, fullPage: true });
  check("DELETE product", (await api("DELETE", "/v1/items/shop/zebra-1")) === 200);
  await searchFor(page, "zebra lamp ");
  const after = await page.$$eval(".card .title", (ts) => ts.map((t) => t.textContent));
  check("the deleted product is gone", !after.includes("zebra lamp"), JSON.stringify(after));
  check("no script errors", errors.length === 0, errors.join("; "));
} catch (e) {
  check("browser run", false, String(e));
} finally {
  await browser.close();
}
console.log(`page: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
