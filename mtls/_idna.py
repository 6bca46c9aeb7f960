"""Host names in the ASCII form the wire carries (IDNA), for every module that needs it."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1024)
def ascii_host(host: str) -> str:
    """An internationalised name in the ASCII form (``bücher.example`` ->
    ``xn--bcher-kva.example``) that httpx, requests (urllib3) and aiohttp (yarl) put
    on the wire and look profiles up by: IDNA 2008 with UTS #46 mapping through the
    ``idna`` package they all use. A name IDNA 2008 refuses (``☃.example``), or any
    name without that package, gets Python's IDNA 2003 codec, as yarl and the
    standard library's sockets encode it (the two differ for a few characters, such
    as ``ß``), when that gives an A-label. A name neither encodes to one is kept as
    written: it matches only a lookup that writes it the same way."""
    try:
        import idna  # noqa: PLC0415 - installed with every HTTP integration

        return str(idna.encode(host, uts46=True).decode("ascii"))
    except ImportError:
        pass
    except (idna.IDNAError, UnicodeError, ValueError):
        pass  # what yarl does next, and so dials
    try:
        encoded = host.encode("idna").decode("ascii")
    except UnicodeError:
        return host
    # Taken only as an A-label: IDNA 2003 also maps some names to another plain name
    # (a joiner dropped: "ab\u200d.example" is "ab.example"), which must not become
    # that host's key.
    return encoded if any(label.startswith("xn--") for label in encoded.split(".")) else host
