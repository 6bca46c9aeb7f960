"""mtls against the raw ``ssl`` floor, as ratios.

    python benchmarks/run.py             # every benchmark, full repetitions
    python benchmarks/run.py --quick     # few repetitions (CI: it runs, it is not a measurement)
    python benchmarks/run.py --only keystore --only truststore
    python benchmarks/run.py --only load-pem-ec --runs 5   # the median run, and the range

Each benchmark times our call and the raw-``ssl`` call that does the same work
from PEM files ("the floor"), interleaved (ours, floor, floor, ours, ...) so that
a noisy neighbour hits both alike, and reports the medians and their ratio.
A target is the ratio we promise in docs/performance.md.

Adding a benchmark: write a function ``(env: Env, reps: int) -> Comparison`` that
calls :func:`compare`, and register it with ``@benchmark(name, target, about)``.
``Env`` builds shared material (key pairs, stores, PEM files) once, lazily.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import gc
import os
import platform
import shutil
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cryptography
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

import mtls

PASSWORD = "bench-pass"
CACERTS = (
    "/usr/lib/jvm/java-17-openjdk-amd64/lib/security/cacerts",
    "/etc/ssl/certs/java/cacerts",
)


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Comparison:
    ours: list[float]  # seconds per call
    floor: list[float]

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours)

    @property
    def floor_median(self) -> float:
        return statistics.median(self.floor)

    @property
    def ratio(self) -> float:
        return self.ours_median / self.floor_median


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    del result  # freed outside the timed region
    return elapsed


def cold(*, stores: bool = True) -> None:
    """Empty mtls's caches of per-certificate work (a leaf's dates, a chain's PEM text,
    a certificate's names and CN, a signature checked): what a first load, or a rotation's new
    certificate, finds. Caches of data every certificate shares (object identifier
    names) stay, as they do in a running process. ``stores``: also what OpenSSL read
    of a loaded truststore's anchors (kept for the next context built from the same
    Truststore): a row that builds from one loaded store again and again measures a
    first build; a reload's rows keep it, as a service whose truststore did not change
    does."""
    from mtls import _context, _crl, _entries, _keyload, _x509  # noqa: PLC0415

    if stores:
        _context._READ_ANCHORS.clear()
    for cached in (
        _context._leaf_facts,
        _crl._issued,
        _entries._cn_alias,
        _keyload._identity_chain_pem,
        _x509.raw_names,
        _x509._plain,
    ):
        cached.cache_clear()


def compare(
    ours: Callable[[], object],
    floor: Callable[[], object],
    reps: int,
    warmup: int = 5,
    *,
    before: Callable[[], object] | None = None,
    first_build: bool = True,
) -> Comparison:
    """Time ``ours`` and ``floor`` ``reps`` times each, interleaved; return all samples.

    The order alternates (ours first on even rounds, floor first on odd ones) so that
    neither side always runs with warm caches. Before each timed call, outside the
    timer: mtls's per-certificate caches are emptied (:func:`cold`: no call reuses what
    an earlier repetition parsed), ``before`` runs ahead of ``ours`` (what the user's
    side of the comparison does not time: writing the file a reload then finds), and a
    young-generation collection leaves each call to pay for the collections its own
    allocations cause (the garbage collector stays on: users pay for it); a full
    collection runs every 20 rounds. ``first_build=False`` keeps what OpenSSL read of
    loaded truststores (see :func:`cold`).
    """
    for _ in range(warmup):
        if before is not None:
            before()
        ours()
        floor()
    a: list[float] = []
    b: list[float] = []

    def timed_ours() -> None:
        cold(stores=first_build)
        if before is not None:
            before()
        gc.collect(0)
        a.append(_timed(ours))

    def timed_floor() -> None:
        cold(stores=first_build)
        gc.collect(0)
        b.append(_timed(floor))

    for i in range(reps):
        if i % 2 == 0:
            timed_ours()
            timed_floor()
        else:
            timed_floor()
            timed_ours()
        if i % 20 == 19:
            gc.collect()
    return Comparison(a, b)


@dataclass(frozen=True)
class Benchmark:
    name: str
    run: Callable[[Env, int], Comparison]
    target: float | None  # the promised maximum ratio, or None (reported only)
    about: str
    unit: str = "ms"  # how samples are shown: ms, us, ns (samples in s) or MiB (in bytes)


_SCALE = {"ms": 1e3, "us": 1e6, "ns": 1e9, "MiB": 1 / 2**20}


BENCHMARKS: list[Benchmark] = []


class Unavailable(Exception):
    """A benchmark's peer (a package it compares with) is not installed: it is skipped."""


def benchmark(
    name: str, target: float | None, about: str, unit: str = "ms"
) -> Callable[[Callable[[Env, int], Comparison]], Callable[[Env, int], Comparison]]:
    """Register a benchmark function under ``name``."""

    def register(fn: Callable[[Env, int], Comparison]) -> Callable[[Env, int], Comparison]:
        BENCHMARKS.append(Benchmark(name, fn, target, about, unit))
        return fn

    return register


# --------------------------------------------------------------------------- material


class Env:
    """Shared material, built on first use in a temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    @functools.cached_property
    def identity(self) -> dict[str, Path]:
        """An RSA-2048 client key signed by a CA: JKS keystore, and the same as PEM files."""
        now = dt.datetime.now(dt.UTC)
        ca_key = rsa.generate_private_key(65537, 2048)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        key = rsa.generate_private_key(65537, 2048)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench client")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .sign(ca_key, hashes.SHA256())
        )
        ks = mtls.Keystore()
        ks.add_key("client", key, [leaf, ca])
        jks = self.dir / "client.jks"
        ks.save(jks, PASSWORD)
        trust = mtls.Truststore()
        trust.add("ca", ca)
        trust_jks = self.dir / "ca.jks"
        trust.save(trust_jks, PASSWORD)
        certfile = self.dir / "client.crt"
        certfile.write_bytes(
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca))
        )
        keyfile = self.dir / "client.key"
        keyfile.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cafile = self.dir / "ca.pem"
        cafile.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        return {
            "jks": jks,
            "trust_jks": trust_jks,
            "certfile": certfile,
            "keyfile": keyfile,
            "cafile": cafile,
        }

    @functools.cached_property
    def cacerts(self) -> tuple[Path, Path, str]:
        """A copy of the JDK's cacerts (JKS) and the same certificates as one PEM file."""
        source = next((Path(p) for p in CACERTS if Path(p).is_file()), None)
        jks = self.dir / "cacerts.jks"
        if source is not None:
            shutil.copyfile(source, jks)
            origin = f"copy of {source}"
            password = "changeit"
        else:  # no JDK here: 145 self-signed roots of our own, same shape
            trust = mtls.Truststore()
            for n in range(145):
                ks = mtls.Keystore.generate(f"root{n}", f"CN=root {n}", key_type="EC")
                trust.add(f"root{n}", ks.certificate(f"root{n}"))
            trust.save(jks, PASSWORD)
            origin = "145 generated EC roots (no JDK cacerts found)"
            password = PASSWORD
        pem = self.dir / "cacerts.pem"
        pem.write_bytes(mtls.Truststore.load(jks, password).to_pem())
        self.cacerts_password = password
        return jks, pem, origin


# --------------------------------------------------------------------------- benchmarks


def _raw_identity(files: dict[str, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=files["cafile"])
    ctx.load_cert_chain(files["certfile"], files["keyfile"])
    return ctx


@benchmark(
    "keystore",
    1.3,
    "client_context(keystore, truststore) from a loaded JKS (RSA 2048, chain of 2, one anchor) "
    "vs SSLContext + load_verify_locations(cafile) + load_cert_chain(certfile, keyfile)",
)
def bench_keystore(env: Env, reps: int) -> Comparison:
    files = env.identity
    ks = mtls.Keystore.load(files["jks"], PASSWORD)
    ts = mtls.Truststore.load(files["trust_jks"], PASSWORD)
    return compare(lambda: mtls.client_context(ks, ts), lambda: _raw_identity(files), reps)


@benchmark(
    "identity",
    1.3,
    "client_context(keystore, verify=False): the key path alone, from a loaded JKS, "
    "vs SSLContext(PROTOCOL_TLS_CLIENT).load_cert_chain(certfile, keyfile)",
)
def bench_identity(env: Env, reps: int) -> Comparison:
    files = env.identity
    ks = mtls.Keystore.load(files["jks"], PASSWORD)

    def raw() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_cert_chain(files["certfile"], files["keyfile"])
        return ctx

    return compare(lambda: mtls.client_context(ks, verify=False), raw, reps)


@benchmark(
    "truststore",
    1.05,
    "client_context(truststore=...) from a loaded copy of the JDK cacerts "
    "vs SSLContext + load_verify_locations(cafile=PEM of the same certificates)",
)
def bench_truststore(env: Env, reps: int) -> Comparison:
    jks, pem, _ = env.cacerts
    ts = mtls.Truststore.load(jks, env.cacerts_password)

    def raw() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=pem)
        return ctx

    return compare(lambda: mtls.client_context(truststore=ts), raw, reps)


@benchmark(
    "context-shared-trust",
    None,
    "client_context(keystore, truststore) with the JDK cacerts copy a context was built "
    "from already (another keystore on the same truststore, an ALPN variant, a rotated "
    "keystore) vs SSLContext + load_verify_locations(cafile=PEM) + load_cert_chain",
)
def bench_context_shared_trust(env: Env, reps: int) -> Comparison:
    ks, ts = _identity_and_cacerts(env)
    # The warm-up builds the first context; the timed ones find its anchors kept.
    return compare(
        lambda: mtls.client_context(ks, ts), _one_context_floor(env), reps, first_build=False
    )


def _identity_and_cacerts(env: Env) -> tuple[mtls.Keystore, mtls.Truststore]:
    """The identity's JKS keystore and the cacerts copy, loaded (the floor of rows that
    build from them: :func:`_one_context_floor`)."""
    jks, _, _ = env.cacerts
    return (
        mtls.Keystore.load(env.identity["jks"], PASSWORD),
        mtls.Truststore.load(jks, env.cacerts_password),
    )


def _longest_pause(build: Callable[[], object]) -> float:
    """How long ``build``, run on another thread (as the reloader builds), keeps this
    one waiting: the longest gap between two steps of a loop that reads the clock."""
    go, done = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def worker() -> None:
        go.wait()
        try:
            build()
        except BaseException as exc:  # raised again on the measuring thread
            failed.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    longest = 0.0
    go.set()
    last = time.perf_counter()
    while not done.is_set():
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
    # The pause that ended the loop: the interpreter switches threads at a call, often
    # inside done.is_set(), and a build done in that one turn would go unmeasured.
    longest = max(longest, time.perf_counter() - last)
    thread.join()
    if failed:
        raise failed[0]
    return longest


@benchmark(
    "reload-stall",
    1.5,
    "the longest pause another thread sees while client_context is built on a thread "
    "from a loaded keystore and the JDK cacerts copy (what a reload builds) vs the same "
    "pause for SSLContext + load_verify_locations(cafile=PEM) + load_cert_chain on a thread",
)
def bench_reload_stall(env: Env, reps: int) -> Comparison:
    ks, ts = _identity_and_cacerts(env)
    raw = _one_context_floor(env)
    rounds = min(reps, 60)
    ours: list[float] = []
    floor: list[float] = []
    for i in range(rounds):
        pair = (ours, floor) if i % 2 == 0 else (floor, ours)
        for samples in pair:
            build = (lambda: mtls.client_context(ks, ts)) if samples is ours else raw
            cold()  # a first build from the truststore, as compare() runs each row
            samples.append(_longest_pause(build))
    return Comparison(ours, floor)


@benchmark(
    "keystore-load",
    None,
    "Keystore.load + Truststore.load (JKS) + client_context, end to end, "
    "vs the same raw ssl calls from PEM files",
)
def bench_keystore_load(env: Env, reps: int) -> Comparison:
    files = env.identity

    def ours() -> ssl.SSLContext:
        ks = mtls.Keystore.load(files["jks"], PASSWORD)
        ts = mtls.Truststore.load(files["trust_jks"], PASSWORD)
        return mtls.client_context(ks, ts)

    return compare(ours, lambda: _raw_identity(files), reps)


def _bench_truststore_load(pem_bundle: bool) -> Callable[[Env, int], Comparison]:
    """Truststore.load of the cacerts copy (JKS, or the same certificates as one PEM
    bundle) + client_context, against load_verify_locations of the PEM."""

    def run(env: Env, reps: int) -> Comparison:
        jks, pem, _ = env.cacerts

        def ours() -> ssl.SSLContext:
            store = (
                mtls.Truststore.load(pem)
                if pem_bundle
                else mtls.Truststore.load(jks, env.cacerts_password)
            )
            return mtls.client_context(truststore=store)

        def raw() -> ssl.SSLContext:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cafile=pem)
            return ctx

        return compare(ours, raw, reps)

    return run


benchmark(
    "truststore-load",
    None,
    "Truststore.load (JKS cacerts copy) + client_context, end to end, "
    "vs load_verify_locations(cafile=PEM)",
)(_bench_truststore_load(pem_bundle=False))
benchmark(
    "truststore-load-pem",
    None,
    "Truststore.load (the same cacerts copy as a PEM bundle) + client_context, end to "
    "end, vs load_verify_locations(cafile=that PEM)",
)(_bench_truststore_load(pem_bundle=True))


@benchmark(
    "httpx-transport",
    1.05,
    "one keep-alive GET through httpx.Client(transport=MTLSTransport(profiles)) "
    "vs httpx.Client(verify=ctx) with the same context, same local mTLS backend "
    "(1.05x per request = at least 0.95 of the plain client's requests per second)",
)
def bench_httpx_transport(env: Env, reps: int) -> Comparison:
    import httpx  # noqa: PLC0415 - the httpx extra

    from mtls.integrations.httpx import MTLSTransport  # noqa: PLC0415

    server, url, profiles = https_backend(env, "gw", keep_alive=True)
    ctx = profiles.context_for_url(url)
    assert ctx is not None  # the backend's profile matches its URL
    ours = httpx.Client(transport=MTLSTransport(profiles))
    plain = httpx.Client(verify=ctx)
    try:
        for _ in range(20):  # connections made and warm on both sides
            ours.get(url).raise_for_status()
            plain.get(url).raise_for_status()
        return compare(lambda: ours.get(url), lambda: plain.get(url), reps)
    finally:
        ours.close()
        plain.close()
        server.shutdown()
        server.server_close()


_GRPC_BURST = 10  # calls per sample: one call is near the timer's noise on a shared machine


@benchmark(
    "grpc-channel",
    1.05,
    "one unary call over one connection through mtls.integrations.grpc.secure_channel"
    "(target, profiles) vs grpc.secure_channel with the same PEM material, same local "
    "mTLS gRPC server (1.05x per call = at least 0.95 of the plain channel's calls "
    "per second)",
    unit="us",
)
def bench_grpc_channel(env: Env, reps: int) -> Comparison:
    from concurrent import futures  # noqa: PLC0415 - only this benchmark serves gRPC

    import grpc  # noqa: PLC0415 - the grpc extra

    from mtls.integrations.grpc import secure_channel  # noqa: PLC0415
    from mtls.testing import CA  # noqa: PLC0415

    ca = CA()
    keystore = ca.issue_cert("bench-gateway").write_keystore(env.dir / "grpc.jks", PASSWORD)
    truststore = ca.write_truststore(env.dir / "grpc-trust.jks", PASSWORD)
    backend = ca.issue_cert("localhost")
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
    port = server.add_secure_port(
        "127.0.0.1:0",
        grpc.ssl_server_credentials(
            [(backend.private_key_pem, backend.chain_pem)], ca.cert_pem, True
        ),
    )
    server.start()
    profiles = mtls.SSLProfileSet(
        [
            mtls.SSLProfile(
                servers=(f"localhost:{port}",),
                keystore=mtls.StoreConfig(location=keystore, password=PASSWORD),
                truststore=mtls.StoreConfig(location=truststore, password=PASSWORD),
            )
        ]
    )
    material = profiles.material_for("localhost", port)
    assert material is not None
    assert material.private_key is not None
    credentials = grpc.ssl_channel_credentials(
        material.root_certificates,
        material.private_key.reveal().encode("ascii"),
        material.certificate_chain,
    )
    ours_channel = secure_channel(f"localhost:{port}", profiles)
    plain_channel = grpc.secure_channel(f"localhost:{port}", credentials)
    ours = ours_channel.unary_unary("/bench.Echo/Echo")
    plain = plain_channel.unary_unary("/bench.Echo/Echo")
    try:
        for _ in range(50):  # connections made and warm on both sides
            ours(b"ping", timeout=10)
            plain(b"ping", timeout=10)

        def burst(call: Callable[..., object]) -> Callable[[], None]:
            def run() -> None:
                for _ in range(_GRPC_BURST):
                    call(b"ping")

            return run

        result = compare(burst(ours), burst(plain), reps)
        # Samples per call, as the table shows them.
        return Comparison(
            [t / _GRPC_BURST for t in result.ours], [t / _GRPC_BURST for t in result.floor]
        )
    finally:
        ours_channel.close()
        plain_channel.close()
        server.stop(None)


# --------------------------------------------------------------------------- profiles

PROFILES = 1000


def _profiles_env(env: Env) -> tuple[Path, Path, Path, str]:
    """A keystore, the big truststore and a profile file naming both 1,000 times."""
    if "profiles_xml" not in env.__dict__:
        trust, _, _ = env.cacerts
        keystore = env.identity["jks"]
        body = "".join(
            f"<profile><servers>backend{i}.example.com:8243</servers>"
            f"<KeyStore><Location>{keystore}</Location><Type>JKS</Type>"
            f"<Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword></KeyStore>"
            f"<TrustStore><Location>{trust}</Location><Type>JKS</Type>"
            f"<Password>{env.cacerts_password}</Password></TrustStore></profile>"
            for i in range(PROFILES)
        )
        xml = env.dir / "sslprofiles-1000.xml"
        xml.write_text(f'<parameter name="customSSLProfiles">{body}</parameter>')
        env.__dict__["profiles_xml"] = xml
    xml = env.__dict__["profiles_xml"]
    trust, _, _ = env.cacerts
    return xml, env.identity["jks"], trust, env.cacerts_password


def _one_context_floor(env: Env) -> Callable[[], ssl.SSLContext]:
    """The profile rows' floor: one context from the same two stores, with the raw ssl
    calls on PEM files of them (the keystore's key and chain, the truststore's
    certificates), as every other row's floor."""
    files = env.identity
    _, cafile, _ = env.cacerts
    certfile, keyfile = files["certfile"], files["keyfile"]

    def one_context() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=cafile)
        ctx.load_cert_chain(certfile, keyfile)
        return ctx

    return one_context


@benchmark(
    "profiles-1000",
    1.5,
    "SSLProfileSet.from_xml with 1,000 profiles on one keystore and the 144-certificate "
    "truststore vs one context from the same two stores (raw ssl, PEM files; they share "
    "it); a first load reads the truststore on a thread while the file is parsed, so this "
    "uses a second core when there is one",
)
def bench_profiles(env: Env, reps: int) -> Comparison:
    xml, _, _, _ = _profiles_env(env)
    return compare(
        lambda: mtls.SSLProfileSet.from_xml(xml),
        _one_context_floor(env),
        min(reps, 60),
        warmup=2,
    )


def _code_profiles(keystore: Path, trust: Path, trust_password: str, count: int) -> list[Any]:
    """``count`` profiles made in code (the constructor's path) on the two stores."""
    ks = mtls.StoreConfig(location=keystore, password=PASSWORD)
    ts = mtls.StoreConfig(location=trust, password=trust_password)
    return [
        mtls.SSLProfile(servers=(f"backend{i}.example.com:8243",), keystore=ks, truststore=ts)
        for i in range(count)
    ]


@benchmark(
    "profiles-1000-build",
    1.5,
    "SSLProfileSet(profiles) with the same 1,000 profiles made in code (no file to read) "
    "vs one context from the two stores (raw ssl, PEM files): what the set itself costs",
)
def bench_profiles_build(env: Env, reps: int) -> Comparison:
    _, keystore, trust, trust_password = _profiles_env(env)
    profiles = _code_profiles(keystore, trust, trust_password, PROFILES)
    return compare(
        lambda: mtls.SSLProfileSet(profiles, settle_delay=0),
        _one_context_floor(env),
        min(reps, 60),
        warmup=2,
    )


@benchmark(
    "profiles-1000-file",
    1.3,
    "SSLProfileSet.from_xml with 1,000 profiles vs reading the same file with "
    "defusedxml.ElementTree.fromstring and building one context from the two stores "
    "(raw ssl, PEM files): "
    "the floor reads the file too",
)
def bench_profiles_file(env: Env, reps: int) -> Comparison:
    import defusedxml.ElementTree as DET  # noqa: PLC0415

    xml, _, _, _ = _profiles_env(env)
    one_context = _one_context_floor(env)

    def floor() -> object:
        return DET.fromstring(xml.read_bytes()), one_context()

    return compare(lambda: mtls.SSLProfileSet.from_xml(xml), floor, min(reps, 60), warmup=2)


_MEMORY_SCRIPT = """
import gc, os, sys
import mtls
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
xml, keystore, password, trust, trust_password, tiny_xml, tiny_trust, which = sys.argv[1:]
def run(xml, trust):
    if which == "ours":
        return mtls.SSLProfileSet.from_xml(xml)
    return mtls.client_context(
        mtls.Keystore.load(keystore, password), mtls.Truststore.load(trust, trust_password)
    )
# Each side first runs its own path on a one-profile file and a one-certificate
# truststore, then once on the real inputs (dropped): every module it needs is
# imported (code, paid once per process), and OpenSSL's one-time setup is done, for
# the cafile that a big truststore is read from too (about 1 MiB the first time,
# which a one-certificate truststore, read as cadata, does not pay). What is measured
# next is data.
run(tiny_xml, tiny_trust)
run(xml, trust)
gc.collect()
before = rss()
# Several kept at once, and the growth divided: one object's growth is lost in the
# allocator's page reuse (a single set or context measured 0 MiB, or less, in some runs).
kept = [run(xml, trust) for _ in range(COPIES)]
gc.collect()
print((rss() - before) / COPIES)
"""
_MEMORY_COPIES = 10


@benchmark(
    "profiles-1000-memory",
    1.5,
    "resident memory per 1,000-profile set vs per context from the same stores: "
    f"{_MEMORY_COPIES} of them kept in a fresh interpreter, after its own path ran once "
    "on a one-profile file (modules imported: data, not code)",
    unit="MiB",
)
def bench_profiles_memory(env: Env, reps: int) -> Comparison:
    xml, keystore, trust, trust_password = _profiles_env(env)
    # The same keystore, a one-certificate truststore with the cacerts password.
    tiny_trust = env.dir / "tiny-trust.jks"
    if not tiny_trust.exists():
        tiny = mtls.Truststore.load(env.identity["trust_jks"], PASSWORD)
        tiny.save(tiny_trust, trust_password)
    tiny_xml = env.dir / "sslprofiles-1.xml"
    tiny_xml.write_text(
        xml.read_text().split("</profile>")[0].replace(str(trust), str(tiny_trust))
        + "</profile></parameter>"
    )

    script = f"COPIES = {_MEMORY_COPIES}\n{_MEMORY_SCRIPT}"
    args = [str(xml), str(keystore), PASSWORD, str(trust), trust_password, str(tiny_xml),
            str(tiny_trust)]  # fmt: skip
    return _rss_rounds(script, args, max(2, min(reps // 50, 9)))


def _rss_rounds(script: str, args: list[str], rounds: int) -> Comparison:
    """Run ``script`` in fresh interpreters, ``ours`` and ``floor`` alternately (its
    last argument says which side): each prints the resident memory it measured."""
    import subprocess  # noqa: PLC0415 - only the memory benchmarks spawn interpreters

    def measure(which: str) -> float:
        done = subprocess.run(
            [sys.executable, "-c", script, *args, which], capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        return float(done.stdout.strip().splitlines()[-1])

    ours: list[float] = []
    floor: list[float] = []
    for i in range(rounds):
        pair = ("ours", "floor") if i % 2 == 0 else ("floor", "ours")
        for which in pair:
            (ours if which == "ours" else floor).append(measure(which))
    return Comparison(ours, floor)


@benchmark(
    "lookup",
    3.0,
    "SSLProfileSet.context_for(host, port) on the 1,000-profile set vs dict.get((host, "
    "port, None)) on a plain dict, same arguments (per call, batches of 10,000)",
    unit="ns",
)
def bench_lookup(env: Env, reps: int) -> Comparison:
    xml, _, _, _ = _profiles_env(env)
    profiles = mtls.SSLProfileSet.from_xml(xml)
    table = {(f"backend{i}.example.com", 8243, None): object() for i in range(PROFILES)}
    host, port, batch = "backend500.example.com", 8243, 10_000
    lookup, get = profiles.context_for, table.get

    def ours() -> None:
        for _ in range(batch):
            lookup(host, port)

    def floor() -> None:
        for _ in range(batch):
            get((host, port, None))

    result = compare(ours, floor, min(reps, 200))
    return Comparison([t / batch for t in result.ours], [t / batch for t in result.floor])


@benchmark(
    "reload-noop",
    2.0,
    "SSLProfileSet.reload() on the 1,000-profile set when nothing changed vs one os.stat per "
    "distinct file it watches (3: the profile file and the two stores), issue #13's floor",
    unit="us",
)
def bench_reload_noop(env: Env, reps: int) -> Comparison:
    xml, keystore, trust, _ = _profiles_env(env)
    profiles = mtls.SSLProfileSet.from_xml(xml)
    files, stat = [str(xml), str(keystore), str(trust)], os.stat

    def floor() -> None:
        for name in files:
            stat(name)

    return compare(profiles.reload, floor, min(reps, 200))


# --------------------------------------------------------------------------- main


def _commit() -> str:
    """The checkout's commit (with ``-dirty`` for uncommitted changes), or ``?``."""
    import subprocess  # noqa: PLC0415 - only to ask git

    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=7"],
            cwd=Path(mtls.__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    return done.stdout.strip() or "?"


def _versions() -> str:
    import jks  # noqa: PLC0415 - only for its version

    return (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, "
        f"cryptography {cryptography.__version__}, pyjks {getattr(jks, '__version__', '?')}, "
        f"mtls {mtls.__version__} ({_commit()})"
    )


def _ratio(comparison: Comparison) -> float:
    return comparison.ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (for CI)")
    parser.add_argument("--reps", type=int, help="repetitions per side (default 400, quick 20)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(b.name for b in BENCHMARKS)}",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        metavar="N",
        help="run each chosen benchmark N times and report the run with the median ratio, "
        "and the range (how far a row moves on this machine; default 1)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    reps = args.reps or (20 if args.quick else 400)
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    unknown = set(args.only or ()) - {b.name for b in BENCHMARKS}
    if unknown:
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))}")

    print(_versions())
    print(f"{reps} interleaved repetitions per side; medians; ratio = ours / floor\n")
    missed = []
    with tempfile.TemporaryDirectory(prefix="mtls-bench-") as tmp:
        env = Env(Path(tmp))
        header = f"{'benchmark':<20}{'ours':>12}{'floor':>12}{'ratio':>8}{'target':>8}  result"
        print(header)
        print("-" * len(header))
        for bench in chosen:
            try:
                runs = sorted((bench.run(env, reps) for _ in range(args.runs)), key=_ratio)
            except Unavailable as exc:  # a peer to compare with is not installed
                print(f"{bench.name:<20}{'':>41}  skipped: {exc}")
                continue
            result = runs[len(runs) // 2]  # the median run (the upper one of an even count)
            verdict = "-"
            if bench.target is not None:
                verdict = "ok" if result.ratio <= bench.target else "MISSED"
                if verdict == "MISSED":
                    missed.append(bench.name)
            target = f"{bench.target:.2f}x" if bench.target is not None else "-"
            scale = _SCALE[bench.unit]
            ours_v, floor_v = result.ours_median * scale, result.floor_median * scale
            spread = (
                f"  ({runs[0].ratio:.2f}x-{runs[-1].ratio:.2f}x over {len(runs)} runs)"
                if len(runs) > 1
                else ""
            )
            # Three decimals where two would round across the target (1.2504 "1.25x MISSED").
            near = bench.target is not None and round(result.ratio, 2) == bench.target
            ratio = f"{result.ratio:.3f}x" if near else f"{result.ratio:.2f}x"
            print(
                f"{bench.name:<20}{ours_v:>9.3f}{bench.unit:<3}{floor_v:>9.3f}{bench.unit:<3}"
                f"{ratio:>8}{target:>8}  {verdict}{spread}"
            )
            # What one benchmark leaves behind must not weigh on the next: its garbage
            # is collected here, and a thread still running (a reloader, a server)
            # is reported, since it would take CPU from every later row.
            del result, runs
            gc.collect()
            if threading.active_count() > 1:
                names = ", ".join(
                    t.name for t in threading.enumerate() if t is not threading.main_thread()
                )
                print(f"{'':<20}(threads still running after {bench.name}: {names})")
        if "cacerts" in env.__dict__:
            jks, _, origin = env.cacerts
            count = len(mtls.Truststore.load(jks, env.cacerts_password))
            print(f"\ntruststore: {origin}, {count} certificates")
        print()
        for bench in chosen:
            print(f"{bench.name}: {bench.about}")
    if missed and not args.quick:
        print(f"\nmissed target: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


# --- cli-integrations ---
#
# Import time, the CLI's start, the profile XML parser, and the requests recipe users
# write without the adapter. Import and start-up figures come from fresh interpreters
# (one per sample, sides interleaved), with bytecode caches written by a warm-up run:
# what an installed package costs, not a first compile.

_FRESH_IMPORT = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"
_FLOOR_IMPORT = "import ssl, cryptography.x509"


def _fresh_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files
    return env


def _fresh_pairs(ours: Callable[[], float], floor: Callable[[], float], rounds: int) -> Comparison:
    for _ in range(2):  # writes the bytecode caches, warms the page cache
        ours()
        floor()
    a: list[float] = []
    b: list[float] = []
    for i in range(rounds):
        first, second = (ours, floor) if i % 2 == 0 else (floor, ours)
        x, y = first(), second()
        a.append(x if first is ours else y)
        b.append(y if first is ours else x)
    return Comparison(a, b)


def _import_time(statement: str) -> float:
    import subprocess  # noqa: PLC0415 - only the fresh-interpreter benchmarks spawn

    done = subprocess.run(
        [sys.executable, "-c", _FRESH_IMPORT.format(statement)],
        capture_output=True, text=True, check=True, env=_fresh_env(),
    )  # fmt: skip
    return float(done.stdout.split()[-1])


def _process_time(code: str) -> float:
    import subprocess  # noqa: PLC0415

    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=_fresh_env(),
    )  # fmt: skip
    return time.perf_counter() - start


def _import_benchmark(statement: str) -> Callable[[Env, int], Comparison]:
    def run(env: Env, reps: int) -> Comparison:
        return _fresh_pairs(
            lambda: _import_time(statement),
            lambda: _import_time(_FLOOR_IMPORT),
            max(5, min(reps // 10, 41)),
        )

    return run


benchmark(
    "import-mtls",
    1.3,
    "`import mtls` vs `import ssl, cryptography.x509`, timed inside fresh interpreters "
    "(the public names load on first use)",
)(_import_benchmark("import mtls"))

benchmark(
    "import-mtls-all",
    None,
    "`import mtls` and every name in `mtls.__all__` (what `from mtls import *` "
    "loads: stores, contexts, profile set) vs `import ssl, cryptography.x509`, fresh "
    "interpreters",
)(_import_benchmark("import mtls; [getattr(mtls, n) for n in mtls.__all__]"))


@benchmark(
    "cli-help",
    1.3,
    "`mtls --help` (the console script's code: `sys.exit(main(['--help']))`) vs "
    "`python -c 'import ssl, cryptography.x509'`, whole processes, start to exit",
)
def bench_cli_help(env: Env, reps: int) -> Comparison:
    return _fresh_pairs(
        lambda: _process_time("import sys; from mtls.cli import main; sys.exit(main(['--help']))"),
        lambda: _process_time(_FLOOR_IMPORT),
        max(5, min(reps // 10, 41)),
    )


def https_backend(env: Env, name: str, *, keep_alive: bool) -> tuple[Any, str, mtls.SSLProfileSet]:
    """A local mTLS backend answering every GET with a small JSON body, on its own thread
    (``shutdown()`` and ``server_close()`` it), its URL, and a profile set for it, whose
    stores are ``NAME.jks`` and ``NAME-trust.jks`` in ``env.dir``. Without ``keep_alive``
    the server closes each connection after one answer: every request connects anew."""
    import http.server  # noqa: PLC0415 - only the HTTP benchmarks serve
    import socketserver  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from mtls.testing import CA  # noqa: PLC0415

    ca = CA()
    keystore = ca.issue_cert("bench-gateway").write_keystore(env.dir / f"{name}.jks", PASSWORD)
    truststore = ca.write_truststore(env.dir / f"{name}-trust.jks", PASSWORD)
    server_ctx = mtls.server_context(ca.issue_cert("localhost").keystore(), ca.truststore())

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
        disable_nagle_algorithm = True  # else delayed ACKs, not the client, set the pace

        def do_GET(self) -> None:
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

        def get_request(self) -> tuple[ssl.SSLSocket, object]:
            sock, address = self.socket.accept()
            return server_ctx.wrap_socket(sock, server_side=True), address

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    profile = mtls.SSLProfile(
        servers=(("localhost", port),),
        keystore=mtls.StoreConfig(location=keystore, password=mtls.Secret(PASSWORD)),
        truststore=mtls.StoreConfig(location=truststore, password=mtls.Secret(PASSWORD)),
    )
    return server, f"https://localhost:{port}/", mtls.SSLProfileSet([profile])


XML_PROFILES = 10_000


@benchmark(
    "parse-xml-10000",
    1.3,
    "mtls._wso2.parse_profiles_xml on a 10,000-profile file (two shared stores) vs "
    "defusedxml.ElementTree.fromstring of the same bytes",
)
def bench_parse_xml(env: Env, reps: int) -> Comparison:
    import defusedxml.ElementTree as DET  # noqa: PLC0415

    from mtls._wso2 import parse_profiles_xml  # noqa: PLC0415

    body = "".join(
        f"<profile><servers>backend{i}.example.com:8243</servers>"
        f"<KeyStore><Location>gateway.jks</Location><Type>JKS</Type>"
        f"<Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword></KeyStore>"
        f"<TrustStore><Location>client-truststore.jks</Location><Type>JKS</Type>"
        f"<Password>{PASSWORD}</Password></TrustStore></profile>"
        for i in range(XML_PROFILES)
    )
    data = f'<parameter name="customSSLProfiles">{body}</parameter>'.encode()
    assert len(parse_profiles_xml(data, path="bench.xml", base_dir=env.dir)) == XML_PROFILES
    return compare(
        lambda: parse_profiles_xml(data, path="bench.xml", base_dir=env.dir),
        lambda: DET.fromstring(data),
        min(reps, 30),
        warmup=2,
    )


@benchmark(
    "requests-recipe",
    1.0,
    "one GET on a new connection (the server closes each) through "
    "mtls.integrations.requests.MTLSAdapter vs the usual recipe, an HTTPAdapter "
    "subclass passing ssl_context= to init_poolmanager, same context and local mTLS "
    "backend (ratio = the recipe's new connections per second / ours)",
)
def bench_requests_recipe(env: Env, reps: int) -> Comparison:
    # The recipe gets a context of its own (urllib3 writes into it): same identity, same trust.
    return _requests_vs_recipe(env, "rq", keep_alive=False, own_context=True, reps=min(reps, 200))


@benchmark(
    "requests-keepalive",
    1.05,
    "one keep-alive GET through a requests.Session with mtls.integrations.requests."
    "MTLSAdapter vs the usual recipe (an HTTPAdapter passing ssl_context= to "
    "init_poolmanager) with the same context, same local mTLS backend (1.05x per "
    "request = at least 0.95 of the recipe's requests per second)",
)
def bench_requests_keepalive(env: Env, reps: int) -> Comparison:
    return _requests_vs_recipe(env, "rk", keep_alive=True, own_context=False, reps=reps)


def _requests_vs_recipe(
    env: Env, name: str, *, keep_alive: bool, own_context: bool, reps: int
) -> Comparison:
    """GETs through ``MTLSAdapter`` vs the usual recipe (an ``HTTPAdapter`` subclass
    passing ``ssl_context=`` to ``init_poolmanager``), same local mTLS backend; the
    recipe's context is the profile's (``own_context=False``) or one of its own built
    from the same stores."""
    import requests  # noqa: PLC0415 - the requests extra
    from requests.adapters import HTTPAdapter  # noqa: PLC0415

    from mtls.integrations.requests import MTLSAdapter  # noqa: PLC0415

    server, url, profiles = https_backend(env, name, keep_alive=keep_alive)
    if own_context:
        recipe_ctx: ssl.SSLContext | None = mtls.client_context(
            mtls.Keystore.load(env.dir / f"{name}.jks", PASSWORD),
            mtls.Truststore.load(env.dir / f"{name}-trust.jks", PASSWORD),
        )
    else:
        recipe_ctx = profiles.context_for_url(url)
    assert recipe_ctx is not None  # the backend's profile matches its URL

    class RecipeAdapter(HTTPAdapter):
        """The usual recipe (requests' docs, Stack Overflow): a context in the pool kwargs."""

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = recipe_ctx
            super().init_poolmanager(*args, **kwargs)

    ours, recipe = requests.Session(), requests.Session()
    ours.mount("https://", MTLSAdapter(profiles))
    recipe.mount("https://", RecipeAdapter())
    try:
        for _ in range(20 if keep_alive else 5):  # warm on both sides
            ours.get(url, timeout=10).raise_for_status()
            recipe.get(url, timeout=10).raise_for_status()
        return compare(lambda: ours.get(url, timeout=10), lambda: recipe.get(url, timeout=10), reps)
    finally:
        ours.close()
        recipe.close()
        profiles.close()
        server.shutdown()
        server.server_close()


@benchmark(
    "aiohttp-session",
    1.05,
    "one keep-alive GET through mtls.integrations.aiohttp.MTLSClientSession vs "
    "aiohttp.ClientSession(connector=TCPConnector(ssl=ctx)) with the same context, same "
    "local mTLS backend, each request run to completion on one event loop (1.05x per "
    "request = at least 0.95 of the plain session's requests per second)",
)
def bench_aiohttp_session(env: Env, reps: int) -> Comparison:
    import asyncio  # noqa: PLC0415

    import aiohttp  # noqa: PLC0415 - the aiohttp extra

    from mtls.integrations.aiohttp import MTLSClientSession  # noqa: PLC0415

    server, url, profiles = https_backend(env, "ah", keep_alive=True)
    ctx = profiles.context_for_url(url)
    assert ctx is not None  # the backend's profile matches its URL
    loop = asyncio.new_event_loop()

    async def sessions() -> tuple[MTLSClientSession, aiohttp.ClientSession]:
        return MTLSClientSession(profiles), aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx)
        )

    ours, plain = loop.run_until_complete(sessions())

    async def get(http: MTLSClientSession | aiohttp.ClientSession) -> None:
        async with http.get(url) as response:
            response.raise_for_status()
            await response.read()

    try:
        for _ in range(20):  # connections made and warm on both sides
            loop.run_until_complete(get(ours))
            loop.run_until_complete(get(plain))
        return compare(
            lambda: loop.run_until_complete(get(ours)),
            lambda: loop.run_until_complete(get(plain)),
            reps,
        )
    finally:
        loop.run_until_complete(ours.session.close())
        loop.run_until_complete(plain.close())
        loop.close()
        profiles.close()
        server.shutdown()
        server.server_close()


# --- engine ---
# The reload engine at scale (issue #13): 10,000 profiles on 1,000 keystores that share
# the 144-certificate truststore. The floor for a touch or a change is what rotating that
# one identity costs without mtls: a raw context from PEM files, the same truststore.

ESTATE_KEYSTORES = 1000
ESTATE_PROFILES = 10_000


def _ec_identity(directory: Path, index: int) -> tuple[Path, Path, Path]:
    """An EC P-256 key and self-signed certificate: as JKS, and as PEM cert + key."""
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"estate client {index}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    ks = mtls.Keystore()
    ks.add_key("client", key, [cert])
    jks = directory / f"client{index}.jks"
    ks.save(jks, PASSWORD)
    certfile = directory / f"client{index}.crt"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile = directory / f"client{index}.key"
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return jks, certfile, keyfile


class _Estate:
    """10,000 profiles on 1,000 EC keystores and the shared cacerts truststore."""

    def __init__(self, env: Env) -> None:
        trust, self.cafile, _ = env.cacerts
        directory = env.dir / "estate"
        directory.mkdir(exist_ok=True)
        self.keystores: list[Path] = []
        self.pem: list[tuple[Path, Path]] = []
        for i in range(ESTATE_KEYSTORES):
            jks, certfile, keyfile = _ec_identity(directory, i)
            self.keystores.append(jks)
            self.pem.append((certfile, keyfile))
        per = ESTATE_PROFILES // ESTATE_KEYSTORES
        self.profiles = [
            mtls.SSLProfile(
                servers=(f"backend{i}.example.com:8243",),
                keystore=mtls.StoreConfig(
                    location=self.keystores[i // per], password=mtls.Secret(PASSWORD)
                ),
                truststore=mtls.StoreConfig(
                    location=trust, password=mtls.Secret(env.cacerts_password)
                ),
            )
            for i in range(ESTATE_PROFILES)
        ]
        self.distinct_files = [*self.keystores, trust]

    def raw_context(self, index: int) -> ssl.SSLContext:
        """What rotating keystore ``index`` costs without mtls."""
        certfile, keyfile = self.pem[index]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=self.cafile)
        ctx.load_cert_chain(certfile, keyfile)
        return ctx


def _estate(env: Env) -> _Estate:
    if "estate" not in env.__dict__:
        env.__dict__["estate"] = _Estate(env)
    estate: _Estate = env.__dict__["estate"]
    return estate


def _estate_set(estate: _Estate) -> mtls.SSLProfileSet:
    # settle_delay=0: a touched file is settled by one read (the wait is not the cost).
    return mtls.SSLProfileSet(estate.profiles, settle_delay=0)


@benchmark(
    "reload-touch",
    1.5,
    "reload() after touching one keystore (same bytes, new mtime) among 1,000 keystores "
    "and 10,000 profiles vs building that one context raw (PEM files, the same truststore)",
)
def bench_reload_touch(env: Env, reps: int) -> Comparison:
    estate = _estate(env)
    profiles = _estate_set(estate)
    target = estate.keystores[500]
    tick = [time.time_ns()]

    def touch() -> None:  # not timed, as reload-change's write
        tick[0] += 1_000_000
        os.utime(target, ns=(tick[0], tick[0]))

    def reload() -> None:
        changed = profiles.reload()
        assert not changed  # same bytes: nothing rebuilt

    return compare(
        reload,
        lambda: estate.raw_context(500),
        min(reps, 100),
        warmup=3,
        before=touch,
        first_build=False,  # the truststore did not change
    )


@benchmark(
    "reload-change",
    1.5,
    "reload() after one keystore among 1,000 (10,000 profiles) gets new content vs building "
    "that one context raw (PEM files, the same truststore)",
)
def bench_reload_change(env: Env, reps: int) -> Comparison:
    estate = _estate(env)
    profiles = _estate_set(estate)
    target = estate.keystores[500]
    contents = [target.read_bytes(), _ec_identity(env.dir, -1)[0].read_bytes()]
    flip = [0]

    def change() -> None:  # not timed: the rotation's writer, not the reload, pays it
        flip[0] ^= 1
        tmp = target.with_suffix(".new")
        tmp.write_bytes(contents[flip[0]])
        os.replace(tmp, target)

    def reload() -> None:
        changed = profiles.reload()
        assert changed  # one context rebuilt

    return compare(
        reload,
        lambda: estate.raw_context(500),
        min(reps, 100),
        warmup=3,
        before=change,
        first_build=False,  # the truststore did not change: its anchors stay read
    )


@benchmark(
    "reload-noop-estate",
    2.0,
    "reload() when nothing changed on the 1,000-keystore, 10,000-profile set vs one os.stat "
    "per distinct file (1,001)",
    unit="us",
)
def bench_reload_noop_estate(env: Env, reps: int) -> Comparison:
    estate = _estate(env)
    profiles = _estate_set(estate)
    files = [str(p) for p in estate.distinct_files]
    stat = os.stat

    def stats() -> None:
        for path in files:
            stat(path)

    return compare(profiles.reload, stats, min(reps, 200))


_ESTATE_MEMORY_SCRIPT = """
import gc, json, os, ssl, sys
import mtls
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
spec, which = sys.argv[1:]
with open(spec) as fh:
    spec = json.load(fh)
trust = mtls.StoreConfig(location=spec["trust"], password=spec["trust_password"])
def ours(identities, per):
    return mtls.SSLProfileSet(
        [
            mtls.SSLProfile(
                servers=(f"backend{i}-{j}.example.com:8243",),
                keystore=mtls.StoreConfig(location=jks, password=spec["password"]),
                truststore=trust,
            )
            for i, (jks, _, _) in enumerate(identities)
            for j in range(per)
        ],
        settle_delay=0,
    )
def floor(identities, per):
    contexts = []
    for _, certfile, keyfile in identities:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=spec["cafile"])
        ctx.load_cert_chain(certfile, keyfile)
        contexts.append(ctx)
    return contexts
run = ours if which == "ours" else floor
warm = run(spec["identities"][:1], 1)  # modules imported, OpenSSL set up: code, not data
gc.collect()
before = rss()
kept = run(spec["identities"], spec["per"])
gc.collect()
print(rss() - before)
"""


@benchmark(
    "estate-memory",
    None,
    "resident memory of the 1,000-keystore, 10,000-profile set (the 144-certificate "
    "truststore shared) vs 1,000 raw contexts from PEM files (one per keystore), each in "
    "a fresh interpreter",
    unit="MiB",
)
def bench_estate_memory(env: Env, reps: int) -> Comparison:
    import json  # noqa: PLC0415 - only to hand the estate to the child

    estate = _estate(env)
    trust, _, _ = env.cacerts
    spec = env.dir / "estate.json"
    spec.write_text(
        json.dumps(
            {
                "trust": str(trust),
                "trust_password": env.cacerts_password,
                "cafile": str(estate.cafile),
                "password": PASSWORD,
                "per": ESTATE_PROFILES // ESTATE_KEYSTORES,
                "identities": [
                    [str(jks), str(cert), str(key)]
                    for jks, (cert, key) in zip(estate.keystores, estate.pem, strict=True)
                ],
            }
        )
    )
    return _rss_rounds(_ESTATE_MEMORY_SCRIPT, [str(spec)], 2)


@benchmark(
    "profiles-10000",
    3.0,
    "SSLProfileSet(profiles) with 10,000 profiles (made in code) on one keystore and the "
    "144-certificate truststore vs building one context from the two stores (raw ssl, PEM)",
)
def bench_profiles_10000(env: Env, reps: int) -> Comparison:
    _, keystore, trust, trust_password = _profiles_env(env)
    profiles = _code_profiles(keystore, trust, trust_password, 10 * PROFILES)
    return compare(
        lambda: mtls.SSLProfileSet(profiles, settle_delay=0),
        _one_context_floor(env),
        min(reps, 40),
        warmup=2,
    )


@benchmark(
    "profiles-10000-file",
    3.0,
    "SSLProfileSet.from_xml with a 10,000-profile file on the same two stores vs building "
    "one context from them (raw ssl, PEM): the file's parse alone (defusedxml's too) is "
    "more than the target",
)
def bench_profiles_10000_file(env: Env, reps: int) -> Comparison:
    return compare(
        lambda: mtls.SSLProfileSet.from_xml(_profiles_10000_xml(env)),
        _one_context_floor(env),
        min(reps, 30),
        warmup=2,
    )


@benchmark(
    "profiles-10000-file-read",
    None,
    "SSLProfileSet.from_xml with the 10,000-profile file vs reading the same file with "
    "defusedxml.ElementTree.fromstring and building one context from the two stores (raw "
    "ssl, PEM files): the floor reads the file too (as profiles-1000-file; the floor "
    "issue #13's restated target would use)",
)
def bench_profiles_10000_file_read(env: Env, reps: int) -> Comparison:
    import defusedxml.ElementTree as DET  # noqa: PLC0415

    xml = _profiles_10000_xml(env)
    one_context = _one_context_floor(env)

    def floor() -> object:
        return DET.fromstring(xml.read_bytes()), one_context()

    return compare(lambda: mtls.SSLProfileSet.from_xml(xml), floor, min(reps, 30), warmup=2)


def _profiles_10000_xml(env: Env) -> Path:
    """The 1,000-profile file's first profile, 10,000 times with its own host each."""
    xml = env.dir / "sslprofiles-10000.xml"
    if not xml.exists():
        text = _profiles_env(env)[0].read_text()
        head, _, _ = text.partition("<profile>")
        one = text[len(head) :].split("</profile>")[0] + "</profile>"
        body = "".join(
            one.replace("backend0.example.com", f"backend{i}.example.com")
            for i in range(10 * PROFILES)
        )
        xml.write_text(f"{head}{body}</parameter>")
    return xml


# --- stores ---
# Loading at the floor (issue #13): Keystore.load + client_context per store format and
# key type, client_context on a loaded store, JCEKS and PKCS#12 against Java's own load,
# and the side-by-side against requests-pkcs12 and the naive pyjks + temp-file path.
# Stores are written by the JDK's keytool (JDK 17 on PATH, JDK 25 where installed).

_JDK17 = Path("/usr/lib/jvm/java-17-openjdk-amd64/bin")
_JDK25 = Path("/usr/lib/jvm/temurin-25-jdk-amd64/bin")
_STORE_PASSWORD = "changeit"
_KEY_TYPES = ("rsa2048", "rsa4096", "ec")
# name -> (JDK bin directory, keytool -storetype)
_STORE_FORMATS = {
    "jks": (_JDK17, "JKS"),
    "jceks": (_JDK17, "JCEKS"),
    "p12jdk17": (_JDK17, "PKCS12"),
    "p12jdk25": (_JDK25, "PKCS12"),
}
_JAVA_LOAD = """
import java.io.FileInputStream;
import java.security.KeyStore;
import java.util.Collections;

/** KeyStore.load + getKey of every key entry, timed per run, printed in nanoseconds. */
public class LoadTime {
    public static void main(String[] args) throws Exception {
        char[] pw = args[2].toCharArray();
        int reps = Integer.parseInt(args[3]);
        for (int i = -5; i < reps; i++) {
            long start = System.nanoTime();
            KeyStore ks = KeyStore.getInstance(args[1]);
            try (FileInputStream in = new FileInputStream(args[0])) { ks.load(in, pw); }
            for (String alias : Collections.list(ks.aliases())) {
                if (ks.isKeyEntry(alias)) ks.getKey(alias, pw);
            }
            long took = System.nanoTime() - start;
            if (i >= 0) System.out.println(took);
        }
    }
}
"""


class _StoreFiles:
    """One key type's identity and CA: PEM files, and keytool-written stores of each format."""

    def __init__(self, directory: Path, key_type: str) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

        def new_key() -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
            if key_type == "ec":
                return ec.generate_private_key(ec.SECP256R1())
            return rsa.generate_private_key(65537, int(key_type[3:]))

        now = dt.datetime.now(dt.UTC)
        ca_key, key = new_key(), new_key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bench {key_type} CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench client")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .sign(ca_key, hashes.SHA256())
        )
        self.dir = directory
        self.key_type = key_type
        self.ca_pem = directory / f"{key_type}-ca.pem"
        self.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.pem = directory / f"{key_type}.pem"  # key, leaf, CA: what load_cert_chain takes
        self.pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca))
        )
        source = mtls.Keystore()
        source.add_key("client", key, [leaf, ca])
        self._source = directory / f"{key_type}-source.p12"
        self._source.write_bytes(source.to_bytes(_STORE_PASSWORD, store_type="PKCS12"))
        self.stores: dict[str, tuple[Path, Path]] = {"pem": (self.pem, self.ca_pem)}
        for name, (jdk, store_type) in _STORE_FORMATS.items():
            if (jdk / "keytool").is_file():
                self.stores[name] = self._keytool(jdk / "keytool", name, store_type)

    def _keytool(self, keytool: Path, name: str, store_type: str) -> tuple[Path, Path]:
        import subprocess  # noqa: PLC0415 - only to run keytool

        keystore = self.dir / f"{self.key_type}.{name}"
        trust = self.dir / f"{self.key_type}-ca.{name}"
        common = ["-noprompt", "-storetype", store_type, "-storepass", _STORE_PASSWORD]
        # keytool's own defaults for the format: re-encrypted on import, as people make them.
        subprocess.run(
            [str(keytool), "-importkeystore", "-srckeystore", str(self._source),
             "-srcstoretype", "PKCS12", "-srcstorepass", _STORE_PASSWORD,
             "-destkeystore", str(keystore), "-deststoretype", store_type,
             "-deststorepass", _STORE_PASSWORD, "-destkeypass", _STORE_PASSWORD, "-noprompt"],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [str(keytool), "-importcert", "-alias", "ca", "-file", str(self.ca_pem),
             "-keystore", str(trust), *common],
            check=True, capture_output=True,
        )  # fmt: skip
        return keystore, trust

    def floor(self) -> ssl.SSLContext:
        """The floor: what a user with PEM files writes."""
        ctx = ssl.create_default_context(cafile=self.ca_pem)
        ctx.load_cert_chain(self.pem)
        return ctx

    def load(self, name: str) -> ssl.SSLContext:
        """What a user (and a reload) pays: both stores read, one context built."""
        keystore, trust = self.stores[name]
        return mtls.client_context(
            mtls.Keystore.load(keystore, _STORE_PASSWORD),
            mtls.Truststore.load(trust, _STORE_PASSWORD),
        )


@functools.cache
def _store_files(directory: Path, key_type: str) -> _StoreFiles:
    path = directory / "stores"
    path.mkdir(exist_ok=True)
    return _StoreFiles(path, key_type)


def _register_loads() -> None:
    for name, formats in (
        ("jks", "JKS (JDK 17 keytool)"),
        ("jceks", "JCEKS (JDK 17 keytool: 200,000 PBE iterations per key; see jceks-vs-java)"),
        ("p12jdk17", "PKCS#12 (JDK 17 keytool)"),
        ("p12jdk25", "PKCS#12 (JDK 25 keytool, its default format)"),
        ("pem", "PEM (key + chain, CA bundle)"),
    ):
        for key_type in ("rsa2048", "ec"):

            def run(env: Env, reps: int, name: str = name, key_type: str = key_type) -> Comparison:
                files = _store_files(env.dir, key_type)
                if name not in files.stores:
                    raise SystemExit(f"load-{name}-{key_type}: keytool for {name} not found")
                slow = name == "jceks"  # ~0.2-0.4 s per load: fewer repetitions
                return compare(
                    lambda: files.load(name),
                    files.floor,
                    min(reps, 21) if slow else reps,
                    warmup=1 if slow else 5,
                )

            benchmark(
                f"load-{name}-{key_type}",
                None if name == "jceks" else 1.25,
                f"Keystore.load + Truststore.load ({formats}, {key_type}) + client_context, "
                "vs create_default_context(cafile=ca.pem) + load_cert_chain(key+chain PEM)",
            )(run)


_register_loads()


def _bench_context(key_type: str) -> Callable[[Env, int], Comparison]:
    def run(env: Env, reps: int) -> Comparison:
        files = _store_files(env.dir, key_type)
        ks = mtls.Keystore.load(files.pem, None)
        ts = mtls.Truststore.load(files.ca_pem)
        return compare(lambda: mtls.client_context(ks, ts), files.floor, reps)

    return run


for _key_type in ("rsa2048", "ec"):
    benchmark(
        f"context-{_key_type}",
        1.15,
        f"client_context(keystore, truststore) on stores already loaded ({_key_type}) vs the "
        "same floor (a context built for stores a reload found unchanged costs this)",
    )(_bench_context(_key_type))


def _java_samples(files: _StoreFiles, name: str, reps: int) -> list[float] | None:
    """Java's own KeyStore.load + getKey, ``reps`` runs in one JVM after 5 warm-up runs."""
    import subprocess  # noqa: PLC0415 - only to run java

    jdk, store_type = _STORE_FORMATS[name]
    if not (jdk / "javac").is_file():
        return None
    source = files.dir / "LoadTime.java"
    if not (files.dir / "LoadTime.class").is_file():
        source.write_text(_JAVA_LOAD)
        subprocess.run([str(jdk / "javac"), str(source)], check=True, capture_output=True)
    keystore, _ = files.stores[name]
    out = subprocess.run(
        [str(jdk / "java"), "-cp", str(files.dir), "LoadTime", str(keystore), store_type,
         _STORE_PASSWORD, str(reps)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [int(line) / 1e9 for line in out.split()]


def _bench_vs_java(name: str, key_type: str) -> Callable[[Env, int], Comparison]:
    def run(env: Env, reps: int) -> Comparison:
        files = _store_files(env.dir, key_type)
        reps = min(reps, 21) if name == "jceks" else reps
        java = _java_samples(files, name, reps)
        if java is None or name not in files.stores:
            raise SystemExit(f"{name}-vs-java: no JDK found")
        keystore, _ = files.stores[name]
        ours = compare(lambda: mtls.Keystore.load(keystore, _STORE_PASSWORD), lambda: None, reps)
        return Comparison(ours.ours, java)

    return run


for _name, _key_type in (("jceks", "rsa2048"), ("jceks", "ec"), ("p12jdk25", "ec")):
    benchmark(
        f"{_name}-vs-java-{_key_type}",
        None,
        f"Keystore.load ({_name}, {_key_type}) vs Java's KeyStore.load + getKey of the same "
        "file (one JVM, warmed up; not interleaved: the JVM runs before mtls)",
    )(_bench_vs_java(_name, _key_type))


def _bench_vs_requests_pkcs12(key_type: str) -> Callable[[Env, int], Comparison]:
    def run(env: Env, reps: int) -> Comparison:
        try:
            import requests_pkcs12  # noqa: PLC0415
        except ImportError:
            raise Unavailable("pip install requests-pkcs12 to compare with it") from None

        files = _store_files(env.dir, key_type)
        keystore, _ = files.stores["p12jdk25" if "p12jdk25" in files.stores else "p12jdk17"]

        def theirs() -> ssl.SSLContext:
            # What requests_pkcs12.Pkcs12Adapter builds (its trust comes from requests'
            # verify= on each connection; the CA is loaded here to build the same context).
            ctx: ssl.SSLContext = requests_pkcs12._create_sslcontext(
                keystore.read_bytes(), _STORE_PASSWORD.encode(), ssl.PROTOCOL_TLS_CLIENT
            )
            ctx.load_verify_locations(cafile=files.ca_pem)
            return ctx

        def ours() -> ssl.SSLContext:
            return mtls.client_context(
                mtls.Keystore.load(keystore, _STORE_PASSWORD), mtls.Truststore.load(files.ca_pem)
            )

        return compare(ours, theirs, min(reps, 61) if key_type == "rsa4096" else reps)

    return run


def _bench_vs_naive(key_type: str) -> Callable[[Env, int], Comparison]:
    def run(env: Env, reps: int) -> Comparison:
        import jks  # noqa: PLC0415 - the naive path is pyjks's

        files = _store_files(env.dir, key_type)
        keystore, trust = files.stores["jks"]

        def naive() -> ssl.SSLContext:
            # What people write today: pyjks, cryptography, and the key in a temp file.
            store = jks.KeyStore.load(str(keystore), _STORE_PASSWORD)
            entry = next(iter(store.private_keys.values()))
            key = serialization.load_der_private_key(entry.pkey_pkcs8, None)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            chain = b"".join(
                x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
                for _, der in entry.cert_chain
            )
            anchors = jks.KeyStore.load(str(trust), _STORE_PASSWORD).certs.values()
            ctx = ssl.create_default_context(cadata=b"".join(c.cert for c in anchors))
            with tempfile.NamedTemporaryFile(suffix=".pem") as fh:
                fh.write(pem + chain)
                fh.flush()
                ctx.load_cert_chain(fh.name)
            return ctx

        # An RSA-4096 parse costs the naive side ~0.3 s: fewer repetitions there.
        return compare(
            lambda: files.load("jks"), naive, min(reps, 61) if key_type == "rsa4096" else reps
        )

    return run


for _key_type in _KEY_TYPES:
    benchmark(
        f"vs-requests-pkcs12-{_key_type}",
        None,
        f"Keystore.load (PKCS#12 from JDK 25 keytool, {_key_type}) + client_context vs "
        "requests-pkcs12's context from the same file (cryptography's loader, key through "
        "an encrypted temp file); both then load the CA",
    )(_bench_vs_requests_pkcs12(_key_type))
    benchmark(
        f"vs-naive-jks-{_key_type}",
        None,
        f"Keystore.load + Truststore.load (JKS, {_key_type}) + client_context vs the naive "
        "path: pyjks, cryptography's key parse (RSA check included), key in a temp file",
    )(_bench_vs_naive(_key_type))


def _bench_p12_vs_cryptography(name: str, key_type: str) -> Callable[[Env, int], Comparison]:
    def run(env: Env, reps: int) -> Comparison:
        from cryptography.hazmat.primitives.serialization import pkcs12  # noqa: PLC0415

        files = _store_files(env.dir, key_type)
        if name not in files.stores:
            raise SystemExit(f"{name}-vs-cryptography: keytool for {name} not found")
        keystore, trust = files.stores[name]
        secret = _STORE_PASSWORD.encode()

        def theirs() -> ssl.SSLContext:
            # cryptography's C loader on both files (same key derivations, MAC checks and
            # decryptions), then the floor's context from PEM: the least any PKCS#12
            # user can pay for this context with the libraries at hand.
            pkcs12.load_key_and_certificates(keystore.read_bytes(), secret)
            pkcs12.load_pkcs12(trust.read_bytes(), secret)
            return files.floor()

        return compare(lambda: files.load(name), theirs, min(reps, 61))

    return run


for _name in ("p12jdk17", "p12jdk25"):
    for _key_type in ("rsa2048", "ec"):
        benchmark(
            f"{_name}-vs-cryptography-{_key_type}",
            1.25 if _key_type == "ec" else None,
            f"Keystore.load + Truststore.load ({_name}, {_key_type}) + client_context vs "
            "cryptography's PKCS#12 loader on both files + the PEM floor's context (the "
            "derivations priced in C; for RSA its loader also checks the key, ~60 ms: reported)",
        )(_bench_p12_vs_cryptography(_name, _key_type))


# --- server ---
# RotatingServerContext (issue #17): every handshake goes through its sni_callback, which
# switches the connection to the current inner context. The floor is the same handshake
# through a plain server_context made from the same stores. Handshakes run in memory
# (two SSLObjects over memory BIOs, mutual TLS 1.3, EC P-256): the TLS work, not the network.


def _server_material(env: Env) -> tuple[Path, Path, ssl.SSLContext]:
    """The server's keystore and truststore files, and a client trusted by it."""
    from mtls.testing import CA  # noqa: PLC0415

    ca = CA(name="bench server CA", key_type="EC")
    keystore = env.dir / "server.jks"
    ca.issue_cert("localhost", key_type="EC").write_keystore(keystore, PASSWORD)
    truststore = env.dir / "server-trust.jks"
    ca.write_truststore(truststore, PASSWORD)
    client = mtls.client_context(ca.issue_cert("client", key_type="EC").keystore(), ca.truststore())
    return keystore, truststore, client


def _server_pair(
    env: Env,
) -> tuple[mtls.RotatingServerContext, ssl.SSLContext, ssl.SSLContext]:
    """A rotating server context, a plain server_context of the same stores (as made),
    and a client both trust."""
    keystore, truststore, client = _server_material(env)
    rotating = mtls.RotatingServerContext(keystore, truststore, password=PASSWORD)
    plain = mtls.server_context(
        mtls.Keystore.load(keystore, PASSWORD), mtls.Truststore.load(truststore, PASSWORD)
    )
    return rotating, plain, client


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    """One complete mutual-TLS handshake between two in-memory SSLObjects."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    while not all(done):
        for i, side in enumerate((client, server)):
            if not done[i]:
                try:
                    side.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    # TLS 1.3: the server verifies the client's Finished above; read it to be sure.
    assert server.getpeercert(binary_form=True)


@benchmark(
    "server-handshake",
    1.05,
    "a mutual-TLS handshake through RotatingServerContext.context (sni_callback switches "
    "to the current context) vs through a plain server_context of the same stores, "
    "with the same session settings (a stateful ticket, cache off: no resumption on "
    "both) (1.05: at least 0.95 of the handshakes per second)",
)
def bench_server_handshake(env: Env, reps: int) -> Comparison:
    rotating, plain, client = _server_pair(env)
    # The rotating context's session settings (one stateful ticket, the cache off): the
    # difference is the switch alone (a plain context that issues stateless tickets
    # does more work per handshake).
    from mtls._openssl import session_cache_off  # noqa: PLC0415

    plain.options |= ssl.OP_NO_TICKET
    plain.num_tickets = 1
    if not session_cache_off(plain):  # not an assert: it must run under python -O too
        rotating.close()
        raise Unavailable("the session cache cannot be turned off here (see docs/servers.md)")
    outer = rotating.context
    try:
        return compare(lambda: _handshake(outer, client), lambda: _handshake(plain, client), reps)
    finally:
        rotating.close()


@contextlib.contextmanager
def _answering(ctx: ssl.SSLContext) -> Iterator[int]:
    """A loopback server that answers one request per connection with ``ctx``; its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), ctx.wrap_socket(conn, server_side=True) as tls:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = tls.recv(4096)
                if not chunk:
                    return
                request += chunk
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        listener.close()
        thread.join(10)


def _first_request(port: int, client: ssl.SSLContext) -> None:
    """A new connection, its handshake, and a request written as most clients write
    one (head, then the blank line), with Nagle's algorithm on (no TCP_NODELAY)."""
    with (
        socket.create_connection(("127.0.0.1", port)) as sock,
        client.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        tls.sendall(b"\r\n")
        answer = b""
        while not answer.endswith(b"ok"):
            chunk = tls.recv(4096)
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer


@benchmark(
    "server-first-request",
    1.10,
    "a new connection and its first request, from a client with Nagle's algorithm on "
    "(no TCP_NODELAY), through RotatingServerContext.context vs a plain server_context "
    "as made (stateless tickets), same loopback server (without a ticket after the "
    "handshake the server delays its ACK and the request waits: 44 ms)",
)
def bench_server_first_request(env: Env, reps: int) -> Comparison:
    rotating, plain, client = _server_pair(env)
    try:
        with _answering(rotating.context) as ours, _answering(plain) as floor:
            return compare(
                lambda: _first_request(ours, client),
                lambda: _first_request(floor, client),
                min(reps, 200),
            )
    finally:
        rotating.close()


if __name__ == "__main__":
    sys.exit(main())
