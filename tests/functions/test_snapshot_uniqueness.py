"""Session IDs stay unique when many execution environments resume from one SnapStart snapshot.

A fork after the function's init is the stand-in for a restore: every child starts from the same
memory image, as environments resumed from one snapshot do. IDs come from `secrets` (the kernel's
CSPRNG, read at every draw), so the children's IDs differ. The control is a generator seeded at init,
whose state lives in that memory image: its draws repeat in every child. (Not the `random` module's own
generator: CPython reseeds it in a forked child, which a snapshot restore does not do.)
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHILDREN, DRAWS = 8, 20

RESTORES = """
import json, os, random, sys
sys.path[:0] = [{folder!r}, {layer!r}]
import app  # the whole init, as the snapshot holds it
from session_core import session_ids

seeded_at_init = random.Random()

readers = []
for _ in range({children}):
    read, write = os.pipe()
    if os.fork() == 0:  # a "restored" environment
        os.close(read)
        drawn = {{"ids": [session_ids.new_session_id() for _ in range({draws})], "seeded_at_init": seeded_at_init.random()}}
        os.write(write, json.dumps(drawn).encode())
        os._exit(0)
    os.close(write)
    readers.append(read)
results = []
for read in readers:
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    results.append(json.loads(b"".join(chunks)))
    os.wait()
print(json.dumps(results))
"""


def test_session_ids_drawn_after_a_restore_differ_between_environments():
    code = RESTORES.format(folder=str(ROOT / "functions" / "create_session"),
                           layer=str(ROOT / "layers" / "session_core"), children=CHILDREN, draws=DRAWS)
    env = {"PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": "/var/task", "AWS_REGION": "eu-west-1",
           "TABLE_NAME": "sessions", "POWERTOOLS_TRACE_DISABLED": "true"}
    result = subprocess.run([sys.executable, "-I", "-c", code], env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    environments = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(environments) == CHILDREN
    # Control: state in the memory image is the same in every child, so a generator seeded at init would
    # repeat its IDs across environments.
    assert len({e["seeded_at_init"] for e in environments}) == 1
    ids = [sid for e in environments for sid in e["ids"]]
    first_ids = {e["ids"][0] for e in environments}
    assert len(first_ids) == CHILDREN  # the first draw after each restore already differs
    assert len(set(ids)) >= len(ids) - 1  # 160 draws from ~25 million IDs: a repeat is a ~1e-3 event
