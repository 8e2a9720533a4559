import { describe, expect, it } from "vitest";
import { base64Encode, cutQuiet, JitterBuffer, PcmPlayer, pcm16ToFloat, type PlaybackContext } from "../src/index.js";

/** An AudioContext stand-in: a clock the test moves, and every buffer started on it. */
class FakeContext {
  currentTime = 0;
  outputLatency = 0.02;
  readonly destination = {} as AudioDestinationNode;
  readonly started: { when: number; samples: Float32Array; rate: number }[] = [];

  createBuffer(_channels: number, length: number, rate: number) {
    const data = new Float32Array(length);
    return { getChannelData: () => data, sampleRate: rate, length } as unknown as AudioBuffer;
  }

  createBufferSource() {
    const started = this.started;
    const node = {
      buffer: null as AudioBuffer | null,
      connect: () => undefined,
      start(when: number) {
        started.push({ when, samples: node.buffer!.getChannelData(0), rate: node.buffer!.sampleRate });
      },
    };
    return node as unknown as AudioBufferSourceNode;
  }
}

function pcm(...samples: number[]): string {
  const bytes = new Uint8Array(samples.length * 2);
  const view = new DataView(bytes.buffer);
  samples.forEach((sample, i) => view.setInt16(i * 2, sample, true));
  return base64Encode(bytes);
}

const chunk = (sequenceNumber: number, extra: Record<string, unknown> = {}) =>
  ({ type: "audio", sequenceNumber, audioData: pcm(...Array(1600).fill(1000)), sampleRate: 16000, ...extra });

describe("the jitter buffer", () => {
  it("plays chunks back to back, targetDelay ahead of the clock from the first", () => {
    const buffer = new JitterBuffer({ targetDelay: 0.08, maxDelay: 0.4 });
    expect(buffer.schedule(0, 0.1, 10)).toBeCloseTo(10.08);
    // The next two arrive late and together (a burst): still seamless, after the first.
    expect(buffer.schedule(1, 0.1, 10.15)).toBeCloseTo(10.18);
    expect(buffer.schedule(2, 0.1, 10.15)).toBeCloseTo(10.28);
    expect(buffer.queued(10.15)).toBeCloseTo(0.23);
    expect(buffer.underruns).toBe(0);
  });

  it("restarts targetDelay ahead after running dry, and counts it", () => {
    const buffer = new JitterBuffer({ targetDelay: 0.05 });
    buffer.schedule(0, 0.1, 0);
    expect(buffer.schedule(1, 0.1, 3)).toBeCloseTo(3.05); // the speaker paused for three seconds
    expect(buffer.underruns).toBe(1);
  });

  it("drops repeats and chunks overtaken by a later one: never twice, never backwards", () => {
    const buffer = new JitterBuffer();
    expect(buffer.schedule(5, 0.1, 0)).toBeDefined();
    expect(buffer.schedule(5, 0.1, 0)).toBeUndefined();
    expect(buffer.schedule(4, 0.1, 0)).toBeUndefined();
    expect(buffer.schedule(7, 0.1, 0)).toBeDefined(); // a gap is played through: this is live audio
    expect(buffer.dropped).toBe(2);
  });

  it("drops what would queue more than maxDelay, so the delay never builds up", () => {
    const buffer = new JitterBuffer({ targetDelay: 0.1, maxDelay: 0.3 });
    const starts = [0, 1, 2, 3, 4, 5].map((seq) => buffer.schedule(seq, 0.1, 0)); // a burst after a stall
    expect(starts.map((start) => start === undefined ? undefined : Number(start.toFixed(2))))
      .toEqual([0.1, 0.2, 0.3, undefined, undefined, undefined]);
    expect(buffer.queued(0)).toBeCloseTo(0.4);
    expect(buffer.dropped).toBe(3);
  });

  it("sets targetDelay from the jitter most chunks show, restarts for the rare late one, forgets a pause", () => {
    const buffer = new JitterBuffer({ targetDelay: 0.08, minDelay: 0.03, maxDelay: 0.25 });
    let now = 0;
    // 30 chunks, 100 ms apart, each up to 10 ms late: the target comes down to its least (10 ms + 10 ms < 30 ms).
    for (let seq = 0; seq < 30; seq++) buffer.schedule(seq, 0.1, (now = seq * 0.1 + (seq % 3) * 0.005));
    expect(buffer.targetDelay).toBe(0.03);
    expect(buffer.underruns).toBe(0);
    // One chunk 150 ms late finds the buffer dry and restarts it; one in 31 does not move the target.
    expect(buffer.schedule(30, 0.1, (now = 3.0 + 0.15))).toBeCloseTo(now + 0.03);
    expect(buffer.underruns).toBe(1);
    expect(buffer.targetDelay).toBe(0.03);
    // Asked to cover every chunk, the same late one raises the target at once.
    const cautious = new JitterBuffer({ targetDelay: 0.08, minDelay: 0.03, jitterQuantile: 1 });
    for (let seq = 0; seq < 30; seq++) cautious.schedule(seq, 0.1, seq * 0.1 + (seq % 3) * 0.005);
    cautious.schedule(30, 0.1, 3.0 + 0.15);
    expect(cautious.targetDelay).toBeCloseTo(0.15 + 0.01, 2);
    expect(() => new JitterBuffer({ jitterQuantile: 0.2 })).toThrow(RangeError);
    // When late chunks are common (every third one 120 ms late), the target covers them.
    for (let seq = 31; seq < 61; seq++) buffer.schedule(seq, 0.1, (now = seq * 0.1 + (seq % 3 ? 0 : 0.12)));
    expect(buffer.targetDelay).toBeCloseTo(0.12 + 0.01);
    // 50 calm chunks later they are forgotten.
    for (let seq = 61; seq < 111; seq++) buffer.schedule(seq, 0.1, (now = seq * 0.1));
    expect(buffer.targetDelay).toBe(0.03);
    // A pause (3 s of nothing) is not jitter: the chunks after it are judged among themselves.
    for (let seq = 111; seq < 136; seq++) buffer.schedule(seq, 0.1, (now = 3 + seq * 0.1));
    expect(buffer.targetDelay).toBe(0.03);
  });

  it("starts over after a reset, and refuses a maxDelay below the targetDelay", () => {
    const buffer = new JitterBuffer();
    buffer.schedule(9, 0.1, 0);
    buffer.reset();
    expect(buffer.schedule(0, 0.1, 1)).toBeDefined();
    expect(() => new JitterBuffer({ targetDelay: 0.5, maxDelay: 0.2 })).toThrow(RangeError);
  });
});

describe("the player", () => {
  it("decodes 16-bit little-endian PCM", () => {
    const bytes = new Uint8Array([0x00, 0x80, 0xff, 0x7f, 0x00, 0x00]);
    expect(Array.from(pcm16ToFloat(bytes))).toEqual([-1, 32767 / 32768, 0]);
  });

  it("schedules each audio message's samples at 16 kHz, in order", () => {
    const context = new FakeContext();
    const player = new PcmPlayer(context as unknown as PlaybackContext, { targetDelay: 0.05 });
    player.play(chunk(0));
    context.currentTime = 0.02;
    player.play(chunk(1));
    expect(context.started.map((s) => Number(s.when.toFixed(3)))).toEqual([0.05, 0.15]);
    expect(context.started[0]!.rate).toBe(16000);
    expect(context.started[0]!.samples).toHaveLength(1600);
    expect(context.started[0]!.samples[0]).toBeCloseTo(1000 / 32768);
  });

  it("measures the latency from the server's timestamp to the ear, on the server's clock", () => {
    const context = new FakeContext();
    let now = 1_000_000;
    const player = new PcmPlayer(context as unknown as PlaybackContext, { targetDelay: 0.08, now: () => now });
    // Sent by the server 30 ms ago by its clock, which is 500 ms ahead of this one.
    const played = player.play(chunk(0, { timestamp: now + 500 - 30 }), 500);
    // 30 ms on the way + 80 ms in the buffer + 20 ms of output latency.
    expect(played).toEqual({ sequenceNumber: 0, latency: 130 });
    expect(player.latency).toBe(130);
    now += 100;
    expect(player.play(chunk(1, { timestamp: now }))).toEqual({ sequenceNumber: 1, latency: undefined });
    expect(player.lastArrival).toBe(now);
  });

  it("ignores what is not an audio chunk, and drops a repeated one", () => {
    const context = new FakeContext();
    const player = new PcmPlayer(context as unknown as PlaybackContext);
    expect(player.play({ sequenceNumber: 0 })).toBeUndefined();
    expect(player.play({ audioData: pcm(1) })).toBeUndefined();
    expect(player.play({ sequenceNumber: 0, audioData: "" })).toBeUndefined();
    player.play(chunk(3));
    expect(player.play(chunk(3))).toBeUndefined();
    expect(context.started).toHaveLength(1);
    expect(player.buffer.dropped).toBe(1);
  });
});

describe("draining a late chunk's surplus", () => {
  const quiet = (n: number) => new Float32Array(n);
  const loud = (n: number) => Float32Array.from({ length: n }, (_, i) => (i % 2 ? 0.5 : -0.5));
  const joined = (...parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((sum, part) => sum + part.length, 0));
    parts.reduce((at, part) => (out.set(part, at), at + part.length), 0);
    return out;
  };

  it("cuts only quiet samples, keeping 32 at each end of a quiet stretch, and no more than asked", () => {
    const samples = joined(loud(100), quiet(400), loud(100));
    const cut = cutQuiet(samples, 1000);
    expect(cut).toHaveLength(100 + 64 + 100);
    expect(Array.from(cut.subarray(0, 100))).toEqual(Array.from(samples.subarray(0, 100)));
    expect(Array.from(cut.subarray(164))).toEqual(Array.from(samples.subarray(500)));
    expect(cutQuiet(samples, 50)).toHaveLength(600 - 50);
    expect(cutQuiet(loud(1600), 1000)).toHaveLength(1600); // unbroken sound: nothing to cut
    expect(cutQuiet(samples, 0)).toBe(samples);
  });

  it("brings the delay back to targetDelay after a late chunk, in the next quiet chunks", () => {
    const context = new FakeContext();
    const player = new PcmPlayer(context as unknown as PlaybackContext, { targetDelay: 0.08, maxDelay: 0.5 });
    const silent = (seq: number) => ({ type: "audio", sequenceNumber: seq, audioData: pcm(...Array(1600).fill(0)) });
    player.play(chunk(0)); // queued: 0.08 + 0.1
    context.currentTime = 0.3; // the next chunk is 200 ms late: the buffer ran dry and restarts 80 ms ahead
    player.play(chunk(1));
    context.currentTime = 0.31; // chunk 2 was held up with it: now 270 ms are queued
    player.play(chunk(2));
    expect(player.buffer.queued(context.currentTime)).toBeCloseTo(0.27);
    // Loud: never cut, the surplus stays (90 ms later, 180 ms are queued: 100 ms too many).
    context.currentTime = 0.4;
    player.play(chunk(3));
    expect(context.started[3]!.samples).toHaveLength(1600);
    // Quiet, 50 ms later: 230 ms queued, 150 ms too many; all but 32 samples at each end can go.
    context.currentTime = 0.45;
    player.play(silent(4));
    expect(context.started[4]!.samples).toHaveLength(64);
    expect(player.drained).toBeCloseTo(1536 / 16000);
    // The next quiet chunk takes the rest (234 - 50 - 80 = 104 ms too many), as far as its edges allow.
    context.currentTime = 0.5;
    player.play(silent(5));
    expect(context.started[5]!.samples).toHaveLength(64);
    // 100 ms on, the queue is back within 10 ms of targetDelay: the next quiet chunk is left whole.
    context.currentTime = 0.6;
    expect(player.buffer.queued(context.currentTime)).toBeCloseTo(0.088);
    expect(player.buffer.targetDelay).toBe(0.08); // seven chunks: too few to judge the jitter by
    player.play(silent(6));
    expect(context.started[6]!.samples).toHaveLength(1600);
  });
});

