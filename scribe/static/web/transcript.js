// A transcript on screen: one line per final segment (its time and text), then the live partial.
// The review page highlights the characters a statement cites and finds the audio they were said in.
import { clock, el } from "./api.js";

export class TranscriptView {
  constructor(container, { onSegmentClick } = {}) {
    this.container = container;
    this.segments = new Map(); // id -> segment
    this.partial = null;
    this.onSegmentClick = onSegmentClick;
    this.unsure = new Map(); // segment id -> words heard with low confidence [{start_char, end_char, probability}]
    this.unsureTitle = null;
  }

  /** Replace everything with a whole transcript (a stored one, or `done`'s). */
  show(segments) {
    this.segments.clear();
    this.container.replaceChildren();
    this.partial = null;
    for (const segment of segments) this.addFinal(segment);
  }

  /** A final segment; a repeat of one already shown (sent again on resume) is ignored. */
  addFinal(segment) {
    if (this.segments.has(segment.id)) return;
    this.segments.set(segment.id, segment);
    // the time is drawn by CSS from data-time, so the element's text is only what was recognised
    const line = el("span", { class: "segment", id: `segment-${segment.id}`,
      dataset: { segmentId: segment.id, time: clock(segment.start) } },
      el("span", { class: "text" }, segment.text.trim()), " ");
    if (this.onSegmentClick) line.addEventListener("click", () => this.onSegmentClick(segment));
    const later = [...this.container.querySelectorAll(".segment")].find((n) => Number(n.dataset.segmentId) > segment.id);
    if (later) this.container.insertBefore(line, later);
    else if (this.partial) this.container.insertBefore(line, this.partial);
    else this.container.append(line);
    this.setPartial("");
  }

  /** The current hypothesis after the last final, shown apart (it may still change). */
  setPartial(text) {
    text = (text || "").trim();
    if (!text) {
      this.partial?.remove();
      this.partial = null;
      return;
    }
    if (!this.partial) {
      this.partial = el("span", { class: "partial", "aria-label": "still being recognised" });
      this.container.append(this.partial);
    }
    this.partial.textContent = text;
    this.container.scrollTop = this.container.scrollHeight;
  }

  get text() {
    return [...this.segments.values()].map((s) => s.text.trim()).join(" ");
  }

  /** Underline words heard with low confidence ({segment_id, start_char, end_char, probability}); `title(word)`
   * is their tooltip. Replaces the previous set. */
  underline(words, title) {
    this.unsure.clear();
    this.unsureTitle = title;
    for (const word of words) {
      if (!this.unsure.has(word.segment_id)) this.unsure.set(word.segment_id, []);
      this.unsure.get(word.segment_id).push(word);
    }
    for (const id of this.segments.keys()) this.paint(id, null);
  }

  /** Redraw a segment's text: low-confidence words underlined, characters `mark` ([from, to]) highlighted. */
  paint(segmentId, mark) {
    const segment = this.segments.get(segmentId);
    const line = this.container.querySelector(`#segment-${segmentId}`);
    if (!segment || !line) return;
    const text = segment.text.trim();
    const lead = segment.text.length - segment.text.trimStart().length;
    const at = (char) => Math.max(0, Math.min(text.length, char - lead));
    const unsure = (this.unsure.get(segmentId) ?? []).map((word) => ({ word, from: at(word.start_char), to: at(word.end_char) }))
      .filter(({ from, to }) => to > from).sort((a, b) => a.from - b.from);
    const pieces = (from, to) => {
      const out = [];
      let position = from;
      for (const u of unsure) {
        const a = Math.max(u.from, position), b = Math.min(u.to, to);
        if (b <= a) continue;
        out.push(text.slice(position, a), el("u", { class: "low-confidence", title: this.unsureTitle?.(u.word) }, text.slice(a, b)));
        position = b;
      }
      out.push(text.slice(position, to));
      return out.filter((piece) => piece !== "");
    };
    const [from, to] = mark ?? [0, 0];
    const children = mark ? [...pieces(0, from), el("mark", {}, ...pieces(from, to)), ...pieces(to, text.length)]
      : pieces(0, text.length);
    line.querySelector(".text").replaceChildren(...children);
  }

  /** Mark characters start..end of a segment and scroll to them; returns [startSeconds, endSeconds]. */
  highlight(segmentId, startChar, endChar) {
    for (const old of this.container.querySelectorAll(".segment.cited")) {
      old.classList.remove("cited");
      this.paint(Number(old.dataset.segmentId), null); // drops the <mark>
    }
    const segment = this.segments.get(segmentId);
    const line = this.container.querySelector(`#segment-${segmentId}`);
    if (!segment || !line) return null;
    const text = segment.text.trim();
    const lead = segment.text.length - segment.text.trimStart().length;
    const from = Math.max(0, Math.min(text.length, startChar - lead));
    const to = Math.max(from, Math.min(text.length, endChar - lead));
    this.paint(segmentId, [from, to]);
    line.classList.add("cited");
    line.scrollIntoView({ block: "center", behavior: "smooth" });
    return audioSpan(segment, startChar, endChar);
  }
}

/** The seconds in which characters start..end of a segment were said: from its word times when they
 * line up with its text, else the whole segment. */
export function audioSpan(segment, startChar, endChar) {
  const words = segment.words ?? [];
  if (words.length && endChar > startChar) {
    let position = 0;
    let first = null, last = null;
    const text = segment.text;
    for (const word of words) {
      const token = word.word.trim();
      const found = token ? text.indexOf(token, position) : -1;
      if (found < 0) return [segment.start, segment.end];
      const wordEnd = found + token.length;
      if (wordEnd > startChar && found < endChar) {
        first ??= word.start;
        last = word.end;
      }
      position = wordEnd;
    }
    if (first !== null && last > first) return [first, last];
  }
  return [segment.start, segment.end];
}
