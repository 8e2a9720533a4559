"""broadcast-session: speak, listen and manage sessions from a terminal.

    broadcast-session speaker --file talk.wav --language en [--quality standard] [--keep]
        [--[no-]partial-results] [--min-stability 0.85] [--max-buffer-timeout 5.0] [--access link|public]
    broadcast-session listener SESSION_ID [--language es] [--join-key KEY]
    broadcast-session get|delete SESSION_ID
    broadcast-session update SESSION_ID [--status S] [--language L] [--quality Q] [--if-match VERSION]

Stack: --local [stack.json] (the default when .local/stack.json exists) or
--stack NAME --region REGION. Credentials: --username/--password, or
BROADCAST_USERNAME/BROADCAST_PASSWORD; on the local stack, its first user.
Exit status: 0 done, 1 failed, 2 bad command line, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import shlex
import sys
import time
import wave
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .auth import TokenProvider
from .broadcast import start_broadcast
from .config import DEFAULT_STACK_FILE, ClientConfig, load_local_config, load_stack_config
from .errors import (
    BroadcastClientError,
    ConfigurationError,
    NotFound,
    PolicyViolation,
    SpeakerReplaced,
    StreamClosed,
)
from .http_service import SessionHttpService
from .models import LANGUAGES, QUALITY_TIERS, STATUSES, Session
from .ws_client import WebSocketClient

PROG = "broadcast-session"
CHUNK_SECONDS = 0.1


class CliError(Exception):
    """A problem with what the user asked for (a missing file...)."""


@dataclass
class Context:
    """What a command needs; tests build one around fake servers."""

    config: ClientConfig
    username: str | None = None
    password: str | None = None
    token_provider: TokenProvider | None = None  # wins over username/password when set
    http_options: dict[str, Any] = field(default_factory=dict)
    live_options: dict[str, Any] = field(default_factory=dict)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def tokens(self, *, required: bool) -> TokenProvider | None:
        if self.token_provider is not None:
            return self.token_provider
        if not self.username and not self.config.users:
            if required:
                raise ConfigurationError("Sign in with --username and --password (or BROADCAST_USERNAME and "
                                         "BROADCAST_PASSWORD).")
            return None  # an anonymous listener, if the stack allows it
        password = self.password
        local_user = any(self.username in (u.name, u.username) for u in self.config.users)
        if self.username and not password and not local_user and sys.stdin.isatty():
            password = getpass.getpass(f"Password for {self.username}: ")
        self.token_provider = self.config.token_provider(self.username, password)
        return self.token_provider

    def http_service(self, tokens: TokenProvider) -> SessionHttpService:
        # A command's process ends with it, so an offline queue would be lost: fail instead.
        return self.config.http_service(tokens, **{"max_queued": 0, **self.http_options})

    def out(self, text: str = "") -> None:
        print(text, file=self.stdout, flush=True)

    def err(self, text: str) -> None:
        print(text, file=self.stderr, flush=True)


# ------------------------------------------------------------------- speaker


def read_wav_format(path: str) -> tuple[int, int, int, float]:
    """(channels, sample width in bytes, frame rate, duration in seconds), or CliError."""
    try:
        with wave.open(path, "rb") as wav:
            rate = wav.getframerate()
            return wav.getnchannels(), wav.getsampwidth(), rate, wav.getnframes() / rate
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except (wave.Error, EOFError, OSError, ZeroDivisionError) as exc:
        raise CliError(f"{path} is not a WAV file this tool can read ({exc or type(exc).__name__}).") from None


async def stream_wav(path: str, send: Callable[[bytes], Awaitable[Any]], *,
                     progress: Callable[[float, float], None] | None = None,
                     chunk_seconds: float = CHUNK_SECONDS, clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> int:
    """Sends the WAV's audio frames in chunks of ``chunk_seconds``, in real time. Returns the chunk count."""
    with wave.open(path, "rb") as wav:
        rate = wav.getframerate()
        frame_bytes = wav.getnchannels() * wav.getsampwidth()
        per_chunk = max(1, round(rate * chunk_seconds))
        duration = wav.getnframes() / rate
        start, sent_frames, chunks = clock(), 0, 0
        while data := wav.readframes(per_chunk):
            await send(data)
            chunks += 1
            sent_frames += len(data) // frame_bytes
            if progress:
                progress(sent_frames / rate, duration)
            # Each chunk leaves when its audio would start playing, so waits never add up to drift.
            delay = start + sent_frames / rate - clock()
            if delay > 0:
                await sleep(delay)
    return chunks


class ProgressBar:
    """Plain stderr progress: redrawn in place on a terminal, a line per 10% otherwise."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream, self._width = stream, width
        self._tty = stream.isatty()
        self._last_step = -1
        self.listeners: int | None = None

    def __call__(self, done: float, total: float) -> None:
        fraction = min(1.0, done / total) if total else 1.0
        listeners = f"  {self.listeners} listener(s)" if self.listeners is not None else ""
        text = f"{_clock(done)} / {_clock(total)}{listeners}"
        if self._tty:
            filled = round(fraction * self._width)
            self._stream.write(f"\r[{'#' * filled}{'.' * (self._width - filled)}] {text}  ")
            self._stream.flush()
        elif int(fraction * 10) > self._last_step:
            self._last_step = int(fraction * 10)
            print(f"{self._last_step * 10:3d}%  {text}", file=self._stream, flush=True)

    def finish(self) -> None:
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()


async def run_speaker(ctx: Context, args: argparse.Namespace) -> int:
    channels, width, rate, duration = read_wav_format(args.file)
    tokens = ctx.tokens(required=True)
    assert tokens is not None
    websocket_url = ctx.config.require_websocket_url()
    async with ctx.http_service(tokens) as http:
        broadcast = await start_broadcast(http, websocket_url, tokens, source_language=args.language,
                                          quality_tier=args.quality, partial_results_enabled=args.partial_results,
                                          min_stability_threshold=args.min_stability,
                                          max_buffer_timeout=args.max_buffer_timeout, access=args.access,
                                          **ctx.live_options)
        live, session_id, key = broadcast.live, broadcast.session_id, broadcast.session.join_key
        ctx.out(f"Session {session_id} is live ({args.language}, {args.quality}).")
        # A link session's key is in every listener link: anonymous listeners need it.
        ctx.out("Listeners join with:")
        ctx.out(f"  {_command(ctx.config, 'listener', session_id, *(['--join-key', key] if key else []))} "
                f"[--language es]")
        ctx.out(f"Front-ends connect to: {websocket_url}?sessionId={session_id}&role=listener"
                f"{f'&joinKey={key}' if key else ''}")
        ctx.err(f"Streaming {args.file}: {_clock(duration)}, {rate} Hz, {channels} channel(s), "
                f"{width * 8}-bit, {round(CHUNK_SECONDS * 1000)} ms chunks.")
        bar = ProgressBar(ctx.stderr)
        watcher = asyncio.create_task(_watch_speaker(ctx, live, bar))
        end_session, failed = not args.keep, True
        try:
            await stream_wav(args.file, live.send_audio, progress=bar, clock=ctx.clock, sleep=ctx.sleep)
            await live.drain()
            await live.settle()  # the server handled the last chunks before the session ends
            failed = False
        except SpeakerReplaced:
            end_session = False  # the newer connection owns the broadcast now
            raise
        except StreamClosed:
            if not live.session_ended:
                raise
        finally:
            bar.finish()
            await live.close()
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            if live.session_ended:
                pass  # ended elsewhere: nothing to end
            elif end_session:
                try:
                    await http.delete_session(session_id)
                    ctx.out(f"Session {session_id} ended.")
                except BroadcastClientError as exc:
                    if not failed:
                        raise
                    ctx.err(f"Could not end session {session_id}: {exc}")
            else:
                ctx.out(f"Session {session_id} is still open; end it with: "
                        f"{_command(ctx.config, 'delete', session_id)}")
        if live.session_ended:
            ctx.err(f"Session {session_id} was ended before the file finished.")
            return 1
        ctx.err(f"Sent {live.next_seq} chunk(s).")
    return 0


async def _watch_speaker(ctx: Context, live: WebSocketClient, bar: ProgressBar) -> None:
    """Shows the listener count on the progress bar and server errors on stderr."""
    async for message in live.messages():
        if message.get("type") == "status" and isinstance(message.get("listenerCount"), int):
            bar.listeners = message["listenerCount"]
        elif message.get("type") == "error":
            ctx.err(f"\nserver: {message.get('code')}: {message.get('message')}")


# ------------------------------------------------------------------ listener


async def run_listener(ctx: Context, args: argparse.Namespace) -> int:
    tokens = ctx.tokens(required=False)
    live = ctx.config.websocket_client(args.session_id, role="listener", token_provider=tokens,
                                       target_language=args.language, join_key=args.join_key, **ctx.live_options)
    try:
        await live.connect()
    except PolicyViolation as exc:
        raise CliError((await _explain_refusal(ctx, tokens, args.session_id, exc))[0]) from None
    ended = f"Session {args.session_id} ended."
    try:
        ctx.out(f"Listening to session {args.session_id}{f' in {args.language}' if args.language else ''}. "
                f"Ctrl-C to leave.")
        last: tuple[Any, Any] | None = None
        async for message in live.messages():
            kind = message.get("type")
            if kind == "status":
                state = (message.get("status"), message.get("listenerCount"))
                if state != last:
                    ctx.out(f"{time.strftime('%H:%M:%S')}  {state[0]}, {state[1]} listener(s)")
                    last = state
            elif kind == "sessionEnded":
                ctx.out(f"{time.strftime('%H:%M:%S')}  {ended}")
                return 0
            elif kind == "error":
                ctx.err(f"server: {message.get('code')}: {message.get('message')}")
    except PolicyViolation as exc:
        # Refused on a reconnection: usually the session ended while the socket was down.
        explanation, has_ended = await _explain_refusal(ctx, tokens, args.session_id, exc)
        if not has_ended:
            raise CliError(explanation) from None
        ctx.out(f"{time.strftime('%H:%M:%S')}  {ended}")
    finally:
        await live.close()
    return 0


async def _explain_refusal(ctx: Context, tokens: TokenProvider | None, session_id: str,
                           refusal: PolicyViolation) -> tuple[str, bool]:
    """Why a 403 happened, as far as the HTTP API can tell (it needs a token), and whether the session ended."""
    if refusal.status == 403 and tokens is None:
        # The service answers a missing session and a missing or wrong key alike, on purpose.
        return (f"Session {session_id} refused the connection: it does not exist, has ended or is full, or it "
                f"needs the key of its listener link (--join-key) or a signed-in listener."), False
    if refusal.status != 403 or tokens is None:
        return str(refusal), False
    try:
        async with ctx.http_service(tokens) as http:
            session = await http.get_session(session_id)
    except NotFound:
        return f"There is no session {session_id} (or it has expired).", False
    except BroadcastClientError:
        return str(refusal), False
    if session.status == "ended":
        return f"Session {session_id} has ended.", True
    return (f"Session {session_id} refused the connection; it may be full "
            f"({session.listener_count} listeners)."), False


# ------------------------------------------------------------------ get/update/delete


async def run_get(ctx: Context, args: argparse.Namespace) -> int:
    async with _http(ctx) as http:
        _print_session(ctx, await http.get_session(args.session_id))
    return 0


async def run_update(ctx: Context, args: argparse.Namespace) -> int:
    if not (args.status or args.language or args.quality):
        raise CliError("Nothing to change: give --status, --language or --quality.")
    async with _http(ctx) as http:
        _print_session(ctx, await http.update_session(args.session_id, status=args.status,
                                                      source_language=args.language, quality_tier=args.quality,
                                                      if_match=args.if_match))
    return 0


async def run_delete(ctx: Context, args: argparse.Namespace) -> int:
    async with _http(ctx) as http:
        await http.delete_session(args.session_id)
    ctx.out(f"Session {args.session_id} ended.")
    return 0


def _http(ctx: Context) -> SessionHttpService:
    tokens = ctx.tokens(required=True)
    assert tokens is not None
    return ctx.http_service(tokens)


def _print_session(ctx: Context, session: Session) -> None:
    ctx.out(json.dumps(session.to_json(), indent=2))


def _command(config: ClientConfig, *words: str) -> str:
    return shlex.join([PROG, *words, *config.cli_args])


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60:d}:{int(seconds) % 60:02d}"


# ---------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("stack")
    where.add_argument("--local", nargs="?", const=str(DEFAULT_STACK_FILE), metavar="STACK_JSON",
                       help=f"the local stack (default when {DEFAULT_STACK_FILE} exists)")
    where.add_argument("--stack", default=os.environ.get("BROADCAST_STACK"), metavar="NAME",
                       help="a deployed stack's name (env BROADCAST_STACK)")
    where.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
                       help="the deployed stack's region (env AWS_REGION)")
    who = common.add_argument_group("sign-in")
    who.add_argument("--username", default=os.environ.get("BROADCAST_USERNAME"),
                     help="Cognito user (env BROADCAST_USERNAME; local stack: its first user)")
    who.add_argument("--password", default=os.environ.get("BROADCAST_PASSWORD"),
                     help="(env BROADCAST_PASSWORD; asked for when missing on a terminal)")
    common.add_argument("-v", "--verbose", action="store_true", help="log retries and reconnections")

    parser = argparse.ArgumentParser(prog=PROG, description="Live translated-audio broadcast sessions.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    speaker = commands.add_parser("speaker", parents=[common], help="broadcast a WAV file in real time")
    speaker.add_argument("--file", required=True, help="a PCM WAV file")
    speaker.add_argument("--language", required=True, choices=LANGUAGES, metavar="LANG",
                         help="the language spoken (ISO 639-1: en, es, ...)")
    speaker.add_argument("--quality", default="standard", choices=QUALITY_TIERS)
    speaker.add_argument("--partial-results", action=argparse.BooleanOptionalAction,
                         help="whether listeners get partial results (default: the service's, on)")
    speaker.add_argument("--min-stability", type=float, metavar="0.70-0.95",
                         help="stability a partial result needs (default: the service's, 0.85)")
    speaker.add_argument("--max-buffer-timeout", type=float, metavar="SECONDS",
                         help="2.0-10.0 s the pipeline may buffer before a result (default: the service's, 5.0)")
    speaker.add_argument("--keep", action="store_true", help="leave the session open at the end")
    speaker.add_argument("--access", choices=("link", "public"),
                         help="link (the service's default): anonymous listeners need the printed link's key; "
                              "public: the session ID is enough")
    speaker.set_defaults(run=run_speaker)

    listener = commands.add_parser("listener", parents=[common], help="follow a session until it ends")
    listener.add_argument("session_id")
    listener.add_argument("--language", choices=LANGUAGES, metavar="LANG", help="the language to hear it in")
    listener.add_argument("--join-key", metavar="KEY",
                          help="the key of the session's listener link (an anonymous listener of a link session)")
    listener.set_defaults(run=run_listener)

    get = commands.add_parser("get", parents=[common], help="show a session")
    get.add_argument("session_id")
    get.set_defaults(run=run_get)

    update = commands.add_parser("update", parents=[common], help="change a session (its speaker only)")
    update.add_argument("session_id")
    update.add_argument("--status", choices=STATUSES)
    update.add_argument("--language", choices=LANGUAGES, metavar="LANG", help="the source language")
    update.add_argument("--quality", choices=QUALITY_TIERS)
    update.add_argument("--if-match", type=int, metavar="VERSION", help="fail if the session changed since")
    update.set_defaults(run=run_update)

    delete = commands.add_parser("delete", parents=[common], help="end a session (its speaker only)")
    delete.add_argument("session_id")
    delete.set_defaults(run=run_delete)
    return parser


def resolve_config(args: argparse.Namespace) -> ClientConfig:
    if args.local and args.stack:
        raise CliError("Choose either --local or --stack, not both.")
    if args.stack:
        if not args.region:
            raise CliError("--stack needs --region (or AWS_REGION).")
        return load_stack_config(args.stack, args.region)
    if args.local or DEFAULT_STACK_FILE.exists():
        return load_local_config(Path(args.local or DEFAULT_STACK_FILE).resolve())
    raise CliError(f"No stack chosen: start the local stack (`make dev`, which writes {DEFAULT_STACK_FILE}) "
                   f"or pass --stack NAME --region REGION.")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        ctx = Context(resolve_config(args), username=args.username, password=args.password)
        command: Callable[[Context, argparse.Namespace], Coroutine[Any, Any, int]] = args.run
        return asyncio.run(command(ctx, args))
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except (BroadcastClientError, CliError) as exc:
        print(f"\nerror: {exc}" if args.command == "speaker" else f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
