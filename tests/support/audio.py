"""Audio the tests feed the clients: a sine tone as a mono 16-bit PCM WAV file."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path


def write_tone(path: Path, seconds: float, rate: int = 16_000, hz: float = 440.0, amplitude: float = 8000) -> bytes:
    """Writes the tone to `path`; returns its frames (what a client must send)."""
    frames = b"".join(struct.pack("<h", round(amplitude * math.sin(2 * math.pi * hz * n / rate)))
                      for n in range(round(rate * seconds)))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return frames
