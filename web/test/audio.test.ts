import { describe, expect, it } from "vitest";
import { CHUNK_BYTES, Pcm16Encoder, toInt16 } from "../src/index.js";

function tone(rate: number, seconds: number, hz = 440, amplitude = 0.5): Float32Array {
  return Float32Array.from({ length: rate * seconds }, (_, n) => amplitude * Math.sin((2 * Math.PI * hz * n) / rate));
}

function samplesOf(chunks: Uint8Array[]): number[] {
  const out: number[] = [];
  for (const chunk of chunks) {
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (let i = 0; i < chunk.length; i += 2) out.push(view.getInt16(i, true));
  }
  return out;
}

function pitch(samples: number[], rate = 16_000): number {
  let crossings = 0;
  for (let i = 1; i < samples.length; i++) if ((samples[i - 1]! < 0) !== (samples[i]! < 0)) crossings++;
  return crossings / 2 / (samples.length / rate);
}

describe("Pcm16Encoder", () => {
  it.each([48_000, 44_100, 16_000, 8_000])("turns %i Hz float samples into 100 ms chunks of 16 kHz 16-bit PCM", (rate) => {
    const chunks: Uint8Array[] = [];
    const encoder = new Pcm16Encoder(rate, (chunk) => chunks.push(chunk));
    const input = tone(rate, 1);
    for (let i = 0; i < input.length; i += 128) encoder.push(input.subarray(i, i + 128)); // render quanta
    expect(chunks.length).toBeGreaterThanOrEqual(9); // one second is ten chunks, the last may still be filling
    expect(chunks.length).toBeLessThanOrEqual(10);
    expect(chunks.every((chunk) => chunk.length === CHUNK_BYTES)).toBe(true);
    const samples = samplesOf(chunks);
    expect(Math.abs(pitch(samples) - 440)).toBeLessThan(440 * 0.02); // the pitch survives: 16 kHz out
    expect(Math.max(...samples)).toBeGreaterThan(0.45 * 32767); // the level too
    expect(Math.max(...samples)).toBeLessThanOrEqual(0.5 * 32767 + 1);
  });

  it("writes little-endian signed samples, clipped", () => {
    expect([toInt16(1), toInt16(-1), toInt16(2), toInt16(-2), toInt16(0)]).toEqual([32767, -32768, 32767, -32768, 0]);
    const chunks: Uint8Array[] = [];
    const encoder = new Pcm16Encoder(16_000, (chunk) => chunks.push(chunk));
    encoder.push(new Float32Array(1600).fill(-1));
    expect([...chunks[0]!.subarray(0, 2)]).toEqual([0x00, 0x80]);
  });

  it("measures the input level for the meter", () => {
    expect(Pcm16Encoder.level(new Float32Array(128))).toBe(0);
    expect(Pcm16Encoder.level(new Float32Array(128).fill(0.5))).toBeCloseTo(0.5);
  });
});
