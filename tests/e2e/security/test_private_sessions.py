"""Who can join a session without its link, how many sessions one user can hold, and who can sign up.

- A guessing client (anonymous, many IDs, with and without keys) gets one answer for everything and joins
  nothing; the three refusals (no key, a wrong key, no such session) are identical in status and body, and
  take the same time within TIMING_BOUND_MS (medians over TIMING_TRIES interleaved tries each).
- A stolen session ID alone lets no anonymous client in, in any of the three dialects; the key does.
- The per-user cap (a stack of its own, MaxLiveSessionsPerUser=2): the next create is 429, ending one frees
  a place, racing creates never pass it; sign-up is refused by default and open with AllowSelfSignUp=true.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import string
import time
import uuid

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from websockets.exceptions import InvalidStatus
from websockets.sync import client as ws_client

from tests.e2e.conftest import DEPLOYED_STACK, StackInBackground

from .conftest import new_session, suite, ws_url

GUESS = "security/private"
GUESSES = 60  # IDs a guessing client tries, each without a key, with a random key and with another session's
TIMING_TRIES = 12
# The three refusals' median handshake times differ by at most this much (ms), or by 25 % of the overall
# median when that is larger: the local stack on a shared two-core machine jitters by tens of ms.
TIMING_BOUND_MS = 40.0


def handshake(stack, **query) -> tuple[int, bytes]:
    """(status, body) of a WebSocket handshake; (101, b"") when it was accepted (the socket is closed again)."""
    try:
        with ws_client.connect(ws_url(stack, **query), open_timeout=30, max_size=None, close_timeout=5) as ws:
            ws.close()
            return 101, b""
    except InvalidStatus as refusal:
        return refusal.response.status_code, bytes(refusal.response.body or b"")


def random_id(rng: random.Random) -> str:
    words = ["amber", "brave", "calm", "dusty", "eager", "frosty", "gentle", "hollow"]
    nouns = ["otter", "falcon", "maple", "harbor", "comet", "meadow", "lantern", "quartz"]
    return f"{rng.choice(words)}-{rng.choice(nouns)}-{rng.randrange(100, 1000)}"


def random_key(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(32))


def listener_count(api, stack, session_id: str) -> int:
    return api.get(f"/sessions/{session_id}", headers=stack.auth()).json()["listenerCount"]


def test_a_guessing_client_learns_nothing_and_joins_nothing(api, stack):
    target, other = new_session(api, stack), new_session(api, stack)
    rng = random.Random(20261207)
    attempts = [{"sessionId": target["sessionId"]}, {"sessionId": target["sessionId"], "joinKey": random_key(rng)},
                {"sessionId": target["sessionId"], "joinKey": other["joinKey"]},
                {"sessionId": target["sessionId"], "joinKey": target["joinKey"][:-4]}]
    for _ in range(GUESSES):
        guessed = random_id(rng)
        attempts += [{"sessionId": guessed}, {"sessionId": guessed, "joinKey": random_key(rng)},
                     {"sessionId": guessed, "joinKey": target["joinKey"]}]
    rng.shuffle(attempts)
    answers = set()
    with suite(GUESS) as check:
        for query in attempts:
            for dialect in ({"role": "listener"}, {}):  # native; the hybrid front-end names no role
                status, body = handshake(stack, **dialect, **query)
                answers.add((status, body))
                check(status == 403, f"{dialect} {query}: {status}")
        check(len(answers) == 1, f"the refusals differ: {answers}")
        check(listener_count(api, stack, target["sessionId"]) == 0, "a guess joined the session")
        # The positive control: the link's key lets the same anonymous client in.
        status, _ = handshake(stack, sessionId=target["sessionId"], role="listener", joinKey=target["joinKey"])
        check(status == 101, f"the key was refused: {status}")


def test_the_three_refusals_are_identical_in_status_body_and_time(api, stack):
    session = new_session(api, stack)
    kinds = {"no key": {"sessionId": session["sessionId"]},
             "wrong key": {"sessionId": session["sessionId"], "joinKey": "W" * 32},
             "no session": {"sessionId": "absent-otter-123", "joinKey": session["joinKey"]}}
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    answers: dict[str, set] = {kind: set() for kind in kinds}
    for kind, query in kinds.items():  # warm every path first (cold workers)
        handshake(stack, role="listener", **query)
    for _ in range(TIMING_TRIES):
        for kind in random.sample(list(kinds), len(kinds)):  # interleaved, in a new order each round
            started = time.perf_counter()
            answers[kind].add(handshake(stack, role="listener", **kinds[kind]))
            times[kind].append((time.perf_counter() - started) * 1000)
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    print(f"refusal handshake medians over {TIMING_TRIES} tries (ms): "
          + ", ".join(f"{kind} {median:.1f}" for kind, median in medians.items()))
    with suite(GUESS) as check:
        check(len({frozenset(a) for a in answers.values()}) == 1 and all(len(a) == 1 for a in answers.values()),
              f"the answers differ: {answers}")
        check(next(iter(answers["no key"]))[0] == 403, f"not a 403: {answers}")
        spread = max(medians.values()) - min(medians.values())
        bound = max(TIMING_BOUND_MS, 0.25 * statistics.median(medians.values()))
        check(spread <= bound, f"medians differ by {spread:.1f} ms (bound {bound:.1f}): {medians}")


def test_a_stolen_session_id_alone_lets_no_anonymous_client_in(api, stack):
    session = new_session(api, stack)
    session_id = session["sessionId"]
    with suite(GUESS) as check:
        # What a signed-in stranger can read does not include the key.
        seen = api.get(f"/sessions/{session_id}", headers=stack.auth("bob")).json()
        check("joinKey" not in seen and seen["access"] == "link", f"bob read: {seen}")
        for dialect in ({"role": "listener"}, {}, {"action": "joinSession"}):  # native, hybrid, old
            status, _ = handshake(stack, sessionId=session_id, **dialect)
            check(status == 403, f"{dialect} without the key: {status}")
        check(listener_count(api, stack, session_id) == 0, "an anonymous client joined")
        for dialect in ({"role": "listener"}, {}, {"action": "joinSession"}):
            status, _ = handshake(stack, sessionId=session_id, joinKey=session["joinKey"], **dialect)
            check(status == 101, f"{dialect} with the key: {status}")
        # A signed-in listener joins by the ID alone: accountable (sign-up is closed).
        status, _ = handshake(stack, sessionId=session_id, role="listener", token=stack.token("bob"))
        check(status == 101, f"signed-in listener: {status}")
        # A public session is joinable by its ID, as the speaker chose.
        public = new_session(api, stack, access="public")
        check("joinKey" not in public, f"a public session has a key: {public}")
        status, _ = handshake(stack, sessionId=public["sessionId"], role="listener")
        check(status == 101, f"public session: {status}")


def sign_up(stack, email: str) -> dict:
    idp = boto3.client("cognito-idp", region_name=stack["region"], endpoint_url=stack.info.get("awsEndpointUrl"),
                       aws_access_key_id="anonymous", aws_secret_access_key="anonymous",
                       config=Config(retries={"max_attempts": 1}))
    return idp.sign_up(ClientId=stack["userPoolClientId"], Username=email, Password="Sign-up-Passw0rd")


def test_sign_up_is_refused_by_default(stack):
    with pytest.raises(ClientError) as refused:
        sign_up(stack, f"stranger-{uuid.uuid4().hex[:8]}@example.com")
    assert refused.value.response["Error"]["Code"] == "NotAuthorizedException"


# ------------------------------------------------------------------ a stack with a cap of 2 and open sign-up

CAP = 2


@pytest.fixture(scope="module", autouse=True)
def _capped_stack_in_background(request, tmp_path_factory):
    """Starts the capped stack with the module's first test, if any selected test needs it."""
    module = request.node
    if DEPLOYED_STACK or not any("capped_stack" in getattr(item, "fixturenames", ()) for item in request.session.items
                                 if item.module is module.obj):
        yield None
        return
    starter = StackInBackground(tmp_path_factory.mktemp("capped-stack"), "--parameter-overrides",
                                f"MaxLiveSessionsPerUser={CAP}", "AllowSelfSignUp=true")
    yield starter
    starter.stop()


@pytest.fixture(scope="module")
def capped_stack(_capped_stack_in_background):
    return _capped_stack_in_background.wait()


def create(http, stack, user: str = "alice") -> httpx.Response:
    return http.post("/sessions", headers=stack.auth(user), json={"sourceLanguage": "en"})


@pytest.mark.local_only("starts a second local stack with other parameters")
def test_the_cap_refuses_the_next_create_and_ending_one_frees_a_place(capped_stack):
    stack = capped_stack
    with httpx.Client(base_url=stack.url, timeout=30) as http, suite("security/cap") as check:
        held = [create(http, stack) for _ in range(CAP)]
        check(all(r.status_code == 201 for r in held), f"creates under the cap: {[r.status_code for r in held]}")
        over = create(http, stack)
        body = over.json()
        check(over.status_code == 429 and body["error"]["code"] == "SESSION_LIMIT_REACHED"
              and set(body["error"]) == {"code", "message", "requestId"}, f"over the cap: {over.status_code} {body}")
        bobs = create(http, stack, "bob")
        check(bobs.status_code == 201, "another user is held back")
        http.delete(f"/sessions/{bobs.json()['sessionId']}", headers=stack.auth("bob"))
        # The old protocol's connect-time create counts too: its handshake is refused.
        status, _ = handshake(stack, action="createSession", sourceLanguage="en", token=stack.token("alice"))
        check(status == 403, f"old-protocol create over the cap: {status}")
        first = held[0].json()["sessionId"]
        check(http.delete(f"/sessions/{first}", headers=stack.auth()).status_code == 204, "delete")
        check(http.delete(f"/sessions/{first}", headers=stack.auth()).status_code == 204, "repeated delete")
        check(create(http, stack).status_code == 201, "ending one did not free a place")
        check(create(http, stack).status_code == 429, "a repeated end freed two places")


@pytest.mark.local_only("starts a second local stack with other parameters")
def test_racing_creates_never_pass_the_cap(capped_stack):
    stack = capped_stack

    async def scenario() -> list[int]:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as http:
            answers = await asyncio.gather(*(http.post("/sessions", headers=stack.auth("bob"),
                                                       json={"sourceLanguage": "en"}) for _ in range(6)))
            created = [r.json()["sessionId"] for r in answers if r.status_code == 201]
            for session_id in created:  # leave bob's places free for the other tests
                await http.delete(f"/sessions/{session_id}", headers=stack.auth("bob"))
            return sorted(r.status_code for r in answers)

    statuses = asyncio.run(scenario())
    with suite("security/cap") as check:
        check(statuses == [201] * CAP + [429] * (6 - CAP), f"racing creates: {statuses}")


@pytest.mark.local_only("starts a second local stack with other parameters")
def test_a_stack_with_self_sign_up_lets_anyone_sign_up(capped_stack):
    result = sign_up(capped_stack, f"stranger-{uuid.uuid4().hex[:8]}@example.com")
    assert result["UserSub"]
