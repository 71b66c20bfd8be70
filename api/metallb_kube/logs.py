"""JSON logs with stable keys: `event`, `service`, `pool`, `ip`, `node`, `reason`.

Call sites log with `extra={"event": "...", "service": ...}`; the formatter emits one
JSON object per line with `ts`, `level`, `logger`, `msg` and any of the stable keys set.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

STABLE_KEYS = ("event", "service", "pool", "ip", "node", "reason", "peer", "interface",
               "count", "seconds", "error")


class JsonFormatter(logging.Formatter):
    _second = -1
    _stamp = ""

    def _ts(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # one strftime per second, not per line
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self._ts(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in STABLE_KEYS:
            value = record.__dict__.get(key)
            if value is not None:
                doc[key] = value if isinstance(value, (int, float, bool)) else str(value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"))


def configure(level: str = "info") -> None:
    # What our lines never show is not collected for every record (the logging HOWTO's
    # "Optimization"): the caller's frame, thread, process names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter stays at warning unless we debug.
    for noisy in ("kopf", "aiohttp", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
