// Opens the dashboard in headless Chromium, finds a queue that was pushed to
// over HTTP, opens one of its jobs from the queue's list, and saves
// screenshots of the list and of the job.
//
// Usage: node dashboard.mjs <server URL> <queue> <job id> <screenshot prefix>
// Exits non-zero, saying why, when a step fails.
import { chromium } from "playwright-core";

const [url, queue, jobId, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // Without these, Chromium reaches for Google's hosts, which this network
  // refuses.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));

  await page.goto(`${url}/dashboard`);
  // The home page lists the queues.
  await page.getByText(queue, { exact: true }).first().waitFor({ timeout: 20000 });

  // The queue's pending jobs list the one we pushed; open it from there.
  await page.goto(`${url}/dashboard/queues/${queue}/Pending`);
  const row = page.getByText(jobId).first();
  await row.waitFor({ timeout: 20000 });
  await page.screenshot({ path: `${screenshot}-queue.png`, fullPage: true });
  await row.click();
  await page.waitForURL(`**/queues/${queue}/tasks/${jobId}`, { timeout: 20000 });
  await page.getByText("Arguments").first().waitFor({ timeout: 20000 });
  await page.screenshot({ path: `${screenshot}-job.png`, fullPage: true });

  // A reload of a page address (not under /dashboard) still gets the page.
  await page.reload();
  await page.getByText(jobId).first().waitFor({ timeout: 20000 });
  if (errors.length > 0) {
    throw new Error(`page errors: ${errors.join("; ")}`);
  }
  console.log(`ok: ${page.url()}`);
} finally {
  await browser.close();
}
