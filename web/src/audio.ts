/**
 * Microphone samples to the wire format: 16 kHz, 16-bit signed little-endian, mono PCM, in 100 ms
 * chunks of 3,200 bytes (1,600 samples).
 *
 * The AudioContext runs at the device's rate (Firefox cannot connect a microphone to a context of
 * another rate), so the encoder resamples: each output sample is the mean of the input samples in its
 * window (a box filter, enough to keep speech from aliasing), or a linear interpolation when upsampling.
 */

export const SAMPLE_RATE = 16_000;
export const CHUNK_MS = 100;
export const CHUNK_SAMPLES = (SAMPLE_RATE * CHUNK_MS) / 1000;
export const CHUNK_BYTES = CHUNK_SAMPLES * 2;

/** A float sample in [-1, 1] as a 16-bit integer, clipped. */
export function toInt16(sample: number): number {
  const clipped = Math.max(-1, Math.min(1, sample));
  return clipped < 0 ? Math.round(clipped * 0x8000) : Math.round(clipped * 0x7fff);
}

export class Pcm16Encoder {
  private readonly step: number; // input samples per output sample
  private position = 0; // where the next output sample starts, in input samples from the start of `pending`
  private pending: number[] = [];
  private readonly chunk = new DataView(new ArrayBuffer(CHUNK_BYTES));
  private filled = 0;

  constructor(readonly inputRate: number, private readonly onChunk: (chunk: Uint8Array) => void) {
    if (!(inputRate > 0)) throw new RangeError("inputRate must be positive");
    this.step = inputRate / SAMPLE_RATE;
  }

  /** Feeds mono float samples at inputRate; calls onChunk with every full 3,200-byte chunk. */
  push(samples: Float32Array): void {
    for (const sample of samples) this.pending.push(sample);
    while (this.position + Math.max(this.step, 1) <= this.pending.length) {
      this.emit(this.step >= 1 ? this.mean() : this.interpolate());
      this.position += this.step;
    }
    const consumed = Math.floor(this.position);
    if (consumed > 0) {
      this.pending = this.pending.slice(consumed);
      this.position -= consumed;
    }
  }

  /** The input level of the last samples pushed, 0..1 (RMS), for a meter. */
  static level(samples: Float32Array): number {
    let sum = 0;
    for (const sample of samples) sum += sample * sample;
    return samples.length ? Math.sqrt(sum / samples.length) : 0;
  }

  private mean(): number {
    const start = this.position;
    const end = this.position + this.step;
    let total = 0;
    for (let i = Math.floor(start); i < Math.ceil(end); i++) {
      const weight = Math.min(end, i + 1) - Math.max(start, i);
      total += this.pending[i]! * weight;
    }
    return total / this.step;
  }

  private interpolate(): number {
    const index = Math.floor(this.position);
    const fraction = this.position - index;
    const next = this.pending[index + 1] ?? this.pending[index]!;
    return this.pending[index]! * (1 - fraction) + next * fraction;
  }

  private emit(sample: number): void {
    this.chunk.setInt16(this.filled, toInt16(sample), true);
    this.filled += 2;
    if (this.filled === CHUNK_BYTES) {
      this.onChunk(new Uint8Array(this.chunk.buffer.slice(0)));
      this.filled = 0;
    }
  }
}
