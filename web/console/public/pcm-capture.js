// AudioWorklet processor: hands the microphone's mono samples (at the context's rate) to the page in
// batches of 256 frames (about 5 ms at 48 kHz: a chunk leaves as soon as its last sample is captured, not up
// to 20 ms later); the page resamples them to 16 kHz 16-bit PCM (src/audio.ts).
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.batch = new Float32Array(256);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      for (let i = 0; i < channel.length; i++) {
        this.batch[this.filled++] = channel[i];
        if (this.filled === this.batch.length) {
          this.port.postMessage(this.batch, [this.batch.buffer]);
          this.batch = new Float32Array(256);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
