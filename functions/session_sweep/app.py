"""Every minute: ends expired sessions and old-protocol sessions whose speaker's socket is gone, resumes
unfinished teardowns, drops the records of gone sockets and recounts listeners (usecases/sweep.py)."""

from session_core.api.events import scheduled
from session_core.usecases import sweep

lambda_handler = scheduled(sweep.sweep_all)
