// End-to-end scenarios of the web UI in headless Chromium against a real Berth started by
// `berth up --fake-gpus 2` (tests/webui/test_ui.py). Env: BERTH_URL, BERTH_ADMIN_USER,
// BERTH_ADMIN_PASSWORD, BERTH_ADMIN_TOKEN, BERTH_SCREENSHOTS (folder), CHROMIUM (executable).
// Prints one PASS/FAIL line per scenario and "N passed, N failed"; exits non-zero on a failure.
import { createRequire } from "node:module";
import { createHash, randomBytes } from "node:crypto";
import { readFile, mkdir } from "node:fs/promises";
import path from "node:path";

const require = createRequire(new URL("../../web_ui/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const URL_ = process.env.BERTH_URL;
const ADMIN_USER = process.env.BERTH_ADMIN_USER ?? "admin";
const ADMIN_PASSWORD = process.env.BERTH_ADMIN_PASSWORD;
const ADMIN_TOKEN = process.env.BERTH_ADMIN_TOKEN;
const SHOTS = process.env.BERTH_SCREENSHOTS ?? "test-results/webui";
const TIMEOUT = 15000;
const suffix = Date.now().toString(36);
const IMAGE = "berth/jupyterlab:4";

const results = [];
let failed = 0;

async function scenario(name, fn) {
  const started = Date.now();
  try {
    await fn();
    results.push(`PASS ${name} (${Date.now() - started} ms)`);
  } catch (err) {
    failed++;
    results.push(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
  }
  console.error(results[results.length - 1].split("\n")[0]);
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

async function api(method, p, body, token = ADMIN_TOKEN) {
  const res = await fetch(URL_ + p, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

async function until(what, probe, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

let browser;
const contexts = [];

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("dialog", (d) => void d.accept());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  return { context, page, errors };
}

function nav(page, name) {
  return page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: false });
}

async function login(page, username, password) {
  await page.goto(URL_ + "/");
  await page.getByLabel("Username", { exact: true }).fill(username);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByTestId("whoami").waitFor();
}

async function noAlert(page, where) {
  const alerts = page.getByRole("alert");
  if (await alerts.count()) throw new Error(`${where}: ${await alerts.first().textContent()}`);
}

async function main() {
  await mkdir(SHOTS, { recursive: true });
  const html = await (await fetch(URL_ + "/")).text();
  assert(html.includes('name="berth-web-ui"'), "the manager does not serve the web UI bundle at /");
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-quic"],
  });
  const researcher = { username: `ada-${suffix}`, password: "pw-research-1" };
  const projectName = `vision-${suffix}`;
  const folderName = `results-${suffix}`;
  try {
    await scenario("wrong password shows the server's message in words", async () => {
      const { page } = await newPage();
      await page.goto(URL_ + "/");
      await shot(page, "01-login");
      await page.getByLabel("Username", { exact: true }).fill(ADMIN_USER);
      await page.getByLabel("Password", { exact: true }).fill("definitely-wrong");
      await page.getByRole("button", { name: "Log in" }).click();
      const text = (await page.getByRole("alert").textContent()) ?? "";
      assert(/password|credentials|invalid/i.test(text), `unexpected error text: ${text}`);
    });

    await scenario("admin logs in from the keyboard and sees the dashboard", async () => {
      const { page, errors } = await newPage();
      await page.goto(URL_ + "/");
      // Labels are tied to their controls, Tab moves on, Enter submits the form.
      await page.getByLabel("Username", { exact: true }).focus();
      await page.keyboard.type(ADMIN_USER);
      await page.keyboard.press("Tab");
      await page.keyboard.type(ADMIN_PASSWORD);
      await page.keyboard.press("Enter");
      await page.getByTestId("dashboard").waitFor();
      assert((await page.getByTestId("whoami").textContent()) === ADMIN_USER, "whoami is not the admin");
      assert(await nav(page, "Nodes").isVisible(), "admin nav missing");
      await page.getByText("1 of 1 node(s) up").waitFor();
      await shot(page, "02-dashboard");
      await page.reload(); // the cookie session survives a reload
      await page.getByTestId("dashboard").waitFor();
      assert(!errors.length, errors.join("; "));
    });

    await scenario("admin creates a project and a researcher, adds the membership, allows the project on the default group", async () => {
      const { page } = await newPage();
      await login(page, ADMIN_USER, ADMIN_PASSWORD);
      await nav(page, "Projects").click();
      await page.getByLabel("Project name", { exact: true }).fill(projectName);
      await page.getByLabel("Description", { exact: true }).fill("made by the UI test");
      await page.getByRole("button", { name: "Create project" }).click();
      await page.getByTestId("projects-table").getByRole("cell", { name: projectName, exact: true }).waitFor();
      await page.getByLabel("Project name", { exact: true }).fill(projectName);
      await page.getByRole("button", { name: "Create project" }).click();
      await page.getByRole("alert").waitFor(); // a duplicate is refused in words

      await nav(page, "Users").click();
      await page.getByLabel("Username", { exact: true }).fill(researcher.username);
      await page.getByLabel("Full name", { exact: true }).fill("Ada Researcher");
      await page.getByLabel("Password", { exact: true }).fill(researcher.password);
      await page.getByRole("button", { name: "Create user" }).click();
      await page.getByTestId("users-table").getByRole("cell", { name: researcher.username, exact: true }).waitFor();
      await shot(page, "03-users");

      await nav(page, "Projects").click();
      await page.getByRole("button", { name: `Members of ${projectName}` }).click();
      await page.getByLabel("User", { exact: true }).selectOption({ label: researcher.username });
      await page.getByRole("button", { name: "Add member" }).click();
      await page.getByTestId("members-table").getByRole("cell", { name: researcher.username, exact: true }).waitFor();
      await shot(page, "04-projects");

      await nav(page, "Resource groups").click();
      const allowed = page.getByRole("group", { name: "Projects allowed in default" }).getByLabel(projectName);
      await allowed.click(); // saves at once; the box follows the stored group
      await until("the project allowed on the default group", async () => {
        const groups = (await api("GET", "/api/v1/resource-groups")).json.items;
        const project = (await api("GET", `/api/v1/projects?name=${projectName}`)).json.items[0];
        return groups.find((g) => g.name === "default").project_ids.includes(project.id);
      }, TIMEOUT);
      await until("the checkbox to show the stored state", () => allowed.isChecked(), TIMEOUT);
      await shot(page, "12-resource-groups");
    });

    await scenario("nodes page shows the local node with its 2 fake GPUs", async () => {
      const { page } = await newPage();
      await login(page, ADMIN_USER, ADMIN_PASSWORD);
      await nav(page, "Nodes").click();
      const node = page.getByTestId("node-local");
      await page.getByRole("heading", { name: "Node local" }).waitFor();
      await node.getByRole("meter", { name: "local cuda.device" }).waitFor();
      assert((await node.getByRole("meter", { name: "local cuda.device" }).getAttribute("aria-valuemax")) === "2", "GPU capacity is not 2");
      for (const id of ["fake-cuda-0", "fake-cuda-1"]) await page.getByRole("cell", { name: id, exact: true }).waitFor();
      assert((await page.getByText("Berth FakeGPU").count()) === 2, "expected two fake GPU rows");
      for (const id of ["fake-cuda-0", "fake-cuda-1"]) {
        await page.getByRole("meter", { name: `${id} utilisation` }).waitFor();
        await page.getByRole("meter", { name: `${id} memory` }).waitFor();
      }
      await shot(page, "05-nodes");
    });

    let sessionId = null;
    await scenario("researcher launches JupyterLab with a fake GPU, opens it through the app proxy, terminates it", async () => {
      const { page, context } = await newPage();
      await login(page, researcher.username, researcher.password);
      assert(!(await nav(page, "Nodes").count()), "a researcher sees the admin navigation");
      await nav(page, "Launch").click();
      await page.getByLabel("Project", { exact: true }).selectOption({ label: projectName });
      await page.getByLabel("Image", { exact: true }).selectOption(IMAGE);
      await page.getByTestId("image-facts").getByText("jupyter (default): http/8888").waitFor();
      await page.getByRole("button", { name: "1 GPU" }).click();
      assert((await page.locator('input[data-slot="cuda.device"]').inputValue()) === "1", "GPU slider not at 1");
      await shot(page, "06-launch");
      await page.getByRole("button", { name: "Launch", exact: true }).click();
      await page.getByRole("heading", { name: /^Session / }).waitFor();
      sessionId = decodeURIComponent(new URL(page.url()).pathname.split("/").pop());
      await page.locator(".badge-running").first().waitFor({ timeout: 90000 });
      const s = (await api("GET", `/api/v1/sessions/${sessionId}`)).json;
      assert(s.resources["cuda.device"] === "1", `session resources: ${JSON.stringify(s.resources)}`);
      const devices = s.container_list.flatMap((c) => c.devices["cuda.device"] ?? []);
      assert(devices.length === 1 && devices[0].startsWith("fake-cuda-"), `devices: ${JSON.stringify(devices)}`);
      // The live log viewer follows the notebook server's output.
      await until("JupyterLab's log lines", async () => /Jupyter/.test((await page.getByTestId("logs").textContent()) ?? ""), 30000);
      await shot(page, "07-session");

      const [lab] = await Promise.all([
        context.waitForEvent("page"),
        page.getByRole("link", { name: "Open JupyterLab" }).first().click(),
      ]);
      await lab.waitForLoadState("domcontentloaded");
      assert(lab.url().endsWith(`/apps/${sessionId}/jupyter/lab`), `opened ${lab.url()}`);
      // The notebook server may still be starting behind the proxy: reload until the Lab answers.
      await until("the JupyterLab page", async () => {
        const title = await lab.title().catch(() => "");
        if (title.includes("JupyterLab")) return true;
        await lab.waitForTimeout(500);
        await lab.reload().catch(() => undefined);
        return false;
      }, 60000);
      const config = await lab.locator("#jupyter-config-data").textContent();
      assert(config.includes(`/apps/${sessionId}/jupyter/`), "Lab config does not carry the proxy base URL");
      await lab.locator(".jp-LabShell").waitFor({ timeout: 30000 }).catch(() => undefined);
      await shot(lab, "07b-jupyterlab");
      await lab.close();

      await nav(page, "My sessions").click();
      const row = page.locator(`tr[data-session="${s.name}"]`);
      await row.getByRole("link", { name: "Open JupyterLab" }).waitFor();
      await shot(page, "08-sessions");
      await row.getByRole("button", { name: "Terminate" }).click();
      await page.getByText(`Session ${s.name} is terminating.`).waitFor();
      await until("the session to end", async () => {
        const now = (await api("GET", `/api/v1/sessions/${sessionId}`)).json;
        return ["terminated", "cancelled"].includes(now.status);
      }, 60000);
    });

    await scenario("researcher creates a folder, uploads by file input and drag-and-drop, downloads the same bytes, mkdir/rename/delete/share", async () => {
      const { page } = await newPage();
      await login(page, researcher.username, researcher.password);
      await nav(page, "Data").click();
      await page.getByLabel("New folder name", { exact: true }).fill(folderName);
      await page.getByRole("button", { name: "Create folder" }).click();
      await page.getByRole("heading", { name: `Files in ${folderName}` }).waitFor();

      // 5 MiB + 17 bytes: two tus PATCH chunks (4 MiB each at most).
      const payload = randomBytes(5 * 1024 * 1024 + 17);
      await page.getByLabel("Choose files to upload", { exact: true }).setInputFiles({
        name: "weights.bin",
        mimeType: "application/octet-stream",
        buffer: payload,
      });
      await page.getByText(/^Uploaded weights\.bin/).waitFor({ timeout: 30000 });
      await page.getByRole("meter", { name: "upload weights.bin" }).getByText("100%").waitFor().catch(() => undefined);
      assert((await page.getByRole("meter", { name: "upload weights.bin" }).getAttribute("aria-valuenow")) === "1", "upload progress did not reach 100%");

      const dragged = "dragged in by a test\n";
      const dt = await page.evaluateHandle((text) => {
        const d = new DataTransfer();
        d.items.add(new File([text], "dragged.txt", { type: "text/plain" }));
        return d;
      }, dragged);
      await page.getByTestId("dropzone").dispatchEvent("drop", { dataTransfer: dt });
      await page.getByText("Uploaded dragged.txt (21 B).").waitFor();
      await page.locator('tr[data-file="dragged.txt"]').waitFor();

      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.getByRole("button", { name: "Download weights.bin" }).click(),
      ]);
      const got = await readFile(await download.path());
      const sha = (b) => createHash("sha256").update(b).digest("hex");
      assert(got.length === payload.length && sha(got) === sha(payload), `downloaded ${got.length} bytes, not the uploaded ${payload.length}`);
      assert(download.suggestedFilename() === "weights.bin", `saved as ${download.suggestedFilename()}`);

      await page.getByLabel("New directory name", { exact: true }).fill("plots");
      await page.getByRole("button", { name: "Create directory" }).click();
      await page.getByRole("button", { name: "plots/" }).waitFor();
      await page.getByRole("button", { name: "Rename dragged.txt" }).click();
      await page.getByRole("form", { name: "Rename dragged.txt" }).getByLabel("New name").fill("notes.txt");
      await page.getByRole("form", { name: "Rename dragged.txt" }).getByRole("button", { name: "Save" }).click();
      await page.locator('tr[data-file="notes.txt"]').waitFor();
      await page.getByRole("button", { name: "Delete notes.txt" }).click();
      await page.getByText("Deleted notes.txt.").waitFor();
      await page.locator('tr[data-file="notes.txt"]').waitFor({ state: "detached" });
      await page.getByRole("button", { name: "plots/" }).click();
      await page.getByRole("heading", { name: `Files in ${folderName}/plots` }).waitFor();
      await page.getByText("This directory is empty.").waitFor();
      await page.getByRole("button", { name: "Up one level" }).click();

      await page.getByLabel("Share with user", { exact: true }).fill(ADMIN_USER);
      await page.getByRole("button", { name: "Share", exact: true }).click();
      await page.getByTestId("shares-table").getByText("read-only").waitFor();
      const folder = (await api("GET", "/api/v1/vfolders?limit=200")).json.items.find((f) => f.name === folderName);
      const adminId = (await api("GET", "/api/v1/auth/me")).json.user.id;
      const shares = (await api("GET", `/api/v1/vfolders/${folder.id}/shares`)).json.items;
      assert(shares.length === 1 && shares[0].user_id === adminId && shares[0].mode === "ro", `shares: ${JSON.stringify(shares)}`);
      await page.locator(`tr[data-folder="${folderName}"]`).getByText(/^5\.0 MiB/).waitFor();
      await page.getByRole("heading", { name: `Files in ${folderName}` }).scrollIntoViewIfNeeded();
      await shot(page, "14-data");
    });

    await scenario("an admin lowers the project's GPU quota and the researcher's launch says why in words", async () => {
      const r = await newPage();
      await login(r.page, researcher.username, researcher.password);
      await nav(r.page, "Launch").click();
      await r.page.getByLabel("Project", { exact: true }).selectOption({ label: projectName });
      await r.page.getByLabel("Image", { exact: true }).selectOption(IMAGE);
      await r.page.getByRole("button", { name: "1 GPU" }).click();
      await r.page.getByTestId("quota-cuda.device").getByText("no quota limit").waitFor();

      const a = await newPage();
      await login(a.page, ADMIN_USER, ADMIN_PASSWORD);
      await nav(a.page, "Quotas").click();
      await a.page.getByLabel("Scope", { exact: true }).selectOption("project");
      await a.page.getByLabel("Project", { exact: true }).selectOption({ label: projectName });
      await a.page.getByText(`Editing the quota of project ${projectName}.`).waitFor();
      const limit = a.page.getByLabel("NVIDIA GPU (device) limit", { exact: true });
      await limit.fill("0");
      await a.page.getByLabel("Max concurrent sessions", { exact: true }).fill("4");
      await a.page.getByRole("button", { name: "Save quota" }).click();
      await a.page.getByText(`Saved the quota of project ${projectName}.`).waitFor();
      await a.page.getByTestId("quotas-table").getByText(`project ${projectName}`).waitFor();
      await shot(a.page, "11-quotas");

      await r.page.getByRole("button", { name: "Launch", exact: true }).click();
      const alert = r.page.getByRole("alert");
      await alert.waitFor();
      const text = (await alert.textContent()) ?? "";
      for (const words of ["Not enough quota", "1 of NVIDIA GPU (device)", `project ${projectName}`, "at most 0"])
        assert(text.includes(words), `the refusal does not say "${words}": ${text}`);
      // The form now shows the remaining quota and lowers the request to it.
      await r.page.getByTestId("quota-cuda.device").getByText(`0 of 0 left (quota of project ${projectName})`).waitFor();
      assert((await r.page.locator('input[data-slot="cuda.device"]').inputValue()) === "0", "GPU request not lowered");
      await r.page.getByText("4 of 4 concurrent sessions left").waitFor();
      await alert.scrollIntoViewIfNeeded();
      await shot(r.page, "15-launch-quota-refused");

      await a.page.locator("tr", { hasText: `project ${projectName}` }).getByRole("button", { name: "Remove" }).click();
      await a.page.getByText(`Removed the quota of project ${projectName}.`).waitFor();
      const left = (await api("GET", "/api/v1/quotas")).json.items.filter((q) => q.scope.startsWith("project:"));
      assert(!left.length, `quota not removed: ${JSON.stringify(left)}`);
    });

    await scenario("researcher logs in with an API token made on the tokens page", async () => {
      const { page } = await newPage();
      await login(page, researcher.username, researcher.password);
      await nav(page, "API tokens").click();
      await page.getByLabel("Token name", { exact: true }).fill("laptop");
      await page.getByRole("button", { name: "Create token" }).click();
      const secret = (await page.locator("code.secret").textContent())?.trim();
      assert(secret && secret.length > 10, "no token shown");
      await page.getByRole("cell", { name: "laptop" }).waitFor();
      await page.getByRole("button", { name: "Log out" }).click();
      await page.getByLabel("with an API token", { exact: true }).check();
      await page.getByLabel("API token", { exact: true }).fill(secret);
      await page.getByRole("button", { name: "Log in" }).click();
      assert((await page.getByTestId("whoami").textContent()) === researcher.username, "token login");
    });

    await scenario("every page renders for the admin at 1280x800 without an error", async () => {
      const { page, errors } = await newPage();
      await login(page, ADMIN_USER, ADMIN_PASSWORD);
      for (const [link, file, ready] of [
        ["Dashboard", "02b-dashboard-after", "dashboard"],
        ["My sessions", "08b-sessions-admin", null],
        ["Launch", "09-launch-admin", "image-facts"],
        ["Data", "14b-data-admin", null],
        ["API tokens", "16-tokens", null],
        ["Nodes", "05b-nodes", "node-local"],
        ["Queue", "10-queue", null],
        ["Users", "03b-users", "users-table"],
        ["Projects", "04b-projects", "projects-table"],
        ["Quotas", "11b-quotas", null],
        ["Resource groups", "12b-resource-groups", null],
        ["Usage", "13-usage", "usage-table"],
      ]) {
        await nav(page, link).click();
        await page.getByRole("heading", { level: 1, name: link }).waitFor();
        if (ready) await page.getByTestId(ready).first().waitFor();
        await page.waitForLoadState("networkidle").catch(() => undefined);
        await noAlert(page, link);
        await shot(page, file);
      }
      // The JupyterLab session of this run counts toward its project's usage.
      await page.getByTestId("usage-table").getByRole("cell", { name: projectName, exact: true }).waitFor();
      assert(!errors.length, `page errors: ${errors.join("; ")}`);
    });
  } finally {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser.close();
  }
  for (const line of results) console.log(line);
  const passed = results.filter((r) => r.startsWith("PASS")).length;
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});
