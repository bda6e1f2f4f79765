// The live dashboard: renders each snapshot pushed on /api/v1/live (server-sent events) and
// sends the controls' requests to /api/v1/control. Plain DOM and SVG: no framework, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const money = new Intl.NumberFormat(undefined, { style: "currency", currency: "EUR", maximumFractionDigits: 0 });
const moneyShort = new Intl.NumberFormat(undefined, { style: "currency", currency: "EUR", notation: "compact", maximumFractionDigits: 1 });
const count = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const rate = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

const tokenInput = $("token");
tokenInput.value = localStorage.getItem("retail-token") || "";
tokenInput.addEventListener("change", () => {
  localStorage.setItem("retail-token", tokenInput.value);
  connect();
});

function authHeaders() {
  const t = tokenInput.value.trim();
  return t ? { Authorization: "Bearer " + t } : {};
}

function text(id, value) {
  const el = $(id);
  if (el.textContent !== value) el.textContent = value;
}

function render(s) {
  text("updated", "updated " + new Date(s.at).toLocaleTimeString());
  const store = s.store;
  text("revenue-today", store ? moneyShort.format(store.revenue_today) : "–");
  $("revenue-today").title = store ? money.format(store.revenue_today) : "";
  text("sales-today", store ? count.format(store.sales_today) : "–");
  text("in-rate", rate.format(s.in_per_s));
  text("out-rate", rate.format(s.out_per_s));
  text("sales-landed", count.format(s.sales_landed));
  text("lag", count.format(s.lag));
  text("dead-letters", count.format(s.dead_letters));
  text("late-events", count.format(s.late_events));
  const p95 = s.latency_p95_ms;
  text("p95", p95 == null ? "–" : p95 >= 1000 ? rate.format(p95 / 1000) + " s" : count.format(p95) + " ms");
  text("objective", "objective " + rate.format(s.latency_objective_ms / 1000) + " s");
  $("latency-tile").className = "tile" + (p95 == null ? "" : p95 <= s.latency_objective_ms ? " good" : " bad");
  chart(store ? store.per_minute : []);
  ranked("top-cities", store ? store.top_cities : []);
  ranked("top-sellers", store ? store.top_sellers : []);
  ordersByState(store);
  alertFeed(store ? store.alerts : []);
  stockAtRisk(store ? store.stock_at_risk : []);
  controls(s.controls, s.components);
  components(s.components);
  text("store-error", s.store_error ? "store: " + s.store_error : "");
}

function chart(points) {
  const svg = $("chart");
  const W = 600, H = 180, top = 4, bottom = 0;
  const max = Math.max(1, ...points.map((p) => p.revenue));
  const slot = W / 60;
  const end = points.length ? points[points.length - 1].t : Date.now();
  let out = "";
  for (const p of points) {
    const i = 59 - Math.round((end - p.t) / 60000);
    if (i < 0) continue;
    const h = Math.max(0, (p.revenue / max) * (H - top - bottom));
    out += `<rect x="${(i * slot + 1).toFixed(1)}" y="${(H - bottom - h).toFixed(1)}" width="${(slot - 2).toFixed(1)}" height="${h.toFixed(1)}"><title>${new Date(p.t).toISOString().slice(11, 16)} UTC: ${money.format(p.revenue)}, ${p.sales} sales</title></rect>`;
  }
  svg.innerHTML = out;
  text("chart-max", points.length ? "max " + money.format(max) + " / min" : "");
  text("chart-note", points.length ? "" : "no sales in the last hour yet");
}

function ranked(id, rows) {
  const body = $(id);
  body.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    for (const [v, cls] of [[r.rank, ""], [r.label, ""], [money.format(r.revenue), "num"], [count.format(r.units), "num"]]) {
      const td = document.createElement("td");
      td.textContent = v;
      if (cls) td.className = cls;
      tr.append(td);
    }
    return tr;
  }));
}

function ordersByState(store) {
  const rows = store ? store.orders_by_state.map((r) => [r.state, r.orders, r.stuck]) : [];
  if (store && store.orders_payment_only > 0) rows.push(["payment only", store.orders_payment_only, 0]);
  $("orders-by-state").replaceChildren(...rows.map(([state, orders, stuck]) => {
    const tr = document.createElement("tr");
    cells(tr, [state, count.format(orders), stuck ? count.format(stuck) : ""], [1, 2]);
    if (stuck) tr.lastChild.classList.add("warn");
    return tr;
  }));
}

// The worst store and SKU rows; days of cover stays blank when nothing sells (unknown, not 0).
function stockAtRisk(list) {
  $("stock-at-risk").replaceChildren(...list.map((r) => {
    const tr = document.createElement("tr");
    tr.className = "risk " + r.risk_level;
    const cover = r.days_of_cover === null ? "" : r.days_of_cover.toFixed(1);
    const onHand = r.projected_on_hand === null ? "" : count.format(r.projected_on_hand);
    cells(tr, [String(r.store_id), String(r.sku), r.risk_level, onHand, cover], [3, 4]);
    tr.title = "flagged " + (r.first_flagged_at || "") + "; velocity " + r.velocity_per_day.toFixed(2) + "/day";
    return tr;
  }));
  text("stock-note", list.length ? "" : "no stock at risk");
}

// Open alerts are marked; a resolved one says when its condition ended.
function alertFeed(list) {
  $("alerts").replaceChildren(...list.map((a) => {
    const tr = document.createElement("tr");
    tr.className = "alert " + (a.open ? "open" : "resolved");
    const badge = document.createElement("td");
    badge.innerHTML = '<span class="state"></span>';
    badge.firstChild.textContent = a.open ? "open" : "resolved";
    badge.firstChild.classList.add(a.open ? "open" : "resolved");
    const when = document.createElement("td");
    when.textContent = a.at.slice(5, 16).replace("T", " ");
    when.title = a.at + (a.resolved_at ? "; resolved " + a.resolved_at : "");
    const what = document.createElement("td");
    what.textContent = a.message;
    what.title = a.kind + " · " + a.severity + " · " + a.subject;
    tr.append(badge, when, what);
    return tr;
  }));
  text("alerts-note", list.length ? "" : "no alerts");
}

// Controls are rebuilt only when their shape changes, so a rate being typed is not wiped out.
let controlsKey = "";
function controls(list, comps) {
  const items = Array.isArray(list) ? list : (list && list.controls) || [];
  const key = JSON.stringify(items.map((c) => [c.kind, c.name]));
  const box = $("controls");
  if (key !== controlsKey) {
    controlsKey = key;
    box.replaceChildren(...items.map(controlRow));
  }
  for (const c of items) {
    const row = box.querySelector(`[data-control="${CSS.escape(c.kind + ":" + c.name)}"]`);
    if (!row) continue;
    const comp = comps[c.kind === "landing" ? "landing" : c.name];
    const state = c.paused ? "paused" : comp ? comp.state : "running";
    const badge = row.querySelector(".state");
    badge.textContent = state;
    badge.className = "state " + state;
    row.querySelector('[data-action="pause"]').hidden = !!c.paused;
    row.querySelector('[data-action="resume"]').hidden = !c.paused;
    const current = row.querySelector(".rate-now");
    if (current) current.textContent = c.unlimited ? "unlimited" : c.rate == null ? "" : c.rate === 0 ? "no events" : rate.format(c.rate) + " ev/s";
    const counts = row.querySelector(".counts");
    if (counts && c.accepted != null) {
      counts.textContent = `received ${c.received ?? "–"} · accepted ${c.accepted} · rejected ${c.rejected ?? "–"}`;
    }
  }
}

function controlRow(c) {
  const row = document.createElement("div");
  row.className = "control";
  row.dataset.control = c.kind + ":" + c.name;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = c.name;
  const badge = document.createElement("span");
  badge.className = "state";
  const kind = document.createElement("span");
  kind.className = "type muted";
  kind.textContent = c.type || c.kind;
  const counts = document.createElement("span");
  counts.className = "counts muted";
  row.append(name, kind, badge, counts);
  for (const action of ["pause", "resume"]) {
    const b = document.createElement("button");
    b.textContent = action === "pause" ? "Pause" : "Resume";
    b.dataset.action = action;
    b.dataset.name = c.name;
    b.addEventListener("click", () => send("POST", controlPath(c) + "/" + action));
    row.append(b);
  }
  if (c.kind === "source" && ((c.rate !== undefined && c.rate !== null) || c.unlimited)) {
    const input = document.createElement("input");
    input.type = "number";
    input.min = "0";
    input.placeholder = "events/s";
    input.dataset.rateFor = c.name;
    const set = document.createElement("button");
    set.textContent = "Set rate";
    set.dataset.action = "rate";
    set.dataset.name = c.name;
    set.addEventListener("click", () => send("PUT", controlPath(c) + "/rate", { rate: Number(input.value) }));
    const now = document.createElement("span");
    now.className = "rate-now muted";
    row.append(input, set, now);
  }
  return row;
}

function controlPath(c) {
  return c.kind === "landing" ? "/api/v1/control/landing" : "/api/v1/control/sources/" + encodeURIComponent(c.name);
}

async function send(method, path, body) {
  const msg = $("control-message");
  try {
    const r = await fetch(path, {
      method,
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (r.ok) {
      msg.textContent = method + " " + path + ": done";
    } else {
      const e = await r.json().catch(() => ({}));
      msg.textContent = method + " " + path + ": " + r.status + " " + ((e.error && e.error.message) || r.statusText);
    }
  } catch (e) {
    msg.textContent = method + " " + path + ": " + e;
  }
}

function components(comps) {
  const body = $("components");
  body.replaceChildren(...Object.entries(comps).map(([name, c]) => {
    const tr = document.createElement("tr");
    const n = document.createElement("td");
    n.textContent = name;
    const s = document.createElement("td");
    s.innerHTML = `<span class="state ${c.state}"></span>`;
    s.firstChild.textContent = c.state;
    const d = document.createElement("td");
    d.className = "muted";
    d.textContent = c.detail || "";
    tr.append(n, s, d);
    return tr;
  }));
}

let source = null;
function connect() {
  if (source) source.close();
  const t = tokenInput.value.trim();
  source = new EventSource("/api/v1/live" + (t ? "?access_token=" + encodeURIComponent(t) : ""));
  source.addEventListener("open", () => { $("conn").className = "dot on"; });
  source.addEventListener("error", () => { $("conn").className = "dot off"; text("updated", "reconnecting…"); });
  source.addEventListener("snapshot", (e) => {
    $("conn").className = "dot on";
    render(JSON.parse(e.data));
  });
}
connect();

// The log view: topics and consumer groups from /api/v1/log/*, and a record browser.
function cells(row, values, numeric) {
  values.forEach((v, i) => {
    const td = document.createElement("td");
    td.textContent = v;
    if (numeric.includes(i)) td.className = "num";
    row.appendChild(td);
  });
}

async function getJson(path) {
  const resp = await fetch(path, { headers: authHeaders() });
  const body = await resp.json();
  if (!resp.ok) throw new Error(body.error ? body.error.message : resp.statusText);
  return body;
}

async function refreshLog() {
  try {
    const [t, g] = await Promise.all([getJson("/api/v1/log/topics"), getJson("/api/v1/log/groups")]);
    const topics = $("log-topics");
    topics.replaceChildren();
    const select = $("browse-topic");
    const chosen = select.value;
    select.replaceChildren();
    for (const topic of t.topics) {
      const row = document.createElement("tr");
      cells(row, [topic.topic, String(topic.partitions.length), count.format(topic.records)], [1, 2]);
      topics.appendChild(row);
      const option = document.createElement("option");
      option.value = option.textContent = topic.topic;
      select.appendChild(option);
    }
    if (chosen) select.value = chosen;
    const groups = $("log-groups");
    groups.replaceChildren();
    for (const group of g.groups) {
      const row = document.createElement("tr");
      cells(row, [group.group, String(group.partitions.length), count.format(group.lag)], [1, 2]);
      groups.appendChild(row);
    }
  } catch (e) {
    text("browse-message", "log: " + e.message);
  }
}

$("browse").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = new URLSearchParams({ topic: $("browse-topic").value, partition: $("browse-partition").value || "0", limit: "50" });
  if ($("browse-offset").value !== "") q.set("offset", $("browse-offset").value);
  try {
    const page = await getJson("/api/v1/log/records?" + q);
    const body = $("browse-records");
    body.replaceChildren();
    for (const r of page.records) {
      const row = document.createElement("tr");
      const headers = r.headers.map((h) => h.key + "=" + h.value).join(" ");
      cells(row, [String(r.offset), new Date(r.timestamp_ms).toISOString(), r.key || "", headers, r.value], [0]);
      body.appendChild(row);
    }
    text("browse-message", page.records.length + " records of " + page.topic + "/" + page.partition + "; next offset " + page.next_offset + " of " + page.high);
  } catch (e) {
    text("browse-message", "browse: " + e.message);
  }
});

refreshLog();
setInterval(refreshLog, 5000);
