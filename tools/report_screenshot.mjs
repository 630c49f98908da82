#!/usr/bin/env node
// Headless-Chromium screenshot of a pytest-inference HTML report (Allure 3 single file),
// for checking by eye that claims, charts and attachments show.
//
//   node tools/report_screenshot.mjs reports/html/index.html /tmp/report.png \
//        [--hash '#/<test-result-id>'] [--expand chart] [--width 1600] [--height 1200]
//
// --expand TEXT clicks every attachment header whose name contains TEXT (e.g. "chart") so
// the PNG opens inline. Talks to Chromium over --remote-debugging-pipe (no TCP port), loads
// only the file:// URL, and runs with the networking-off flags; wrap it in `unshare -n`
// (as root) to be certain nothing leaves the machine. Prints the page's visible text length,
// whether each --expect string is in it and any non-file request; exits 1 if one is missing
// or the page asked for anything over the network.

import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const opt = { hash: "", expand: [], expect: [], width: 1600, height: 1200, browser: process.env.CHROMIUM || "chromium", wait: 15000 };
const pos = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--hash") opt.hash = args[++i];
  else if (a === "--expand") opt.expand.push(args[++i]);
  else if (a === "--expect") opt.expect.push(args[++i]);
  else if (a === "--width") opt.width = Number(args[++i]);
  else if (a === "--height") opt.height = Number(args[++i]);
  else if (a === "--browser") opt.browser = args[++i];
  else if (a === "--wait-ms") opt.wait = Number(args[++i]);
  else pos.push(a);
}
if (pos.length !== 2) {
  console.error("usage: report_screenshot.mjs <index.html> <out.png> [--hash '#/id'] [--expand TEXT] [--expect TEXT]");
  process.exit(2);
}
const url = pathToFileURL(resolve(pos[0])).href + (opt.hash || "");
const out = resolve(pos[1]);
const profile = mkdtempSync(join(tmpdir(), "report-shot-"));

const chrome = spawn(opt.browser, [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
  "--host-resolver-rules=MAP * ~NOTFOUND", // no name resolves: nothing can leave by accident
  `--user-data-dir=${profile}`, `--window-size=${opt.width},${opt.height}`,
  "--remote-debugging-pipe", "about:blank",
], { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"] });

const toChrome = chrome.stdio[3];
const fromChrome = chrome.stdio[4];
let nextId = 1;
const pending = new Map();
const waiters = [];
const external = []; // requests for anything but file:, data:, blob: (there should be none)
let buf = Buffer.alloc(0);
fromChrome.on("data", (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  let end;
  while ((end = buf.indexOf(0)) !== -1) {
    const msg = JSON.parse(buf.subarray(0, end).toString("utf8"));
    buf = buf.subarray(end + 1);
    if (msg.id && pending.has(msg.id)) {
      const { ok, fail } = pending.get(msg.id);
      pending.delete(msg.id);
      msg.error ? fail(new Error(JSON.stringify(msg.error))) : ok(msg.result);
    } else if (msg.method) {
      if (msg.method === "Network.requestWillBeSent" && !/^(file|data|blob):/.test(msg.params.request.url)) {
        external.push(msg.params.request.url);
      }
      for (const w of [...waiters]) if (w.method === msg.method && (!w.sessionId || w.sessionId === msg.sessionId)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.ok(msg.params);
      }
    }
  }
});
const send = (method, params = {}, sessionId) => new Promise((ok, fail) => {
  const id = nextId++;
  pending.set(id, { ok, fail });
  toChrome.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + "\0");
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let code = 0;
try {
  const { targetInfos } = await send("Target.getTargets");
  const page = targetInfos.find((t) => t.type === "page");
  const { sessionId } = await send("Target.attachToTarget", { targetId: page.targetId, flatten: true });
  const s = (m, p) => send(m, p, sessionId);
  await s("Page.enable");
  await s("Network.enable");
  await s("Emulation.setDeviceMetricsOverride", { width: opt.width, height: opt.height, deviceScaleFactor: 1, mobile: false });
  const loaded = new Promise((ok) => waiters.push({ method: "Page.loadEventFired", sessionId, ok }));
  await s("Page.navigate", { url });
  await loaded;
  const evaluate = async (expression) => (await s("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true })).result.value;
  // wait for the SPA: report data ready and the test tree / test page rendered
  const deadline = Date.now() + opt.wait;
  while (Date.now() < deadline) {
    const ready = await evaluate(`!!window.allureReportDataReady && document.body.innerText.length > 200 && !document.getElementById("allure-app-loader")`);
    if (ready) break;
    await sleep(200);
  }
  await sleep(800);
  for (const text of opt.expand) {
    const n = await evaluate(`(() => { let n = 0;
      for (const h of document.querySelectorAll('[data-testid="test-result-attachment-header"]')) {
        if (h.innerText.includes(${JSON.stringify(text)})) { (h.querySelector("button") || h).click(); n++; }
      } return n; })()`);
    console.log(`expanded ${n} attachment(s) matching ${JSON.stringify(text)}`);
  }
  await sleep(1200);
  const text = await evaluate("document.body.innerText");
  console.log(`page text: ${text.length} characters`);
  for (const e of opt.expect) {
    const found = text.includes(e);
    console.log(`${found ? "found" : "MISSING"}: ${e}`);
    if (!found) code = 1;
  }
  const imgs = await evaluate(`[...document.images].filter(i => i.complete && i.naturalWidth > 200).length`);
  console.log(`rendered images wider than 200 px: ${imgs}`);
  const { contentSize } = await s("Page.getLayoutMetrics");
  const height = Math.min(Math.ceil(contentSize.height), 8000);
  const shot = await s("Page.captureScreenshot", { format: "png", captureBeyondViewport: true,
    clip: { x: 0, y: 0, width: opt.width, height, scale: 1 } });
  writeFileSync(out, Buffer.from(shot.data, "base64"));
  console.log(`wrote ${out} (${opt.width}x${height})`);
  console.log(`external requests: ${external.length ? external.join(" ") : "none"}`);
  if (external.length) code = 1;
} catch (err) {
  console.error(`screenshot failed: ${err.message}`);
  code = 2;
} finally {
  const exited = new Promise((ok) => chrome.once("exit", ok));
  try { await Promise.race([send("Browser.close"), sleep(3000)]); } catch {}
  await Promise.race([exited, sleep(5000)]);
  chrome.kill();
  try { rmSync(profile, { recursive: true, force: true, maxRetries: 5 }); } catch {}
}
process.exit(code);
