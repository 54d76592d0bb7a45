// The dashboard page: state arrives whole over server-sent events (the server's watches on
// the API server), metrics are asked of the server every few seconds, buttons post actions.
import cytoscape from "cytoscape";
import dagre from "cytoscape-dagre";
import { groupElements, laneColours, STYLE } from "./graph.js";
import "./style.css";

cytoscape.use(dagre);

const METRICS_EVERY_MS = 5000;
const EVENTS_SHOWN = 25;
const graphs = new Map();
const series = new Map();
const notes = new Map();
let state = null;
let answers = 0;
// The entry weights each lane release has been seen at, in order, since the page opened.
const weightHistory = new Map();

function recordWeights() {
  for (const release of state.releases) {
    const key = `${release.namespace}/${release.name}`;
    const seen = weightHistory.get(key) || [];
    if (seen[seen.length - 1] !== release.weight) seen.push(release.weight);
    weightHistory.set(key, seen);
  }
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function sameService(a, b) {
  return a === b || a.split("/").pop() === b.split("/").pop();
}

// Which (service, lane) a release's last check found failing, per metric.
function failingChecks() {
  const failing = [];
  for (const release of state?.releases || []) {
    for (const line of release.services || []) {
      for (const [name, , , ok] of line.metrics || []) {
        if (!ok) failing.push({ service: line.service, lane: release.lane, metric: name });
      }
    }
  }
  return failing;
}

function isFailing(service, lane, metric) {
  return failingChecks().some((f) => sameService(f.service, service) && f.lane === lane && (!metric || f.metric === metric));
}

function renderProblems() {
  const box = document.getElementById("problems");
  box.replaceChildren(...(state.problems || []).map((p) => el("p", { class: "problem" }, p)));
}

function renderGraph(group, container) {
  const elements = groupElements(group);
  const key = JSON.stringify(elements);
  let entry = graphs.get(group.name);
  if (!entry || entry.key !== key || !container.contains(entry.cy.container())) {
    entry?.cy.destroy();
    const box = el("div", { class: "graph", "data-group": group.name });
    box.style.height = `${Math.max(160, 80 + 70 * group.lanes.length)}px`;
    container.append(box);
    const cy = cytoscape({
      container: box, elements, style: STYLE, userZoomingEnabled: false,
      layout: { name: "dagre", rankDir: "LR", nodeSep: 20, rankSep: 90 },
    });
    // What the graph draws, for a reader of the page's DOM (and its browser test).
    box.dataset.subsets = cy.nodes("[kind = 'subset']").map((n) => `${n.data("service")}:${n.data("lane")}`).sort().join(" ");
    box.dataset.lanes = group.lanes.join(" ");
    entry = { key, cy, box };
    graphs.set(group.name, entry);
  } else {
    container.append(entry.box);
  }
  entry.cy.nodes("[kind = 'subset']").forEach((node) => {
    node.toggleClass("failing", isFailing(node.data("service"), node.data("lane")));
  });
  entry.box.dataset.failing = entry.cy.nodes(".failing").map((n) => `${n.data("service")}:${n.data("lane")}`).join(" ");
}

function sparkline(points) {
  const values = points.map(([, v]) => v).filter((v) => v !== null);
  if (!values.length) return el("span", { class: "spark empty" }, "");
  const width = 90, height = 18;
  const min = Math.min(...values), max = Math.max(...values);
  const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
  const path = points.filter(([, v]) => v !== null).map(([t, v], i) => {
    const x = ((t - t0) / Math.max(t1 - t0, 1)) * width;
    const y = height - (max === min ? height / 2 : ((v - min) / (max - min)) * height);
    return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
  }).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("class", "spark");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "path");
  line.setAttribute("d", path);
  svg.append(line);
  return svg;
}

function last(points) {
  for (let i = (points || []).length - 1; i >= 0; i--) if (points[i][1] !== null) return points[i][1];
  return null;
}

function metricCell(points, metric, unit, failing) {
  const value = last(points);
  const shown = value === null ? "no traffic" : `${value.toFixed(metric === "request-rate" ? 2 : 1)}${unit}`;
  return el("td", { class: `metric ${metric}${failing ? " failing" : ""}`, "data-metric": metric, "data-value": value ?? "" },
    el("span", { class: "value" }, shown), sparkline(points || []));
}

function metricRows(group) {
  const rows = [];
  for (const node of group.nodes.filter((n) => n.inGroup)) {
    const lanes = new Set([group.fallback, ...node.pods].filter(Boolean));
    for (const lane of [...lanes].sort()) {
      const key = `${node.id}|${lane}`;
      const found = series.get(key) || { series: {}, error: null };
      const failing = isFailing(node.id, lane, "request-success-rate");
      rows.push(el("tr", { "data-service": node.id, "data-lane": lane, class: failing ? "failing" : "" },
        el("td", {}, node.id), el("td", {}, lane),
        metricCell(found.series["request-rate"], "request-rate", "/s", false),
        metricCell(found.series["request-success-rate"], "request-success-rate", "%", failing),
        metricCell(found.series["request-duration"], "request-duration", " ms", isFailing(node.id, lane, "request-duration")),
      ));
      if (found.error) notes.set("metrics", found.error);
    }
  }
  return rows;
}

function renderGroups() {
  const box = document.getElementById("groups");
  const sections = [];
  notes.delete("metrics");
  for (const group of state.groups) {
    const section = el("article", { class: "group", "data-group": group.name },
      el("h2", {}, `group ${group.name} `, el("span", { class: `ready ready-${group.ready}` }, `Ready=${group.ready}`)),
      el("p", { class: "dim" }, group.message));
    if (group.errors.length) {
      section.append(el("div", { class: "errors" }, el("p", {}, "This group does not parse:"),
        el("ul", {}, group.errors.map((e) => el("li", {}, e)))));
      sections.push(section);
      continue;
    }
    const colours = laneColours(group);
    section.append(el("p", { class: "legend" }, "lanes: ", group.lanes.map((lane) =>
      el("span", { class: "lane", style: `border-color:${colours[lane]}` }, lane + (lane === group.fallback ? " (fallback)" : "")))));
    for (const finding of group.findings) section.append(el("p", { class: "finding" }, finding));
    const graphBox = el("div");
    section.append(graphBox);
    section.append(el("table", { class: "metrics" },
      el("thead", {}, el("tr", {}, ["service", "lane", "requests", "success rate", "p99"].map((h) => el("th", {}, h)))),
      el("tbody", {}, metricRows(group))));
    sections.push(section);
    renderGraph(group, graphBox);
  }
  if (!state.groups.length) sections.push(el("p", { class: "dim" }, "No SwimLaneGroup on this cluster."));
  const note = notes.get("metrics");
  if (note) sections.unshift(el("p", { class: "problem metrics-problem" }, note));
  box.replaceChildren(...sections);
}

async function act(intent, kind, release) {
  const key = `${kind}/${release.namespace}/${release.name}`;
  try {
    const response = await fetch("api/actions", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Lanes-Dashboard": "1" },
      body: JSON.stringify({ intent, kind, namespace: release.namespace, name: release.name }),
    });
    const answer = await response.json();
    notes.set(key, { ok: response.ok, text: response.ok ? answer.message : answer.error, seq: ++answers });
  } catch (error) {
    notes.set(key, { ok: false, text: `the dashboard cannot be reached: ${error}`, seq: ++answers });
  }
  renderReleases();
}

function buttons(kind, release) {
  return el("div", { class: "actions" }, ["approve", "pause", "resume", "undo"].map((intent) =>
    el("button", { "data-action": intent, onclick: () => act(intent, kind, release) }, intent)));
}

function noteOf(kind, release) {
  const note = notes.get(`${kind}/${release.namespace}/${release.name}`);
  return note ? el("p", { class: `answer ${note.ok ? "granted" : "refused"}`, "data-seq": note.seq }, note.text) : null;
}

function releaseCard(release) {
  const history = weightHistory.get(`${release.namespace}/${release.name}`) || [release.weight];
  const steps = el("ol", { class: "steps" }, release.weights.map((weight, index) => {
    const step = index + 1;
    const state = step < release.step || release.phase === "Succeeded" ? "done" : step === release.step ? "current" : "pending";
    return el("li", { class: state }, `${weight}%`);
  }));
  const table = el("table", { class: "checks" },
    el("thead", {}, el("tr", {}, ["service", "metric", "value", "range", "ok"].map((h) => el("th", {}, h)))),
    el("tbody", {}, release.services.flatMap((line) => (line.metrics.length ? line.metrics : [["-", "-", "-", line.ok]]).map(
      ([name, value, range, ok]) => el("tr", { class: ok ? "" : "failing", "data-service": line.service, "data-metric": name },
        el("td", {}, line.service), el("td", {}, name), el("td", {}, value), el("td", {}, range), el("td", {}, ok ? "yes" : "no"))))));
  return el("article", {
    class: `card phase-${release.phase}`, "data-kind": "lanerelease", "data-name": release.name,
    "data-phase": release.phase, "data-step": release.step, "data-weight": release.weight,
  },
    el("h3", {}, `lanerelease/${release.name}`, el("span", { class: "dim" }, ` ${release.namespace} · lane ${release.lane}`)),
    el("p", {}, el("span", { class: "phase" }, release.phase + (release.paused ? " (paused)" : "")),
      " · entry weight ", el("strong", { class: "weight", "data-weight": release.weight }, `${release.weight}%`),
      ` · step ${release.step}/${release.weights.length}`),
    steps,
    el("p", { class: "history dim", "data-history": history.join(" ") }, `entry weight seen: ${history.map((w) => `${w}%`).join(" → ")}`),
    release.threshold !== null ? el("p", { class: "counts" }, `checks ${release.checks}, failed ${release.failed}/${release.threshold}`) : null,
    release.services.length ? table : null,
    release.rollouts.length ? el("p", { class: "dim" }, "rollouts: " + release.rollouts.map(([n, d]) => `${n} (${d})`).join(", ")) : null,
    el("p", { class: "message" }, release.message),
    buttons("lanerelease", release), noteOf("lanerelease", release));
}

function rolloutCard(rollout) {
  const steps = el("ol", { class: "steps" }, rollout.steps.map((step) =>
    el("li", { class: step.state === "done" ? "done" : step.state === "pending" ? "pending" : "current" },
      `${step.replicas} ${step.traffic !== "-" ? step.traffic : ""} ${step.pause}`.trim())));
  const analysis = rollout.analysis;
  return el("article", { class: `card phase-${rollout.phase}`, "data-kind": "rollout", "data-name": rollout.name, "data-phase": rollout.phase },
    el("h3", {}, `rollout/${rollout.name}`, el("span", { class: "dim" }, ` ${rollout.namespace}`)),
    el("p", {}, el("span", { class: "phase" }, rollout.phase + (rollout.paused ? " (paused)" : "")),
      rollout.canary_revision ? ` · canary ${rollout.canary_revision}` : "", rollout.stable ? ` · stable ${rollout.stable}` : ""),
    steps,
    analysis ? el("p", { class: "counts" }, `checks ${analysis.checks}, failed ${analysis.failed}/${analysis.threshold ?? "-"}`) : null,
    analysis && analysis.metrics.length ? el("table", { class: "checks" }, el("tbody", {}, analysis.metrics.map(([name, value, range, ok]) =>
      el("tr", { class: ok ? "" : "failing" }, el("td", {}, name), el("td", {}, value), el("td", {}, range), el("td", {}, ok ? "yes" : "no"))))) : null,
    el("p", { class: "message" }, rollout.message),
    buttons("rollout", rollout), noteOf("rollout", rollout));
}

function renderReleases() {
  if (!state) return;
  const releases = document.getElementById("releases");
  releases.replaceChildren(...(state.releases.length ? state.releases.map(releaseCard) : [el("p", { class: "dim" }, "none")]));
  const rollouts = document.getElementById("rollouts");
  rollouts.replaceChildren(...(state.rollouts.length ? state.rollouts.map(rolloutCard) : [el("p", { class: "dim" }, "none")]));
  const events = document.getElementById("events");
  events.replaceChildren(...state.events.slice(-EVENTS_SHOWN).reverse().map((event) =>
    el("li", { class: `event event-${event.type}`, "data-object": event.object },
      el("span", { class: "dim" }, `${event.time} ${event.object} `), el("strong", {}, event.reason), ` ${event.message}`)));
}

function render() {
  renderProblems();
  renderGroups();
  renderReleases();
  document.body.dataset.version = state.version;
}

// One request per refresh, and the next only once it is answered: a browser keeps six
// connections to a host, and the stream and the buttons need theirs.
async function refreshMetrics() {
  const wanted = [];
  for (const group of state?.groups || []) {
    for (const node of (group.nodes || []).filter((n) => n.inGroup)) {
      for (const lane of new Set([group.fallback, ...node.pods].filter(Boolean))) wanted.push(`${node.id},${lane}`);
    }
  }
  if (wanted.length) {
    const query = wanted.map((row) => `row=${encodeURIComponent(row)}`).join("&");
    try {
      const response = await fetch(`api/metrics?${query}`);
      const answer = await response.json();
      for (const [row, found] of Object.entries(answer.rows || {})) series.set(row.replace(",", "|"), found);
    } catch (error) {
      for (const row of wanted) series.set(row.replace(",", "|"), { series: {}, error: `the dashboard cannot be reached: ${error}` });
    }
    renderGroups();
  }
  setTimeout(refreshMetrics, METRICS_EVERY_MS);
}

function connect() {
  const status = document.getElementById("connection");
  const stream = new EventSource("api/stream");
  stream.addEventListener("state", (message) => {
    state = JSON.parse(message.data);
    recordWeights();
    status.textContent = "live";
    status.className = "connection live";
    render();
  });
  stream.onerror = () => {
    status.textContent = "disconnected from the dashboard server; retrying…";
    status.className = "connection lost";
  };
}

connect();
setTimeout(refreshMetrics, 500);
