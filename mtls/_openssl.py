"""One OpenSSL setting the :mod:`ssl` module does not expose: a server context's
session cache, turned off.

Why: a TLS 1.2 client may resume a session by its ID from the server's session cache
(RFC 5246 section 7.3), and a TLS 1.3 server without stateless tickets keeps its
tickets there too; a resumed handshake skips client-certificate verification. The
cache lives in the context the server was given (OpenSSL's *session context*), so for
a :class:`~mtls.RotatingServerContext` it outlives every rotation: a client accepted
under an earlier truststore could come back after that trust was withdrawn, for as
long as OpenSSL keeps the session (two hours by default). Session tickets are turned
off with :data:`ssl.OP_NO_TICKET`; the cache has no such switch in Python, only
``SSL_CTX_set_session_cache_mode`` (nginx's ``ssl_session_cache off``).

How: on CPython, whose ``ssl.SSLContext`` object holds its ``SSL_CTX *`` as the first
field after the object header (every version since 2.7), through :mod:`ctypes` and
the OpenSSL the ``_ssl`` module is linked to: looked up through that extension's own
handle (never a second libssl found by name), or, where ``_ssl`` is built into the
interpreter (python-build-standalone, as uv installs it), among the process's global
symbols. Every step is checked before the pointer is used: the object's type must be
``_ssl._SSLContext`` or a subclass (not merely claim to be), the library found must
report the version ``ssl.OPENSSL_VERSION_NUMBER`` gives (the same structures), the
pointer must answer ``SSL_CTX_get_options`` with the context's ``options``, and the
cache mode is read back after it is set. The mode set is ``SSL_SESS_CACHE_OFF`` with
``SSL_SESS_CACHE_NO_INTERNAL``: nothing is stored and nothing already stored is looked
up. Where a step is not possible (another interpreter, a TLS library other than
OpenSSL, symbols not reachable, as on Windows or a build that hides them),
:func:`session_cache_off` returns ``False`` and changes nothing; the caller then
refuses resumed sessions it cannot vouch for (see :mod:`mtls._server`).
"""

from __future__ import annotations

import functools
import ssl
import sys
from typing import Any

from ._log import log

# ssl.h: SSL_CTRL_GET_SESS_CACHE_MODE / SSL_CTRL_SET_SESS_CACHE_MODE, and the mode:
# SSL_SESS_CACHE_OFF (0) | SSL_SESS_CACHE_NO_INTERNAL (no store, no lookup: 0x300).
_SET_SESS_CACHE_MODE = 44
_GET_SESS_CACHE_MODE = 45
_NO_CACHE = 0x0300


@functools.cache
def _functions() -> tuple[Any, Any, type] | None:
    """``SSL_CTX_ctrl`` and ``SSL_CTX_get_options`` of the OpenSSL ``_ssl`` is linked
    to, and ``_ssl._SSLContext``; or None. Found once per process (two threads racing
    here find the same)."""
    if sys.implementation.name != "cpython" or not ssl.OPENSSL_VERSION.startswith("OpenSSL "):
        return None
    try:
        # Imported when first used: ctypes is a cost clients never pay.
        import _ssl  # noqa: PLC0415
        import ctypes  # noqa: PLC0415

        where = getattr(_ssl, "__file__", None)
        if where is None and "_ssl" not in sys.builtin_module_names:
            return None
        # dlsym through _ssl's own handle: the libssl it was linked against, no other;
        # a built-in _ssl: the process's global symbols, checked by version below.
        lib = ctypes.CDLL(where)
        ctrl = lib.SSL_CTX_ctrl
        get_options = lib.SSL_CTX_get_options
        version = lib.OpenSSL_version_num
        context_type = _ssl._SSLContext
    except (ImportError, OSError, AttributeError) as exc:
        log.debug("mtls: OpenSSL's SSL_CTX_ctrl is not reachable here (%s)", exc)
        return None
    version.restype = ctypes.c_ulong
    version.argtypes = []
    if version() != ssl.OPENSSL_VERSION_NUMBER:
        log.debug("mtls: the OpenSSL found is not the one ssl uses; cache left on")
        return None
    ctrl.restype = ctypes.c_long
    ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    get_options.restype = ctypes.c_uint64
    get_options.argtypes = [ctypes.c_void_p]
    return ctrl, get_options, context_type


def session_cache_off(ctx: ssl.SSLContext) -> bool:
    """Turn off ``ctx``'s session cache: no session is stored, none already stored is
    looked up (no session-ID resumption, no stateful TLS 1.3 ticket). ``True`` when
    done and read back, ``False`` when not possible here (nothing was changed)."""
    functions = _functions()
    if functions is None:
        return False
    ctrl, get_options, context_type = functions
    # The real type, not isinstance (which a proxy's __class__ can satisfy): only a
    # _ssl._SSLContext has the SSL_CTX pointer where it is read next.
    if not issubclass(type(ctx), context_type):
        return False
    import ctypes  # noqa: PLC0415 - loaded by _functions already

    # PySSLContext: PyObject_HEAD, then SSL_CTX *ctx.
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer or get_options(pointer) != ctx.options:
        log.debug("mtls: ssl.SSLContext's layout is not the one expected; cache left on")
        return False
    ctrl(pointer, _SET_SESS_CACHE_MODE, _NO_CACHE, None)
    return bool(ctrl(pointer, _GET_SESS_CACHE_MODE, 0, None) == _NO_CACHE)
