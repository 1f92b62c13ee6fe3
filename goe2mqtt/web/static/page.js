// goe2mqtt status page: keeps the page live from /events (server-sent events).
// Every text goes in with textContent: a charger's name or error text is never HTML.
"use strict";

function ageText(at) {
  if (!at) return "never";
  const seconds = Math.max(0, Math.round(Date.now() / 1000 - Number(at)));
  if (seconds < 120) return seconds + " s";
  if (seconds < 7200) return Math.floor(seconds / 60) + " min";
  if (seconds < 172800) return Math.floor(seconds / 3600) + " h";
  return Math.floor(seconds / 86400) + " d";
}

function countUp() {
  for (const cell of document.querySelectorAll("[data-at]")) {
    const at = cell.getAttribute("data-at");
    const suffix = cell.hasAttribute("data-suffix") ? cell.getAttribute("data-suffix") : " ago";
    cell.textContent = at ? ageText(at) + suffix : "never";
  }
}

function setCell(cell, key, text) {
  if (key === "heard") {
    cell.setAttribute("data-at", text);
    cell.textContent = text ? ageText(text) + " ago" : "never";
  } else if (key === "name") {
    // the link stays; only its text would change (it never does: names are the key)
  } else {
    cell.textContent = text;
  }
}

function apply(event) {
  if (event.layout) {
    window.location.reload();
    return;
  }
  for (const [key, text] of Object.entries(event.header || {})) {
    const cell = document.querySelector('[data-h="' + key + '"]');
    if (!cell) continue;
    if (key === "started") {
      cell.setAttribute("data-at", text);
      cell.textContent = ageText(text);
    } else {
      cell.textContent = text;
    }
  }
  const charger = document.getElementById("charger");
  for (const [name, cells] of Object.entries(event.rows || {})) {
    let row = null;
    if (charger) {
      row = charger;
    } else {
      for (const candidate of document.querySelectorAll("#fleet tbody tr")) {
        if (candidate.getAttribute("data-name") === name) row = candidate;
      }
    }
    if (!row) continue;
    for (const [key, text] of Object.entries(cells)) {
      const cell = row.querySelector('[data-f="' + key + '"]');
      if (cell) setCell(cell, key, text);
      if (key === "online" && !charger) row.className = text === "online" ? "online" : "offline";
    }
  }
  for (const [key, text] of Object.entries(event.states || {})) {
    for (const cell of document.querySelectorAll("#states [data-s]")) {
      if (cell.getAttribute("data-s") === key) cell.textContent = text;
    }
  }
  if (event.history) {
    const body = document.querySelector("#history tbody");
    if (body) {
      body.replaceChildren();
      for (const line of event.history) {
        const tr = document.createElement("tr");
        for (const text of line) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.appendChild(td);
        }
        body.appendChild(tr);
      }
    }
  }
}

function connect() {
  const table = document.querySelector("[data-stream]");
  if (!table) return;
  const status = document.getElementById("live");
  const source = new EventSource(table.getAttribute("data-stream"));
  source.onopen = () => { status.textContent = "live"; status.className = "up"; };
  source.onmessage = (message) => apply(JSON.parse(message.data));
  source.onerror = () => {
    status.textContent = "reconnecting";
    status.className = "down";
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up: the bridge answered with an error while it restarted, or
      // refused the stream (http.max_streams open already: 503, Retry-After). EventSource
      // does not say which; a HEAD of the stream's address does, without holding one.
      source.close();
      fetch(table.getAttribute("data-stream"), { method: "HEAD" }).then((answer) => {
        if (answer.status === 503 && answer.headers.get("Retry-After")) {
          status.textContent = "not live: too many pages open, retrying";
          setTimeout(connect, 1000 * Number(answer.headers.get("Retry-After")));
        } else {
          setTimeout(connect, 1000);
        }
      }, () => setTimeout(connect, 1000));
    }
  };
}

function filterAsYouType() {
  const form = document.getElementById("filter");
  if (!form) return;
  let timer = null;
  const submit = () => {
    const page = form.querySelector('[name="page"]');
    if (page) page.remove();
    form.submit();
  };
  form.querySelector('[name="q"]').addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(submit, 400);
  });
  for (const select of form.querySelectorAll("select")) select.addEventListener("change", submit);
}

document.addEventListener("DOMContentLoaded", () => {
  countUp();
  setInterval(countUp, 1000);
  filterAsYouType();
  connect();
});
