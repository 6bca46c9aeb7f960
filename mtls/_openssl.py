"""One OpenSSL setting the :mod:`ssl` module does not expose: a server context's
session cache, turned off.

Why: a TLS 1.2 client may resume a session by its ID from the server's session cache
(RFC 5246 section 7.3); a resumed handshake skips client-certificate verification.
The cache lives in the context the server was given (OpenSSL's *session context*),
so for a :class:`~mtls.RotatingServerContext` it outlives every rotation: a client
accepted under an earlier truststore could come back after that trust was withdrawn,
for as long as OpenSSL keeps the session (two hours by default). Session tickets are
turned off with :data:`ssl.OP_NO_TICKET`; the session-ID cache has no such switch in
Python, only ``SSL_CTX_set_session_cache_mode`` (nginx's ``ssl_session_cache off``).

How: on CPython, whose ``ssl.SSLContext`` object holds its ``SSL_CTX *`` as the first
field after the object header (every version since 2.7), through :mod:`ctypes` and
the very OpenSSL the ``_ssl`` extension is linked to (looked up through that
extension's own handle, never a second libssl found by name). Every step is checked:
the pointer must answer ``SSL_CTX_get_options`` with the context's ``options``, and
the cache mode is read back after it is set. Where any step is not possible (another
interpreter, a TLS library other than OpenSSL, symbols not reachable, as on Windows),
:func:`session_cache_off` returns ``False`` and changes nothing; the caller then
refuses resumed sessions it cannot vouch for (see :mod:`mtls._server`).
"""

from __future__ import annotations

import functools
import logging
import ssl
import sys
from typing import Any

log = logging.getLogger("mtls")

# ssl.h: SSL_CTRL_GET_SESS_CACHE_MODE / SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF.
_SET_SESS_CACHE_MODE = 44
_GET_SESS_CACHE_MODE = 45
_SESS_CACHE_OFF = 0


@functools.cache
def _functions() -> tuple[Any, Any] | None:
    """``SSL_CTX_ctrl`` and ``SSL_CTX_get_options`` of the OpenSSL ``_ssl`` is linked
    to, or None. Found once per process (two threads racing here find the same)."""
    if sys.implementation.name != "cpython" or not ssl.OPENSSL_VERSION.startswith("OpenSSL "):
        return None
    try:
        # Imported when first used: ctypes is a cost clients never pay.
        import _ssl  # noqa: PLC0415
        import ctypes  # noqa: PLC0415

        # dlsym through _ssl's own handle: the libssl it was linked against, no other.
        lib = ctypes.CDLL(_ssl.__file__)
        ctrl = lib.SSL_CTX_ctrl
        get_options = lib.SSL_CTX_get_options
    except (ImportError, OSError, AttributeError) as exc:
        log.debug("mtls: OpenSSL's SSL_CTX_ctrl is not reachable here (%s)", exc)
        return None
    ctrl.restype = ctypes.c_long
    ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    get_options.restype = ctypes.c_uint64
    get_options.argtypes = [ctypes.c_void_p]
    return ctrl, get_options


def session_cache_off(ctx: ssl.SSLContext) -> bool:
    """Turn off ``ctx``'s session cache (no session-ID resumption); ``True`` when done
    and read back, ``False`` when not possible here (nothing was changed)."""
    functions = _functions()
    if functions is None or not isinstance(ctx, ssl.SSLContext):
        return False
    import ctypes  # noqa: PLC0415 - loaded by _functions already

    ctrl, get_options = functions
    # PySSLContext: PyObject_HEAD, then SSL_CTX *ctx.
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer or get_options(pointer) != ctx.options:
        log.debug("mtls: ssl.SSLContext's layout is not the one expected; cache left on")
        return False
    ctrl(pointer, _SET_SESS_CACHE_MODE, _SESS_CACHE_OFF, None)
    return bool(ctrl(pointer, _GET_SESS_CACHE_MODE, 0, None) == _SESS_CACHE_OFF)
