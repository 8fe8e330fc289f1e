// The stream-aimass console: plain JavaScript over the worker's own REST API (no CDN, no
// build step). Every panel reads one or two /v1/ endpoints with the admin key typed above
// (kept in this browser's localStorage); with auth off (the demo) none is needed.
"use strict";

const $ = (id) => document.getElementById(id);
const keyInput = $("key");
keyInput.value = localStorage.getItem("aimass-console-key") || "";
keyInput.addEventListener("change", () => {
  localStorage.setItem("aimass-console-key", keyInput.value);
  refreshAll();
});

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (keyInput.value) headers["Authorization"] = "Bearer " + keyInput.value;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const type = response.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return { body, headers: response.headers };
}

function cell(value, numeric) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined ? "" : String(value);
  if (numeric) td.className = "num";
  return td;
}

function fill(tableId, rows) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const c of cells) tr.appendChild(c instanceof Node ? wrap(c) : cell(c, typeof c === "number"));
    return tr;
  }));
}

function wrap(node) {
  if (node.tagName === "TD") return node;
  const td = document.createElement("td");
  td.appendChild(node);
  return td;
}

async function guarded(errorId, work) {
  try {
    await work();
    $(errorId).textContent = "";
  } catch (err) {
    $(errorId).textContent = err.message;
  }
}

// -- pipeline health -------------------------------------------------------------------
let previous = null;
async function refreshHealth() {
  await guarded("health-error", async () => {
    const { body } = await api("/v1/console/overview");
    $("role").textContent = "role " + body.role;
    $("ready").textContent = body.ready ? "ready" : "not ready";
    $("ready").className = "badge " + (body.ready ? "ok" : "bad");
    $("health-at").textContent = new Date(body.at_ms).toLocaleTimeString();
    const rows = [];
    for (const [role, outcomes] of Object.entries(body.records)) {
      for (const [outcome, total] of Object.entries(outcomes)) {
        let rate = "";
        if (previous && previous.records[role] && previous.records[role][outcome] !== undefined) {
          const seconds = (body.at_ms - previous.at_ms) / 1000;
          rate = seconds > 0 ? Math.round(((total - previous.records[role][outcome]) / seconds) * 10) / 10 : "";
        }
        rows.push([role, outcome, total, rate]);
      }
    }
    fill("throughput", rows);
    fill("lag", Object.entries(body.consumer_lag).map(([g, n]) => [g, n]));
    const latency = [];
    if (body.latency.end_to_end) {
      const e = body.latency.end_to_end;
      latency.push(["produce → enriched (end to end)", e.count, e.p50_ms, e.p95_ms, e.p99_ms]);
    }
    for (const [stage, s] of Object.entries(body.latency.stages)) latency.push([stage, s.count, s.p50_ms, s.p95_ms, s.p99_ms]);
    fill("latency", latency);
    fill("dead", Object.entries(body.dead_letters).map(([stage, n]) => [stage, n]));
    previous = body;
  });
}

// -- model library ---------------------------------------------------------------------
async function refreshModels() {
  await guarded("models-error", async () => {
    const { body } = await api("/v1/library");
    const names = [...new Set(body.models.map((m) => m.name))];
    const details = await Promise.all(names.map((n) => api("/v1/models/" + encodeURIComponent(n)).then((r) => r.body)));
    const rows = [];
    for (const detail of details) {
      for (const v of detail.versions) {
        const shown = ["accuracy", "macro_f1", "f1", "micro_f1", "precision", "recall"];
        const metrics = shown.filter((k) => typeof (v.metrics || {})[k] === "number").slice(0, 3)
          .map((k) => `${k} ${Math.round(v.metrics[k] * 1000) / 1000}`).join(", ");
        const serves = [...v.configured, ...(v.encoder ? ["encoder"] : []), ...(v.ner_model ? ["ner"] : [])].join(", ");
        const button = document.createElement("button");
        button.textContent = v.configured.length ? "serving" : "Serve";
        button.disabled = v.configured.length > 0 || !["classifier", "multitask"].includes(v.kind);
        button.className = "serve";
        button.dataset.model = v.name;
        button.addEventListener("click", () => serve(v.name, v.version));
        rows.push([v.name, v.kind, v.version + (v.newest ? " (newest)" : ""), metrics, v.created, serves, button]);
      }
    }
    fill("library", rows);
  });
}

async function serve(name, version) {
  await guarded("models-error", async () => {
    await api(`/v1/models/${encodeURIComponent(name)}/use`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ version }),
    });
    await refreshModels();
  });
}

// -- training jobs ---------------------------------------------------------------------
let shownLog = null;
let logOffset = 0;
async function refreshJobs() {
  await guarded("jobs-error", async () => {
    const { body } = await api("/v1/training-jobs");
    fill("jobs", body.jobs.slice().reverse().map((job) => {
      const link = document.createElement("a");
      link.href = "#";
      link.textContent = job.id;
      link.addEventListener("click", (e) => { e.preventDefault(); showLog(job.id); });
      const bar = document.createElement("progress");
      bar.max = 100;
      bar.value = job.state === "succeeded" ? 100 : (job.progress ? job.progress.percent : 0);
      bar.title = job.progress ? `${job.progress.stage} ${job.progress.done}/${job.progress.total}` : "";
      const last = job.epoch_metrics.length ? job.epoch_metrics[job.epoch_metrics.length - 1] : null;
      const epoch = last ? `epoch ${last.epoch}: ` + Object.entries(last.metrics).map(([k, v]) => `${k} ${v}`).join(", ") : "";
      const model = job.model ? `${job.model.name} ${job.model.version}` : (job.error || "");
      const state = cell(job.state);
      state.className = "job-state";
      return [link, job.kind, job.name, state, bar, epoch, model];
    }));
    if (shownLog) await followLog();
  });
}

async function showLog(id) {
  shownLog = id;
  logOffset = 0;
  $("job-log").textContent = "";
  $("job-log").hidden = false;
  await followLog();
}

async function followLog() {
  const { body, headers } = await api(`/v1/training-jobs/${shownLog}/log?offset=${logOffset}`);
  $("job-log").textContent += body;
  logOffset = Number(headers.get("X-Log-Offset") || logOffset);
}

$("job-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  await guarded("jobs-error", async () => {
    const form = new FormData();
    form.append("file", $("job-file").files[0]);
    if ($("job-dev").files.length) form.append("dev", $("job-dev").files[0]);
    form.append("kind", $("job-kind").value);
    if ($("job-kind").value !== "multitask") form.append("mode", $("job-mode").value);
    if ($("job-epochs").value) form.append("epochs", $("job-epochs").value);
    if ($("job-name").value) form.append("name", $("job-name").value);
    const { body } = await api("/v1/training-jobs", { method: "POST", body: form });
    await showLog(body.id);
    await refreshJobs();
  });
});

// -- usage and analytics ---------------------------------------------------------------
function drawUsage(rows) {
  const canvas = $("usage-chart");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const hours = [...new Set(rows.map((r) => r.hour))].sort();
  const tenants = [...new Set(rows.map((r) => r.tenant))].sort();
  const colours = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f"];
  const top = Math.max(1, ...rows.map((r) => r.documents));
  const left = 40, bottom = canvas.height - 30, width = canvas.width - left - 10;
  const slot = width / Math.max(1, hours.length), bar = Math.max(2, (slot * 0.8) / Math.max(1, tenants.length));
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#555";
  ctx.fillText(String(top), 2, 12);
  ctx.fillText("0", 2, bottom);
  rows.forEach((r) => {
    const x = left + hours.indexOf(r.hour) * slot + tenants.indexOf(r.tenant) * bar;
    const h = ((bottom - 15) * r.documents) / top;
    ctx.fillStyle = colours[tenants.indexOf(r.tenant) % colours.length];
    ctx.fillRect(x, bottom - h, bar - 1, h);
  });
  ctx.fillStyle = "#555";
  hours.forEach((hour, i) => ctx.fillText(String(hour).slice(5, 16).replace("T", " "), left + i * slot, bottom + 14));
  tenants.forEach((t, i) => {
    ctx.fillStyle = colours[i % colours.length];
    ctx.fillRect(left + i * 110, bottom + 18, 10, 10);
    ctx.fillStyle = "#333";
    ctx.fillText(t + " documents", left + i * 110 + 14, bottom + 27);
  });
}

async function refreshUsage() {
  await guarded("usage-error", async () => {
    const { body } = await api("/v1/usage");
    drawUsage(body.rows);
    fill("usage-table", body.rows.map((r) => [r.tenant, r.hour, r.documents, r.tokens, r.events, r.recommendations, r.compute_ms]));
  });
  await guarded("entities-error", async () => {
    const { body } = await api("/v1/queries/top-entities");
    fill("entities", body.rows.map((r) => [r.entity_id, r.entity_name, r.mentions]));
  });
  await guarded("categories-error", async () => {
    const { body } = await api("/v1/queries/category-mix");
    fill("categories", body.rows.map((r) => [r.tenant, r.category, r.documents, r.share]));
  });
}

// -- recommendations -------------------------------------------------------------------
$("recs-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  await guarded("recs-error", async () => {
    const tenant = encodeURIComponent($("recs-tenant").value), user = encodeURIComponent($("recs-user").value);
    const query = `k=${$("recs-k").value}` + ($("recs-cold").checked ? "&cold_start=true" : "");
    const { body } = await api(`/v1/recommendations/${tenant}/${user}?${query}`);
    fill("recs-items", body.items.map((item) => [item.rank, item.item_id, item.title, Math.round(item.score * 1000) / 1000]));
  });
});

function refreshAll() {
  refreshHealth();
  refreshModels();
  refreshJobs();
  refreshUsage();
}

refreshAll();
setInterval(refreshHealth, 2000);
setInterval(refreshJobs, 2000);
setInterval(refreshUsage, 10000);
setInterval(refreshModels, 10000);
