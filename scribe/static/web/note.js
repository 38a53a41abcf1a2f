// The note review page: every statement with its evidence (click: see the words, hear the audio),
// statements without support or in conflict with the records (both values shown) marked and confirmed
// before signing, critical words heard with low confidence underlined, edits saved against the version
// read (If-Match) so an edit made elsewhere is shown rather than overwritten; sign, amend, addendum,
// version history, and the signed note's FHIR DocumentReference.
import { ApiError, api, apiJson, attempt, clock, el, localTime, shortcuts, showMessage, wireSignOut } from "./api.js";
import { TranscriptView } from "./transcript.js";

const root = document.querySelector(".review");
const noteId = root.dataset.noteId;
const noteBox = document.getElementById("note");
const audio = document.getElementById("evidence-audio");
const signButton = document.getElementById("sign");
const confirmPanel = document.getElementById("confirm-panel");
const transcript = new TranscriptView(document.getElementById("transcript"), { onSegmentClick: (s) => play(s.start, s.end) });

const SECTIONS = [
  ["Subjective", [["subjective.chief_complaint", "Chief complaint"], ["subjective.hpi", "History of present illness"],
    ["subjective.ros", "Review of systems"]]],
  ["Objective", [["objective.vitals", "Vital signs"], ["objective.exam", "Physical examination"],
    ["objective.results", "Results"], ["objective.imaging", "Imaging"]]],
  ["Assessment", [["assessment", "Assessment"]]],
  ["Plan", [["plan", "Plan"]]],
  ["Medications and allergies", [["medications", "Medications"], ["allergies", "Allergies"]]],
];
const FLAGS = { unsupported: "Not supported by the transcript", conflict: "Disagrees with the records",
  review: "Review", from_records: "From the records" };
const NEEDS_CONFIRMING = new Set(["unsupported", "conflict"]);

let view = null; // the note as the API returns it
let etag = null;
let encounter = null;

const url = () => `/v1/notes/${encodeURIComponent(noteId)}`;
const statementsAt = (note, path) => path.split(".").reduce((node, key) => node[key], note);
const editable = () => view?.status === "draft";

function allStatements(note) {
  return SECTIONS.flatMap(([, parts]) => parts.flatMap(([path, title]) =>
    statementsAt(note, path).map((statement, index) => ({ statement, path, index, title }))));
}

// ------------------------------------------------------------------------------------------ loading

async function loadNote() {
  const response = await api(url());
  etag = response.headers.get("ETag");
  view = await response.json();
  render();
}

async function loadEncounter() {
  encounter = await apiJson(`/v1/encounters/${encodeURIComponent(view.encounter_id)}`);
  const patient = encounter.patient;
  document.getElementById("patient-label").textContent = patient.id ? `· ${patient.name || ""} ${patient.id}`.trim() : "";
  document.getElementById("encounter-link").href = `/encounters/${encodeURIComponent(view.encounter_id)}`;
  document.getElementById("patient-needed").hidden = Boolean(patient.id) || !editable();
  if (encounter.transcript) {
    transcript.show((await apiJson(`/v1/encounters/${encodeURIComponent(view.encounter_id)}/transcript`)).segments);
    render(); // evidence labels show times now
  }
}

// ------------------------------------------------------------------------------------------ rendering

function render() {
  const status = document.getElementById("note-status");
  status.textContent = view.status;
  status.className = `status-badge ${view.status}`;
  document.getElementById("note-meta").textContent = [
    `version ${view.version}`,
    `drafted by ${view.note.metadata.engine}${view.note.metadata.model ? ` (${view.note.metadata.model})` : ""}`,
    view.signed_at ? `signed by ${view.signed_by} on ${localTime(view.signed_at)}` : `updated ${localTime(view.updated_at)}`,
  ].join(" · ");
  renderRelation();
  renderSummary();
  const children = [];
  if (view.addendum) children.push(el("h2", {}, "Addendum"), el("p", { class: "addendum-text" }, view.addendum));
  // every section heading, an empty one saying so: a reviewer sees that nothing was found for it, as the
  // rendered note (templates/notes/_soap.txt.j2) says "(none)"
  for (const [group, parts] of SECTIONS) {
    const filled = parts.filter(([path]) => statementsAt(view.note, path).length);
    children.push(el("h2", {}, group));
    if (!filled.length) children.push(el("p", { class: "hint empty-section" }, "None."));
    for (const [path, title] of filled) {
      if (parts.length > 1) children.push(el("h3", {}, title));
      children.push(el("ol", {}, statementsAt(view.note, path).map((s, index) => statementItem(s, path, index))));
    }
  }
  if (editable()) children.push(addForm());
  noteBox.replaceChildren(...children);
  transcript.underline(allStatements(view.note).flatMap(({ statement }) => statement.low_confidence ?? []), confidenceTitle);
  signButton.hidden = !editable();
  document.getElementById("amend").hidden = view.status !== "signed" || view.relates_to?.code === "appends";
  document.getElementById("addendum").hidden = view.status !== "signed";
  document.getElementById("fhir").hidden = editable();
  if (!editable()) showFhir();
}

function renderRelation() {
  const box = document.getElementById("relation");
  const relation = view.relates_to;
  box.hidden = !relation;
  if (!relation) return;
  const link = el("a", { href: `/notes/${encodeURIComponent(relation.note_id)}` }, "the signed note");
  box.replaceChildren(relation.code === "replaces" ? "Amendment of " : "Addendum to ", link,
    view.reason ? `. Reason: ${view.reason}` : ".");
}

function renderSummary() {
  const counts = {};
  for (const { statement } of allStatements(view.note)) counts[statement.support] = (counts[statement.support] ?? 0) + 1;
  const lines = [];
  const flagged = (counts.unsupported ?? 0) + (counts.conflict ?? 0);
  if (flagged && editable()) {
    lines.push(el("p", { class: "warn" }, `${flagged} statement(s) are not supported by what was said or disagree with `
      + "the records: check them; you will be asked to confirm them before signing."));
  }
  if (counts.review) lines.push(el("p", { class: "hint" }, `${counts.review} statement(s) are marked for review.`));
  document.getElementById("summary").replaceChildren(...lines);
}

function evidenceButton(evidence) {
  if (evidence.segment_id !== undefined) {
    const segment = transcript.segments.get(evidence.segment_id);
    const label = segment ? clock(segment.start) : `segment ${evidence.segment_id}`;
    return el("button", { type: "button", class: "evidence", "aria-label": `Show and play the evidence at ${label}`,
      title: segment ? segment.text.slice(evidence.start_char, evidence.end_char) : "",
      dataset: { segmentId: evidence.segment_id }, onclick: () => showEvidence(evidence) }, label);
  }
  if (evidence.record) return el("span", { class: "evidence record", title: "from the patient's records" }, evidence.record);
  return el("span", { class: "evidence attachment", title: "from an attached image" }, evidence.attachment);
}

function statementItem(statement, path, index) {
  const extras = [statement.dose, statement.frequency, statement.route, statement.icd10 ? `ICD-10 ${statement.icd10}` : null,
    statement.change].filter(Boolean);
  const item = el("li", { class: `statement ${statement.support}`, dataset: { support: statement.support, path, index } },
    FLAGS[statement.support] ? el("strong", { class: "flag" }, FLAGS[statement.support]) : null,
    el("span", { class: "text" }, statement.text),
    extras.map((extra) => el("span", { class: "extra" }, extra)),
    el("span", { class: "tools" },
      statement.evidence.map(evidenceButton),
      editable() ? el("button", { type: "button", class: "tool", "aria-label": `Edit: ${statement.text}`,
        onclick: () => startEditing(item, path, index) }, "Edit") : null,
      editable() ? el("button", { type: "button", class: "tool", "aria-label": `Remove: ${statement.text}`,
        onclick: () => attempt(() => saveEdit({ path, index, remove: true, text: statement.text })) }, "Remove") : null),
    statement.conflicts?.length ? conflictList(statement.conflicts)
      : statement.reason && statement.support !== "supported" ? el("div", { class: "reason" }, statement.reason) : null,
    statement.low_confidence?.length ? unsureWords(statement.low_confidence) : null);
  return item;
}

/** What the statement says against what the patient's records hold, each with the record it comes from. */
function conflictList(conflicts) {
  return el("ul", { class: "conflicts", "data-testid": "record-conflicts" }, conflicts.map((conflict) =>
    el("li", { dataset: { field: conflict.field } }, `${conflict.field[0].toUpperCase()}${conflict.field.slice(1)}: said `,
      el("strong", { class: "said" }, conflict.said), ", records ", el("strong", { class: "records" }, conflict.records),
      " ", el("span", { class: "evidence record", title: "from the patient's records" }, conflict.record))));
}

/** Critical words the recogniser was unsure of, underlined with their confidence; a click shows them. */
function unsureWords(words) {
  return el("span", { class: "unsure" }, "heard with low confidence: ", words.flatMap((word, index) => [
    index ? ", " : null,
    el("u", { class: "low-confidence", title: confidenceTitle(word), tabindex: 0,
      onclick: () => showEvidence(word) }, word.text)]));
}

const confidenceTitle = (word) => `recognised with ${Math.round(word.probability * 100)}% confidence: listen to check it`;

function startEditing(item, path, index) {
  if (item.classList.contains("editing")) return;
  item.classList.add("editing");
  const original = statementsAt(view.note, path)[index].text;
  const box = el("textarea", { rows: 3, "aria-label": "Statement text", dataset: { testid: "statement-editor" } });
  box.value = original;
  const save = el("button", { type: "button", class: "primary", "data-testid": "save-statement" }, "Save");
  const cancel = el("button", { type: "button" }, "Cancel");
  const editor = el("div", { class: "editor" }, box, el("div", { class: "actions" }, save, cancel));
  item.append(editor);
  box.focus();
  save.addEventListener("click", () => attempt(() => saveEdit({ path, index, text: box.value.trim(), was: original }), save));
  cancel.addEventListener("click", () => { editor.remove(); item.classList.remove("editing"); });
}

function addForm() {
  const select = el("select", { "aria-label": "Section" }, SECTIONS.flatMap(([, parts]) =>
    parts.map(([path, title]) => el("option", { value: path }, title))));
  const box = el("textarea", { rows: 2, "aria-label": "New statement", placeholder: "Add a statement…" });
  const add = el("button", { type: "button" }, "Add statement");
  add.addEventListener("click", () => {
    if (!box.value.trim()) return;
    attempt(() => saveEdit({ path: select.value, index: -1, text: box.value.trim() }), add);
  });
  return el("div", { class: "fields add-statement" }, select, box, add);
}

// ------------------------------------------------------------------------------------------ editing

function applied(note, edit) {
  const copy = structuredClone(note);
  const list = statementsAt(copy, edit.path);
  if (edit.index < 0 || edit.index >= list.length) {
    if (!edit.remove) list.push({ text: edit.text, support: "supported", evidence: [] });
  } else if (edit.remove) {
    list.splice(edit.index, 1);
  } else {
    list[edit.index] = { ...list[edit.index], text: edit.text };
  }
  return copy;
}

/** Save one edit on top of the version this page shows; a newer version elsewhere is a conflict. */
async function saveEdit(edit) {
  if (!edit.remove && !edit.text) throw new ApiError(422, "a statement needs text (use Remove to delete it)");
  try {
    const response = await api(url(), { method: "PUT", json: { note: applied(view.note, edit) }, ifMatch: etag });
    etag = response.headers.get("ETag");
    view = await response.json();
    document.getElementById("conflict").hidden = true;
    render();
  } catch (error) {
    if (error.status === 412) await showConflict(edit);
    else throw error;
  }
}

async function showConflict(edit) {
  await loadNote();
  const box = document.getElementById("conflict");
  const mine = edit.remove ? `Remove: “${edit.text}”` : edit.index < 0 ? `Add: “${edit.text}”` : `“${edit.text}”`;
  const apply = el("button", { type: "button", class: "primary", "data-testid": "apply-my-edit" }, "Apply my edit to the latest version");
  const discard = el("button", { type: "button" }, "Discard my edit");
  box.replaceChildren(
    el("p", {}, el("strong", {}, "This note was changed elsewhere "),
      `(another tab or session saved version ${view.version}) while you were editing. Your edit was not saved; `
      + "the latest version is shown below. Your edit:"),
    el("pre", { "data-testid": "my-edit" }, mine),
    el("div", { class: "actions" }, apply, discard));
  box.hidden = false;
  apply.addEventListener("click", () => attempt(() => saveEdit(rebase(edit)), apply));
  discard.addEventListener("click", () => { box.hidden = true; });
}

/** The same edit against the latest version: the statement it changed, found by its old text if it moved. */
function rebase(edit) {
  if (edit.index < 0) return edit;
  const list = statementsAt(view.note, edit.path);
  const target = edit.remove ? edit.text : edit.was;
  const found = list.findIndex((statement) => statement.text === target);
  return { ...edit, index: found >= 0 ? found : edit.remove ? list.length : -1 };
}

// ------------------------------------------------------------------------------------------ evidence

function play(start, end) {
  audio.src = `/v1/encounters/${encodeURIComponent(view.encounter_id)}/audio?start=${start.toFixed(2)}&end=${end.toFixed(2)}`;
  audio.play().catch(() => {}); // the controls stay to press play
}

function showEvidence(evidence) {
  const span = transcript.highlight(evidence.segment_id, evidence.start_char, evidence.end_char);
  if (!span) {
    showMessage("That part of the transcript is not available.");
    return;
  }
  play(Math.max(0, span[0] - 0.15), span[1] + 0.15);
}

// ------------------------------------------------------------------------------------------ sign, amend, addendum

async function sign(confirmed) {
  if (!editable()) return;
  const flagged = allStatements(view.note).filter(({ statement }) => NEEDS_CONFIRMING.has(statement.support));
  if (flagged.length && !confirmed) {
    document.getElementById("confirm-list").replaceChildren(...flagged.map(({ statement, title }) =>
      el("li", {}, el("strong", {}, `${title}: `), statement.text,
        statement.conflicts?.length ? conflictList(statement.conflicts)
          : statement.reason ? el("div", { class: "reason" }, statement.reason) : null)));
    confirmPanel.hidden = false;
    document.getElementById("confirm-sign").focus();
    return;
  }
  const response = await api(`${url()}/sign`, { method: "POST", json: { confirm_unsupported: flagged.length > 0 },
    ifMatch: etag });
  etag = response.headers.get("ETag");
  view = await response.json();
  confirmPanel.hidden = true;
  render();
  document.getElementById("fhir").open = true;
  showMessage("Signed. The note is now part of the record and available to the EHR.", "info");
}

async function showFhir() {
  if (!view.signed_at && view.status === "draft") return;
  const pre = document.getElementById("fhir-json");
  try {
    const resource = await apiJson(`/fhir/DocumentReference/${encodeURIComponent(noteId)}`,
      { headers: { Accept: "application/fhir+json" } });
    pre.textContent = JSON.stringify(resource, null, 2);
  } catch (error) {
    pre.textContent = error.status === 404 ? "No FHIR view yet: the encounter names no patient." : error.message;
  }
}

async function startAmendment(reason) {
  const created = await apiJson(`${url()}/amend`, { method: "POST", json: { reason } });
  location.assign(`/notes/${encodeURIComponent(created.id)}`);
}

async function addAddendum(text, reason) {
  const created = await apiJson(`${url()}/addendum`, { method: "POST", json: { text, reason: reason || null } });
  location.assign(`/notes/${encodeURIComponent(created.id)}`);
}

async function setPatient(form) {
  const patient = { id: form.patient_id.value.trim(), name: form.patient_name.value.trim() || null };
  await apiJson(`/v1/encounters/${encodeURIComponent(view.encounter_id)}`, { method: "PATCH", json: { patient } });
  await loadEncounter();
}

// ------------------------------------------------------------------------------------------ versions

async function showVersions() {
  const history = await apiJson(`${url()}/versions`);
  const list = document.getElementById("version-list");
  list.replaceChildren(...history.versions.map((version) => el("li", {},
    el("button", { type: "button", class: "link", onclick: () => showVersion(version) },
      `Version ${version.version}`), ` by ${version.created_by}, ${localTime(version.created_at)}`)));
}

function showVersion(version) {
  const box = document.getElementById("version-view");
  const lines = allStatements(version.note).map(({ statement, title }) =>
    el("li", { class: `statement ${statement.support}` }, el("strong", {}, `${title}: `), statement.text));
  box.replaceChildren(el("h3", {}, `Version ${version.version}`),
    version.addendum ? el("p", { class: "addendum-text" }, version.addendum) : null, el("ol", {}, lines));
  box.hidden = false;
}

// ------------------------------------------------------------------------------------------ wiring

signButton.addEventListener("click", () => attempt(() => sign(false), signButton));
document.getElementById("confirm-sign").addEventListener("click",
  (event) => attempt(() => sign(true), event.currentTarget));
document.getElementById("confirm-cancel").addEventListener("click", () => { confirmPanel.hidden = true; });
for (const [button, formId] of [["amend", "amend-form"], ["addendum", "addendum-form"]]) {
  const form = document.getElementById(formId);
  document.getElementById(button).addEventListener("click", () => { form.hidden = false; form.elements[0].focus(); });
  form.querySelector(".cancel").addEventListener("click", () => { form.hidden = true; });
}
document.getElementById("amend-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(() => startAmendment(event.target.reason.value.trim()), event.submitter);
});
document.getElementById("addendum-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(() => addAddendum(event.target.text.value.trim(), event.target.reason.value.trim()), event.submitter);
});
document.getElementById("patient-needed").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(() => setPatient(event.target), event.submitter);
});
document.getElementById("versions").addEventListener("toggle", (event) => {
  if (event.target.open) attempt(showVersions);
});
shortcuts({ s: () => attempt(() => sign(false), signButton) });
wireSignOut();

attempt(async () => {
  await loadNote();
  await loadEncounter();
});
