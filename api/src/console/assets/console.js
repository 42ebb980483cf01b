// Ferric's console: follows /console/events and keeps the page current
// without reloading it; turns the node page's buttons into the API calls
// the CLI makes. Without this script every page still reads (plain HTML).
"use strict";

(() => {
  const page = document.body.dataset.page;
  const live = document.getElementById("live");
  const API_VERSION = "latest";

  // Runs `fn` at most once per `ms`, after the last call in a burst.
  const debounce = (fn, ms) => {
    let timer = null;
    return () => {
      if (timer === null) {
        timer = setTimeout(() => {
          timer = null;
          fn();
        }, ms);
      }
    };
  };

  // Fetches this page again and swaps in the parts named by `selectors`.
  const refreshParts = async (selectors) => {
    // Never location.href: it may carry credentials, which fetch refuses.
    const res = await fetch(location.pathname + location.search, { headers: { Accept: "text/html" } });
    if (!res.ok) return;
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    for (const selector of selectors) {
      const fresh = doc.querySelector(selector);
      const old = document.querySelector(selector);
      if (fresh && old) old.replaceWith(fresh);
    }
    document.body.dataset.refreshedAt = String(Date.now());
  };

  // ---- the fleet page -------------------------------------------------
  const setCell = (row, field, text, cls) => {
    const cell = row.querySelector(`[data-field="${field}"]`);
    if (!cell) return;
    cell.textContent = "";
    const span = document.createElement("span");
    span.textContent = text;
    if (cls) span.className = cls;
    cell.appendChild(span);
  };

  const stateClass = (state) => "s-" + String(state).replace(/ /g, "-");

  const refreshCounts = debounce(async () => {
    const res = await fetch("/console/counts");
    if (!res.ok) return;
    const counts = await res.json();
    const total = document.getElementById("count-total");
    if (total) total.textContent = counts.total;
    let missing = false;
    for (const [state, n] of Object.entries(counts.states)) {
      const link = document.querySelector(`[data-count-state="${CSS.escape(state)}"] strong`);
      if (link) link.textContent = n;
      else missing = true;
    }
    for (const link of document.querySelectorAll("[data-count-state]")) {
      if (!(link.dataset.countState in counts.states)) link.querySelector("strong").textContent = "0";
    }
    if (missing) refreshParts(["#counts"]);
  }, 500);

  const refreshTable = debounce(() => refreshParts(["#counts", "#nodes", "#empty"]), 1000);

  // Rows whose last_error and target need the API's word (not in events).
  const stale = new Set();
  const refreshRows = debounce(async () => {
    const uuids = [...stale];
    stale.clear();
    for (const uuid of uuids) {
      const res = await fetch(
        `/v1/nodes/${uuid}?fields=uuid,provision_state,target_provision_state,power_state,maintenance,last_error`,
        { headers: { "X-OpenStack-Ironic-API-Version": API_VERSION } },
      );
      if (!res.ok) continue;
      const node = await res.json();
      const row = document.getElementById("node-" + uuid);
      if (row) applyToRow(row, node);
    }
  }, 300);

  const applyToRow = (row, node) => {
    if ("provision_state" in node) {
      const cell = row.querySelector('[data-field="provision_state"]');
      cell.textContent = "";
      const span = document.createElement("span");
      span.className = stateClass(node.provision_state);
      span.textContent = node.provision_state;
      cell.appendChild(span);
      if (node.target_provision_state) {
        const target = document.createElement("span");
        target.className = "target";
        target.textContent = " → " + node.target_provision_state;
        cell.appendChild(target);
      }
    }
    if ("power_state" in node) setCell(row, "power_state", node.power_state ?? "None");
    if ("maintenance" in node) {
      setCell(row, "maintenance", node.maintenance ? "maintenance" : "no", node.maintenance ? "maint" : "");
    }
    if ("last_error" in node) setCell(row, "last_error", node.last_error ?? "");
    row.classList.remove("flash");
    void row.offsetWidth;
    row.classList.add("flash");
  };

  const onFleetEvent = (event) => {
    if (event.event_type === "ferric.console.resync") {
      refreshTable();
      refreshCounts();
      return;
    }
    const kind = event.event_type.split(".")[2];
    if (kind === "create" || kind === "delete") {
      refreshTable();
      return;
    }
    if (kind === "provision_set") refreshCounts();
    const row = document.getElementById("node-" + event.uuid);
    if (!row) return;
    applyToRow(row, event);
    stale.add(event.uuid);
    refreshRows();
  };

  // ---- the node page --------------------------------------------------
  const actions = document.getElementById("actions");
  const refreshNode = debounce(
    () => refreshParts(["#diagnosis", "#facts", "#actions", "#power-actions", "#timeline"]).then(bindActions),
    400,
  );

  const onNodeEvent = (event) => {
    const uuid = actions && actions.dataset.uuid;
    if (event.event_type === "ferric.console.resync" || event.uuid === uuid) refreshNode();
  };

  const request = (kind, target, uuid) => {
    const base = `/v1/nodes/${uuid}`;
    switch (kind) {
      case "power":
        return ["PUT", `${base}/states/power`, { target }];
      case "provision":
        return ["PUT", `${base}/states/provision`, { target }];
      case "maintenance":
        return target === "on"
          ? ["PUT", `${base}/maintenance`, { reason: "set from the Ferric console" }]
          : ["DELETE", `${base}/maintenance`, null];
      default:
        return null;
    }
  };

  const faultOf = async (res) => {
    try {
      const body = await res.json();
      if (body.error_message) return JSON.parse(body.error_message).faultstring;
      if (body.error && body.error.message) return body.error.message;
    } catch (_) {
      /* not JSON */
    }
    return res.statusText;
  };

  function bindActions() {
    const box = document.getElementById("actions");
    if (!box || box.dataset.bound) return;
    box.dataset.bound = "1";
    const result = document.getElementById("action-result");
    box.addEventListener("click", async (e) => {
      const button = e.target.closest("button[data-kind]");
      if (!button) return;
      const { kind, target } = button.dataset;
      const name = box.dataset.name;
      const what = `${button.textContent.trim()} node ${name}?`;
      if (!window.confirm(what)) {
        result.textContent = "Cancelled.";
        return;
      }
      const call = request(kind, target, box.dataset.uuid);
      if (!call) return;
      const [method, url, body] = call;
      button.disabled = true;
      result.textContent = `${button.textContent.trim()}: sending…`;
      const res = await fetch(url, {
        method,
        headers: {
          "Content-Type": "application/json",
          "X-OpenStack-Ironic-API-Version": API_VERSION,
        },
        body: body === null ? undefined : JSON.stringify(body),
      });
      button.disabled = false;
      result.textContent = res.ok
        ? `${button.textContent.trim()}: accepted (${res.status}).`
        : `${button.textContent.trim()}: refused (${res.status}): ${await faultOf(res)}`;
      result.dataset.status = String(res.status);
      refreshNode();
    });
  }

  // ---- the feed -------------------------------------------------------
  const follow = () => {
    if (!window.EventSource || (page !== "fleet" && page !== "node")) return;
    const source = new EventSource("/console/events");
    source.onopen = () => {
      live.textContent = "live";
      live.dataset.state = "live";
    };
    source.onerror = () => {
      live.textContent = "reconnecting…";
      live.dataset.state = "reconnecting";
    };
    source.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (_) {
        return;
      }
      if (page === "fleet") onFleetEvent(event);
      else onNodeEvent(event);
      document.body.dataset.lastEventAt = String(Date.now());
    };
  };

  // ---- the conductors page: queue depths are no events; it polls ------
  const poll = () => {
    if (page !== "conductors") return;
    live.textContent = "refreshed every 5 s";
    live.dataset.state = "live";
    setInterval(() => refreshParts(["#ring", "#queue-section"]), 5000);
  };

  bindActions();
  follow();
  poll();
})();
