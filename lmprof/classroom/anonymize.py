"""``lmprof pack --anonymize``: host and user names and paths replaced by stable hashes.

The same name always gives the same hash (``host-1c9e4b2a07``), so an
instructor still sees that two bundles came from one machine, or one corpus
folder, without learning whose. The hash is of the name alone: a short host
name can be guessed by hashing candidates; share nothing more secret than a
class roster would be.

What is replaced, everywhere in the bundle's JSON (keys included):
- every occurrence of the host names and user names given (not inside a longer word);
- the path fields (config data/save/out, the corpus, the run folder), whole;
- every absolute path in any other string (``/home/...``, ``~/...``, ``C:\\...``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Iterable

# Fields that hold a path of the student's machine: replaced whole, whatever they look like.
PATH_FIELDS = {("config", "data"), ("config", "save"), ("config", "out"), ("metrics", "corpus"), ("run_dir",)}
# An absolute path: starts at a word boundary with /, ~/ or a drive letter, and has at least two parts
# (so 'a / b' and '{:5d}/{:5d}' in the line tables' source text are left alone).
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/\\])(?:~|[A-Za-z]:)?(?:[/\\][^\s/\\\"'<>|*?,;:()\[\]{}]+){2,}[/\\]?")


def stable_hash(kind: str, value: str) -> str:
    """``kind-<10 hex digits>``: the same value always gives the same hash."""
    return f"{kind}-{hashlib.sha256(f'lmprof:{kind}:{value}'.encode('utf-8')).hexdigest()[:10]}"


class Anonymizer:
    """Replaces the given host and user names, and paths, in strings and JSON documents."""

    def __init__(self, hosts: Iterable[str] = (), users: Iterable[str] = ()) -> None:
        names = {h: stable_hash("host", h) for h in hosts if h and len(h) >= 2}
        for host in list(names):  # 'lab-pc.uni.edu' is also written 'lab-pc'
            short = host.split(".")[0]
            if len(short) >= 2:
                names.setdefault(short, stable_hash("host", short))
        names.update({u: stable_hash("user", u) for u in users if u and len(u) >= 2})
        ordered = sorted(names, key=len, reverse=True)  # the longest first: 'alice-pc' before 'alice'
        self.names = names
        self.pattern = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, ordered)) + r")(?![A-Za-z0-9])") \
            if ordered else None

    def text(self, value: str) -> str:
        value = ABSOLUTE_PATH.sub(lambda m: stable_hash("path", m.group(0)), value)
        if self.pattern is not None:
            value = self.pattern.sub(lambda m: self.names[m.group(0)], value)
        return value

    def document(self, value: Any, where: tuple[str, ...] = ()) -> Any:
        if isinstance(value, str):
            return stable_hash("path", value) if where in PATH_FIELDS and value else self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.document(v, (*where, str(k)))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.document(v, where) for v in value]
        return value


def for_machine(environment: dict[str, Any], *documents: dict[str, Any]) -> Anonymizer:
    """An Anonymizer for this machine's host and user (and the hosts the run's own records name)."""
    hosts = {str(environment.get("host") or "")}
    for doc in documents:
        for section in ("environment", "metrics"):
            part = doc.get(section)
            if isinstance(part, dict) and isinstance(part.get("host"), str):
                hosts.add(part["host"])
    home = str(environment.get("home") or "")
    users = {str(environment.get("user") or ""), home.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]}
    return Anonymizer(hosts - {""}, users - {""})
