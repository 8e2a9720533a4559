/**
 * Playback of the listener's audio messages (16 kHz 16-bit mono PCM chunks) with Web Audio.
 *
 * Chunks arrive in bursts (network, server, the event loop); played the moment they arrive, each burst
 * would overlap and each lull would click. The jitter buffer schedules every chunk right after the one
 * before, starting `targetDelay` seconds ahead of the clock: that much arrival jitter is absorbed. When
 * the buffer runs dry (the speaker paused, the network stalled) the next chunk starts `targetDelay`
 * ahead again; when more than `maxDelay` is queued (a burst after a stall), chunks are dropped until it
 * is not, so the delay never builds up. A chunk older than one already scheduled (a repeat, or one
 * overtaken) is dropped: live audio is never played twice or backwards.
 */
import { SAMPLE_RATE } from "./audio.js";

export const DEFAULT_TARGET_DELAY = 0.08;
export const DEFAULT_MAX_DELAY = 0.25;

export interface JitterBufferOptions {
  /** Seconds scheduled ahead of the clock when playback (re)starts. */
  targetDelay?: number;
  /** Seconds queued beyond which chunks are dropped. */
  maxDelay?: number;
}

/** Where each chunk goes on the clock; pure arithmetic, so it is tested without an AudioContext. */
export class JitterBuffer {
  readonly targetDelay: number;
  readonly maxDelay: number;
  /** Chunks dropped: repeats, overtaken ones, and those beyond maxDelay. */
  dropped = 0;
  /** Times the buffer ran dry while playing. */
  underruns = 0;
  private next: number | undefined; // when the scheduled audio ends
  private lastSeq = -Infinity;

  constructor(options: JitterBufferOptions = {}) {
    this.targetDelay = options.targetDelay ?? DEFAULT_TARGET_DELAY;
    this.maxDelay = options.maxDelay ?? DEFAULT_MAX_DELAY;
    if (!(this.targetDelay >= 0) || !(this.maxDelay >= this.targetDelay)) {
      throw new RangeError("need 0 <= targetDelay <= maxDelay");
    }
  }

  /** When to start a chunk of `duration` seconds with sequence number `seq`, or undefined to drop it. */
  schedule(seq: number, duration: number, now: number): number | undefined {
    if (seq <= this.lastSeq) {
      this.dropped += 1;
      return undefined;
    }
    this.lastSeq = seq;
    if (this.next === undefined || this.next < now) {
      if (this.next !== undefined) this.underruns += 1;
      this.next = now + this.targetDelay;
    } else if (this.next - now > this.maxDelay + 1e-9) { // (float sums of chunk durations)
      this.dropped += 1;
      return undefined;
    }
    const start = this.next;
    this.next += duration;
    return start;
  }

  /** Seconds of audio queued ahead of `now`. */
  queued(now: number): number {
    return this.next === undefined ? 0 : Math.max(0, this.next - now);
  }

  /** Forgets the order and the queue (a new session or language starts from scratch). */
  reset(): void {
    this.next = undefined;
    this.lastSeq = -Infinity;
  }
}

/** Little-endian signed 16-bit PCM as floats in [-1, 1). */
export function pcm16ToFloat(bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const samples = new Float32Array(bytes.byteLength >> 1);
  for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(i * 2, true) / 0x8000;
  return samples;
}

export function base64Decode(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The parts of an AudioContext the player uses (a fake stands in for it in tests). */
export type PlaybackContext = Pick<BaseAudioContext, "currentTime" | "destination" | "createBuffer" |
  "createBufferSource"> & { baseLatency?: number; outputLatency?: number };

export interface PlayedChunk {
  sequenceNumber: number;
  /** Milliseconds from the chunk's `timestamp` (the server's clock) to when it is heard, or undefined. */
  latency: number | undefined;
}

export interface PcmPlayerOptions extends JitterBufferOptions {
  /** Date.now, replaceable in tests. */
  now?: () => number;
}

/** Plays `audio` messages through a (Web Audio) context, in order, through a JitterBuffer. */
export class PcmPlayer {
  readonly buffer: JitterBuffer;
  /** The latency of the last chunk played, in ms (see PlayedChunk.latency). */
  latency: number | undefined;
  /** When the last chunk arrived (Date.now ms), for "no audio for this language" notices. */
  lastArrival: number | undefined;
  private readonly now: () => number;

  constructor(private readonly context: PlaybackContext, options: PcmPlayerOptions = {}) {
    this.buffer = new JitterBuffer(options);
    this.now = options.now ?? Date.now;
  }

  /**
   * Schedules one audio message. `clockOffset` (the server's clock minus this one, in ms) turns its
   * `timestamp` into this clock; without it, or without a timestamp, the latency is unknown.
   */
  play(message: Record<string, unknown>, clockOffset?: number): PlayedChunk | undefined {
    if (typeof message.audioData !== "string" || typeof message.sequenceNumber !== "number") return undefined;
    const rate = typeof message.sampleRate === "number" ? message.sampleRate : SAMPLE_RATE;
    const samples = pcm16ToFloat(base64Decode(message.audioData));
    if (!samples.length) return undefined;
    const arrived = this.now();
    this.lastArrival = arrived;
    const start = this.buffer.schedule(message.sequenceNumber, samples.length / rate, this.context.currentTime);
    if (start === undefined) return undefined;
    const audio = this.context.createBuffer(1, samples.length, rate);
    audio.getChannelData(0).set(samples);
    const source = this.context.createBufferSource();
    source.buffer = audio;
    source.connect(this.context.destination);
    source.start(start);
    let latency: number | undefined;
    if (typeof message.timestamp === "number" && clockOffset !== undefined) {
      const output = (this.context.outputLatency || this.context.baseLatency || 0) * 1000;
      const heardAt = arrived + (start - this.context.currentTime) * 1000 + output;
      latency = Math.round(heardAt - (message.timestamp - clockOffset));
      this.latency = latency;
    }
    return { sequenceNumber: message.sequenceNumber, latency };
  }

  reset(): void {
    this.buffer.reset();
    this.latency = undefined;
    this.lastArrival = undefined;
  }
}
