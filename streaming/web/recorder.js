// The browser side of scribe's streaming protocol (streaming/PROTOCOL.md).
//
// Captures the microphone in an AudioWorklet at the device's native rate and streams it as
// 100 ms frames of pcm_s16le to /v1/encounters/{id}/stream, authenticated by a single-use ticket.
// Every captured byte is kept until an `ack` covers it; when the socket drops (network, a server
// restart, a node going away) it reconnects with a fresh ticket and resumes from the server's
// `received_bytes`, so nothing is lost and nothing is sent twice. A node that shuts down says
// `reconnect` before it closes (1012): that reconnect is immediate and not counted as a failure.

const FRAME_MS = 100;
const MAX_SOCKET_BACKLOG = 512 * 1024; // bytes queued in the socket before sending waits
const RETRY_MS = [250, 500, 1000, 2000, 4000, 5000];
// Errors after which reconnecting cannot help (PROTOCOL.md §9): the client or the encounter must change.
const FATAL = new Set(["bad_json", "bad_message", "unknown_type", "bad_field", "bad_encounter_id", "forbidden",
  "format_mismatch", "message_too_large", "frame_too_large", "session_too_long", "unsupported_encoding",
  "unsupported_sample_rate", "unsupported_channels", "already_started", "frame_before_start",
  "stop_before_start", "odd_length", "frame_too_short"]);
const MAX_UNAUTHORIZED = 3; // a fresh ticket refused this often in a row: give up
const FLUSH_WAIT_MS = 2000; // for the worklet's last samples after stop (a busy machine answers late)

/** Bytes captured since the recording began, from the first one not yet acknowledged. */
class ByteQueue {
  constructor() {
    this.chunks = [];
    this.start = 0; // offset of chunks[0][0]
    this.end = 0; // everything captured
  }

  push(bytes) {
    this.chunks.push(bytes);
    this.end += bytes.length;
  }

  /** Forget bytes below `offset` (acknowledged: durably stored by the server). */
  dropBefore(offset) {
    offset = Math.min(offset, this.end);
    while (this.chunks.length && this.start + this.chunks[0].length <= offset) {
      this.start += this.chunks.shift().length;
    }
    if (this.chunks.length && offset > this.start) {
      this.chunks[0] = this.chunks[0].subarray(offset - this.start);
      this.start = offset;
    }
    if (!this.chunks.length) this.start = this.end;
  }

  /** A copy of bytes from..from+length (they must still be held). */
  read(from, length) {
    const out = new Uint8Array(length);
    let position = this.start, filled = 0;
    for (const chunk of this.chunks) {
      const chunkEnd = position + chunk.length;
      if (chunkEnd > from + filled) {
        const skip = Math.max(0, from + filled - position);
        const take = Math.min(chunk.length - skip, length - filled);
        out.set(chunk.subarray(skip, skip + take), filled);
        filled += take;
        if (filled === length) break;
      }
      position = chunkEnd;
    }
    return out;
  }
}

/**
 * Events (CustomEvent, details in `event.detail`): `state` {state, attempt}, `partial` {text, start, end},
 * `final` {segment}, `ack` {bytes, seconds}, `warning` {code, message}, `level` {peak}, `done` {transcript},
 * `failed` {code, message}.
 * States: idle, connecting, live, paused, reconnecting, finishing, done, failed.
 */
export class StreamRecorder extends EventTarget {
  /** `sampleRate`: the rate this encounter's stored audio has (a resumed stream must match it); by
   * default the device's own. */
  constructor({ encounterId, getTicket, sampleRate, workletUrl = "/static/streaming/capture-worklet.js" }) {
    super();
    this.encounterId = encounterId;
    this.requestedRate = sampleRate;
    this.getTicket = getTicket;
    this.workletUrl = workletUrl;
    this.queue = new ByteQueue();
    this.origin = null; // the encounter's stored bytes when this recording began (first `ready`)
    this.sent = 0; // next byte (recording offset) to send on the current socket
    this.state = "idle";
    this.attempt = 0;
    this.unauthorized = 0;
    this.ending = false; // stop pressed: send the rest, then `stop`
    this.stopSent = false;
    this.paused = false;
    this.socket = null;
    this.ready = false;
    this.lastError = null;
    this.captureStarted = false;
    this.captureClosed = false;
  }

  get sampleRate() {
    return this.context?.sampleRate ?? 0;
  }

  /** Seconds captured so far in this recording. */
  get capturedSeconds() {
    return this.sampleRate ? this.queue.end / 2 / this.sampleRate : 0;
  }

  /** The encounter's audio in bytes once everything captured so far is stored (its earlier audio included). */
  get capturedBytes() {
    return (this.origin ?? 0) + this.queue.end;
  }

  /** Bytes captured but not yet acknowledged: lost if the page closed now. */
  get unacknowledged() {
    return this.queue.end - this.queue.start;
  }

  get active() {
    return !["idle", "done", "failed"].includes(this.state);
  }

  /** Ask for the microphone, start capturing, and connect. */
  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    this.context = new AudioContext(this.requestedRate
      ? { latencyHint: "interactive", sampleRate: this.requestedRate } : { latencyHint: "interactive" });
    await this.context.audioWorklet.addModule(this.workletUrl);
    this.source = this.context.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.context, "scribe-capture",
      { channelCount: 1, channelCountMode: "explicit", channelInterpretation: "speakers" });
    this.frameBytes = Math.floor(this.context.sampleRate * FRAME_MS / 1000) * 2;
    this.node.port.onmessage = (event) => this.captured(event.data);
    this.source.connect(this.node);
    if (this.context.state === "suspended") await this.context.resume();
    this.connect();
  }

  captured(message) {
    if (message.flushed) {
      this.flushed?.();
      return;
    }
    if (this.captureClosed) return; // after stop: the recording's length is settled, nothing is added
    const bytes = new Uint8Array(message.pcm);
    if (!this.captureStarted) { // when the first captured sample was heard: the block's length before now
      this.captureStarted = true;
      performance.mark("scribe:capture-start",
        { startTime: performance.now() - (bytes.length / 2 / this.sampleRate) * 1000 });
    }
    this.queue.push(bytes);
    this.emit("level", { peak: message.peak });
    this.pump();
  }

  pause() {
    if (this.paused || this.ending || !this.context) return;
    this.paused = true;
    this.context.suspend();
    this.setState(this.ready ? "paused" : this.state);
  }

  resume() {
    if (!this.paused) return;
    this.paused = false;
    this.context.resume();
    if (this.socket) this.setState(this.ready ? "live" : "connecting");
    else this.connect();
  }

  /** Stop capturing, send what is left and `stop`; resolves with the `done` transcript. */
  async stop() {
    if (this.ending) return this.finished;
    this.ending = true;
    this.paused = false;
    this.finished = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    if (this.node) {
      if (this.context.state === "suspended") await this.context.resume();
      const flushed = new Promise((resolve) => { this.flushed = resolve; });
      this.source.disconnect();
      this.node.port.postMessage("flush");
      await Promise.race([flushed, new Promise((resolve) => setTimeout(resolve, FLUSH_WAIT_MS))]);
      this.releaseMicrophone();
    }
    this.captureClosed = true;
    if (this.state === "failed") {
      this.rejectDone(this.lastError);
    } else {
      this.setState(this.ready ? "finishing" : this.state);
      if (!this.socket) this.connect();
      this.pump();
    }
    return this.finished;
  }

  releaseMicrophone() {
    this.node?.port.close();
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    if (this.context && this.context.state !== "closed") this.context.close().catch(() => {});
  }

  // ------------------------------------------------------------------------------------ socket

  async connect() {
    if (this.socket || this.state === "done" || this.state === "failed") return;
    this.setState(this.attempt || this.moved ? "reconnecting" : "connecting"); // `moved`: the last socket's
    let ticket;
    try {
      ticket = await this.getTicket(this.encounterId);
    } catch (error) {
      this.lastError = error;
      this.retry();
      return;
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/v1/encounters/${encodeURIComponent(this.encounterId)}/stream`
      + `?ticket=${encodeURIComponent(ticket)}`;
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.ready = false;
    this.errorCode = null;
    this.moved = false;
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "start", sample_rate: this.sampleRate, encoding: "pcm_s16le", channels: 1 }));
    };
    socket.onmessage = (event) => {
      if (typeof event.data === "string") this.received(JSON.parse(event.data));
    };
    socket.onclose = (event) => this.closed(socket, event);
  }

  received(message) {
    switch (message.type) {
      case "ready": {
        const stored = Number(message.received_bytes);
        if (this.origin === null) this.origin = stored;
        const position = stored - this.origin;
        if (position < this.queue.start || position > this.queue.end) {
          this.fail("lost_audio", "the server holds a different amount of audio than this recording sent");
          return;
        }
        this.queue.dropBefore(position);
        this.sent = position;
        this.stopSent = false;
        this.ready = true;
        this.attempt = 0;
        this.unauthorized = 0;
        this.setState(this.ending ? "finishing" : this.paused ? "paused" : "live");
        this.pump();
        break;
      }
      case "ack":
        if (this.origin !== null) this.queue.dropBefore(Number(message.received_bytes) - this.origin);
        this.emit("ack", { bytes: Number(message.received_bytes), seconds: Number(message.received_ms) / 1000 });
        break;
      case "partial":
        this.emit("partial", message);
        break;
      case "final":
        this.emit("final", { segment: message.segment });
        break;
      case "warning":
        this.emit("warning", message);
        break;
      case "done":
        this.setState("done");
        this.emit("done", { transcript: message.transcript });
        this.resolveDone?.(message.transcript);
        break;
      case "error":
        this.errorCode = message.code;
        this.errorMessage = message.message;
        break;
      case "reconnect":
        this.moved = true; // the node is going away: the close (1012) that follows reconnects at once
        break;
      default:
        break; // later additions: the close that follows says what to do
    }
  }

  closed(socket, event) {
    if (this.socket !== socket) return;
    const wasReady = this.ready;
    this.socket = null;
    this.ready = false;
    if (this.state === "done" || this.state === "failed") return;
    const code = this.errorCode;
    if (code && FATAL.has(code)) {
      this.fail(code, this.errorMessage || code);
      return;
    }
    if (code === "unauthorized" && ++this.unauthorized >= MAX_UNAUTHORIZED) {
      this.fail(code, this.errorMessage || "the server refused the credentials");
      return;
    }
    if (code === "idle_timeout" && this.paused) {
      this.setState("paused"); // reconnects on resume
      return;
    }
    this.retry(wasReady && (this.moved || event.code === 1012)); // moved after a `ready`: no loop of instant retries
  }

  /** Reconnect after a backoff; `now`: at once and not counted as a failure (the server moved this stream). */
  retry(now = false) {
    const delay = now ? 0 : RETRY_MS[Math.min(this.attempt, RETRY_MS.length - 1)];
    if (!now) this.attempt += 1;
    this.setState("reconnecting");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Send whole frames of what is captured and not yet sent; after stop, the rest and then `stop`. */
  pump() {
    const socket = this.socket;
    if (!socket || !this.ready || socket.readyState !== WebSocket.OPEN || this.stopSent) return;
    while (socket.bufferedAmount < MAX_SOCKET_BACKLOG) {
      const available = this.queue.end - this.sent;
      if (available >= this.frameBytes) {
        socket.send(this.queue.read(this.sent, this.frameBytes));
        this.sent += this.frameBytes;
        continue;
      }
      if (this.ending && this.captureClosed) { // not before: the worklet's last samples are still coming
        if (available > 0) { // the last frame may be shorter than 10 ms
          socket.send(this.queue.read(this.sent, available));
          this.sent += available;
        }
        socket.send(JSON.stringify({ type: "stop" }));
        this.stopSent = true;
      }
      return;
    }
    clearTimeout(this.pumpTimer);
    this.pumpTimer = setTimeout(() => this.pump(), 50);
  }

  fail(code, message) {
    this.lastError = Object.assign(new Error(message), { code });
    this.setState("failed");
    this.emit("failed", { code, message });
    clearTimeout(this.retryTimer);
    this.socket?.close();
    this.releaseMicrophone();
    this.rejectDone?.(this.lastError);
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.emit("state", { state, attempt: this.attempt });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
