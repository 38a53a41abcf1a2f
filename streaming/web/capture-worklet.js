// AudioWorklet processor: the microphone at the device's native rate, downmixed to mono, as 16-bit PCM.
// It posts blocks of ~50 ms with their peak level; the main thread frames, sends and keeps them.

class ScribeCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.blockSamples = Math.max(128, Math.round(sampleRate / 20));
    this.block = new Int16Array(this.blockSamples);
    this.filled = 0;
    this.peak = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        this.post();
        this.port.postMessage({ flushed: true });
      }
    };
  }

  post() {
    if (this.filled === 0) return;
    const pcm = this.block.slice(0, this.filled);
    this.port.postMessage({ pcm: pcm.buffer, peak: this.peak }, [pcm.buffer]);
    this.filled = 0;
    this.peak = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const length = channels[0].length;
    for (let i = 0; i < length; i++) {
      let sum = 0;
      for (const channel of channels) sum += channel[i];
      let value = sum / channels.length;
      if (!(value === value)) value = 0; // NaN
      const magnitude = Math.abs(value);
      if (magnitude > this.peak) this.peak = Math.min(1, magnitude);
      value = Math.max(-1, Math.min(1, value));
      this.block[this.filled++] = value < 0 ? value * 32768 : value * 32767;
      if (this.filled === this.blockSamples) this.post();
    }
    return true;
  }
}

registerProcessor("scribe-capture", ScribeCapture);
