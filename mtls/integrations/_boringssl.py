"""What gRPC's TLS library (BoringSSL) takes of a material, judged before gRPC is given it.

gRPC does its TLS in its own core, with BoringSSL, which refuses some keys and
certificates OpenSSL (the :mod:`ssl` contexts, which validated the material) takes:
Ed448, brainpool and secp256k1 keys, RSASSA-PSS keys, an RSA public exponent over 33
bits, a version 1 certificate with extensions. gRPC says so only in its own log
(``Handshaker factory creation failed``), keeps what it had and never asks again:
a server kept a client CA the truststore had withdrawn, a channel failed every call,
and mtls reported the rotation applied and healthy (h178). A truststore is worse:
BoringSSL reads a PEM bundle until the first certificate it cannot parse, and takes
that for the end, so every anchor after it is silently left out (and none at all,
when it comes first, which fails the configuration).

So each material is judged before gRPC sees it: the key by what is known of
BoringSSL (:func:`key_verdict`, for messages that say what to do), then by gRPC
itself (:func:`_probe`: a server of its own, never serving anyone, one loopback
port per item, each bound only if gRPC built the credentials). The anchors are
judged one by one, once per process each (cached by their bytes), and gRPC is given
those it reads (:attr:`Verdict.roots`): a CA it cannot read is refused by gRPC
(fail closed), said at ERROR, never a reason for the rest to be lost or for an old
configuration to stay.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import re
import sys
import threading
import time
import weakref

from .. import _x509
from .._errors import safe_text
from .._fork import renew_attributes_after_fork
from .._log import log
from .._material import TLSMaterial
from .._pem import base64_body

# The private keys BoringSSL takes: OpenSSL takes more (Ed448, brainpool and secp256k1
# curves, DSA), and gRPC then fails every handshake ("Invalid cert chain file",
# "Handshaker factory creation failed").
_GRPC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
# Keys BoringSSL loads and signs with, which BoringSSL peers (gRPC's C core; grpc-java
# on netty-tcnative) do not accept by default: every handshake with them fails
# NO_COMMON_SIGNATURE_ALGORITHMS. Other peers (Go, OpenSSL, the JDK) take them.
_BORINGSSL_PEERS_REFUSE = frozenset({"secp521r1"})
_RSASSA_PSS = "1.2.840.113549.1.1.10"
#: The longest RSA public exponent BoringSSL reads (``kMaxExponentBits``).
MAX_RSA_EXPONENT_BITS = 33
_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----\r?\n?", re.DOTALL
)


def key_verdict(key_pem: str) -> tuple[str | None, str | None]:
    """(why gRPC's TLS library cannot use this private key, what to say of a key it
    can use but gRPC's own peers refuse): ``None`` each when there is nothing to say.
    What is known of BoringSSL only; :func:`judge` asks gRPC itself too."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: PLC0415
    from cryptography.hazmat.primitives.serialization import (  # noqa: PLC0415
        load_pem_private_key,
    )

    try:  # the material's key: unencrypted PKCS#8, whose algorithm says if it is DSA
        algorithm = _x509.key_algorithm(base64_body(key_pem.split("-----")[2].encode()))
    except (IndexError, ValueError):
        algorithm = None  # not the PEM expected: whatever it is, cryptography reads it quietly
    if algorithm == _RSASSA_PSS:
        # cryptography reads it as an RSA key; BoringSSL does not read it at all (a
        # server's bind failed as if the port were taken, a channel's every call).
        return (
            "its keystore holds an RSASSA-PSS key (the key algorithm OID "
            f"{_RSASSA_PSS}), which gRPC's TLS library (BoringSSL) cannot use, though "
            "OpenSSL can: use an RSA key (rsaEncryption: TLS 1.3 signs with PSS all the "
            "same), or EC on P-256 or P-384"
        ), None
    dsa = algorithm in (_x509.DSA_OID, None)
    try:  # a DSA key is judged below, not warned about by cryptography
        key = _x509.dsa_call(
            dsa,
            load_pem_private_key,
            key_pem.encode("ascii"),
            None,
            unsafe_skip_rsa_key_validation=True,
        )
    except (ValueError, TypeError):
        return None, None  # what cryptography cannot read, gRPC judges itself
    if isinstance(key, rsa.RSAPrivateKey):
        bits = key.public_key().public_numbers().e.bit_length()
        if bits > MAX_RSA_EXPONENT_BITS:
            return (
                f"its keystore holds an RSA key whose public exponent has {bits} bits, "
                "which gRPC's TLS library (BoringSSL) cannot use (it reads at most "
                f"{MAX_RSA_EXPONENT_BITS}), though OpenSSL can: use an RSA key with the "
                "usual exponent, 65537, or EC on P-256 or P-384"
            ), None
        return None, None
    curve = key.curve.name if isinstance(key, ec.EllipticCurvePrivateKey) else None
    if isinstance(key, ed25519.Ed25519PrivateKey) or curve in _BORINGSSL_PEERS_REFUSE:
        kind = "an Ed25519 key" if curve is None else f"an EC key on {curve} (P-521)"
        return None, (
            f"its keystore holds {kind}: gRPC peers built on BoringSSL (gRPC's C core, "
            "grpc-java on netty-tcnative) refuse its signatures by default, so handshakes "
            "with them fail (NO_COMMON_SIGNATURE_ALGORITHMS); Go, OpenSSL and Java peers "
            "take it. For gRPC, use RSA, or EC on P-256 or P-384"
        )
    if curve in _GRPC_CURVES:
        return None, None
    name = type(key).__name__.removeprefix("_").replace("PrivateKey", "")
    kind = (
        f"an EC key on {curve}"
        if curve is not None
        else f"{'an' if name[:1] in 'AEIOU' else 'a'} {name} key"
    )
    return (
        f"its keystore holds {kind}, which gRPC's TLS library (BoringSSL) cannot use, "
        "though OpenSSL can: use RSA, or EC on P-256 or P-384 (what gRPC peers verify "
        "by default)"
    ), None


_PROBED_KEY = (
    "gRPC's TLS library (BoringSSL) refuses its key or certificate chain, though OpenSSL "
    "takes them (gRPC's own log says why: 'Invalid cert chain file', 'Invalid private "
    "key'; a certificate BoringSSL cannot parse, as a version 1 certificate with "
    "extensions, is one cause): use certificates made by current tools, with an RSA key "
    "or EC on P-256 or P-384"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """What gRPC takes of one material.

    Attributes:
        key: why gRPC cannot use its key and chain (``None``: it can, or it was not
            asked and the known rules find nothing).
        roots: its anchors as gRPC is to be given them: those gRPC reads, then
            (after :func:`refuse_every_peer`'s) those it could not be asked about:
            BoringSSL stops at the first it cannot read, so one of those loses only
            what follows it, never the whole truststore (``None``: the material has
            none; ``b""``: gRPC reads none of them).
        left_out: the anchors gRPC cannot read, each described (subject, SHA-256).
        asked: gRPC answered about the key and chain (``False``: the known rules only:
            a server serves the identity in service, known good, until it is asked).
        until: when (monotonic) the verdict lapses and gRPC is asked again: one
            with an item gRPC could not be asked about (no port bound for the
            control item either) after :data:`RETRY_UNASKED`, one with a refusal
            after :data:`RETRY_REFUSED` (a refusal made by mistake does not stand
            for the process's life); ``None``: for good.
    """

    key: str | None
    roots: bytes | None
    left_out: tuple[str, ...] = ()
    asked: bool = True
    until: float | None = None

    @property
    def current(self) -> bool:
        """Whether it stands now."""
        return self.until is None or time.monotonic() < self.until

    def roots_refusal(self, where: str) -> str | None:
        """What to say of the anchors gRPC cannot read (``None``: it reads them all)."""
        if not self.left_out:
            return None
        shown = "; ".join(self.left_out[:5])
        more = f" and {len(self.left_out) - 5} more" if len(self.left_out) > 5 else ""
        kept = (
            "gRPC is given none: it refuses every peer"
            if not self.roots
            else "gRPC is given the others: peers under those are refused"
        )
        return (
            f"{where}: gRPC's TLS library (BoringSSL) cannot read {len(self.left_out)} "
            f"certificate(s) of the truststore, though OpenSSL takes them: {shown}{more}; "
            f"{kept} (BoringSSL would otherwise stop reading the truststore at the first "
            "of them). Replace them with certificates made by current tools (a version 1 "
            "certificate with extensions is one cause)"
        )


def unasked(material: TLSMaterial) -> Verdict:
    """The verdict of the known rules alone (:func:`key_verdict`), for a material gRPC
    was not asked about yet: a server keeps the identity in service and takes the new
    trust (the anchors gRPC read before first: :func:`_ordered`). It lapses at once:
    what :func:`judge` finds replaces it."""
    key = material.private_key
    known = key_verdict(key.reveal())[0] if key is not None else None
    bundle = material.root_certificates
    anchors = _anchors(bundle)
    unsure = {digest for _, digest in anchors if digest not in _ROOTS_READ}
    roots = _ordered(anchors, set(), unsure) if bundle is not None else None
    return Verdict(known, roots, asked=False, until=0.0)


def _anchors(bundle: bytes | None) -> list[tuple[bytes, bytes]]:
    """The anchors of a PEM bundle, each (PEM ending in a newline, SHA-256 of it)."""
    if bundle is None:
        return []
    pems = [p if p.endswith(b"\n") else p + b"\n" for p in _PEM_CERTIFICATE.findall(bundle)]
    return [(pem, hashlib.sha256(pem).digest()) for pem in pems]


def _ordered(anchors: list[tuple[bytes, bytes]], refused: set[bytes], unsure: set[bytes]) -> bytes:
    """The anchors as gRPC is given them: without those it refused, those it reads
    first, then those it was not asked about after one it reads for sure (the probe's
    own, whose key never leaves this process: it verifies no peer). BoringSSL stops at
    the first anchor it cannot read: one of those then loses what follows it, never
    the whole truststore (gRPC would keep its previous configuration, a withdrawn CA
    with it)."""
    kept = [pem for pem, digest in anchors if digest not in refused and digest not in unsure]
    if unsure:
        kept += [_control()[1], *(pem for pem, digest in anchors if digest in unsure)]
    return b"".join(kept)


#: Seconds a verdict with an item gRPC could not be asked about stands before gRPC is
#: asked again (meanwhile: the identity in service, the anchors not asked about last).
RETRY_UNASKED = 30.0
#: Seconds a verdict with a refusal stands before gRPC is asked again (a refusal made
#: by mistake does not stand for the process's life; gRPC logs its own lines at each).
RETRY_REFUSED = 600.0
#: Seconds gRPC's own thread waits, before a server's handshake that finds a material
#: not judged (new, or its verdict lapsed), for the probe to run on a thread of its own
#: (about 10 ms); past it, the new trust is served with the identity in service until
#: the verdict is in.
FETCH_WAIT = 2.0

# Verdicts by material fingerprint (never by the key itself: no key is kept here).
_VERDICTS: dict[str, Verdict] = {}
_MAX_VERDICTS = 64
# The anchors gRPC read, by the SHA-256 of their PEM (anchors are public); only those
# it read: a refusal is asked again with the next material.
_ROOTS_READ: set[bytes] = set()
_MAX_ROOTS_READ = 16_384
_LOCK = threading.Lock()  # one probe at a time: each binds ports, starts a server
_WARNED: set[str] = set()
# The judgements judge_soon started, by fingerprint: set when each ends.
_SOON: dict[str, threading.Event] = {}
_SOON_LOCK = threading.Lock()
# In a child, a probe or a judgement under way at the fork is not its own.
renew_attributes_after_fork(sys.modules[__name__], "_LOCK", "_SOON_LOCK")
renew_attributes_after_fork(sys.modules[__name__], "_SOON", new=dict)


def judged(material: TLSMaterial) -> Verdict | None:
    """The verdict on ``material`` if it was judged already and stands (never probes:
    for gRPC's own threads, which must not start a server)."""
    found = _VERDICTS.get(material.fingerprint)
    return found if found is not None and found.current else None


def judge_soon(material: TLSMaterial) -> threading.Event:
    """Judge ``material`` on a thread of its own (one at a time per material), for a
    caller that must not probe (gRPC's own thread, asking a server's fetcher before a
    handshake): the event is set when the verdict is in (:func:`judged`)."""
    fingerprint = material.fingerprint
    with _SOON_LOCK:
        done = _SOON.get(fingerprint)
        if done is not None:
            return done
        done = _SOON[fingerprint] = threading.Event()

    def run() -> None:
        try:
            judge(material)
        finally:
            with _SOON_LOCK:
                _SOON.pop(fingerprint, None)
            done.set()

    try:
        threading.Thread(target=run, name="mtls-grpc-judge", daemon=True).start()
    except (RuntimeError, OSError):  # no thread (shutdown, 3.12.0-3.12.2 after main ended)
        # Never left waiting for a verdict no thread will give (h195): the next call
        # tries again, and this one's caller judges as if it had waited in vain.
        with _SOON_LOCK:
            _SOON.pop(fingerprint, None)
        done.set()
    return done


# The judgements a caller waited FETCH_WAIT for in vain: not waited for again (a probe
# stuck in gRPC would otherwise hold every handshake FETCH_WAIT until it ends).
_WAITED_OUT: weakref.WeakSet[threading.Event] = weakref.WeakSet()


def awaited(material: TLSMaterial) -> Verdict | None:
    """The verdict on ``material``, judged on a thread of its own (:func:`judge_soon`)
    and waited for up to :data:`FETCH_WAIT` (once per judgement: no other caller waits
    for one that kept a caller waiting that long); ``None``: not in yet."""
    done = judge_soon(material)
    if done not in _WAITED_OUT and not done.wait(FETCH_WAIT):
        _WAITED_OUT.add(done)
    return judged(material)


def judge(material: TLSMaterial) -> Verdict:
    """What gRPC takes of ``material``: judged once per material (a key gRPC's own peers
    refuse is warned about then), the anchors it reads once per process each.

    Starts a gRPC server of its own for a moment (milliseconds; tens of them for a
    truststore of 150 anchors not seen before): call it off an event loop, never
    from gRPC's own callbacks.
    """
    found = judged(material)
    if found is not None:
        return found
    with _LOCK:
        found = judged(material)
        if found is not None:
            return found
        try:
            verdict = _judge(material)
        except Exception:
            # gRPC failed to be asked (never a reason to leave a material unserved): it
            # is given what it was given before the probe, and asked again later.
            log.warning(
                "mtls: gRPC: its TLS library could not be asked about a material", exc_info=True
            )
            verdict = dataclasses.replace(unasked(material), until=time.monotonic() + RETRY_UNASKED)
        if len(_VERDICTS) >= _MAX_VERDICTS:
            _VERDICTS.clear()
        _VERDICTS[material.fingerprint] = verdict
    return verdict


def _judge(material: TLSMaterial) -> Verdict:
    key = material.private_key
    refusal: str | None = None
    items: list[tuple[bytes, bytes, bytes | None]] = []
    if key is not None:
        revealed = key.reveal()
        refusal, caution = key_verdict(revealed)
        if caution is not None and material.fingerprint not in _WARNED:
            if len(_WARNED) >= _MAX_VERDICTS:
                _WARNED.clear()
            _WARNED.add(material.fingerprint)  # said once per material
            where = str(material.profile) if material.profile is not None else "the default"
            log.warning("mtls: gRPC: %s: %s", where, caution)
        if refusal is None and material.certificate_chain is not None:
            items.append((revealed.encode("ascii"), material.certificate_chain, None))
    key_probed = bool(items)
    key_answer: bool | None = True
    bundle = material.root_certificates
    anchors = _anchors(bundle)
    unknown: dict[bytes, bytes] = {}
    for anchor, digest in anchors:
        if digest not in _ROOTS_READ:
            unknown.setdefault(digest, anchor)
    if unknown:
        control_key, control_chain = _control()
        items.extend((control_key, control_chain, anchor) for anchor in unknown.values())
    read = _probe(items) if items else []
    if key_probed:
        key_answer = read.pop(0)
        if key_answer is False:
            refusal = _PROBED_KEY
    answers = dict(zip(unknown, read, strict=True))
    if len(_ROOTS_READ) + len(unknown) > _MAX_ROOTS_READ:
        _ROOTS_READ.clear()
    _ROOTS_READ.update(digest for digest, answer in answers.items() if answer)
    refused = {digest for digest, answer in answers.items() if answer is False}
    unsure = {digest for digest, answer in answers.items() if answer is None}
    left_out = tuple(_described(anchor) for anchor, digest in anchors if digest in refused)
    lapse: float | None = None
    if None in read or key_answer is None:  # the key's answer was popped from read
        log.debug("mtls: gRPC: its TLS library could not be asked about all of a material")
        lapse = RETRY_UNASKED
    elif refusal is not None or refused:
        lapse = RETRY_REFUSED
    return Verdict(
        refusal,
        _ordered(anchors, refused, unsure) if bundle is not None else None,
        left_out,
        asked=key_answer is not None,
        until=time.monotonic() + lapse if lapse is not None else None,
    )


def _described(anchor: bytes) -> str:
    """An anchor as a message names it: its subject and the start of its SHA-256."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    try:
        cert = x509.load_pem_x509_certificate(anchor)
        subject = safe_text(cert.subject.rfc4514_string())
        digest = _x509.sha256_hex(cert.public_bytes(Encoding.DER))
    except ValueError:
        return f"a certificate cryptography cannot read either ({len(anchor)} bytes of PEM)"
    return f"{subject} (SHA-256 {digest[:16]}...)"


_CONTROL: tuple[bytes, bytes] | None = None


def _control() -> tuple[bytes, bytes]:
    """A key and self-signed certificate gRPC takes (EC P-256), made once per process:
    the identity the anchors are tried with, and the probe's own check that it works
    here. Never written anywhere, never presented to a peer."""
    global _CONTROL  # noqa: PLW0603 - made on first use, once
    if _CONTROL is None:
        from .._keyload import _chain_pem, _key_pem  # noqa: PLC0415
        from .._stores import Keystore  # noqa: PLC0415

        made = Keystore.generate("probe", "CN=mtls gRPC probe", key_type="EC", days=3650)
        _, key_der, chain_der = made.key_entry()
        _CONTROL = (_key_pem(key_der), _chain_pem(chain_der))
    return _CONTROL


def refuse_every_peer() -> bytes:
    """Anchors that verify no peer (the probe's own self-signed certificate, whose key
    never leaves this process): what a server is given when gRPC reads none of its
    truststore, so that it refuses every client rather than keep an older trust."""
    return _control()[1]


def _probe(items: list[tuple[bytes, bytes, bytes | None]]) -> list[bool | None]:
    """Whether gRPC builds server credentials from each ``(key, chain, roots)``, asked of
    gRPC itself: a server of its own, never reachable by anyone (a port on 127.0.0.1
    held by a socket of ours that never listens), to which each item is added on that
    port (an item gRPC refuses fails to bind, as a real server's ``add_secure_port``
    does), started and stopped at once (an unstarted server keeps its ports' sockets
    open for good).

    The port is held by us and shared (``SO_REUSEPORT``), so a bind does not need a
    free ephemeral port: a shortage of ports made good material look refused, and
    cached so (h181, h182). After each refusal the known-good control item is bound
    again; if it fails too (no descriptors left), the answer is ``None`` (not asked),
    never a refusal. ``None`` for every item where no port can be held at all.
    """
    import socket  # noqa: PLC0415 - the probe's own, on first use

    import grpc  # noqa: PLC0415 - grpc is the caller's (mtls.integrations.grpc)

    try:
        held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return [None] * len(items)
    try:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(("127.0.0.1", 0))
    except (OSError, AttributeError):  # AttributeError: no SO_REUSEPORT on this system
        held.close()
        return [None] * len(items)
    address = f"127.0.0.1:{held.getsockname()[1]}"
    control_key, control_chain = _control()
    workers = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mtls-grpc-probe")
    server = grpc.server(workers, options=[("grpc.so_reuseport", 1)])

    def binds(key: bytes, chain: bytes, roots: bytes | None) -> bool:
        credentials = grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=roots, require_client_auth=roots is not None
        )
        try:
            server.add_secure_port(address, credentials)
        except RuntimeError:
            return False
        return True

    read: list[bool | None] = []
    try:
        for key, chain, roots in items:
            if binds(key, chain, roots):
                read.append(True)
            else:  # refused by gRPC, if the control item binds now
                read.append(False if binds(control_key, control_chain, None) else None)
        server.start()
    finally:
        server.stop(None).wait(10)
        workers.shutdown(wait=False)
        held.close()
    return read
