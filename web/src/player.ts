/**
 * Playback of the listener's audio messages (16 kHz 16-bit mono PCM chunks) with Web Audio.
 *
 * Chunks arrive in bursts (network, server, the event loop); played the moment they arrive, each burst
 * would overlap and each lull would click. The jitter buffer schedules every chunk right after the one
 * before, starting `targetDelay` seconds ahead of the clock: that much arrival jitter is absorbed. When
 * the buffer runs dry (the speaker paused, the network stalled) the next chunk starts `targetDelay`
 * ahead again; when more than `maxDelay` is queued (a burst after a stall), chunks are dropped until it
 * is not. A chunk older than one already scheduled (a repeat, or one overtaken) is dropped: live audio
 * is never played twice or backwards.
 *
 * `targetDelay` follows the jitter it sees: over the last JITTER_WINDOW chunks, how far the 95th percentile
 * of their transit times (arrival minus the stream's own clock, as RTP receivers judge jitter) is above the
 * least, plus a margin, between `minDelay` and `maxDelay`. One chunk in twenty may come later than that: it
 * finds the buffer dry and playback restarts (a short gap), rather than every chunk waiting for the worst
 * one (the trade voice-over-IP jitter buffers make). A quiet path (a local stack, a wired network) plays sooner; a jittery one (a
 * phone) waits longer instead of running dry. A pause starts the judging over.
 *
 * A late chunk leaves the queue longer than `targetDelay` for good: audio arrives as fast as it plays,
 * so nothing drains it, and every late arrival would add its lateness to what the listener hears
 * (up to `maxDelay`). So the player drains the surplus where it cannot be heard: from the quiet
 * stretches of the chunks it schedules (speech pauses), it cuts up to the surplus, keeping the edges of
 * each quiet stretch (`cutQuiet`). Loud audio is never cut, so in unbroken sound the surplus waits for
 * the next pause.
 */
import { SAMPLE_RATE } from "./audio.js";

export const DEFAULT_TARGET_DELAY = 0.08;
export const DEFAULT_MAX_DELAY = 0.25;
export const DEFAULT_MIN_DELAY = 0.04;
/** Chunks over which the jitter is judged (about 5 s of 100 ms chunks); until JITTER_SETTLED, the first targetDelay. */
const JITTER_WINDOW = 50;
const JITTER_SETTLED = 20;
export const DEFAULT_JITTER_QUANTILE = 0.95;
/** Added to the jitter seen: what the window may not have shown yet. */
const JITTER_MARGIN = 0.01;
/** A chunk that finds the buffer dry for longer than this comes after a pause or a stall, not jitter. */
const PAUSE = 0.5;
/** Below this (about -40 dBFS) a sample is quiet: a stretch of them can be shortened unheard. */
export const QUIET_LEVEL = 0.01;
/** Samples kept at each end of a quiet stretch that is shortened (2 ms at 16 kHz): its edges stay smooth. */
const QUIET_EDGE = 32;
/** Surplus (seconds beyond targetDelay) below which nothing is cut: not worth touching the audio for. */
const SURPLUS_SLACK = 0.01;

export interface JitterBufferOptions {
  /** Seconds scheduled ahead of the clock when playback (re)starts, until the jitter has been seen. */
  targetDelay?: number;
  /** The least targetDelay the jitter seen may bring it down to. */
  minDelay?: number;
  /** Seconds queued beyond which chunks are dropped. */
  maxDelay?: number;
  /**
   * The share of recent chunks the lead covers (0.5–1): 1 waits for the latest of the last 50, so playback
   * rarely runs dry but every chunk is as late as the worst; the default 0.95 lets one in twenty cause a gap.
   */
  jitterQuantile?: number;
}

/** Where each chunk goes on the clock; pure arithmetic, so it is tested without an AudioContext. */
export class JitterBuffer {
  /** Seconds scheduled ahead when playback (re)starts; the queue is drained back to it (PcmPlayer). */
  targetDelay: number;
  readonly minDelay: number;
  readonly maxDelay: number;
  readonly jitterQuantile: number;
  /** Chunks dropped: repeats, overtaken ones, and those beyond maxDelay. */
  dropped = 0;
  /** Times the buffer ran dry while playing. */
  underruns = 0;
  private next: number | undefined; // when the scheduled audio ends
  private lastSeq = -Infinity;
  private readonly initialDelay: number;
  /** Each recent chunk's transit: when it arrived, minus the seconds of stream before it (`stream`). */
  private transits: number[] = [];
  private stream = 0;

  constructor(options: JitterBufferOptions = {}) {
    this.targetDelay = this.initialDelay = options.targetDelay ?? DEFAULT_TARGET_DELAY;
    this.maxDelay = options.maxDelay ?? DEFAULT_MAX_DELAY;
    this.minDelay = Math.min(options.minDelay ?? DEFAULT_MIN_DELAY, this.targetDelay);
    this.jitterQuantile = options.jitterQuantile ?? DEFAULT_JITTER_QUANTILE;
    if (!(this.minDelay >= 0) || !(this.maxDelay >= this.targetDelay)) {
      throw new RangeError("need 0 <= minDelay <= targetDelay <= maxDelay");
    }
    if (!(this.jitterQuantile >= 0.5 && this.jitterQuantile <= 1)) throw new RangeError("need 0.5 <= jitterQuantile <= 1");
  }

  /**
   * When to start a chunk of `duration` seconds with sequence number `seq`, or undefined to drop it.
   * `streamed`: the seconds of the stream it stands for, when quiet was cut from it (PcmPlayer).
   */
  schedule(seq: number, duration: number, now: number, streamed = duration): number | undefined {
    if (seq <= this.lastSeq) {
      this.dropped += 1;
      return undefined;
    }
    this.lastSeq = seq;
    this.observe(now, streamed);
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

  /** Learns the jitter from a chunk's arrival. */
  private observe(now: number, streamed: number): void {
    if (this.next !== undefined && this.next < now - PAUSE) { // after a pause: transits are not comparable
      this.transits = [];
      this.stream = 0;
    }
    this.transits.push(now - this.stream);
    this.stream += streamed;
    if (this.transits.length > JITTER_WINDOW) this.transits.shift();
    if (this.transits.length < JITTER_SETTLED) return;
    const sorted = [...this.transits].sort((a, b) => a - b);
    const jitter = sorted[Math.ceil(sorted.length * this.jitterQuantile) - 1]! - sorted[0]!;
    this.targetDelay = Math.min(this.maxDelay, Math.max(this.minDelay, jitter + JITTER_MARGIN));
  }

  /** Seconds of audio queued ahead of `now`. */
  queued(now: number): number {
    return this.next === undefined ? 0 : Math.max(0, this.next - now);
  }

  /** Seconds queued beyond targetDelay at `now` (what a late chunk left behind), 0 if none worth cutting. */
  surplus(now: number): number {
    const surplus = this.queued(now) - this.targetDelay;
    return surplus > SURPLUS_SLACK ? surplus : 0;
  }

  /** Forgets the order and the queue (a new session or language starts from scratch). */
  reset(): void {
    this.next = undefined;
    this.lastSeq = -Infinity;
    this.transits = [];
    this.stream = 0;
    this.targetDelay = this.initialDelay;
  }
}

/** Little-endian signed 16-bit PCM as floats in [-1, 1). */
export function pcm16ToFloat(bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const samples = new Float32Array(bytes.byteLength >> 1);
  for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(i * 2, true) / 0x8000;
  return samples;
}

/**
 * `samples` with up to `most` samples cut from its quiet stretches (|x| < QUIET_LEVEL), each stretch keeping
 * QUIET_EDGE samples at both ends; the same array when nothing is cut.
 */
export function cutQuiet(samples: Float32Array, most: number): Float32Array {
  if (most < 1) return samples;
  const out = new Float32Array(samples.length);
  let kept = 0;
  let cut = 0;
  for (let i = 0; i < samples.length;) {
    let j = i;
    while (j < samples.length && Math.abs(samples[j]!) < QUIET_LEVEL) j++;
    if (j === i) { // a loud sample: kept
      out[kept++] = samples[i++]!;
      continue;
    }
    const removed = Math.min(most - cut, Math.max(0, j - i - 2 * QUIET_EDGE));
    const head = Math.floor((j - i - removed) / 2);
    out.set(samples.subarray(i, i + head), kept);
    out.set(samples.subarray(i + head + removed, j), kept + head);
    kept += j - i - removed;
    cut += removed;
    i = j;
  }
  return cut ? out.slice(0, kept) : samples;
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
  /** Seconds of quiet cut to drain the jitter buffer's surplus. */
  drained = 0;
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
    const decoded = pcm16ToFloat(base64Decode(message.audioData));
    if (!decoded.length) return undefined;
    const arrived = this.now();
    this.lastArrival = arrived;
    const samples = cutQuiet(decoded, Math.floor(this.buffer.surplus(this.context.currentTime) * rate));
    const start = this.buffer.schedule(message.sequenceNumber, samples.length / rate, this.context.currentTime,
      decoded.length / rate);
    if (start === undefined) return undefined;
    this.drained += (decoded.length - samples.length) / rate;
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
    this.drained = 0;
  }
}
