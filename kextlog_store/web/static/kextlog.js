// kextlog web: the log page's chart, facets and live records, and the
// stats page's chart.  Records are put in the page as text (textContent),
// never as HTML: messages are whatever a producer sent.
"use strict";

const LEVEL_COLOURS = {
  error: "#d62728",
  warning: "#e6a100",
  info: "#4a78b5",
  debug: "#8c8c8c",
  trace: "#c7c7c7",
};
const MAX_ROWS = 5000; // rows a live page keeps, newest first

function readJson(id) {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent) : null;
}

// The rate chart: one stacked bar series per level present, and the
// records lost per interval as marks on their own axis.
function drawChart(canvas, data) {
  const datasets = data.series.map((series) => ({
    type: "bar",
    label: series.level,
    data: series.counts,
    backgroundColor: LEVEL_COLOURS[series.level],
    stack: "records",
    yAxisID: "y",
  }));
  if (data.lost && data.lost.some((count) => count > 0)) {
    datasets.push({
      type: "line",
      label: "lost",
      data: data.lost.map((count) => (count > 0 ? count : null)),
      showLine: false,
      pointStyle: "triangle",
      pointRadius: 7,
      backgroundColor: "#000",
      borderColor: "#000",
      yAxisID: "lost",
    });
  }
  const chart = new Chart(canvas, {
    data: { labels: data.labels.map((label) => label.replace("T", " ")), datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: {
        x: { stacked: true, ticks: { maxRotation: 0, autoSkip: true } },
        y: { stacked: true, beginAtZero: true, title: { display: true, text: "records" } },
        lost: {
          position: "right",
          beginAtZero: true,
          display: datasets.some((set) => set.yAxisID === "lost"),
          title: { display: true, text: "lost" },
          grid: { drawOnChartArea: false },
        },
      },
      plugins: { legend: { position: "bottom" } },
    },
  });
  canvas.dataset.series = String(data.series.length);
  return chart;
}

async function fetchJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok || body.ok === false) {
    throw new Error(body.error || response.statusText);
  }
  return body;
}

function say(parent, text, className) {
  const p = document.createElement("p");
  p.className = className;
  p.textContent = text;
  parent.appendChild(p);
}

function showFacets(aside, facets) {
  aside.replaceChildren();
  for (const facet of facets) {
    const section = document.createElement("section");
    section.className = "facet";
    section.dataset.facet = facet.name;
    const title = document.createElement("h3");
    title.textContent = facet.name;
    section.appendChild(title);
    if (facet.error) {
      say(section, facet.error, "muted");
    } else {
      const list = document.createElement("ul");
      for (const item of facet.values) {
        const li = document.createElement("li");
        const a = document.createElement("a");
        a.href = item.href;
        a.textContent = item.value === "" ? "(none)" : item.value;
        if (facet.name === "instance") a.textContent = item.value.slice(0, 8);
        a.title = item.value;
        const count = document.createElement("span");
        count.className = "count";
        count.textContent = item.count.toLocaleString();
        li.append(a, " ", count);
        list.appendChild(li);
      }
      section.appendChild(list);
    }
    aside.appendChild(section);
  }
}

function cell(text, className) {
  const td = document.createElement("td");
  td.className = className;
  td.textContent = text;
  return td;
}

// A row as the page's template writes it (templates/_kextlog_rows.html).
function rowOf(entry) {
  const tr = document.createElement("tr");
  const time = entry.time.slice(0, 26).replace("T", " ");
  tr.dataset.timeNs = entry.time_ns;
  if (entry.kind === "loss") {
    tr.className = "loss live-new";
    tr.dataset.loss = entry.loss;
    tr.append(cell(time, "time"));
    const marker = cell(entry.text, "marker");
    marker.colSpan = 3;
    tr.append(marker);
    return tr;
  }
  tr.className = `record level-${entry.level} live-new`;
  tr.dataset.instance = entry.instance;
  tr.dataset.seq = String(entry.seq);
  tr.dataset.level = entry.level;
  const timeCell = document.createElement("td");
  timeCell.className = "time";
  const link = document.createElement("a");
  link.href = entry.href;
  link.title = entry.time;
  link.textContent = time;
  timeCell.appendChild(link);
  tr.append(
    timeCell,
    cell(entry.level, "level"),
    cell(`${entry.process}[${entry.pid}:${entry.tid}]`, "process"),
    cell(entry.message, "message"),
  );
  return tr;
}

function shownLoss(body, key) {
  return [...body.querySelectorAll("tr.loss")].some((tr) => tr.dataset.loss === key);
}

function startLive(data, button, state) {
  const body = document.querySelector("#log tbody");
  let source = null;
  let after = data.after;
  function stop(text) {
    if (source) source.close();
    source = null;
    button.classList.remove("on");
    state.textContent = text;
  }
  function start() {
    const query = new URLSearchParams(data.query);
    if (after) query.set("after", after);
    source = new EventSource(`/-/kextlog/live?${query}`);
    button.classList.add("on");
    state.textContent = "live: new records appear at the top";
    source.onmessage = (event) => {
      const entry = JSON.parse(event.data);
      if (entry.kind === "record") after = entry.cursor;
      // A loss after the newest record is on the page already (it may have
      // taken newer records); live sends it again.
      if (entry.kind === "loss" && shownLoss(body, entry.loss)) return;
      const empty = document.getElementById("empty");
      if (empty) empty.remove();
      body.insertBefore(rowOf(entry), body.firstChild);
      while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
    };
    source.addEventListener("failure", (event) => {
      stop(JSON.parse(event.data).error);
    });
    source.onerror = () => {
      if (source && source.readyState === EventSource.CLOSED) stop("live: the server ended it");
    };
  }
  button.addEventListener("click", () => (source ? stop("paused") : start()));
  // A page left for another (or kept for the back button) lets its stream
  // go: the browser has few connections to a server, and the next page
  // needs them.
  window.addEventListener("pagehide", () => stop("paused"));
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && !source) start();
  });
  start();
}

function logPage() {
  const data = readJson("kextlog-data");
  const query = data.query ? `?${data.query}` : "";
  const canvas = document.getElementById("rate");
  fetchJson(`/-/kextlog/chart.json${query}`)
    .then((chart) => {
      if (chart.series.length) drawChart(canvas, chart);
      else canvas.parentElement.hidden = true;
    })
    .catch((error) => {
      canvas.parentElement.replaceChildren();
      say(canvas.parentElement || document.body, `chart: ${error.message}`, "muted");
    });
  const aside = document.getElementById("facets");
  fetchJson(`/-/kextlog/facets.json${query}`)
    .then((result) => showFacets(aside, result.facets))
    .catch((error) => {
      aside.replaceChildren();
      say(aside, `facets: ${error.message}`, "muted");
    });
  const button = document.getElementById("live");
  const state = document.getElementById("live-state");
  if (data.live) startLive(data, button, state);
  else {
    button.disabled = true;
    state.textContent = "a view with until shows no new records";
  }
}

function statsPage(chart) {
  const canvas = document.getElementById("rate");
  if (chart.series.length) drawChart(canvas, chart);
  else canvas.parentElement.hidden = true;
}

if (document.getElementById("kextlog-data") && document.getElementById("log")) logPage();
else if (document.getElementById("kextlog-chart")) statsPage(readJson("kextlog-chart"));
