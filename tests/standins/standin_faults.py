"""The faults file both stand-ins serve (tests change it mid-run): re-read
on every request; `fail_next` is a list of HTTP statuses, or a count of 500s,
answered by the next requests, and restarts whenever the file changes."""

import json
import threading


class Faults:
    """The faults file, re-read on every request. fail_next restarts its count
    whenever the file's content changes."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.content = None
        self.consumed = 0

    def current(self):
        if not self.path:
            return {}
        try:
            with open(self.path) as f:
                text = f.read()
        except OSError:
            text = ""
        with self.lock:
            if text != self.content:
                self.content = text
                self.consumed = 0
        try:
            return json.loads(text) if text.strip() else {}
        except ValueError:
            return {}

    def take_failure(self, faults):
        seq = faults.get("fail_next") or []
        if isinstance(seq, int):
            seq = [500] * seq
        with self.lock:
            if self.consumed < len(seq):
                self.consumed += 1
                return seq[self.consumed - 1]
        return None
