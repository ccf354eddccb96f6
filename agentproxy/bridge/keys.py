"""CURVE keys of the bridge, the ZeroMQ Guide's "Ironhouse": certificate files as ``zmq.auth`` writes them.

A pair is ``NAME.key`` (public, shareable) and ``NAME.key_secret`` (mode 0600). The supervisor keeps its pair
under ``bridge/`` in the config directory and allows the workers whose public certificates are in
``workers.d/``. No message or log line here ever holds a secret key; public keys are not secret.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from agentproxy.errors import UsageError

log = logging.getLogger(__name__)

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
SUPERVISOR_NAME = "supervisor"
PRIVATE_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o600
CURVE_KEY_BYTES = 32
LOCAL_TRANSPORTS = ("ipc", "inproc")
ENDPOINT_FORM = "tcp://HOST:PORT"


def keygen(directory: Path, name: str = "worker") -> tuple[Path, Path]:
    """Write NAME.key and NAME.key_secret in directory; returns (public_file, secret_file)."""
    public_file, secret_file = pair_files(directory, name)
    if existing := [str(path) for path in (public_file, secret_file) if path.exists()]:
        raise UsageError(f"a key pair already exists, not overwritten: {', '.join(existing)}")
    make_private_dir(directory)
    try:
        write_pair(directory, name, public_file, secret_file)
    except OSError as exc:
        raise UsageError(f"cannot write a key pair in {directory}: {exc.strerror or exc}") from exc
    return public_file, secret_file


def write_pair(directory: Path, name: str, public_file: Path, secret_file: Path) -> None:
    # Written in a 0700 scratch directory first: the secret is never readable by others, even briefly.
    scratch = Path(tempfile.mkdtemp(dir=directory, prefix=f".{name}-keygen-"))
    try:
        made_public, made_secret = (Path(path) for path in zmq.auth.create_certificates(scratch, name))
        made_secret.chmod(SECRET_FILE_MODE)
        made_secret.rename(secret_file)
        made_public.rename(public_file)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def pair_files(directory: Path, name: str) -> tuple[Path, Path]:
    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"bad key name {name!r}: give a plain file name such as 'worker'")
    return directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"


def make_private_dir(directory: Path) -> None:
    """Create directory 0700 when missing; an existing directory's mode is the operator's choice."""
    if directory.is_dir():
        return
    try:
        directory.mkdir(mode=PRIVATE_DIR_MODE, parents=True)
        directory.chmod(PRIVATE_DIR_MODE)  # mkdir's mode is narrowed by the umask, never widened to 0700
    except OSError as exc:
        raise UsageError(f"cannot create key directory {directory}: {exc.strerror or exc}") from exc


def public_key_text(public_file: Path) -> str:
    """The z85 public key in a public certificate: what ``pa-worker keygen`` prints."""
    return read_public_certificate(public_file).decode("ascii")


def supervisor_keys(config_dir: Path) -> tuple[Path, Path, bool]:
    """The supervisor's own pair, made on first use; returns (public_file, secret_file, created)."""
    directory = config_dir / "bridge"
    public_file, secret_file = pair_files(directory, SUPERVISOR_NAME)
    present = [path.exists() for path in (public_file, secret_file)]
    if all(present):
        return public_file, secret_file, False
    if any(present):
        missing = public_file if not present[0] else secret_file
        raise UsageError(f"the supervisor's key pair in {directory} is incomplete: {missing} is missing")
    keygen(directory, SUPERVISOR_NAME)
    return public_file, secret_file, True


def authorized_keys_dir(config_dir: Path) -> Path:
    """Where the public certificates of the workers allowed to connect live (--authorized-keys default)."""
    directory = config_dir / "workers.d"
    make_private_dir(directory)
    return directory


def read_certificate(path: Path) -> tuple[bytes, bytes | None]:
    """(public, secret or None) of a certificate file, both z85; bad input is a UsageError."""
    if not path.is_file():
        raise UsageError(f"no certificate file at {path}")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        raise UsageError(f"cannot read certificate {path}: {exc.strerror or exc}") from exc
    except ValueError:
        raise UsageError(f"{path} is not a ZeroMQ certificate (no public-key line)") from None
    for key in (public, secret):
        if key is not None and not is_curve_key(key):
            raise UsageError(f"{path} holds a malformed CURVE key (expected 40 z85 characters)")
    return public, secret


def is_curve_key(z85_key: bytes) -> bool:
    try:
        return len(z85.decode(z85_key)) == CURVE_KEY_BYTES
    except (ValueError, KeyError):  # pyzmq's z85 raises KeyError on a character outside the alphabet
        return False


def read_public_certificate(path: Path) -> bytes:
    public, secret = read_certificate(path)
    if secret is not None:
        raise UsageError(f"{path} is a secret certificate: give the public one ({PUBLIC_SUFFIX})")
    return public


def read_secret_certificate(path: Path) -> tuple[bytes, bytes]:
    public, secret = read_certificate(path)
    if secret is None:
        raise UsageError(f"{path} is a public certificate: give the secret one ({SECRET_SUFFIX})")
    return public, secret


class AuthorizedKeys:
    """The ZAP credentials provider: a worker's key is allowed iff a *.key file in directory holds it.

    The directory is re-read whenever its certificate files change, so a key dropped in while the
    supervisor runs is allowed at the worker's next handshake, without a restart.
    """

    def __init__(self, directory: Path, on_refused: Callable[[str], None]) -> None:
        self.directory = directory
        self.on_refused = on_refused
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._allowed: frozenset[bytes] = frozenset()

    def callback(self, domain: str, key: bytes) -> bool:
        """Called by zmq.auth in its thread with the client's key, z85-encoded (pyzmq encodes it first)."""
        if key in self.allowed_keys():
            return True
        # An exception here would end the authenticator's thread and stall every later handshake.
        try:
            self.on_refused(key.decode("ascii"))
        except Exception:
            log.exception("the handler of a refused worker key failed")
        return False

    def allowed_keys(self) -> frozenset[bytes]:
        seen = self.certificate_files_state()
        if seen != self._seen:
            self._allowed = frozenset(self.load_public_keys())
            self._seen = seen
        return self._allowed

    def certificate_files_state(self) -> tuple[tuple[str, int, int], ...]:
        """Name, mtime and size of each public certificate: any added, removed or edited file changes it."""
        state = []
        for path in self.public_certificate_files():
            with contextlib.suppress(OSError):  # removed between listing and stat: it is simply gone
                stat = path.stat()
                state.append((path.name, stat.st_mtime_ns, stat.st_size))
        return tuple(state)

    def public_certificate_files(self) -> list[Path]:
        try:
            return sorted(self.directory.glob(f"*{PUBLIC_SUFFIX}"))
        except OSError:
            return []

    def load_public_keys(self) -> list[bytes]:
        keys = []
        for path in self.public_certificate_files():
            try:
                keys.append(read_public_certificate(path))
            except UsageError as exc:
                log.warning("authorized key skipped: %s", exc)
        return keys


def start_authenticator(context: zmq.Context, keys: AuthorizedKeys) -> ThreadAuthenticator:
    """Start the ZAP handler of context with keys on every domain; the caller stops it.

    Start it before binding: libzmq 4.3 lets every CURVE client in when a context has no ZAP handler.
    """
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve_callback(domain="*", credentials_provider=keys)
    return authenticator


def make_server_secure(socket: zmq.Socket, secret_file: Path) -> None:
    public, secret = read_secret_certificate(secret_file)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True


def make_client_secure(socket: zmq.Socket, key_file: Path, server_key_file: Path) -> None:
    """key_file: the worker's own secret certificate; server_key_file: the supervisor's public one."""
    public, secret = read_secret_certificate(key_file)
    server_public = read_public_certificate(server_key_file)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = server_public


def is_loopback(endpoint: str) -> bool:
    """Whether endpoint only reaches this machine: the only place --listen-insecure is accepted."""
    scheme, separator, address = endpoint.partition("://")
    if not separator or not scheme:
        raise UsageError(f"bad endpoint {endpoint!r}: expected {ENDPOINT_FORM}")
    if scheme in LOCAL_TRANSPORTS:
        return True
    if scheme != "tcp":
        return False
    return is_loopback_host(tcp_host(endpoint, address))


def tcp_host(endpoint: str, address: str) -> str:
    host, separator, port = address.rpartition(":")
    if not separator or not host or not (port.isdigit() or port == "*"):
        raise UsageError(f"bad endpoint {endpoint!r}: expected {ENDPOINT_FORM}")
    return host.removeprefix("[").removesuffix("]")


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name, an interface name or "*": may reach other machines
        return False


def handshake_refused(monitor_socket: zmq.Socket, timeout_s: float) -> bool:
    """Whether the monitored client socket's CURVE handshake is refused within timeout_s.

    True on HANDSHAKE_FAILED_AUTH; False on HANDSHAKE_SUCCEEDED or when the time runs out.
    """
    # libzmq 4.3.5 emits EVENT_HANDSHAKE_FAILED_AUTH (value 400, the ZAP status) on the client when ZAP refuses.
    deadline = time.monotonic() + timeout_s
    while (remaining_ms := int((deadline - time.monotonic()) * 1000)) > 0:
        if not monitor_socket.poll(remaining_ms):
            break
        event = recv_monitor_message(monitor_socket)["event"]
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return True
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            return False
    return False
