"""Audio path: sendAudio on the speaker's socket -> the record visible in the Kinesis stream, with one
speaker and with SPEAKERS speakers at RATE messages a second each (each speaker its own session),
beside raw Kinesis PutRecord calls (boto3, same endpoint, THREADS threads at RATE a second each) in
the same run.

Visibility is observed by polling: a background thread reads every shard with GetRecords, starting
from LATEST iterators and following NextShardIterator (AFTER_SEQUENCE_NUMBER after an error),
continuously (no sleep), and matches records by (sessionId, seq). Polling adds its own delay (up to
one pass over the shards, plus a GetRecords round trip), so the suite also reports

- the server-side part, forwardedAt (stamped by the function just before its PutRecord) minus the
  client's send time, both epoch milliseconds from this machine's clock;
- the raw PutRecord records' own put -> visible time through the same poller, and the poller's pass
  time, so the reader can see how much of the end-to-end figure is observation, not the service.

Messages go out on a fixed schedule (send i at start + i / RATE), not "sleep after each send", so a
slow server shows up as latency instead of silently lowering the load.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

from .stats import row, summary
from .support import Reports, create_sessions, end_session, id_token, settle
from .websocket import ws_connect

SPEAKERS = 20
THREADS = 20
RATE = 10.0  # messages (or PutRecords) a second, per speaker (or thread)
LOAD_SECONDS = 10.0  # 20 x 10/s x 10 s = 2,000 samples
SINGLE_SECONDS = 20.0  # 1 speaker: 200 samples
CHUNK_BYTES = 3200  # 100 ms of 16 kHz 16-bit mono PCM
POLL_SLEEP = 0.0  # s between passes over the shards: none, the delay to see a record is the point
DRAIN_TIMEOUT = 30.0  # s to wait for the last records after the last send
GOAL_MS = 20.0


def _kinesis(info: dict):
    return boto3.session.Session().client(
        "kinesis", endpoint_url=info["awsEndpointUrl"], region_name=info["region"],
        aws_access_key_id="local", aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=THREADS + 4))


class KinesisWatcher:
    """Background thread: every shard, GetRecords in a loop; seen[(sessionId, seq)] = (perf, epoch ms)."""

    def __init__(self, info: dict) -> None:
        self.client = _kinesis(info)
        self.stream = info["audioStreamName"]
        # (sessionId, seq) -> (perf_counter, epoch ms when seen, forwardedAt, receivedAt)
        self.seen: dict[tuple[str, int], tuple] = {}
        self.passes: list[float] = []  # ms per pass over all shards
        self.errors = 0
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared: paused (so settle() sees the stack's own load)
        self._running.set()
        self._iterators: dict[str, str] = {}
        self._last_seq: dict[str, str] = {}
        shards = self.client.list_shards(StreamName=self.stream)["Shards"]
        for shard in shards:
            self._iterators[shard["ShardId"]] = self._iterator(shard["ShardId"])
        self._thread = threading.Thread(target=self._run, name="kinesis-watcher", daemon=True)

    def _iterator(self, shard_id: str) -> str:
        if shard_id in self._last_seq:
            return self.client.get_shard_iterator(
                StreamName=self.stream, ShardId=shard_id, ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                StartingSequenceNumber=self._last_seq[shard_id])["ShardIterator"]
        return self.client.get_shard_iterator(StreamName=self.stream, ShardId=shard_id,
                                              ShardIteratorType="LATEST")["ShardIterator"]

    def start(self) -> KinesisWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        self._thread.join(30)

    def paused_settle(self, info: dict) -> None:
        self._running.clear()
        try:
            settle(info)
        finally:
            self._running.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._running.wait()
            if POLL_SLEEP:
                time.sleep(POLL_SLEEP)
            started = time.perf_counter()
            for shard_id, iterator in list(self._iterators.items()):
                try:
                    page = self.client.get_records(ShardIterator=iterator, Limit=10000)
                except Exception:  # noqa: BLE001 - expired iterator, moto hiccup: resume after the last seen
                    self.errors += 1
                    self._iterators[shard_id] = self._iterator(shard_id)
                    continue
                now_perf, now_ms = time.perf_counter(), time.time() * 1000
                for record in page["Records"]:
                    self._last_seq[shard_id] = record["SequenceNumber"]
                    try:
                        body = json.loads(record["Data"])
                        key = (body["sessionId"], int(body["seq"]))
                    except (ValueError, KeyError, TypeError):
                        continue
                    self.seen.setdefault(key, (now_perf, now_ms, body.get("forwardedAt"), body.get("receivedAt")))
                self._iterators[shard_id] = page["NextShardIterator"]
            self.passes.append((time.perf_counter() - started) * 1000)

    def wait_for(self, keys: list[tuple[str, int]], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(key not in self.seen for key in keys):
            time.sleep(0.05)


def _chunk() -> str:
    return base64.b64encode(os.urandom(CHUNK_BYTES)).decode()


# -------------------------------------------------------------------- the stack


async def _speak(url: str, session_id: str, count: int, start: float, sent: dict, problems: list) -> None:
    data = _chunk()
    async with ws_connect(url) as ws:
        async def read() -> None:  # success is silent; anything back is an error message
            async for message in ws:
                problems.append(message)

        reader = asyncio.create_task(read())
        for seq in range(count):
            delay = start + seq / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            message = json.dumps({"action": "sendAudio", "seq": seq, "data": data})
            sent[(session_id, seq)] = (time.perf_counter(), time.time() * 1000)
            await ws.send(message)
        await asyncio.sleep(1.0)  # an error for the last messages still gets here
        reader.cancel()


async def _speakers(info: dict, token: str, sessions: list[str], seconds: float) -> tuple[dict, list]:
    sent: dict = {}
    problems: list = []
    count = int(seconds * RATE)
    # Connect everyone first, then start the clocks together (staggered within one period).
    start = time.perf_counter() + 2.0
    await asyncio.gather(*(
        _speak(f"{info['webSocketUrl']}?sessionId={sid}&role=speaker&token={token}", sid, count,
               start + i / (RATE * len(sessions)), sent, problems)
        for i, sid in enumerate(sessions)))
    return sent, problems


def _stack_samples(info: dict, watcher: KinesisWatcher, token: str, sessions: list[str], seconds: float) -> dict:
    sent, problems = asyncio.run(_speakers(info, token, sessions, seconds))
    watcher.wait_for(list(sent), DRAIN_TIMEOUT)
    e2e, server, after_forward = [], [], []
    for key, (send_perf, send_ms) in sent.items():
        if key in watcher.seen:
            seen_perf, seen_ms, forwarded_at, _ = watcher.seen[key]
            e2e.append((seen_perf - send_perf) * 1000)
            if forwarded_at is not None:
                server.append(forwarded_at - send_ms)
                after_forward.append(seen_ms - forwarded_at)
    # Throughput: records forwarded while the speakers were sending, per second of that window.
    first_ms = min(ms for _, ms in sent.values())
    last_ms = max(ms for _, ms in sent.values())
    forwarded = [v[2] for k, v in watcher.seen.items() if k in sent and v[2] is not None]
    in_window = sum(first_ms <= f <= last_ms for f in forwarded)
    return {"e2e": e2e, "server": server, "after_forward": after_forward, "sent": len(sent),
            "lost": len(sent) - len(e2e), "errors": problems,
            "offered_per_s": len(sent) / ((last_ms - first_ms) / 1000),
            "forwarded_per_s": in_window / ((last_ms - first_ms) / 1000)}


# --------------------------------------------------------------------- raw Kinesis


def _raw_samples(info: dict, watcher: KinesisWatcher, threads: int, seconds: float) -> dict:
    client = _kinesis(info)
    stream = info["audioStreamName"]
    count = int(seconds * RATE)
    data = _chunk()
    put: list[float] = []
    sent: dict = {}
    start = time.perf_counter() + 0.5
    run_id = os.urandom(4).hex()

    def worker(index: int) -> None:
        session_id = f"raw-{run_id}-{index}"
        first = start + index / (RATE * threads)
        for seq in range(count):
            delay = first + seq / RATE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = json.dumps({"sessionId": session_id, "seq": seq, "receivedAt": int(time.time() * 1000),
                               "forwardedAt": int(time.time() * 1000), "sourceLanguage": "en",
                               "qualityTier": "standard", "audio": data}).encode()
            began = time.perf_counter()
            client.put_record(StreamName=stream, PartitionKey=session_id, Data=body)
            put.append((time.perf_counter() - began) * 1000)
            sent[(session_id, seq)] = began

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    watcher.wait_for(list(sent), DRAIN_TIMEOUT)
    visible = [(watcher.seen[key][0] - began) * 1000 for key, began in sent.items() if key in watcher.seen]
    return {"put": put, "visible": visible}


def run(info: dict) -> list[dict]:
    token = id_token(info)
    sessions = create_sessions(info, token, SPEAKERS + 1)
    single_session, load_sessions = sessions[:1], sessions[1:]
    reports = Reports(info)
    watcher = KinesisWatcher(info).start()
    try:
        watcher.paused_settle(info)
        half = LOAD_SECONDS / 2
        raw_single = _raw_samples(info, watcher, 1, SINGLE_SECONDS / 2)
        raw = _raw_samples(info, watcher, THREADS, half)
        watcher.paused_settle(info)
        reports.mark("WsSendAudioFunction")
        single = _stack_samples(info, watcher, token, single_session, SINGLE_SECONDS)
        single["function_ms"] = reports.durations("WsSendAudioFunction")
        watcher.paused_settle(info)
        reports.mark("WsSendAudioFunction")
        load = _stack_samples(info, watcher, token, load_sessions, LOAD_SECONDS)
        load["function_ms"] = reports.durations("WsSendAudioFunction")
        watcher.paused_settle(info)
        raw_again = _raw_samples(info, watcher, THREADS, half)  # before and after: drift shows
    finally:
        watcher.stop()
    for key in raw:
        raw[key] += raw_again[key]
    for session_id in sessions:
        end_session(info, token, session_id)

    rows = []
    for result, baseline, label in ((single, raw_single, "1 speaker"),
                                    (load, raw, f"{SPEAKERS} speakers x {RATE:g}/s")):
        e2e = summary(result["e2e"])
        name = f"audio send -> visible in Kinesis, {label}, vs raw PutRecord"
        if result["lost"] or result["errors"]:
            name += f" [{result['lost']} of {result['sent']} never seen, {len(result['errors'])} error messages]"
        rows.append(row(name, e2e, summary(baseline["put"]), goal=f"p95 <= {GOAL_MS:g} ms",
                        met=e2e["p95"] <= GOAL_MS and not result["lost"]) | {
                            "sent": result["sent"], "errors": result["errors"][:5]})
        rows.append(row(f"↳ server part (send -> forwardedAt), {label}", summary(result["server"])))
        rows.append(row(f"↳ forwardedAt -> seen by the poller, {label}", summary(result["after_forward"])))
        rows.append(row(f"↳ raw PutRecord -> seen by the poller, {label.split(' x ')[0].replace('speaker', 'thread')}",
                        summary(baseline["visible"])))
        rows.append(row(f"↳ WsSendAudioFunction, per its REPORT, {label}", summary(result["function_ms"])))
        # Below the offered rate: the stack forwards slower than the speakers send, and the latency
        # grows for as long as they keep sending.
        rows.append(row(f"↳ forwarded while sending, {label} (offered {result['offered_per_s']:.0f}/s)",
                        {"n": result["sent"], "p50": result["forwarded_per_s"], "p95": None}, unit="msg/s"))
    rows.append(row("↳ Kinesis poller, one pass over all shards", summary(watcher.passes)) | {
        "errors": watcher.errors})
    return rows
