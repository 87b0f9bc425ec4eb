// Technician status page (an ES module). Everything shown comes from /api/ and the live event
// stream; dom.js builds the elements, and field data only ever goes into the page as text.

import {
  badge, el, fmtAmount, fmtBytes, fmtClock, fmtDuration, kv, qrNode, setText, sinceNode, tick,
  timeNode, toDate, yesNo,
} from "./dom.js";

const $ = (id) => document.getElementById(id);

const state = {
  csrf: "",
  overview: null,
  boards: [],
  seenStates: new Set(),
  liveUpdates: 0,
  pingS: 15,
  openAudits: new Set(),
};

// --- talking to the hub --------------------------------------------------------------------
class ApiError extends Error {}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...options };
  if (options.json !== undefined) {
    init.method = "POST";
    init.body = JSON.stringify(options.json);
    init.headers = { ...init.headers, "Content-Type": "application/json", "X-CSRF-Token": state.csrf };
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    window.location.assign("login");
    throw new ApiError("logged out");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    throw new ApiError(message || `HTTP ${response.status}`);
  }
  return body;
}

let msgTimer = null;
function say(message, ok) {
  const box = $("action-msg");
  box.textContent = message;
  box.className = `banner ${ok ? "banner-ok" : "banner-err"}`;
  box.hidden = false;
  clearTimeout(msgTimer);
  msgTimer = setTimeout(() => { box.hidden = true; }, 6000);
}

// One loader per resource: never two requests at once, and a change during a request
// triggers one more request afterwards, so the newest state always wins.
function loader(fn) {
  let running = false;
  let again = false;
  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        try {
          await fn();
        } catch (err) {
          if (!(err instanceof ApiError)) console.error(err);
        }
      } while (again);
    } finally {
      running = false;
    }
  };
  return run;
}

// --- overview ------------------------------------------------------------------------------
function renderOverview(o) {
  state.overview = o;
  setText($("hub-id"), o.hub_id, "");
  const g = o.gateway || {};
  const ob = o.outbox || {};
  const clock = o.clock || {};
  const pi = o.pi || {};
  const dropped = ob.dropped || {};
  const pushKind = g.push === "websocket" ? "ok" : g.push === "long-poll" ? "warn" : "bad";
  const cards = [
    ["Hub", kv([
      ["Version", o.version],
      ["Up for", sinceNode(o.started_at, o.uptime_s)],
      ["Started", fmtClock(o.started_at)],
      ["Orders", yesNo(o.taking_orders, ["taking orders", "ok"], ["not taking orders", "bad"])],
      ["Why", o.taking_orders ? null : o.not_taking_orders_reason],
    ].filter(([label, value]) => label !== "Why" || value))],
    ["Gateway", kv([
      ["Link", yesNo(g.connected, ["connected", "ok"], ["not connected", "bad"])],
      ["Push", badge(g.push || "down", pushKind)],
      ["Last sync", timeNode(g.last_sync_at)],
      ["Last error", g.last_error ? el("span", {}, g.last_error, " ", timeNode(g.last_error_at, "")) : "none"],
      ["URL", g.url ? el("code", { text: g.url }) : null],
    ])],
    ["Outbox", kv([
      ["Waiting", `${ob.depth ?? "–"} events (${fmtBytes(ob.bytes)})`],
      ["Oldest", ob.oldest_age_s === null || ob.oldest_age_s === undefined ? "none" : `${fmtDuration(ob.oldest_age_s)} old`],
      ["Dropped", Object.keys(dropped).length
        ? Object.entries(dropped).map(([k, v]) => `${k}: ${v}`).join(", ") : "nothing"],
    ])],
    ["Clock and disk", kv([
      ["Clock", yesNo(clock.synced, ["synced", "ok"], ["not synced", "warn"])],
      ["Offset", typeof clock.offset_s === "number" ? `${clock.offset_s.toFixed(1)} s` : "–"],
      ["Disk free", fmtBytes(o.disk_free_bytes)],
    ])],
    ["Raspberry Pi", kv([
      ["CPU", typeof pi.cpu_temp_c === "number" ? `${pi.cpu_temp_c.toFixed(1)} °C` : badge("not available", "none")],
      ["Undervoltage", yesNo(pi.undervoltage, ["UNDERVOLTAGE", "bad"], ["no", "ok"])],
      ["Throttled", yesNo(pi.throttled, ["THROTTLED", "warn"], ["no", "ok"])],
    ])],
  ];
  $("overview").replaceChildren(...cards.map(([title, body]) => el("div", { class: "card" }, el("h3", { text: title }), body)));
  renderSummary();
}

// --- summary: what is wrong and where to look ------------------------------------------
function renderSummary() {
  const o = state.overview;
  const items = [];
  const add = (sev, head, text) => items.push(el("div", { class: `problem sev-${sev}` }, el("strong", { text: head }), text || ""));
  if (o) {
    const g = o.gateway || {};
    if (!o.taking_orders) add("bad", "Not taking orders.", o.not_taking_orders_reason || "");
    if (g.connected === false) {
      add("bad", "No link to the payment gateway.", `Check the site's internet; the gateway may be down. ${g.last_error ? `Last error: ${g.last_error}` : ""}`);
    } else if (g.push === "long-poll") {
      add("warn", "Push channel down.", "The hub polls the gateway instead; payments confirm more slowly.");
    }
    if (o.clock && o.clock.synced === false) add("warn", "Hub clock not synced.", "Times shown may be off.");
    if (o.pi && o.pi.undervoltage) add("bad", "Undervoltage.", "The Raspberry Pi's power supply is too weak.");
    if (o.pi && o.pi.throttled) add("warn", "CPU throttled.", "The hub is too hot or under-powered.");
    const dropped = o.outbox && o.outbox.dropped ? Object.values(o.outbox.dropped).reduce((a, b) => a + (Number(b) || 0), 0) : 0;
    if (dropped > 0) add("info", "Telemetry dropped.", `${dropped} telemetry events were dropped while the outbox was full.`);
  }
  for (const b of state.boards) {
    const name = `Board ${b.board_uid}${b.port ? ` on ${b.port}` : ""}`;
    if (!b.link_up) add("bad", `${name}: no link.`, "Check its cable and power.");
    else if (!b.in_service) add("warn", `${name}: out of service.`, b.out_of_service_reason || "");
  }
  if (o && items.length === 0) {
    add("ok", "All good.", `Hub, gateway and ${state.boards.length} board${state.boards.length === 1 ? "" : "s"} are up.`);
  }
  $("summary").replaceChildren(...items);
}

// --- boards --------------------------------------------------------------------------------
const cards = new Map(); // board_uid -> {root, slots..., lastQr}

function makeBoardCard(uid) {
  const s = {};
  const slot = (name, tag = "dd") => (s[name] = el(tag));
  s.title = el("h3", { class: "mono" });
  s.link = el("span", { class: "link" });
  s.service = el("span", { class: "service" });
  s.vend = el("span", { class: "vend" });
  const facts = el("dl", { class: "kv" },
    el("dt", { text: "Port" }), slot("port"),
    el("dt", { text: "Link" }), slot("linkText"),
    el("dt", { text: "Last seen" }), slot("lastSeen"),
    el("dt", { text: "Firmware" }), slot("firmware"),
    el("dt", { text: "Vend state" }), slot("vendState"),
    el("dt", { text: "Service" }), slot("serviceText"));
  s.order = el("div", { class: "order-slot" });
  s.counters = el("table", { class: "counters", "aria-label": "error counters" });
  s.toggle = el("button", { type: "button", class: "svc-toggle" });
  s.resend = el("button", { type: "button", class: "resend", text: "Resend pending" });
  s.reason = el("input", { type: "text", maxlength: "64", placeholder: "Reason the board will show", "aria-label": "reason" });
  s.confirm = el("button", { type: "submit", class: "danger", text: "Take out of service" });
  s.cancel = el("button", { type: "button", text: "Cancel" });
  s.form = el("form", { class: "reason-form", hidden: true }, s.reason, s.confirm, s.cancel);
  s.root = el("article", { class: "board", "data-board-uid": uid },
    el("div", { class: "board-head" }, s.title, s.link, s.service, s.vend),
    facts, s.order,
    el("details", {}, el("summary", { text: "Error counters" }), s.counters),
    el("div", { class: "board-actions" }, s.toggle, s.resend), s.form);
  s.summaryCounters = s.root.querySelector("details > summary");

  s.toggle.addEventListener("click", () => {
    const board = state.boards.find((b) => b.board_uid === uid);
    if (board && board.in_service) {
      s.form.hidden = false;
      s.reason.focus();
    } else {
      setService(uid, true, "", s);
    }
  });
  s.cancel.addEventListener("click", () => { s.form.hidden = true; });
  s.form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setService(uid, false, s.reason.value, s);
  });
  s.resend.addEventListener("click", async () => {
    s.resend.disabled = true;
    try {
      const r = await api(`api/boards/${encodeURIComponent(uid)}/resend`, { json: {} });
      say(r.resent ? `Pending command resent to board ${uid}.` : `Nothing pending for board ${uid}.`, true);
    } catch (err) {
      say(`Resend failed: ${err.message}`, false);
    } finally {
      s.resend.disabled = false;
    }
  });
  return s;
}

async function setService(uid, inService, reason, s) {
  s.toggle.disabled = true;
  s.confirm.disabled = true;
  try {
    await api(`api/boards/${encodeURIComponent(uid)}/service`, { json: { in_service: inService, reason } });
    s.form.hidden = true;
    s.reason.value = "";
    say(inService ? `Board ${uid} is back in service.` : `Board ${uid} is out of service.`, true);
    loadBoards();
  } catch (err) {
    say(`Could not change board ${uid}: ${err.message}`, false);
  } finally {
    s.toggle.disabled = false;
    s.confirm.disabled = false;
  }
}

function vendKind(vs) {
  if (vs === "idle" || vs === "done") return "ok";
  if (vs === "error" || vs === "failed") return "bad";
  if (vs === "out_of_service") return "warn";
  return "info";
}

function renderOrderBox(s, order) {
  if (!order) {
    if (s.lastQr !== null) {
      s.order.replaceChildren(el("p", { class: "no-order", text: "No order in progress." }));
      s.lastQr = null;
    }
    return;
  }
  const info = el("div", { class: "order-info" },
    el("div", { class: "amount", text: fmtAmount(order.amount, order.currency) }),
    el("div", {}, badge(order.state || "?", "info")),
    el("div", { class: "mono", text: order.order_id || "" }),
    order.expires_at ? el("div", { class: "muted" }, "expires ", timeNode(order.expires_at)) : null);
  const box = el("div", { class: "order-box" }, info);
  if (order.qr_svg) {
    const svg = qrNode(order.qr_svg);
    if (svg) box.append(el("div", { class: "qr", title: order.upi_uri || "" }, svg));
  }
  s.order.replaceChildren(box);
  s.lastQr = order.upi_uri || "";
}

function renderBoard(s, b) {
  s.root.classList.toggle("link-down", !b.link_up);
  s.root.classList.toggle("out-of-service", !b.in_service);
  setText(s.title, b.board_uid);
  s.link.replaceChildren(b.link_up ? badge("link up", "ok") : badge("link down", "bad"));
  s.service.replaceChildren(b.in_service ? badge("in service", "ok") : badge("out of service", "warn"));
  s.vend.replaceChildren(badge(b.vend_state || "unknown", vendKind(b.vend_state)));
  setText(s.port, [b.port, b.addr ? `addr ${b.addr}` : null].filter(Boolean).join(" · "));
  s.linkText.replaceChildren(b.link_up ? "up since " : "down since ", timeNode(b.link_since, "unknown"));
  s.lastSeen.replaceChildren(timeNode(b.last_seen));
  setText(s.firmware, `${b.firmware || "?"} · protocol ${b.protocol_version ?? "?"}`);
  setText(s.vendState, b.vend_state, "unknown");
  setText(s.serviceText, b.in_service ? "in service" : `out of service: ${b.out_of_service_reason || "no reason given"}`);
  s.toggle.textContent = b.in_service ? "Take out of service" : "Put back in service";
  const counters = b.counters || {};
  const errors = ["crc_errors", "retransmits", "mac_failures"];
  const names = [...errors, ...Object.keys(counters).filter((k) => !errors.includes(k))];
  s.counters.replaceChildren(...names.filter((k) => k in counters).map((k) => el("tr",
    { class: errors.includes(k) && counters[k] ? "nonzero" : "" },
    el("td", { text: k.replaceAll("_", " ") }), el("td", { class: "n", text: counters[k] }))));
  const errorTotal = errors.reduce((sum, k) => sum + (Number(counters[k]) || 0), 0);
  s.summaryCounters.textContent = `Error counters: ${errors.map((k) => `${k.replaceAll("_", " ")} ${counters[k] ?? "–"}`).join(", ")}`;
  s.summaryCounters.classList.toggle("lvl-ERROR", errorTotal > 0);
  renderOrderBox(s, b.current_order);
}

function renderBoards(boards) {
  state.boards = boards;
  const container = $("boards");
  const seen = new Set();
  for (const b of boards) {
    seen.add(b.board_uid);
    let s = cards.get(b.board_uid);
    if (!s) {
      s = makeBoardCard(b.board_uid);
      s.lastQr = undefined;
      cards.set(b.board_uid, s);
    }
    renderBoard(s, b);
    container.append(s.root); // keeps the hub's order
  }
  for (const [uid, s] of cards) {
    if (!seen.has(uid)) {
      s.root.remove();
      cards.delete(uid);
    }
  }
  setText($("board-count"), `(${boards.length})`, "");
  const select = $("f-board");
  const current = select.value;
  select.replaceChildren(el("option", { value: "", text: "all boards" }),
    ...boards.map((b) => el("option", { value: b.board_uid, text: b.board_uid })));
  select.value = boards.some((b) => b.board_uid === current) ? current : "";
  renderSummary();
}

// --- orders --------------------------------------------------------------------------------
function renderStateFilter() {
  const select = $("f-state");
  const current = select.value;
  if (current) state.seenStates.add(current);
  const all = [...state.seenStates].sort();
  select.replaceChildren(el("option", { value: "", text: "all states" }), ...all.map((s) => el("option", { value: s, text: s })));
  select.value = current;
}

function renderOrders(orders) {
  const rows = orders.map((o) => {
    state.seenStates.add(o.state);
    const audit = el("ol", { class: "audit" }, ...(o.audit || []).map((a) =>
      el("li", {}, timeNode(a.at), ` ${a.from ?? "∅"} → ${a.to}`, a.reason ? ` (${a.reason})` : "")));
    const details = el("details", { "data-order-id": o.order_id },
      el("summary", { text: `${(o.audit || []).length} steps` }), audit);
    details.open = state.openAudits.has(o.order_id);
    details.addEventListener("toggle", () => {
      if (details.open) state.openAudits.add(o.order_id);
      else state.openAudits.delete(o.order_id);
    });
    return el("tr", { class: o.needs_attention ? "attention" : "", "data-order-id": o.order_id },
      el("td", {}, timeNode(o.created_at)),
      el("td", { class: "mono", text: o.order_id }),
      el("td", { class: "mono", text: o.board_uid }),
      el("td", { text: [o.product, ...(o.options || [])].filter(Boolean).join(" + ") }),
      el("td", { text: fmtAmount(o.amount, o.currency) }),
      el("td", {}, o.needs_attention ? badge("needs attention", "warn") : null, " ", o.state),
      el("td", {}, details));
  });
  $("orders").tBodies[0].replaceChildren(...rows);
  $("orders").hidden = rows.length === 0;
  $("orders-empty").hidden = rows.length > 0;
  renderStateFilter();
}

// --- log -----------------------------------------------------------------------------------
function renderLogs(logs) {
  const sorted = [...logs].sort((a, b) => (toDate(b.at)?.getTime() || 0) - (toDate(a.at)?.getTime() || 0));
  const rows = sorted.map((r) => el("tr", {},
    el("td", {}, timeNode(r.at)),
    el("td", { class: `lvl-${r.level}`, text: r.level }),
    el("td", { class: "mono", text: r.board_uid || "" }),
    el("td", { class: "mono", text: r.order_id || "" }),
    el("td", { class: "msg" }, r.message, el("div", { class: "muted", text: r.logger || "" }))));
  $("logs").tBodies[0].replaceChildren(...rows);
  $("logs").hidden = rows.length === 0;
  $("logs-empty").hidden = rows.length > 0;
}

// --- loaders -------------------------------------------------------------------------------
const loadOverview = loader(async () => renderOverview(await api("api/overview")));
const loadBoards = loader(async () => renderBoards((await api("api/boards")).boards));
const loadLogs = loader(async () => renderLogs((await api("api/logs")).logs));
const loadOrders = loader(async () => {
  const q = new URLSearchParams();
  if ($("f-board").value) q.set("board_uid", $("f-board").value);
  if ($("f-state").value) q.set("state", $("f-state").value);
  renderOrders((await api(`api/orders?${q}`)).orders);
});
const refreshAll = () => Promise.all([loadOverview(), loadBoards(), loadOrders(), loadLogs()]);

const onChange = {
  board: () => loadBoards(), // link, heartbeat, service changes: the orders are unchanged
  order: () => { loadOrders(); loadBoards(); },
  overview: () => loadOverview(),
  log: () => loadLogs(),
};

// --- live stream ---------------------------------------------------------------------------
let source = null;
let watchdog = null;

function setLive(up) {
  const live = $("live");
  live.className = `live ${up ? "live-ok" : "live-lost"}`;
  live.textContent = up ? "live" : "connection lost";
  $("conn-lost").hidden = up;
  document.body.dataset.live = up ? "up" : "lost";
}

function armWatchdog() {
  clearTimeout(watchdog);
  // No ping for two intervals: the hub or the network is gone, even if the socket looks open.
  watchdog = setTimeout(() => { setLive(false); connect(); }, (state.pingS * 2 + 2) * 1000);
}

function connect() {
  if (source) source.close();
  source = new EventSource("api/events");
  source.addEventListener("hello", (ev) => {
    const hello = JSON.parse(ev.data);
    if (typeof hello.ping_s === "number") state.pingS = hello.ping_s;
    setLive(true);
    armWatchdog();
    refreshAll(); // catch up on whatever changed while disconnected
  });
  source.addEventListener("ping", () => {
    setLive(true);
    armWatchdog();
    // quiet for a while: refresh what ages without events (outbox age, last seen), and
    // anything a full event queue at the hub may have dropped
    refreshAll();
  });
  source.addEventListener("change", (ev) => {
    armWatchdog();
    let change = {};
    try { change = JSON.parse(ev.data); } catch { /* a change we cannot read: refetch all */ }
    state.liveUpdates += 1;
    document.body.dataset.liveUpdates = String(state.liveUpdates);
    $("live-count").textContent = String(state.liveUpdates);
    $("last-change").textContent = new Date().toLocaleTimeString();
    (onChange[change.kind] || refreshAll)();
  });
  source.addEventListener("error", () => {
    setLive(false);
    if (source.readyState === EventSource.CLOSED) {
      // The stream was refused (logged out, hub restarting): check the session, then retry.
      setTimeout(async () => {
        try {
          await api("api/session");
          connect();
        } catch {
          setTimeout(connect, 2000);
        }
      }, 1000);
    }
  });
}

// --- start ---------------------------------------------------------------------------------
async function start() {
  const session = await api("api/session");
  state.csrf = session.csrf_token;
  $("bundle-csrf").value = state.csrf;
  $("user").textContent = session.user;
  renderStateFilter();

  $("logout").addEventListener("click", async () => {
    try { await api("api/logout", { json: {} }); } finally { window.location.assign("login"); }
  });
  $("sync-now").addEventListener("click", async () => {
    const button = $("sync-now");
    button.disabled = true;
    try {
      await api("api/sync", { json: {} });
      say("Sync done.", true);
    } catch (err) {
      say(`Sync failed: ${err.message}`, false);
    } finally {
      button.disabled = false;
      loadOverview();
    }
  });
  $("f-board").addEventListener("change", loadOrders);
  $("f-state").addEventListener("change", loadOrders);
  $("order-filter").addEventListener("submit", (ev) => ev.preventDefault());

  await refreshAll();
  connect();
  setInterval(tick, 1000);
}


// Module scripts run after the document is parsed.
start().catch((err) => say(`The page could not start: ${err.message}`, false));
