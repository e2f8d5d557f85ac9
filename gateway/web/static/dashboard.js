/* The analytics dashboard. It takes its token from the URL fragment (#token=...), which is
   never sent to the server, loads /api/v1/analytics/dashboard once, then follows the live
   stream (/api/v1/analytics/stream?access_token=..., since EventSource sends no headers).
   Every figure is also written into plain elements with stable ids and data attributes,
   so that a headless browser can check what the page shows. */
(() => {
  "use strict";

  const TOKEN_KEY = "nexus.analytics.token";
  const COLORS = ["#1f5fbf", "#e8710a", "#1e8e3e", "#b3261e", "#8430ce", "#007b83", "#c5221f"];
  const granularity = new URLSearchParams(location.search).get("granularity") || "minute";
  const charts = {};
  let renders = 0;

  const fragment = new URLSearchParams(location.hash.slice(1));
  // #live=0 shows one snapshot and opens no stream (for printing, or a headless browser's
  // virtual time, which stands still while a request is open).
  const live = fragment.get("live") !== "0";

  function takeToken() {
    const token = fragment.get("token");
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      // Keeps the token out of the address bar, the history and bookmarks.
      history.replaceState(null, "", location.pathname + location.search);
      return token;
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  const slug = (text) => text.replace(/[^A-Za-z0-9]+/g, "-");
  const number = (value) =>
    value === null || value === undefined ? "–" : value.toLocaleString("en-US", { maximumFractionDigits: 1 });

  function element(tag, attributes = {}, text = null) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== null) node.textContent = text;
    return node;
  }

  function status(state, text) {
    const node = document.getElementById("status");
    node.dataset.state = state;
    node.textContent = text;
  }

  function setFigure(id, value) {
    const node = document.getElementById(id);
    node.dataset.value = String(value);
    node.textContent = number(value);
  }

  function bucketLabel(iso) {
    const text = iso.replace("T", " ").replace(/:00\.000Z$/, "");
    return granularity === "hour" ? text.slice(5) : text.slice(11);
  }

  function chart(id, config) {
    if (charts[id]) {
      charts[id].data = config.data;
      charts[id].update("none");
    } else {
      charts[id] = new Chart(document.getElementById(id), config);
    }
  }

  function renderSeries(series) {
    const types = Object.keys(series);
    const buckets = [...new Set(types.flatMap((t) => series[t].map((p) => p.bucket)))].sort();
    const datasets = types.map((type, i) => {
      const counts = new Map(series[type].map((p) => [p.bucket, p.count]));
      const color = COLORS[i % COLORS.length];
      return { label: type, data: buckets.map((b) => counts.get(b) || 0), borderColor: color, backgroundColor: color };
    });
    const container = document.getElementById("series-chart");
    container.dataset.points = JSON.stringify(Object.fromEntries(types.map((t) => [t, series[t].length])));
    container.dataset.labels = String(buckets.length);
    chart("series-canvas", {
      type: "line",
      data: { labels: buckets.map(bucketLabel), datasets },
      options: { animation: false, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } },
    });
  }

  function percentileText(percentiles, label) {
    return Object.entries(percentiles || {})
      .map(([property, values]) => `${property} ${number(values[label])}`)
      .join(", ");
  }

  function renderTotals(data) {
    const rows = Object.entries(data.totals).map(([type, count]) => {
      const row = element("tr", { "data-type": type, "data-points": String(data.series[type].length) });
      row.append(element("td", {}, type));
      row.append(element("td", { id: `total-${slug(type)}`, class: "number", "data-value": String(count) }, number(count)));
      for (const label of ["p50", "p95"]) {
        const values = JSON.stringify(data.percentiles[type] || {});
        row.append(element("td", { id: `${label}-${slug(type)}`, "data-values": values }, percentileText(data.percentiles[type], label)));
      }
      return row;
    });
    document.querySelector("#totals tbody").replaceChildren(...rows);
  }

  function topList(id, entries) {
    const list = element("ol", id ? { id } : {});
    for (const { value, count } of entries) {
      const item = element("li", { "data-value": value, "data-count": String(count) });
      item.append(element("span", { class: "value" }, value), ` · ${number(count)}`);
      list.append(item);
    }
    return list;
  }

  function renderTopPages(pages) {
    document.getElementById("top-pages").replaceWith(topList("top-pages", pages));
    document.getElementById("top-pages-chart").dataset.points = String(pages.length);
    chart("top-pages-canvas", {
      type: "bar",
      data: { labels: pages.map((p) => p.value), datasets: [{ label: "views", data: pages.map((p) => p.count), backgroundColor: COLORS[0] }] },
      options: {
        animation: false, maintainAspectRatio: false, indexAxis: "y",
        plugins: { legend: { display: false } }, scales: { y: { ticks: { autoSkip: false } } },
      },
    });
  }

  function renderTopValues(top) {
    const blocks = Object.entries(top).filter(([, entries]) => entries.length).map(([type, entries]) => {
      const block = element("div", { "data-type": type });
      block.append(element("h3", {}, type), topList(`top-${slug(type)}`, entries));
      return block;
    });
    document.getElementById("top-values").replaceChildren(...blocks);
  }

  function renderAnomalies(anomalies) {
    const rows = anomalies.map((a) => {
      const row = element("tr", { "data-event-id": a.event_id, "data-event-type": a.event_type, "data-direction": a.direction });
      const breakdown = a.breakdown_property ? `${a.breakdown_property} = ${a.breakdown_value}` : "";
      const cells = [
        [a.detected_at, {}], [a.event_type, {}], [`${a.window_start} (${a.granularity})`, {}],
        [a.direction, { class: `direction-${a.direction}` }], [number(a.expected), { class: "number" }],
        [number(a.observed), { class: "number" }], [number(a.score), { class: "number" }], [breakdown, {}],
      ];
      for (const [text, attributes] of cells) row.append(element("td", attributes, text));
      return row;
    });
    const table = document.getElementById("anomalies");
    table.dataset.count = String(anomalies.length);
    table.querySelector("tbody").replaceChildren(...rows);
  }

  function render(data, source) {
    setFigure("total-events", data.total);
    setFigure("active-users", data.active_users);
    document.getElementById("range").textContent = `${data.from} – ${data.to} per ${data.granularity}`;
    renderTotals(data);
    renderSeries(data.series);
    renderTopPages(data.top_pages);
    renderTopValues(data.top);
    renderAnomalies(data.anomalies);
    renders += 1;
    Object.assign(document.body.dataset, { source, renders: String(renders), updated: new Date().toISOString() });
  }

  async function load(token) {
    const query = new URLSearchParams({ granularity });
    const response = await fetch(`/api/v1/analytics/dashboard?${query}`, { headers: { Authorization: `Bearer ${token}` } });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      status("error", `${response.status}: ${problem.detail || response.statusText}`);
      return false;
    }
    render(await response.json(), "fetch");
    status("loaded", "loaded");
    return true;
  }

  function follow(token) {
    const query = new URLSearchParams({ granularity, access_token: token });
    const stream = new EventSource(`/api/v1/analytics/stream?${query}`);
    stream.addEventListener("dashboard", (message) => {
      render(JSON.parse(message.data), "stream");
      status("live", `live, updated ${new Date().toLocaleTimeString()}`);
    });
    stream.addEventListener("error", () => {
      if (stream.readyState === EventSource.CLOSED) {
        status("error", "the live stream was refused: open the page with a fresh #token=");
      } else {
        status("reconnecting", "reconnecting…");
      }
    });
  }

  async function main() {
    const token = takeToken();
    if (!token) {
      status("error", "no token: open /dashboard#token=<a JWT with the scope analytics:read>");
      return;
    }
    try {
      if ((await load(token)) && live) follow(token);
    } catch (error) {
      status("error", `could not load the dashboard: ${error}`);
    }
  }

  main();
})();
