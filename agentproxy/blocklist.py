"""The regex blocklist: the defaults, and the user's own patterns (`--deny REGEX`).

The approval policy reads parsed commands with structural rules; these regexes cover what the parser
cannot read, the paths a tool touches, and every string an unknown tool is given. Kept apart from
the policy so that the CLI can check the user's patterns without loading the parser.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from agentproxy.errors import UsageError

DEFAULT_DENY: tuple[str, ...] = (
    r"\brm\s+(-[a-zA-Z]*[rRf][a-zA-Z]*\s+)+(--\s+)?(/|~|\$HOME)/?(\s|\*|$)",  # rm -rf / or ~
    r"\bgit\s+push\b.*\s(--force(-with-lease)?|-f)\b",
    r"(^|/|~)\.ssh(/|$)",  # private keys and known hosts
    r"\bsudo\b",
    r"\bmkfs(\.\w+)?\b",
    r"\bdd\b.*\bof=/dev/",
    r"\bchmod\s+(-[a-zA-Z]*R[a-zA-Z]*\s+)777\s+/(\s|$)",
    r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:",  # the classic fork bomb
    r"\b(curl|wget)\b[^|]*\|\s*(ba|z)?sh\b",  # piping a download into a shell
)


def parse_deny_patterns(extra: Iterable[str]) -> tuple[str, ...]:
    """The default blocklist plus the user's patterns; a pattern that does not compile is a usage error."""
    patterns = list(DEFAULT_DENY)
    for pattern in extra:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"--deny {pattern!r} is not a valid regular expression: {exc}") from exc
        patterns.append(pattern)
    return tuple(patterns)
