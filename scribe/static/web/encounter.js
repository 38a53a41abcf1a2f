// The encounter page: name the patient, record (or drop a file), watch the transcript, attach records
// and images, and draft the note. `/encounters/new` becomes a real encounter on the first action.
import { StreamRecorder } from "/static/streaming/recorder.js";
import { ApiError, api, apiJson, attempt, clock, el, shortcuts, showMessage, wireSignOut } from "./api.js";
import { TranscriptView } from "./transcript.js";

const root = document.querySelector(".encounter");
const form = document.getElementById("patient-form");
const buttons = {
  record: document.getElementById("record"),
  pause: document.getElementById("pause"),
  stop: document.getElementById("stop"),
  draft: document.getElementById("draft-note"),
  savePatient: document.getElementById("save-patient"),
};
const level = document.getElementById("level");
const elapsed = document.getElementById("elapsed");
const connection = document.getElementById("connection");
const warnings = document.getElementById("warnings");
const transcript = new TranscriptView(document.getElementById("transcript"));
const PATIENT_ID = /^[A-Za-z0-9.-]{1,64}$/;
const STATES = {
  idle: "not connected", connecting: "connecting…", live: "live: recording", paused: "paused",
  reconnecting: "connection lost: reconnecting… (your audio is kept)", finishing: "finishing the transcript…",
  done: "done: everything is saved", failed: "stopped by an error", uploading: "uploading and transcribing…",
};
const WARNINGS = {
  backpressure: "Recognition is behind the audio. Your audio is saved; the words will come a little late.",
  clipping: "The sound is too loud and distorts: move the microphone away or lower its gain.",
  silence: "No sound for a while: is the microphone muted or unplugged?",
};

let encounterId = root.dataset.encounterId || null;
let encounter = null;
let recorder = null;
let hasTranscript = false;

// ------------------------------------------------------------------------------------------ encounter

function setConnection(state, extra = "") {
  connection.dataset.state = state;
  connection.textContent = (STATES[state] ?? state) + extra;
}

function showEncounter(data) {
  encounter = data;
  hasTranscript = Boolean(data.transcript) || hasTranscript;
  const status = document.getElementById("encounter-status");
  status.textContent = data.status;
  status.className = `status-badge ${data.status}`;
  form.patient_id.value = data.patient.id ?? "";
  form.patient_name.value = data.patient.name ?? "";
  form.mode.value = data.mode;
  form.mode.disabled = true; // the mode is fixed once the encounter exists
  const signed = ["signed", "amended"].includes(data.status);
  form.patient_id.readOnly = signed;
  buttons.savePatient.hidden = signed;
  document.title = `${data.patient.name || data.patient.id || "Encounter"} · scribe`;
  showNotes(data.notes ?? []);
  updateButtons();
}

function showNotes(notes) {
  const list = document.getElementById("note-links");
  list.replaceChildren(...notes.map((note) => el("li", {},
    el("a", { href: `/notes/${encodeURIComponent(note.id)}` },
      `${note.relation === "appends" ? "Addendum" : note.relation === "replaces" ? "Amendment" : "Note"}`
      + ` (${note.status}, version ${note.version})`))));
}

function patientFields() {
  const id = form.patient_id.value.trim();
  const name = form.patient_name.value.trim();
  if (id && !PATIENT_ID.test(id)) {
    form.patient_id.focus();
    throw new ApiError(422, "the patient id is 1 to 64 letters, digits, dots or dashes");
  }
  return id ? { id, name: name || null } : {};
}

/** The encounter's id, creating it first on /encounters/new (the page's address follows). */
async function ensureEncounter() {
  if (encounterId) return encounterId;
  const created = await apiJson("/v1/encounters", {
    method: "POST", json: { patient: patientFields(), mode: form.mode.value },
  });
  encounterId = created.id;
  root.dataset.encounterId = encounterId;
  history.replaceState(null, "", `/encounters/${encodeURIComponent(encounterId)}`);
  document.getElementById("patient-title").firstChild.textContent = "Encounter ";
  showEncounter({ ...created, notes: [], transcript: null });
  return encounterId;
}

async function refreshEncounter() {
  showEncounter(await apiJson(`/v1/encounters/${encodeURIComponent(encounterId)}`));
}

async function savePatient() {
  const patient = patientFields();
  if (!patient.id) throw new ApiError(422, "enter the patient id");
  if (!encounterId) return; // used when the encounter is created
  showEncounter({ ...(await apiJson(`/v1/encounters/${encodeURIComponent(encounterId)}`,
    { method: "PATCH", json: { patient } })), notes: encounter?.notes ?? [], transcript: encounter?.transcript });
  showMessage("Patient saved.", "info");
}

// ------------------------------------------------------------------------------------------ recording

function updateButtons() {
  const recording = Boolean(recorder?.active);
  buttons.record.disabled = recording;
  buttons.pause.disabled = !recording || recorder.ending;
  buttons.stop.disabled = !recording || recorder.ending;
  buttons.pause.textContent = recorder?.paused ? "Resume" : "Pause";
  buttons.draft.disabled = recording || !hasTranscript;
}

async function ticket(id) {
  const issued = await apiJson("/v1/stream-tickets", { method: "POST", json: { encounter_id: id } });
  return issued.ticket;
}

function warn(code, message) {
  const text = WARNINGS[code] ?? message ?? code;
  const existing = warnings.querySelector(`[data-code="${CSS.escape(code)}"]`);
  const item = el("li", { dataset: { code } }, `${new Date().toLocaleTimeString()}: ${text}`);
  if (existing) existing.replaceWith(item);
  else warnings.append(item);
}

async function record() {
  if (recorder?.active) return;
  const id = await ensureEncounter();
  warnings.replaceChildren();
  const current = new StreamRecorder({ encounterId: id, getTicket: ticket,
    sampleRate: encounter?.stream_format?.sample_rate });
  recorder = current;
  current.addEventListener("state", (event) => {
    const { state, attempt: tries } = event.detail;
    setConnection(state, state === "reconnecting" && tries > 1 ? ` (attempt ${tries})` : "");
    updateButtons();
  });
  current.addEventListener("partial", (event) => transcript.setPartial(event.detail.text));
  current.addEventListener("final", (event) => transcript.addFinal(event.detail.segment));
  current.addEventListener("level", (event) => { level.value = event.detail.peak; });
  current.addEventListener("ack", (event) => { connection.dataset.ackedBytes = event.detail.bytes; });
  current.addEventListener("warning", (event) => warn(event.detail.code, event.detail.message));
  current.addEventListener("done", (event) => {
    connection.dataset.capturedBytes = current.capturedBytes;
    transcript.show(event.detail.transcript.segments);
    hasTranscript = event.detail.transcript.segments.length > 0;
    level.value = 0;
    updateButtons();
    attempt(refreshEncounter);
  });
  current.addEventListener("failed", (event) => {
    level.value = 0;
    showMessage(`Recording stopped: ${event.detail.message}. Every acknowledged second is saved.`);
    updateButtons();
  });
  try {
    await current.start();
  } catch (error) {
    recorder = null;
    setConnection("idle");
    updateButtons();
    const reason = error.name === "NotAllowedError" ? "the browser was not allowed to use it"
      : error.name === "NotFoundError" ? "no microphone was found" : error.message;
    throw new Error(`Cannot record: ${reason}.`);
  }
  updateButtons();
}

function togglePause() {
  if (!recorder?.active || recorder.ending) return;
  if (recorder.paused) recorder.resume();
  else recorder.pause();
  updateButtons();
}

async function stop() {
  if (!recorder?.active || recorder.ending) return;
  const stopping = recorder.stop();
  updateButtons();
  await stopping;
}

setInterval(() => {
  if (!recorder?.active) return;
  elapsed.textContent = clock(recorder.capturedSeconds);
  connection.dataset.capturedBytes = recorder.capturedBytes;
}, 250);

window.addEventListener("beforeunload", (event) => {
  if (recorder?.active) {
    event.preventDefault();
    event.returnValue = "The recording is still being sent.";
  }
});

// ------------------------------------------------------------------------------------------ uploads

async function uploadAudio(file) {
  if (recorder?.active) throw new ApiError(409, "stop the recording before uploading a file");
  const id = await ensureEncounter();
  setConnection("uploading");
  try {
    const response = await api(`/v1/encounters/${encodeURIComponent(id)}/audio`, {
      method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" },
    });
    // 202: a long file is still being transcribed on the server; its state is on the encounter
    const result = response.status === 202 ? await transcriptWhenDone(id) : await response.json();
    transcript.show(result.segments);
    hasTranscript = result.segments.length > 0;
    setConnection("done");
  } catch (error) {
    setConnection("idle");
    throw error;
  }
  await refreshEncounter();
}

/** Poll the encounter until its upload is transcribed (the transcript) or failed (an ApiError with the reason). */
async function transcriptWhenDone(id) {
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const upload = (await apiJson(`/v1/encounters/${encodeURIComponent(id)}`)).upload;
    if (upload?.state === "done") return apiJson(`/v1/encounters/${encodeURIComponent(id)}/transcript`);
    if (upload?.state === "failed") throw new ApiError(422, `the recording could not be transcribed: ${upload.reason}`);
  }
}

function imageType(file) {
  if (file.type && file.type !== "application/octet-stream") return file.type;
  return /\.dcm$/i.test(file.name) || !/\.[a-z]+$/i.test(file.name) ? "application/dicom" : file.type;
}

async function attachRecords(file) {
  const id = await ensureEncounter();
  await api(`/v1/encounters/${encodeURIComponent(id)}/records`, {
    method: "POST", body: file, headers: { "Content-Type": "application/fhir+json" },
  });
  await Promise.all([showContext(), refreshEncounter()]);
}

async function attachImages(files) {
  const id = await ensureEncounter();
  for (const file of files) {
    const headers = { "Content-Type": imageType(file) };
    if (/^[\x20-\x7e]{1,200}$/.test(file.name)) headers["X-Filename"] = file.name;
    await api(`/v1/encounters/${encodeURIComponent(id)}/images`, { method: "POST", body: file, headers });
  }
  await showContext();
}

function contextList(title, items, describe) {
  return el("div", { class: "context-group" }, el("h3", {}, title),
    items.length ? el("ul", {}, items.map((item) => el("li", {}, describe(item)))) : el("p", { class: "hint" }, "none"));
}

async function showContext() {
  if (!encounterId) return;
  const context = await apiJson(`/v1/encounters/${encodeURIComponent(encounterId)}/context`);
  const box = document.getElementById("context");
  if (!context.records.length && !context.images.length) {
    box.replaceChildren(el("p", { class: "hint" }, "No records or images attached yet."));
    return;
  }
  box.replaceChildren(
    contextList("Medications", context.medications, (m) => [m.name, m.dosage ? ` (${m.dosage})` : "",
      m.status && m.status !== "active" ? `, ${m.status}` : ""].join("")),
    contextList("Problems", context.problems, (p) => p.name + (p.code ? ` (${p.code})` : "")),
    contextList("Allergies", context.allergies, (a) => a.substance + (a.reaction ? `: ${a.reaction}` : "")),
    contextList("Images", context.images, (i) => `${i.id}: ${i.label}`));
}

const dropzone = document.getElementById("dropzone");
dropzone.addEventListener("dragover", (event) => {
  event.preventDefault();
  dropzone.classList.add("over");
});
dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropzone.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) attempt(() => uploadAudio(file));
});
document.getElementById("audio-file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (file) attempt(() => uploadAudio(file));
});
document.getElementById("records-file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (file) attempt(() => attachRecords(file));
});
document.getElementById("image-file").addEventListener("change", (event) => {
  const files = [...event.target.files];
  event.target.value = "";
  if (files.length) attempt(() => attachImages(files));
});

// ------------------------------------------------------------------------------------------ note

async function showEngines() {
  const engines = await apiJson("/v1/note-engines");
  const select = document.getElementById("engine");
  select.replaceChildren(...engines.engines.map((name) => el("option", { value: name, selected: name === engines.default },
    name)));
  document.getElementById("engine-choice").hidden = engines.engines.length < 2;
}

async function draft() {
  const select = document.getElementById("engine");
  const options = document.getElementById("engine-choice").hidden ? {} : { engine: select.value };
  buttons.draft.textContent = "Drafting…";
  try {
    const note = await apiJson(`/v1/encounters/${encodeURIComponent(encounterId)}/note`, { method: "POST", json: options });
    location.assign(`/notes/${encodeURIComponent(note.id)}`);
  } finally {
    buttons.draft.textContent = "Draft note";
  }
}

// ------------------------------------------------------------------------------------------ wiring

buttons.record.addEventListener("click", () => attempt(record));
buttons.pause.addEventListener("click", togglePause);
buttons.stop.addEventListener("click", () => attempt(stop));
buttons.draft.addEventListener("click", () => attempt(draft, buttons.draft));
form.addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(savePatient, buttons.savePatient);
});
shortcuts({
  r: () => attempt(recorder?.active ? stop : record),
  p: togglePause,
});
wireSignOut();

async function load() {
  await showEngines();
  if (!encounterId) {
    form.patient_id.focus();
    return;
  }
  buttons.savePatient.hidden = false;
  await refreshEncounter();
  if (encounter.transcript) {
    const stored = await apiJson(`/v1/encounters/${encodeURIComponent(encounterId)}/transcript`);
    transcript.show(stored.segments);
  }
  await showContext();
}

attempt(load);
