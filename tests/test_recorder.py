"""The browser recorder (streaming/web/recorder.js) in Chromium against a scripted websocket: how it reconnects."""

from __future__ import annotations

from pathlib import Path

import scribe.streaming as streaming
from tests.browser import chromium
from tests.conftest import SAMPLES

RECORDER = Path(streaming.__file__).resolve().parent / "web" / "recorder.js"

# A node that shuts down sends `reconnect` and closes with 1012; a dropped network just closes (1006).
SCENARIO = """async () => {
  const sockets = [];
  class ScriptedSocket {
    static OPEN = 1;
    constructor(url) {
      this.readyState = 1;
      this.bufferedAmount = 0;
      sockets.push({ socket: this, at: performance.now() });
    }
    send(data) {}
    close() {}
  }
  window.WebSocket = ScriptedSocket;
  const recorder = new window.StreamRecorder({ encounterId: "enc-1", getTicket: async () => "ticket" });
  recorder.frameBytes = 3200;
  const states = [];
  recorder.addEventListener("state", (event) => states.push(event.detail.state));
  const opened = async (n) => {
    while (sockets.length < n) await new Promise((resolve) => setTimeout(resolve, 2));
    const socket = sockets[n - 1].socket;
    socket.onopen();
    socket.onmessage({ data: JSON.stringify({ type: "ready", received_bytes: 0, received_ms: 0 }) });
    return socket;
  };
  recorder.connect();
  let socket = await opened(1);
  socket.onmessage({ data: JSON.stringify({ type: "reconnect", reason: "shutdown" }) });
  let closedAt = performance.now();
  socket.onclose({ code: 1012 });
  socket = await opened(2);
  const moved = sockets[1].at - closedAt;
  closedAt = performance.now();
  socket.onclose({ code: 1006 });
  await opened(3);
  return { moved, dropped: sockets[2].at - closedAt, states };
}"""


def test_recorder_reconnects_at_once_when_the_node_moves_it():
    with chromium(SAMPLES / "urology_asthma.wav") as browser:
        page = browser.new_page()
        page.set_content("<!doctype html><title>recorder</title>")
        page.add_script_tag(content=RECORDER.read_text() + "\nwindow.StreamRecorder = StreamRecorder;\n", type="module")
        page.wait_for_function("() => window.StreamRecorder !== undefined")
        seen = page.evaluate(SCENARIO)
    assert seen["moved"] < 100, seen  # `reconnect`: no backoff
    assert seen["dropped"] >= 240, seen  # a plain drop still waits its backoff (250 ms first)
    assert seen["states"] == ["connecting", "live", "reconnecting", "live", "reconnecting", "live"], seen
