"""What the :mod:`ssl` module does not expose, done through the OpenSSL it is linked to:
a server context's session cache, turned off; a key and its chain installed from
DER, with no file and no PEM text in between; and a truststore's certificates, as
OpenSSL read them for one context, put into the next one's store (:class:`Anchors`).

**The session cache.** A TLS 1.2 client may resume a session by its ID from the
server's session cache (RFC 5246 section 7.3), and a TLS 1.3 server without stateless
tickets keeps its tickets there too; a resumed handshake skips client-certificate
verification. The cache lives in the context the server was given (OpenSSL's
*session context*), so for a :class:`~mtls.RotatingServerContext` it outlives every
rotation: a client accepted under an earlier truststore could come back after that
trust was withdrawn, for as long as OpenSSL keeps the session (two hours by default).
Session tickets are turned off with :data:`ssl.OP_NO_TICKET`; the cache has no such
switch in Python, only ``SSL_CTX_set_session_cache_mode`` (nginx's
``ssl_session_cache off``). The mode set is ``SSL_SESS_CACHE_OFF`` with
``SSL_SESS_CACHE_NO_INTERNAL``: nothing is stored and nothing already stored is
looked up.

**The identity** (:func:`use_identity`). :meth:`ssl.SSLContext.load_cert_chain` takes
file names only, so the key went to OpenSSL as PEM text in a memory file
(:mod:`mtls._keyload`): base64 made here and undone there, a file created, opened
twice through ``/proc`` and closed. OpenSSL's own calls take DER: the leaf with
``d2i_X509`` and ``SSL_CTX_use_certificate``, each further certificate with
``d2i_X509`` and ``SSL_CTX_add0_chain_cert``, the key with
``d2i_PKCS8_PRIV_KEY_INFO``, ``EVP_PKCS82PKEY`` and ``SSL_CTX_use_PrivateKey``, then
``SSL_CTX_check_private_key``: the calls ``load_cert_chain`` makes after reading its
file, in its order, judged as it judges them. One step is done faster than the file
way does it: on OpenSSL 3, the key is read by the decoder of its own type
(``OSSL_DECODER_CTX_new_for_pkey`` told ``RSA`` or ``EC``), where ``EVP_PKCS82PKEY``
sets up the decoders of every type and tries them (a third of the cost: 100 us, not
340); a key of another type, or one that decoder refuses, is read the untyped way.
Any refusal is left to the file way, which repeats the whole load and raises
Python's own :class:`ssl.SSLError` (its reason names are ``ssl``'s, not ours to
copy).

How: on CPython, whose ``ssl.SSLContext`` object holds its ``SSL_CTX *`` as the first
field after the object header (every version since 2.7), through :mod:`ctypes` and
the OpenSSL the ``_ssl`` module is linked to: looked up through that extension's own
handle (never a second libssl found by name), or, where ``_ssl`` is built into the
interpreter (python-build-standalone, as uv installs it), among the process's global
symbols. Checks come first: the library found must report the version
``ssl.OPENSSL_VERSION_NUMBER`` gives (the same structures), and the object's type must
be ``_ssl._SSLContext`` or a subclass (not merely claim to be): these are what keep
a wrong pointer from being read (a read through one would crash the process, not
fail). The pointer read must then answer ``SSL_CTX_get_options`` with the context's
``options`` before anything is changed through it. The cache mode is read back
after it is set; the identity is checked by OpenSSL itself. Where a step is not
possible (another interpreter, a TLS library other than OpenSSL, symbols not
reachable, as on Windows or a build that hides them), :func:`session_cache_off` and
:func:`use_identity` return ``False`` and change nothing; the callers then refuse
resumed sessions they cannot vouch for (see :mod:`mtls._server`), or hand the key
over through a file (see :mod:`mtls._keyload`). ctypes releases the GIL for each
call, as ``load_cert_chain`` does for its reads.
"""

from __future__ import annotations

import functools
import ssl
import sys
from collections.abc import Sequence
from typing import Any

from ._log import log

# ssl.h: SSL_CTRL_GET_SESS_CACHE_MODE / SSL_CTRL_SET_SESS_CACHE_MODE, and the mode:
# SSL_SESS_CACHE_OFF (0) | SSL_SESS_CACHE_NO_INTERNAL (no store, no lookup: 0x300).
_SET_SESS_CACHE_MODE = 44
_GET_SESS_CACHE_MODE = 45
_NO_CACHE = 0x0300
# ssl.h: SSL_CTRL_CHAIN (SSL_CTX_clear_chain_certs with no chain) and SSL_CTRL_CHAIN_CERT
# (SSL_CTX_add0_chain_cert: the context takes the certificate), stable since 1.0.2.
_CTRL_CHAIN = 88
_CTRL_CHAIN_CERT = 89


def _typed(lib: Any, name: str, restype: Any, *argtypes: Any) -> Any:
    """``lib``'s function ``name``, told its C types (AttributeError: not there)."""
    function = getattr(lib, name)
    function.restype = restype
    function.argtypes = list(argtypes)
    return function


class _Library:
    """The functions of the OpenSSL ``_ssl`` is linked to, with their C types."""

    def __init__(self, lib: Any, context_type: type, held: Any = None) -> None:
        import ctypes  # noqa: PLC0415 - loaded by _library already

        self.context_type = context_type
        self._pointer_at = ctypes.c_void_p.from_address
        void, long = ctypes.c_void_p, ctypes.c_long
        self.ctrl = _typed(lib, "SSL_CTX_ctrl", long, void, ctypes.c_int, long, void)
        self.get_options = _typed(lib, "SSL_CTX_get_options", ctypes.c_uint64, void)
        self.identity: _Identity | None
        try:
            self.identity = _Identity(lib, self.ctrl)
        except AttributeError as exc:  # a symbol missing: keys go through a file
            log.debug("mtls: OpenSSL's key-loading calls are not reachable here (%s)", exc)
            self.identity = None
        self.trust: _Trust | None = None
        if held is not None:
            try:
                self.trust = _Trust(held)
            except AttributeError as exc:  # each context reads its anchors itself
                log.debug("mtls: OpenSSL's trust store calls are not reachable here (%s)", exc)

    def pointer(self, ctx: ssl.SSLContext) -> int | None:
        """``ctx``'s ``SSL_CTX *``, checked; None where it cannot be vouched for."""
        # The real type, not isinstance (which a proxy's __class__ can satisfy): only a
        # _ssl._SSLContext has the SSL_CTX pointer where it is read next.
        if not issubclass(type(ctx), self.context_type):
            return None
        # PySSLContext: PyObject_HEAD, then SSL_CTX *ctx.
        pointer = self._pointer_at(id(ctx) + object.__basicsize__).value
        if not pointer or self.get_options(pointer) != ctx.options:
            log.debug("mtls: ssl.SSLContext's layout is not the one expected; not used")
            return None
        return int(pointer)


class _Identity:
    """OpenSSL's calls that install a key and its chain from DER."""

    def __init__(self, lib: Any, ctrl: Any) -> None:
        import ctypes  # noqa: PLC0415 - loaded by _library already

        self._ctrl = ctrl  # SSL_CTX_ctrl, typed by _Library
        void, long, integer, data = ctypes.c_void_p, ctypes.c_long, ctypes.c_int, ctypes.c_char_p
        self._cursor = data
        self._byref = ctypes.byref
        self._address = ctypes.cast
        self._void = void
        cursor = ctypes.POINTER(data)  # const unsigned char **, advanced past what is read
        self.read_x509 = _typed(lib, "d2i_X509", void, void, cursor, long)
        self.free_x509 = _typed(lib, "X509_free", None, void)
        self.use_certificate = _typed(lib, "SSL_CTX_use_certificate", integer, void, void)
        # PKCS#8 only, as the file way's PRIVATE KEY block takes (d2i_AutoPrivateKey
        # would take PKCS#1 and SEC1 keys too).
        self.read_pkcs8 = _typed(lib, "d2i_PKCS8_PRIV_KEY_INFO", void, void, cursor, long)
        self.write_pkcs8 = _typed(lib, "i2d_PKCS8_PRIV_KEY_INFO", integer, void, cursor)
        self._buffer = ctypes.create_string_buffer
        self.free_pkcs8 = _typed(lib, "PKCS8_PRIV_KEY_INFO_free", None, void)
        self.pkcs8_key = _typed(lib, "EVP_PKCS82PKEY", void, void)
        self._decoder: _Decoder | None
        try:
            self._decoder = _Decoder(lib)
        except AttributeError:  # before OpenSSL 3.0: EVP_PKCS82PKEY has no decoders to search
            self._decoder = None
        self.free_key = _typed(lib, "EVP_PKEY_free", None, void)
        self.use_key = _typed(lib, "SSL_CTX_use_PrivateKey", integer, void, void)
        self.check_key = _typed(lib, "SSL_CTX_check_private_key", integer, void)
        # A refusal leaves its error on this thread's OpenSSL error queue, which
        # Python's ssl shares: the next call in the thread would read it as its own
        # failure. The queue is emptied before and after every install.
        self.clear_errors = _typed(lib, "ERR_clear_error", None)
        self.peek_error = _typed(lib, "ERR_peek_error", ctypes.c_ulong)

    def _read(self, reader: Any, free: Any, der: bytes) -> int | None:
        """``reader`` (a ``d2i_*``) on ``der``: the object, if it is all of ``der``.

        Trailing bytes are refused (the file way may read them as something else: a
        leaf's, as OpenSSL's auxiliary trust data)."""
        cursor = self._cursor(der)
        start = self._where(cursor)
        made = reader(None, self._byref(cursor), len(der))
        if not made:
            return None
        if self._where(cursor) - start != len(der):
            free(made)
            return None
        return int(made)

    def _where(self, cursor: Any) -> int:
        """The address a ``const unsigned char *`` points at."""
        return int(self._address(cursor, self._void).value or 0)

    def _key(self, key_der: bytes, key_type: bytes | None) -> int | None:
        """The ``EVP_PKEY`` of a PKCS#8 key, read as ``EVP_PKCS82PKEY`` reads it (what
        the file way's reader does): the structure read whole (``d2i``), written again
        (``i2d``), and those bytes decoded; by the decoder of ``key_type`` alone where
        it is given and takes them, else by all of them. (OpenSSL 3.0's decoders take
        a bare SEC1 or PKCS#1 key too, told "PrivateKeyInfo": only bytes that are a
        PKCS#8 structure reach them.)"""
        info = self._read(self.read_pkcs8, self.free_pkcs8, key_der)
        if info is None:
            return None
        try:
            decoder = self._decoder
            if key_type is not None and decoder is not None and (encoded := self._encoded(info)):
                key = decoder.private_key(encoded, key_type)
                if key is not None:
                    return key
            made = self.pkcs8_key(info)  # a typed refusal's errors: emptied by the caller
        finally:
            self.free_pkcs8(info)
        return int(made) if made else None

    def _encoded(self, info: int) -> bytes:
        """A ``PKCS8_PRIV_KEY_INFO`` as DER (empty: it cannot be written)."""
        size = self.write_pkcs8(info, None)
        if size <= 0:
            return b""
        out = self._buffer(size)
        cursor = self._address(out, self._cursor)  # advanced by i2d past what it writes
        if self.write_pkcs8(info, self._byref(cursor)) != size:
            return b""
        return out.raw

    def install(
        self,
        pointer: int,
        key_der: bytes,
        chain_der: Sequence[bytes],
        key_type: bytes | None = None,
    ) -> bool:
        """``load_cert_chain``'s calls on ``pointer``, from DER; True if all succeeded.

        Also its judgement: ``SSL_CTX_use_certificate_chain_file`` refuses a leaf
        that left an error on the queue even where the call returned success (a
        certificate with a malformed extension is installed, and ``X509V3:
        INVALID_CERTIFICATE`` queued), so the queue is read after the leaf, as it
        reads it. Where this way is stricter than the file way (trailing bytes),
        the caller's file way has the last word.
        """
        leaf = self._read(self.read_x509, self.free_x509, chain_der[0])
        if leaf is None:
            return False
        try:
            # The context takes its own reference to each object; ours is released.
            if self.use_certificate(pointer, leaf) != 1 or self.peek_error():
                return False
        finally:
            self.free_x509(leaf)
        self._ctrl(pointer, _CTRL_CHAIN, 0, None)  # as load_cert_chain: only this chain
        for der in chain_der[1:]:
            x509 = self._read(self.read_x509, self.free_x509, der)
            if x509 is None:
                return False
            if self._ctrl(pointer, _CTRL_CHAIN_CERT, 0, x509) != 1:
                self.free_x509(x509)  # refused: still ours to free
                return False
        # The file way ends its chain at the end of the file, whose "no start line"
        # error makes it empty the queue: what the chain's certificates queued is
        # forgotten there, and so here.
        self.clear_errors()
        key = self._key(key_der, key_type)
        if key is None:
            return False
        try:
            if self.use_key(pointer, key) != 1:
                return False
        finally:
            self.free_key(key)
        return bool(self.check_key(pointer) == 1)


class _Trust:
    """OpenSSL's calls that read and fill a context's trust store (``X509_STORE``), made
    holding the GIL: a pointer read, a reference counted, one certificate put in the
    store's sorted stack (which is sorted again each time: the caller keeps the count
    down, see ``mtls._context.KEPT_ANCHORS_MAX``)."""

    def __init__(self, lib: Any) -> None:
        import ctypes  # noqa: PLC0415 - loaded by _library already

        void, integer = ctypes.c_void_p, ctypes.c_int
        self.store = _typed(lib, "SSL_CTX_get_cert_store", void, void)
        self.objects = _typed(lib, "X509_STORE_get0_objects", void, void)
        self.count = _typed(lib, "OPENSSL_sk_num", integer, void)
        self.item = _typed(lib, "OPENSSL_sk_value", void, void, integer)
        self.certificate = _typed(lib, "X509_OBJECT_get0_X509", void, void)  # NULL: a CRL
        self.up_ref = _typed(lib, "X509_up_ref", integer, void)
        self.free = _typed(lib, "X509_free", None, void)
        self.add = _typed(lib, "X509_STORE_add_cert", integer, void, void)
        self.clear_errors = _typed(lib, "ERR_clear_error", None)


class Anchors:
    """The certificates of a context's trust store as OpenSSL read them (its ``X509``
    objects, a reference of ours held on each), to be put into other contexts' stores
    without reading them again (:func:`add_anchors`). Each store takes its own
    reference; ours are released when this object goes. Not copied, not pickled: the
    references are this process's.

    Reading a certificate costs OpenSSL 3.0 about 100 us (its public key goes through
    a decoder set up for it): 14 to 20 ms for the JDK's 144-certificate ``cacerts``,
    paid by every context built from it. Put in from here: 0.4 ms.
    """

    __slots__ = ("__weakref__", "_free", "_pointers")

    def __init__(self, pointers: tuple[int, ...], free: Any) -> None:
        self._pointers = pointers
        self._free = free

    def __len__(self) -> int:
        return len(self._pointers)

    def __del__(self) -> None:
        pointers, self._pointers = self._pointers, ()
        for pointer in pointers:
            self._free(pointer)

    def __reduce__(self) -> Any:
        raise TypeError("mtls._openssl.Anchors holds this process's OpenSSL objects")

    def __copy__(self) -> Anchors:
        return self  # one set of references, released once

    def __deepcopy__(self, memo: object) -> Anchors:
        return self


def _trust_store(ctx: ssl.SSLContext) -> tuple[_Trust, int] | None:
    """The trust store calls and ``ctx``'s ``SSL_CTX *`` (checked), or None where
    they cannot be used here."""
    library = _library()
    trust = None if library is None else library.trust
    pointer = None if library is None or trust is None else library.pointer(ctx)
    return None if trust is None or pointer is None else (trust, pointer)


def anchors_of(ctx: ssl.SSLContext) -> Anchors | None:
    """The certificates in ``ctx``'s trust store (CRLs left out), each referenced;
    ``None`` where that is not possible here. ``ctx`` must be one the caller is
    building (nobody else uses its store meanwhile)."""
    found = _trust_store(ctx)
    if found is None:
        return None
    trust, pointer = found
    objects = trust.objects(trust.store(pointer))
    held: list[int] = []
    anchors = None
    try:
        for index in range(trust.count(objects) if objects else 0):
            x509 = trust.certificate(trust.item(objects, index))
            if not x509:
                continue  # a CRL
            if trust.up_ref(x509) != 1:
                return None  # every certificate or none: a set missing one trusts less
            held.append(int(x509))
        anchors = Anchors(tuple(held), trust.free)
        return anchors
    finally:
        if anchors is None:  # released: refused, or interrupted
            for x509 in held:
                trust.free(x509)


def add_anchors(ctx: ssl.SSLContext, anchors: Anchors) -> bool:
    """Put ``anchors`` into ``ctx``'s trust store, as ``load_verify_locations`` puts
    each certificate it reads (a certificate already there is no error). ``False``:
    not possible here, or OpenSSL refused one (out of memory); ``ctx`` may then hold
    some of them, and the caller loads them all the usual way (a certificate already
    in the store is skipped there too). OpenSSL's error queue is left empty."""
    found = _trust_store(ctx)
    if found is None:
        return False
    trust, pointer = found
    store, add = trust.store(pointer), trust.add
    try:
        return all(add(store, x509) == 1 for x509 in anchors._pointers)
    finally:
        trust.clear_errors()


# EVP_PKEY_KEYPAIR (evp.h): the private and public key and their parameters, what
# EVP_PKCS82PKEY asks its decoder for.
_KEYPAIR = 0x87


class _Decoder:
    """OpenSSL 3's decoder for a private key whose type is known.

    ``EVP_PKCS82PKEY`` sets up a decoder for every key type the providers know and
    tries them (OpenSSL 3.0: 340 us of a 1 ms context build, RSA or EC; a file of
    PEM costs ``load_cert_chain`` the same). Told the type, the decoder is set up
    among that type's decoders only: 100 us, the same decoder, the same key.
    """

    def __init__(self, lib: Any) -> None:
        import ctypes  # noqa: PLC0415 - loaded by _library already

        void, data = ctypes.c_void_p, ctypes.c_char_p
        self._void, self._cursor, self._size = void, data, ctypes.c_size_t
        self._byref = ctypes.byref
        self._new = _typed(
            lib, "OSSL_DECODER_CTX_new_for_pkey", void,
            ctypes.POINTER(void), data, data, data, ctypes.c_int, void, data,
        )  # fmt: skip
        self._decode = _typed(
            lib, "OSSL_DECODER_from_data", ctypes.c_int,
            void, ctypes.POINTER(data), ctypes.POINTER(ctypes.c_size_t),
        )  # fmt: skip
        self._free = _typed(lib, "OSSL_DECODER_CTX_free", None, void)
        self._free_key = _typed(lib, "EVP_PKEY_free", None, void)

    def private_key(self, der: bytes, key_type: bytes) -> int | None:
        """The ``EVP_PKEY`` of PKCS#8 ``der`` (a PrivateKeyInfo) as a ``key_type`` key
        (``b"RSA"``, ``b"EC"``, ...), if it is one and is all of ``der``; else None
        (what the decoder refused is left on the error queue)."""
        made = self._void()
        decoder = self._new(
            self._byref(made), b"DER", b"PrivateKeyInfo", key_type, _KEYPAIR, None, None
        )
        if not decoder:
            return None
        try:
            cursor, left = self._cursor(der), self._size(len(der))
            decoded = self._decode(decoder, self._byref(cursor), self._byref(left))
        finally:
            self._free(decoder)
        if decoded == 1 and made.value and left.value == 0:
            return int(made.value)
        if made.value:
            self._free_key(made)
        return None


def _library() -> _Library | None:
    """The OpenSSL ``_ssl`` is linked to, or None: found once per process (two threads
    racing the first call each find an equivalent one, and one is kept). A failure
    that may pass is not remembered: out of file descriptors or memory while
    ``ctypes`` is imported (an OSError opening its code, an ImportError when
    ``dlopen`` cannot open ``_ctypes``) or the library is opened. The next call looks
    again (a failure of that kind that never passes costs a look per context)."""
    try:
        return _found()
    except (OSError, ImportError) as exc:
        log.debug("mtls: OpenSSL's SSL_CTX calls not reached this time (%s)", exc)
        return None


@functools.cache
def _found() -> _Library | None:
    """:func:`_library`, remembered: a module or symbol that does not exist is kept as
    None; any other failure (for the moment) is raised, not kept."""
    if sys.implementation.name != "cpython" or not ssl.OPENSSL_VERSION.startswith("OpenSSL "):
        return None
    try:
        # Imported when first used: ctypes is a cost until a context is made.
        import _ssl  # noqa: PLC0415
        import ctypes  # noqa: PLC0415

        where = getattr(_ssl, "__file__", None)
        if where is None and "_ssl" not in sys.builtin_module_names:
            return None
        # dlsym through _ssl's own handle: the libssl it was linked against, no other;
        # a built-in _ssl: the process's global symbols, checked by version below.
        lib = ctypes.CDLL(where)
        if _typed(lib, "OpenSSL_version_num", ctypes.c_ulong)() != ssl.OPENSSL_VERSION_NUMBER:
            log.debug("mtls: the OpenSSL found is not the one ssl uses; not used")
            return None
        # The same library again, its calls made holding the GIL (ctypes.PyDLL): the
        # trust store's are short, and each GIL release would be a wait to take it
        # back behind a busy thread (up to the 5 ms switch interval, per call).
        return _Library(lib, _ssl._SSLContext, ctypes.PyDLL(where))
    except (ModuleNotFoundError, AttributeError) as exc:
        log.debug("mtls: OpenSSL's SSL_CTX calls are not reachable here (%s)", exc)
        return None


def session_cache_off(ctx: ssl.SSLContext) -> bool:
    """Turn off ``ctx``'s session cache: no session is stored, none already stored is
    looked up (no session-ID resumption, no stateful TLS 1.3 ticket). ``True`` when
    done and read back, ``False`` when not possible here (nothing was changed)."""
    library = _library()
    pointer = None if library is None else library.pointer(ctx)
    if library is None or pointer is None:
        return False
    library.ctrl(pointer, _SET_SESS_CACHE_MODE, _NO_CACHE, None)
    return bool(library.ctrl(pointer, _GET_SESS_CACHE_MODE, 0, None) == _NO_CACHE)


def use_identity(
    ctx: ssl.SSLContext,
    pkcs8_der: bytes,
    chain_der: Sequence[bytes],
    key_type: bytes | None = None,
) -> bool:
    """Install a private key (PKCS#8 DER) and its chain (DER, leaf first) into ``ctx``
    as :meth:`~ssl.SSLContext.load_cert_chain` would from a file: ``True`` when done.

    ``key_type``: the key's type as OpenSSL 3's decoders name it (``b"RSA"``,
    ``b"EC"``), when the caller knows it: the key is read among that type's decoders
    only (a third of the cost), and by the untyped way where that fails.

    ``False``: not possible here, or OpenSSL refused a part (this thread's OpenSSL
    error queue is left empty either way). ``ctx`` may then hold part of the identity:
    the caller loads the whole of it again through a file, which replaces every part
    and raises :class:`ssl.SSLError` with OpenSSL's reason for a refusal.
    """
    library = _library()
    if library is None or library.identity is None or not chain_der:
        return False
    # ctypes takes bytes for const unsigned char *; anything else goes the file way.
    if type(pkcs8_der) is not bytes or not all(type(der) is bytes for der in chain_der):
        return False
    pointer = library.pointer(ctx)
    if pointer is None:
        return False
    identity = library.identity
    identity.clear_errors()  # what another call left is not this install's refusal
    try:
        return identity.install(pointer, pkcs8_der, chain_der, key_type)
    finally:
        identity.clear_errors()
