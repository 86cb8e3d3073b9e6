// jobengine console: keeps a page's live parts current. No framework, no third-party code.
// Live source: the tenant's event stream GET /v1/events (EventSource) when the API serves it; otherwise,
// or when the stream breaks, the JSON API is polled every 2 s. Both read with the session cookie (GET only).
// Everything from the API is written with textContent / DOM nodes, never parsed as HTML.
"use strict";

(function () {
  const POLL_MS = 2000;
  const SAFETY_POLL_MS = 15000; // with the stream on: a read now and then, in case an event was missed
  const EVENT_TYPES = ["job.queued", "job.deferred", "job.started", "job.progress", "job.retrying", "job.finished", "job.failed", "job.canceled"];
  const main = document.querySelector("main[data-live]");
  if (!main) return;
  const page = main.dataset.live;
  const modeLabel = document.getElementById("live-mode");
  let timer = null;
  let pending = null;
  let lastThroughput = null;
  let source = null;

  function ts(value) {
    if (!value) return "—";
    const d = new Date(value);
    if (isNaN(d)) return String(value);
    return d.toISOString().slice(0, 19).replace("T", " ");
  }
  function pretty(value) {
    return value === null || value === undefined ? "—" : JSON.stringify(sortKeys(value), null, 2);
  }
  function sortKeys(value) {
    if (Array.isArray(value)) return value.map(sortKeys);
    if (value && typeof value === "object") {
      const out = {};
      Object.keys(value).sort().forEach(function (k) { out[k] = sortKeys(value[k]); });
      return out;
    }
    return value;
  }
  function setField(root, name, text) {
    root.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) {
      if (el.textContent !== text) el.textContent = text;
    });
  }
  function badge(status) {
    const span = document.createElement("span");
    span.className = "badge " + status;
    span.textContent = status;
    return span;
  }
  function cell(row, content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.appendChild(content); else td.textContent = content;
    row.appendChild(td);
    return td;
  }
  function jobLink(id) {
    const a = document.createElement("a");
    a.className = "mono";
    a.href = "/console/jobs/" + encodeURIComponent(id);
    a.textContent = id;
    return a;
  }
  function emptyRow(tbody, columns, text) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(tr, text);
    td.colSpan = columns;
    tbody.appendChild(tr);
  }
  // Rebuilding a table must not steal keyboard focus: skip it while focus is inside the table.
  function replaceRows(table, rows) {
    if (table.contains(document.activeElement) && document.activeElement !== document.body) return;
    const tbody = table.tBodies[0];
    tbody.replaceChildren.apply(tbody, rows);
  }
  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401) { window.location.assign("/console/login"); throw new Error("signed out"); }
    if (!response.ok) throw new Error(url + ": " + response.status);
    return response.json();
  }

  const refreshers = {
    job: async function () {
      const job = await getJSON("/v1/jobs/" + encodeURIComponent(main.dataset.job));
      const status = main.querySelector('[data-field="status"]');
      if (status) { status.className = "badge " + job.status; }
      setField(main, "status", job.status);
      setField(main, "attempts", String(job.attempts));
      setField(main, "retries_left", job.retries_left === null ? "—" : String(job.retries_left));
      setField(main, "worker", job.worker || "—");
      const p = job.progress;
      setField(main, "progress", p ? ((p.percent !== undefined && p.percent !== null ? p.percent + "% " : "") + (p.message || "")).trim() || "—" : "—");
      ["created_at", "enqueued_at", "started_at", "ended_at"].forEach(function (k) { setField(main, k, ts(job[k])); });
      setField(main, "result", pretty(job.result));
      setField(main, "error", job.error || "—");
      if (["finished", "failed", "canceled"].indexOf(job.status) >= 0 && source) {
        source.close(); // the job's stream ends with the job: no reconnecting to it
        source = null;
        poll(POLL_MS, "Live: polling every 2 s");
      }
      main.querySelectorAll("form[data-show-when]").forEach(function (form) {
        form.hidden = form.dataset.showWhen.split(" ").indexOf(job.status) < 0;
      });
    },
    jobs: async function () {
      const data = await getJSON("/v1/jobs?" + main.dataset.query);
      const rows = data.items.map(function (job) {
        const tr = document.createElement("tr");
        cell(tr, jobLink(job.id)); cell(tr, job.type); cell(tr, job.queue); cell(tr, badge(job.status));
        cell(tr, ts(job.created_at)); cell(tr, ts(job.ended_at));
        return tr;
      });
      const table = document.getElementById("jobs");
      if (!rows.length) { replaceRows(table, []); emptyRow(table.tBodies[0], 6, "No jobs match."); return; }
      replaceRows(table, rows);
    },
    failed: async function () {
      const data = await getJSON("/v1/jobs?" + main.dataset.query);
      const template = document.getElementById("retry-form");
      const table = document.getElementById("failed");
      const known = {};
      table.querySelectorAll("tr[data-job]").forEach(function (tr) { known[tr.dataset.job] = tr; });
      const rows = data.items.map(function (job) {
        if (known[job.id]) return known[job.id]; // keeps its error line
        const tr = document.createElement("tr");
        tr.dataset.job = job.id;
        cell(tr, jobLink(job.id)); cell(tr, job.type); cell(tr, job.queue); cell(tr, ts(job.ended_at));
        cell(tr, "").className = "err";
        const td = cell(tr, "");
        if (template) {
          const form = template.content.firstElementChild.cloneNode(true);
          form.action = "/console/jobs/" + encodeURIComponent(job.id) + "/retry";
          form.querySelector("button").setAttribute("aria-label", "Retry job " + job.id);
          td.appendChild(form);
        }
        return tr;
      });
      if (!rows.length) { replaceRows(table, []); emptyRow(table.tBodies[0], 6, "No failed jobs."); return; }
      replaceRows(table, rows);
    },
    overview: async function () {
      if (!main.dataset.admin) return;
      const results = await Promise.all([getJSON("/v1/queues"), getJSON("/v1/workers")]);
      results[0].items.forEach(function (q) {
        const row = main.querySelector('tr[data-queue="' + CSS.escape(q.name) + '"]');
        if (!row) return;
        ["depth", "in_flight", "scheduled", "failed", "finished", "workers"].forEach(function (k) { setField(row, k, String(q[k])); });
        const state = row.querySelector('[data-field="paused"] .badge');
        if (state) { state.textContent = q.paused ? "paused" : "active"; state.className = "badge " + (q.paused ? "paused" : "active"); }
      });
      const workers = results[1].items;
      setField(main, "workers", String(workers.length));
      const done = workers.reduce(function (sum, w) { return sum + w.jobs_finished + w.jobs_failed; }, 0);
      const now = Date.now();
      if (lastThroughput && now > lastThroughput.at) {
        const rate = Math.max(0, (done - lastThroughput.done) / ((now - lastThroughput.at) / 1000));
        setField(main, "throughput", rate.toFixed(1) + " jobs/s");
      }
      lastThroughput = { done: done, at: now };
    },
    workers: async function () {
      const data = await getJSON("/v1/workers");
      const rows = data.items.map(function (w) {
        const tr = document.createElement("tr");
        cell(tr, w.name); cell(tr, w.pool || "—"); cell(tr, w.queues.join(", ")); cell(tr, badge(w.state));
        cell(tr, w.current_job ? jobLink(w.current_job.id) : "—");
        cell(tr, w.heartbeat_age_seconds === null ? "—" : String(w.heartbeat_age_seconds));
        cell(tr, String(w.jobs_finished)); cell(tr, String(w.jobs_failed));
        cell(tr, w.rss_bytes ? (w.rss_bytes / 1048576).toFixed(1) : "—");
        return tr;
      });
      const table = document.getElementById("workers");
      if (!rows.length) { replaceRows(table, []); emptyRow(table.tBodies[0], 9, "No live workers."); return; }
      replaceRows(table, rows);
    },
  };
  const refresh = refreshers[page];
  if (!refresh) return;

  async function tick() {
    try { await refresh(); main.removeAttribute("data-stale"); }
    catch (err) { main.setAttribute("data-stale", "1"); }
  }
  function poll(every, label) {
    if (timer) clearInterval(timer);
    timer = setInterval(tick, every);
    if (modeLabel) modeLabel.textContent = label;
  }
  // an event asks for one refresh soon; a burst of events makes one read
  function soon() {
    if (pending) return;
    pending = setTimeout(function () { pending = null; tick(); }, 250);
  }

  poll(POLL_MS, "Live: polling every 2 s");
  if (!window.EventSource) return;
  const url = page === "job" ? "/v1/jobs/" + encodeURIComponent(main.dataset.job) + "/events" : "/v1/events";
  source = new EventSource(url);
  // overview and workers show rates and heartbeats, which no event carries: they keep reading every 2 s
  const timed = page === "overview" || page === "workers";
  source.onopen = function () {
    main.dataset.liveSource = "events";
    poll(timed ? POLL_MS : SAFETY_POLL_MS, timed ? "Live: event stream, and a read every 2 s" : "Live: event stream");
    tick();
  };
  const ENDS = ["job.finished", "job.failed", "job.canceled"];
  const onEvent = function (event) {
    main.dataset.eventsSeen = String(Number(main.dataset.eventsSeen || 0) + 1);
    soon();
    if (page === "job" && ENDS.indexOf(event.type) >= 0) {
      // the job's stream is over (the API closes it): no reconnect; a read now and then in case it is retried
      source.close();
      main.dataset.liveSource = "ended";
      poll(SAFETY_POLL_MS, "Live: the job ended");
    }
  };
  source.onmessage = onEvent;
  EVENT_TYPES.forEach(function (type) { source.addEventListener(type, onEvent); });
  source.onerror = function () {
    // not served (404 before the events endpoint exists: CLOSED, for good) or broken (EventSource reconnects by
    // itself): poll meanwhile
    const closed = !source || source.readyState === EventSource.CLOSED;
    main.dataset.liveSource = "polling";
    poll(POLL_MS, closed ? "Live: polling every 2 s" : "Live: polling every 2 s (event stream reconnecting)");
  };
})();
