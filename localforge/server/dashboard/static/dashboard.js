// The LocalForge dashboard: plain JS over /ui/api, polled every second. No build step, no CDN.
// Every value from the server reaches the page as text (textContent), never as HTML.
"use strict";

const KEY = "localforge.key";
const POLL_MS = 1000;
const VIEWS = ["now", "requests", "request", "routing", "health"];
const PALETTE = ["#4f6df5", "#14a37f", "#e8833a", "#c94f9e", "#2f9fd0", "#9a6ee0", "#d4b020", "#e0525a"];

const state = { view: "now", requestId: "", model: "", status: "", last: "", timer: 0, seq: 0 };

// ---- small helpers ----------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "style") el.setAttribute("style", value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, value);
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const colours = new Map(); // a model keeps its colour for as long as the page is open

function colour(model) {
  if (!colours.has(model)) colours.set(model, PALETTE[colours.size % PALETTE.length]);
  return colours.get(model);
}

const fmt = {
  bytes(n) {
    if (!n) return "0 B";
    const units = ["B", "KB", "MB", "GB", "TB"];
    const i = Math.min(units.length - 1, Math.floor(Math.log10(n) / 3));
    const v = n / 1000 ** i;
    return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
  },
  ms(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1) return ms > 0 ? "<1 ms" : "0";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  },
  countdown(s) {
    const total = Math.max(0, Math.round(s));
    const m = Math.floor(total / 60), sec = total % 60;
    return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m}:${String(sec).padStart(2, "0")}`;
  },
  time(iso) {
    const d = new Date(iso);
    const clock = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    return d.toDateString() === new Date().toDateString() ? clock
      : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${clock}`;
  },
  clock(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  },
  money(x) {
    if (!x) return "$0";
    const sign = x < 0 ? "−" : "";
    const abs = Math.abs(x);
    return abs < 0.01 ? `${sign}$${abs.toFixed(4)}` : `${sign}$${abs.toFixed(2)}`;
  },
  num(x, digits = 3) {
    return Number(x).toFixed(digits).replace(/\.?0+$/, "") || "0";
  },
  pct(x) {
    return `${Math.round(x * 100)}%`;
  },
};

// ---- the API and the key ----------------------------------------------------------------------

class Locked extends Error {}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const key = localStorage.getItem(KEY);
  if (key) headers.Authorization = `Bearer ${key}`;
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    askForKey(Boolean(key));
    throw new Locked("locked");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = body.error && typeof body.error === "object" ? body.error.message : body.error;
    throw new Error(error || `${response.status} ${response.statusText}`);
  }
  return body;
}

function askForKey(rejected) {
  const dialog = document.getElementById("key-dialog");
  document.getElementById("key-error").hidden = !rejected;
  if (dialog.hidden) {
    dialog.hidden = false;
    document.getElementById("key-input").focus();
  }
  setLive("locked", "needs a key");
}

function setUpKey() {
  const form = document.getElementById("key-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = document.getElementById("key-input").value.trim();
    if (!key) return;
    localStorage.setItem(KEY, key);
    document.getElementById("key-dialog").hidden = true;
    document.getElementById("key-input").value = "";
    showForget();
    refresh();
  });
  document.getElementById("forget-key").addEventListener("click", () => {
    localStorage.removeItem(KEY);
    showForget();
    refresh();
  });
  showForget();
}

function showForget() {
  document.getElementById("forget-key").hidden = !localStorage.getItem(KEY);
}

function setLive(kind, text) {
  const live = document.getElementById("live");
  live.className = `live ${kind}`;
  live.textContent = text;
}

// ---- navigation and polling -------------------------------------------------------------------

function route() {
  const [view, ...rest] = location.hash.replace(/^#/, "").split("/");
  state.view = VIEWS.includes(view) ? view : "now";
  state.requestId = state.view === "request" ? decodeURIComponent(rest.join("/")) : "";
  for (const name of VIEWS) document.getElementById(`view-${name}`).hidden = name !== state.view;
  const tab = state.view === "request" ? "requests" : state.view;
  for (const a of document.querySelectorAll(".tabs a")) {
    a.toggleAttribute("aria-current", a.dataset.view === tab);
  }
  state.last = "";
  refresh();
}

const SOURCES = {
  now: () => "/ui/api/now",
  requests: () => `/ui/api/requests?${new URLSearchParams({ model: state.model, status: state.status })}`,
  request: () => `/ui/api/requests/${encodeURIComponent(state.requestId)}`,
  routing: () => "/ui/api/routing",
  health: () => "/ui/api/health",
};
const RENDER = {};

async function refresh() {
  clearTimeout(state.timer);
  const seq = ++state.seq;
  const view = state.view;
  try {
    const data = await api(SOURCES[view]());
    if (seq !== state.seq) return; // the view changed while this was on its way
    const text = JSON.stringify(data);
    if (text !== state.last) {
      state.last = text;
      RENDER[view](data);
    }
    setLive("ok", "live");
  } catch (error) {
    if (seq !== state.seq) return;
    if (!(error instanceof Locked)) {
      setLive("down", error instanceof TypeError ? "offline" : "error");
      if (view === "request") RENDER.requestError(error);
    }
  }
  if (seq === state.seq) state.timer = setTimeout(refresh, POLL_MS);
}

function fill(view, ...children) {
  const section = document.getElementById(`view-${view}`);
  section.replaceChildren(...children.flat().filter(Boolean));
  return section;
}

function empty(text, hint) {
  return h("div", { class: "empty" }, h("p", {}, text), hint ? h("p", { class: "muted" }, hint) : null);
}

function stat(label, value, note) {
  return h("div", { class: "stat" }, h("div", { class: "stat-label" }, label),
    h("div", { class: "stat-value" }, value), note ? h("div", { class: "stat-note" }, note) : null);
}

function badge(text, kind) {
  return h("span", { class: `badge ${kind || text.replace(/\s+/g, "-")}` }, text);
}

// ---- Now --------------------------------------------------------------------------------------

RENDER.now = (data) => {
  const share = data.budget_bytes ? Math.min(1, data.used_bytes / data.budget_bytes) : 0;
  const memory = h("div", { class: "card wide" },
    h("div", { class: "card-head" }, h("h2", {}, "Memory"),
      h("span", { class: "muted" }, `${fmt.bytes(data.used_bytes)} of ${fmt.bytes(data.budget_bytes)} `
        + `${data.gpu ? "VRAM and RAM" : "RAM"} (${data.budget_source})`)),
    h("div", { class: "meter", role: "img", "aria-label": `${fmt.pct(share)} of the memory budget in use` },
      data.models.filter((m) => m.state !== "absent").map((m) => h("span", {
        class: "meter-part", title: `${m.model}: ${fmt.bytes(m.bytes)}`,
        style: `width:${(100 * m.bytes) / Math.max(data.budget_bytes, 1)}%;background:${colour(m.model)}`,
      }))),
    h("div", { class: "meter-scale muted" }, h("span", {}, "0"), h("span", {}, fmt.pct(share) + " used"),
      h("span", {}, fmt.bytes(data.budget_bytes))));
  const stats = h("div", { class: "stats n3" },
    stat("Models in memory", String(data.models.filter((m) => m.state === "ready").length)),
    stat("Requests running", String(data.in_flight)),
    stat("Requests waiting", String(data.queued)));
  const models = data.models.length
    ? h("div", { class: "grid" }, data.models.map(occupant(data.budget_bytes)))
    : empty("No model is loaded.", "The first request for a model loads it.");
  fill("now", stats, memory, h("h2", { class: "section-title" }, "Models"), models);
};

function occupant(budget) {
  return (m) => {
    const keep = m.expires_in_s === null ? "stays loaded"
      : m.in_use ? `then ${fmt.countdown(m.expires_in_s)} keep-alive`
        : `unloads in ${fmt.countdown(m.expires_in_s)}`;
    const unload = h("button", {
      class: "danger", type: "button", "data-model": m.model,
      disabled: m.state !== "ready" && m.state !== "loading",
      onclick: (event) => unloadModel(m.model, event.currentTarget),
    }, "Unload");
    return h("article", { class: "card model", "data-model": m.model },
      h("div", { class: "card-head" },
        h("h3", {}, h("span", { class: "dot", style: `background:${colour(m.model)}` }), m.model),
        badge(m.state === "absent" ? "waiting" : m.state)),
      h("div", { class: "meter small" }, h("span", {
        class: "meter-part", style: `width:${(100 * m.bytes) / Math.max(budget, 1)}%;background:${colour(m.model)}`,
      })),
      h("dl", { class: "facts" },
        h("dt", {}, "Memory"), h("dd", {}, m.bytes
          ? `${fmt.bytes(m.bytes)} · ${fmt.pct(m.bytes / Math.max(budget, 1))} of the budget` : "none here: served elsewhere"),
        h("dt", {}, "Running"), h("dd", {}, `${m.in_flight} of ${m.parallel}`),
        h("dt", {}, "Waiting"), h("dd", {}, String(m.queued)),
        h("dt", {}, "Keep-alive"), h("dd", { class: "keep" }, m.in_use && m.in_flight ? `in use, ${keep}` : keep)),
      m.key !== m.model.toLowerCase() ? h("p", { class: "muted small-print" }, m.key) : null,
      h("div", { class: "actions" }, unload));
  };
}

async function unloadModel(model, button) {
  button.disabled = true;
  button.textContent = "Unloading…";
  try {
    await api("/api/generate", { method: "POST", body: JSON.stringify({ model, keep_alive: 0, stream: false }) });
  } catch (error) {
    if (!(error instanceof Locked)) alert(`Could not unload ${model}: ${error.message}`);
  }
  state.last = "";
  refresh();
}

// ---- Requests ---------------------------------------------------------------------------------

RENDER.requests = (data) => {
  const models = h("select", { id: "filter-model", "aria-label": "Model", onchange: (e) => filter("model", e) },
    h("option", { value: "" }, "Every model"),
    data.models.map((m) => h("option", { value: m, selected: m === state.model }, m)));
  const statuses = h("select", { id: "filter-status", "aria-label": "Status", onchange: (e) => filter("status", e) },
    ["", "ok", "error", "canceled"].map((s) => h("option", { value: s, selected: s === state.status },
      s ? s : "Every status")));
  const rows = data.requests.map((r) => h("tr", {
    class: `request ${r.status}`, "data-id": r.id, tabindex: "0",
    onclick: () => { location.hash = `#request/${encodeURIComponent(r.id)}`; },
    onkeydown: (e) => { if (e.key === "Enter") location.hash = `#request/${encodeURIComponent(r.id)}`; },
  },
  h("td", { "data-label": "Time" }, fmt.time(r.created_at),
    r.client ? h("span", { class: "client-inline" }, ` · ${r.client}`) : null),
  h("td", { "data-label": "Model", class: "model-cell" }, modelCell(r),
    r.error ? h("div", { class: "error-text small-print" }, r.error.length > 140 ? `${r.error.slice(0, 140)}…` : r.error) : null),
  h("td", { "data-label": "Status" }, badge(r.status), r.done_reason && r.status === "ok"
    ? h("span", { class: "muted" }, ` ${r.done_reason}`) : null),
  h("td", { "data-label": "Client", class: "muted" }, r.client || "–"),
  h("td", { "data-label": "Wait", class: "num" }, fmt.ms(r.wait_ms)),
  h("td", { "data-label": "Load", class: "num" }, r.load_ms ? fmt.ms(r.load_ms) : "–"),
  h("td", { "data-label": "Tokens", class: "num" }, `${r.prompt_tokens} → ${r.eval_tokens}`),
  h("td", { "data-label": "Tokens/s", class: "num" }, r.tokens_per_s ? r.tokens_per_s.toFixed(1) : "–")));
  const table = rows.length ? h("table", { class: "requests" },
    h("thead", {}, h("tr", {}, ["Time", "Model", "Status", "Client", "Wait", "Load", "Tokens in → out", "Tokens/s"]
      .map((t, i) => h("th", { class: i >= 4 ? "num" : null }, t)))),
    h("tbody", {}, rows))
    : empty("No requests yet.", state.model || state.status ? "None match the filter." : "They appear here as they finish.");
  fill("requests", h("div", { class: "toolbar" }, h("h2", {}, "Latest requests"), h("div", { class: "filters" }, models, statuses)),
    h("div", { class: "card flush" }, table));
};

function modelCell(r) {
  const served = r.served_model && r.served_model !== r.requested_model ? r.served_model : "";
  return h("span", {}, h("span", { class: "asked" }, r.requested_model),
    served ? h("span", { class: "served" }, ` → ${served}`) : null);
}

function filter(name, event) {
  state[name] = event.target.value;
  state.last = "";
  refresh();
}

// ---- a request's detail -----------------------------------------------------------------------

RENDER.request = (data) => {
  const r = data.request;
  const facts = h("dl", { class: "facts two" },
    h("dt", {}, "Time"), h("dd", {}, fmt.time(r.created_at)),
    h("dt", {}, "Client"), h("dd", {}, r.client || "–"),
    h("dt", {}, "Endpoint"), h("dd", {}, r.endpoint),
    h("dt", {}, "Asked for"), h("dd", {}, r.requested_model),
    h("dt", {}, "Served by"), h("dd", {}, r.served_model ? `${r.served_model} (${r.backend})` : "–"),
    h("dt", {}, "Status"), h("dd", {}, badge(r.status), r.done_reason ? ` ${r.done_reason}` : ""),
    r.error ? [h("dt", {}, "Error"), h("dd", { class: "error-text" }, r.error)] : null,
    h("dt", {}, "Wait"), h("dd", {}, fmt.ms(r.wait_ms)),
    h("dt", {}, "Load"), h("dd", {}, fmt.ms(r.load_ms)),
    h("dt", {}, "Total"), h("dd", {}, fmt.ms(r.total_ms)),
    h("dt", {}, "Tokens"), h("dd", {}, `${r.prompt_tokens} in, ${r.eval_tokens} out`),
    h("dt", {}, "Speed"), h("dd", {}, r.tokens_per_s ? `${r.tokens_per_s.toFixed(1)} tokens/s` : "–"));
  const left = [h("div", { class: "card" }, h("h2", {}, "Request"), facts)];
  const right = [];
  if (data.prompt) left.push(h("div", { class: "card" }, h("h2", {}, "Prompt"), h("pre", { class: "prompt" }, data.prompt)));
  if (data.route) {
    const [profile, outcome, candidates] = routeCards(r, data.route);
    left.push(outcome);
    right.push(profile, candidates);
  } else if (r.routed) {
    right.push(h("div", { class: "card" }, empty("No routing decision was kept for this request.")));
  }
  fill("request", h("div", { class: "toolbar" },
    h("a", { class: "back", href: "#requests" }, "← Requests"),
    h("h2", { class: "mono" }, r.id)),
  h("div", { class: right.length ? "detail" : "detail single" }, h("div", { class: "column" }, left),
    right.length ? h("div", { class: "column" }, right) : null));
};

RENDER.requestError = (error) => {
  fill("request", h("div", { class: "toolbar" }, h("a", { class: "back", href: "#requests" }, "← Requests")),
    empty(error.message));
};

function routeCards(r, route) {
  const p = route.profile || {};
  const probabilities = Object.entries(p.task_probabilities || {}).sort((a, b) => b[1] - a[1]).slice(0, 3);
  const profile = h("div", { class: "card" }, h("h2", {}, "Profile"),
    h("dl", { class: "facts" },
      h("dt", {}, "Task"), h("dd", {}, route.task, probabilities.length
        ? h("span", { class: "muted" }, ` (${probabilities.map(([t, v]) => `${t} ${fmt.pct(v)}`).join(", ")})`) : null),
      h("dt", {}, "Tokens"), h("dd", {}, String(route.tokens)),
      h("dt", {}, "Private"), h("dd", {}, route.sensitive ? "yes: the prompt is never stored" : "no"),
      h("dt", {}, "Preset"), h("dd", {}, route.preset),
      h("dt", {}, "Chose"), h("dd", {}, route.model),
      h("dt", {}, "Why"), h("dd", {}, route.reason),
      h("dt", {}, "Propensity"), h("dd", {}, fmt.num(route.propensity)),
      Object.keys(route.removed).length ? [h("dt", {}, "Removed"), h("dd", {},
        Object.entries(route.removed).map(([m, why]) => `${m} (${why})`).join(", "))] : null));
  const top = Math.max(...route.candidates.map((c) => Math.abs(c.score)), 1e-9);
  const candidates = h("div", { class: "card" }, h("h2", {}, "Candidates"),
    h("p", { class: "muted small-print note" }, "score = quality + cost term + latency term; "
      + "quality = prior + linear + memory (what similar requests taught the router)."),
    h("ol", { class: "candidates" }, route.candidates.map((c) => h("li", {
      class: c.model === route.model ? "candidate chosen" : "candidate", "data-model": c.model,
    },
    h("div", { class: "candidate-head" }, h("span", { class: "dot", style: `background:${colour(c.model)}` }),
      h("strong", {}, c.model), c.model === route.model ? badge("chosen", "ok") : null,
      h("span", { class: "score" }, fmt.num(c.score))),
    h("div", { class: "meter small" }, h("span", {
      class: "meter-part", style: `width:${(100 * Math.max(0, c.score)) / top}%;background:${colour(c.model)}`,
    })),
    h("dl", { class: "parts" }, Object.entries(c.parts).map(([k, v]) => h("div", { class: "part" },
      h("dt", {}, k === "latency_s" ? "latency" : k === "wait_s" ? "wait" : k.replace(/_/g, " ")),
      h("dd", {}, k === "cost" ? fmt.money(v) : k.endsWith("_s") ? `${fmt.num(v, 2)} s` : fmt.num(v, 4)))),
    h("div", { class: "part" }, h("dt", {}, "evidence"), h("dd", {}, fmt.num(c.evidence, 2))))))));
  const outcomes = h("div", { class: "card" }, h("h2", {}, "Outcome"),
    route.outcomes.length ? h("ul", { class: "outcomes" }, route.outcomes.map((o) => h("li", { class: "outcome" },
      h("span", { class: "score-pill", style: `--s:${o.score}` }, fmt.num(o.score, 2)),
      ` ${o.kind} on ${o.model}`, h("span", { class: "muted" }, ` · ${fmt.time(o.at)}`))))
      : h("p", { class: "muted" }, "No outcome yet: no feedback, error or repeat was seen."),
    h("div", { class: "thumbs" }, h("span", {}, "Was the answer good?"),
      h("button", { type: "button", class: "thumb", "aria-label": "Thumbs up", onclick: () => thumbs(r.id, "up") },
        thumb(false), "Good"),
      h("button", { type: "button", class: "thumb down", "aria-label": "Thumbs down", onclick: () => thumbs(r.id, "down") },
        thumb(true), "Bad")));
  return [profile, outcomes, candidates];
}

// Feather's thumbs-up icon (MIT licence), drawn here so that no emoji font is needed
function thumb(down) {
  return svg("svg", { viewBox: "0 0 24 24", width: "18", height: "18", "aria-hidden": "true", class: down ? "icon flip" : "icon" },
    svg("path", { d: "M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3" }));
}

async function thumbs(id, direction) {
  try {
    await api("/api/feedback", { method: "POST", body: JSON.stringify({ request_id: id, thumbs: direction }) });
  } catch (error) {
    if (!(error instanceof Locked)) alert(`Feedback was not recorded: ${error.message}`);
  }
  state.last = "";
  refresh();
}

// ---- Routing ----------------------------------------------------------------------------------

RENDER.routing = (data) => {
  if (!data.available) {
    fill("routing", empty("The auto model is off.", "It needs an embedder; the server log says why."));
    return;
  }
  const budget = data.daily_budget;
  const spend = h("div", { class: "card" }, h("h2", {}, "Remote spend today"),
    h("div", { class: "big" }, fmt.money(data.spent_today),
      h("span", { class: "muted" }, budget !== null ? ` of ${fmt.money(budget)}` : "")),
    budget !== null ? h("div", { class: "meter" }, h("span", {
      class: `meter-part ${data.spent_today >= budget ? "over" : ""}`,
      style: `width:${Math.min(100, (100 * data.spent_today) / Math.max(budget, 1e-9))}%`,
    })) : h("p", { class: "muted" }, "No daily budget is set (router.daily_budget)."),
    h("p", { class: "muted" }, "Expected costs of the requests auto sent to remote models since midnight UTC."));
  const s = data.saving;
  const saving = h("div", { class: "card" }, h("h2", {}, "Saved today"),
    h("div", { class: "big" }, fmt.money(s.saved)),
    h("p", { class: "muted" }, `${s.routes} routed request${s.routes === 1 ? "" : "s"} cost ${fmt.money(s.cost)}; `
      + `always the best model would have cost ${fmt.money(s.best_cost)}.`));
  fill("routing", h("div", { class: "grid two" }, spend, saving),
    h("div", { class: "card wide" }, h("h2", {}, "Requests to auto, by the model that served them"),
      shareChart(data)),
    h("div", { class: "card wide" }, h("h2", {}, "Last replay benchmark"), replayChart(data.replay)));
};

function shareChart(data) {
  if (!data.buckets.length) return empty("No request to auto in the last day.");
  // an overflow (sent remote because the local queue was too long) is its own share
  const inBucket = (b) => Object.values(b.counts).reduce((a, n) => a + n, 0) + (b.overflow || 0);
  const most = Math.max(...data.buckets.map(inBucket), 1);
  const every = Math.ceil(data.buckets.length / 6);
  const all = data.buckets.reduce((a, b) => a + inBucket(b), 0);
  const overflowed = data.buckets.reduce((a, b) => a + (b.overflow || 0), 0);
  const share = (total) => h("span", { class: "muted" }, `${fmt.pct(total / all)} (${total})`);
  const legend = h("ul", { class: "legend" }, data.models.map((m) => {
    const total = data.buckets.reduce((a, b) => a + (b.counts[m] || 0), 0);
    return h("li", {}, h("span", { class: "dot", style: `background:${colour(m)}` }), `${m} `, share(total));
  }), h("li", { class: "overflow-share", title: "Sent to a remote model because the local model's queue was over the preset's latency budget" },
    h("span", { class: "dot overflow" }), "overflow to remote ", share(overflowed)));
  const bars = h("div", { class: "bars", role: "img", "aria-label": "Requests per model over time" },
    data.buckets.map((b, i) => {
      const total = inBucket(b);
      const over = b.overflow ? ` (${b.overflow} overflowed)` : "";
      return h("div", { class: "bar-col", title: `${fmt.clock(b.start)}: ${total} request${total === 1 ? "" : "s"}${over}` },
        h("div", { class: "bar-stack", style: `height:${(100 * total) / most}%` },
          b.overflow ? h("span", { class: "overflow", style: `flex:${b.overflow}` }) : null,
          data.models.filter((m) => b.counts[m]).map((m) => h("span", {
            style: `flex:${b.counts[m]};background:${colour(m)}`,
          }))),
        h("div", { class: "bar-label" }, i % every === 0 ? fmt.clock(b.start) : ""));
    }));
  const step = data.bucket_s >= 3600 ? `${data.bucket_s / 3600} h` : `${data.bucket_s / 60} min`;
  return h("div", {}, bars, legend, h("p", { class: "muted" }, `One bar per ${step}.`));
}

function replayChart(replay) {
  if (!replay || !Array.isArray(replay.points) || !replay.points.length) {
    return empty("No replay yet.", "Run `localforge bench replay DATA --models CONFIG --json FILE` "
      + "with this server's data directory, and its curve shows here.");
  }
  const W = 360, H = 230, L = 40, B = 34, T = 10, R = 22;
  const base = replay.baselines || {};
  const weak = (base["always-cheapest"] || {}).accuracy ?? Math.min(...replay.points.map((p) => p.accuracy));
  const strong = (base["always-best"] || {}).accuracy ?? Math.max(...replay.points.map((p) => p.accuracy));
  const lo = Math.min(weak, ...replay.points.map((p) => p.accuracy)) - 0.02;
  const hi = Math.max(strong, ...replay.points.map((p) => p.accuracy)) + 0.02;
  const x = (share) => L + share * (W - L - R);
  const y = (acc) => T + (1 - (acc - lo) / (hi - lo)) * (H - T - B);
  const points = [...replay.points].sort((a, b) => a.share - b.share);
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "replay", role: "img",
    "aria-label": "Accuracy against the share of calls to the strong model" },
  ticks.map((t) => svg("line", { x1: x(t), x2: x(t), y1: T, y2: H - B, class: "grid-line" })),
  ticks.map((t) => svg("text", { x: x(t), y: H - B + 14, "text-anchor": "middle", class: "axis" }, fmt.pct(t))),
  [lo + 0.02, (lo + hi) / 2, hi - 0.02].map((a) => svg("text", { x: L - 6, y: y(a) + 4, "text-anchor": "end", class: "axis" },
    fmt.pct(a))),
  svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", class: "axis" }, "share of calls to the strong model"),
  svg("line", { x1: x(0), y1: y(weak), x2: x(1), y2: y(strong), class: "random-line" }),
  svg("polyline", { points: points.map((p) => `${x(p.share)},${y(p.accuracy)}`).join(" "), class: "router-line" }),
  points.map((p) => svg("circle", { cx: x(p.share), cy: y(p.accuracy), r: 3.5, class: "router-point" },
    svg("title", {}, `dial ${p.dial}: ${fmt.pct(p.share)} strong, accuracy ${fmt.pct(p.accuracy)}`))));
  const figures = h("dl", { class: "facts" },
    h("dt", {}, "APGR"), h("dd", {}, fmt.num(replay.apgr ?? 0)),
    h("dt", {}, "CPT(50%)"), h("dd", {}, replay.cpt50 === null || replay.cpt50 === undefined ? "–" : fmt.pct(replay.cpt50)),
    h("dt", {}, "CPT(80%)"), h("dd", {}, replay.cpt80 === null || replay.cpt80 === undefined ? "–" : fmt.pct(replay.cpt80)),
    h("dt", {}, "Models"), h("dd", {}, `${replay.weak || "?"} (weak), ${replay.strong || "?"} (strong)`),
    h("dt", {}, "Prompts"), h("dd", {}, `${replay.learned ?? 0} learned, ${replay.evaluated ?? 0} evaluated`));
  return h("div", { class: "replay-wrap" }, chart, h("div", {}, figures,
    h("ul", { class: "legend" }, h("li", {}, h("span", { class: "dot router" }), "auto"),
      h("li", {}, h("span", { class: "dot random" }), "random routing"))));
}

// ---- Health -----------------------------------------------------------------------------------

RENDER.health = (data) => {
  const backends = h("div", { class: "grid fit" }, data.backends.map((b) => h("article", { class: "card backend" },
    h("div", { class: "card-head" }, h("h3", {}, b.name), h("span", { class: "muted" }, `${b.models} model${b.models === 1 ? "" : "s"}`)),
    b.endpoints.length ? h("ul", { class: "endpoints" }, b.endpoints.map((e) => h("li", { class: "endpoint", "data-state": e.state },
      h("div", { class: "endpoint-head" }, h("strong", {}, e.name), badge(e.state)),
      h("div", { class: "muted small-print" }, e.label),
      h("div", { class: "small-print" }, `${e.in_flight} running · ${e.served} served`
        + (e.state !== "cooling down" ? ""
          : e.retry_in_s >= 1 ? ` · probed again in ${Math.round(e.retry_in_s)} s` : " · probed at its next request")),
      e.last_error ? h("div", { class: "error-text small-print" }, e.last_error) : null)))
      : h("p", { class: "muted" }, "Runs on this machine."))));
  const errors = data.errors_last_hour.length
    ? h("ul", { class: "plain" }, data.errors_last_hour.map((e) => h("li", {},
      h("strong", {}, e.model), ` ${e.errors} error${e.errors === 1 ? "" : "s"} `,
      h("div", { class: "error-text small-print" }, e.last_error))))
    : h("p", { class: "muted" }, "No errors in the last hour.");
  const counts = data.models.length ? h("table", { class: "compact" },
    h("thead", {}, h("tr", {}, h("th", {}, "Model"), h("th", { class: "num" }, "Crashes"),
      h("th", { class: "num" }, "Loads"), h("th", { class: "num" }, "Evictions"))),
    h("tbody", {}, data.models.map((m) => h("tr", { class: m.crashes ? "crashed" : "" },
      h("td", {}, m.model), h("td", { class: "num" }, String(m.crashes)),
      h("td", { class: "num" }, String(m.loads)), h("td", { class: "num" }, String(m.evictions))))))
    : h("p", { class: "muted" }, "No model has been loaded since the server started.");
  const crashes = data.models.reduce((a, m) => a + m.crashes, 0);
  fill("health", h("div", { class: "stats n4" },
    stat("Errors, last hour", String(data.errors_last_hour.reduce((a, e) => a + e.errors, 0))),
    stat("Runner crashes", String(crashes), "since start"),
    stat("Turned away", String(data.rejected), "queue full"),
    stat("Left the queue", String(data.canceled), "client gone")),
  h("h2", { class: "section-title" }, "Backends"), backends,
  h("div", { class: "grid two" },
    h("div", { class: "card" }, h("h2", {}, "Errors in the last hour"), errors),
    h("div", { class: "card" }, h("h2", {}, "Runners"), counts)));
};

// ---- start ------------------------------------------------------------------------------------

document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
window.addEventListener("hashchange", route);
setUpKey();
route();
