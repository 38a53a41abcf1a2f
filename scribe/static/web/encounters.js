// The encounter list: the clinician's encounters, newest first, searchable by patient and status.
import { apiJson, attempt, el, localTime, shortcuts, wireSignOut } from "./api.js";

const PAGE = 50;
const rows = document.getElementById("encounter-rows");
const more = document.getElementById("more");
const empty = document.getElementById("empty");
const noMatch = document.getElementById("no-match");
const search = document.getElementById("search");
let offset = 0;

function row(encounter) {
  const href = `/encounters/${encodeURIComponent(encounter.id)}`;
  const patient = encounter.patient.id
    ? [el("a", { href }, encounter.patient.name || encounter.patient.id),
       encounter.patient.name ? el("div", { class: "sub" }, encounter.patient.id) : null]
    : [el("a", { href }, "No patient yet"), el("div", { class: "sub" }, encounter.id)];
  return el("tr", { dataset: { encounterId: encounter.id } },
    el("td", {}, patient),
    el("td", {}, el("span", { class: `status-badge ${encounter.status}` }, encounter.status)),
    el("td", {}, encounter.mode),
    el("td", {}, el("time", { datetime: encounter.created_at }, localTime(encounter.created_at))));
}

async function load(reset) {
  if (reset) offset = 0;
  const query = new URLSearchParams({ _count: String(PAGE), _offset: String(offset) });
  if (search.q.value.trim()) query.set("q", search.q.value.trim());
  if (search.status.value) query.set("status", search.status.value);
  const page = await apiJson(`/v1/encounters?${query}`);
  const built = page.encounters.map(row);
  if (reset) rows.replaceChildren(...built);
  else rows.append(...built);
  offset += page.encounters.length;
  more.hidden = offset >= page.total;
  const searching = Boolean(search.q.value.trim() || search.status.value);
  empty.hidden = page.total > 0 || searching;
  noMatch.hidden = page.total > 0 || !searching;
}

search.addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(() => load(true), search.querySelector("button"));
});
search.status.addEventListener("change", () => attempt(() => load(true)));
more.addEventListener("click", () => attempt(() => load(false), more));
shortcuts({ n: () => location.assign("/encounters/new") });
wireSignOut();
attempt(() => load(true));
