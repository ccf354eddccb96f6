"""The bridge's CURVE keys on real ZeroMQ sockets on loopback: who is let in, who is refused, and how
the certificate files are written and read."""

from __future__ import annotations

import contextlib
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zmq
import zmq.auth

from agentproxy.bridge.keys import (
    AuthorizedKeys,
    authorized_keys_dir,
    handshake_refused,
    is_loopback,
    keygen,
    make_client_secure,
    make_server_secure,
    public_key_text,
    start_authenticator,
    supervisor_keys,
)
from agentproxy.errors import UsageError

pytestmark = pytest.mark.timeout(30)

HANDSHAKE_TIMEOUT_S = 5.0
RECEIVE_TIMEOUT_MS = 5000
NO_DELIVERY_WAIT_MS = 300


@dataclass
class Supervisor:
    """A CURVE ROUTER on a random loopback port, guarded by the authorized-keys directory."""

    endpoint: str
    router: zmq.Socket
    public_file: Path
    authorized: Path
    refused: list[str] = field(default_factory=list)


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)  # closes every socket the test opened, then terminates


@pytest.fixture
def supervisor(context: zmq.Context, tmp_path: Path) -> Iterator[Supervisor]:
    config = tmp_path / "config"
    public_file, secret_file, _ = supervisor_keys(config)
    refused: list[str] = []
    authorized = authorized_keys_dir(config)
    authenticator = start_authenticator(context, AuthorizedKeys(authorized, refused.append))
    router = context.socket(zmq.ROUTER)
    make_server_secure(router, secret_file)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    yield Supervisor(f"tcp://127.0.0.1:{port}", router, public_file, authorized, refused)
    router.close(linger=0)
    authenticator.stop()


def connect_worker(context: zmq.Context, supervisor: Supervisor, secret_file: Path) -> tuple[zmq.Socket, zmq.Socket]:
    """A worker's DEALER, connected, and the monitor that sees its handshake."""
    dealer = context.socket(zmq.DEALER)
    dealer.linger = 0
    make_client_secure(dealer, secret_file, supervisor.public_file)
    monitor = dealer.get_monitor_socket()
    dealer.connect(supervisor.endpoint)
    return dealer, monitor


def authorize(supervisor: Supervisor, public_file: Path) -> None:
    shutil.copy(public_file, supervisor.authorized / public_file.name)


def assert_round_trip(supervisor: Supervisor, dealer: zmq.Socket) -> None:
    dealer.send(b"hello")
    assert supervisor.router.poll(RECEIVE_TIMEOUT_MS), "the supervisor never got the worker's message"
    routing_id, body = supervisor.router.recv_multipart()
    assert body == b"hello"
    supervisor.router.send_multipart([routing_id, b"welcome"])
    assert dealer.poll(RECEIVE_TIMEOUT_MS), "the worker never got the supervisor's reply"
    assert dealer.recv() == b"welcome"


def secret_text(secret_file: Path) -> str:
    _, secret = zmq.auth.load_certificate(secret_file)
    assert secret is not None
    return secret.decode("ascii")


def test_an_authorized_worker_completes_the_handshake_and_a_round_trip(
    context: zmq.Context, supervisor: Supervisor, tmp_path: Path
) -> None:
    public_file, secret_file = keygen(tmp_path / "worker-keys")
    authorize(supervisor, public_file)
    dealer, monitor = connect_worker(context, supervisor, secret_file)

    assert handshake_refused(monitor, HANDSHAKE_TIMEOUT_S) is False
    assert_round_trip(supervisor, dealer)
    assert supervisor.refused == []


def test_an_unknown_worker_is_refused_at_the_handshake_and_its_key_reported(
    context: zmq.Context, supervisor: Supervisor, tmp_path: Path
) -> None:
    public_file, secret_file = keygen(tmp_path / "stranger-keys")
    dealer, monitor = connect_worker(context, supervisor, secret_file)
    # A refused session is never reconnected: once it is gone a blocking send would wait forever.
    with contextlib.suppress(zmq.Again):
        dealer.send(b"let me in", zmq.NOBLOCK)

    assert handshake_refused(monitor, HANDSHAKE_TIMEOUT_S) is True
    assert supervisor.refused == [public_key_text(public_file)]
    assert supervisor.router.poll(NO_DELIVERY_WAIT_MS) == 0


def test_a_key_dropped_in_while_the_supervisor_runs_is_allowed_afterwards(
    context: zmq.Context, supervisor: Supervisor, tmp_path: Path
) -> None:
    public_file, secret_file = keygen(tmp_path / "late-keys")
    _, refused_monitor = connect_worker(context, supervisor, secret_file)
    assert handshake_refused(refused_monitor, HANDSHAKE_TIMEOUT_S) is True

    authorize(supervisor, public_file)
    dealer, monitor = connect_worker(context, supervisor, secret_file)

    assert handshake_refused(monitor, HANDSHAKE_TIMEOUT_S) is False
    assert_round_trip(supervisor, dealer)


def test_a_secret_certificate_in_the_authorized_directory_allows_nobody(
    context: zmq.Context, supervisor: Supervisor, tmp_path: Path
) -> None:
    _, secret_file = keygen(tmp_path / "worker-keys")
    shutil.copy(secret_file, supervisor.authorized / secret_file.name)
    _, monitor = connect_worker(context, supervisor, secret_file)

    assert handshake_refused(monitor, HANDSHAKE_TIMEOUT_S) is True


def test_a_broken_certificate_in_the_authorized_directory_does_not_hide_the_good_ones(tmp_path: Path) -> None:
    directory = tmp_path / "workers.d"
    public_file, _ = keygen(directory, "good")
    (directory / "broken.key").write_text("not a certificate\n")
    refused: list[str] = []
    keys = AuthorizedKeys(directory, refused.append)

    assert keys.callback("*", public_key_text(public_file).encode("ascii")) is True
    assert refused == []


def test_keygen_writes_a_private_pair_as_zmq_auth_does(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "keys"
    public_file, secret_file = keygen(directory, "node-1")

    assert (public_file.name, secret_file.name) == ("node-1.key", "node-1.key_secret")
    assert sorted(path.name for path in directory.iterdir()) == ["node-1.key", "node-1.key_secret"]
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    public, no_secret = zmq.auth.load_certificate(public_file)
    same_public, secret = zmq.auth.load_certificate(secret_file)
    assert no_secret is None
    assert same_public == public
    assert secret is not None
    assert public_key_text(public_file) == public.decode("ascii")
    assert "ZeroMQ CURVE **Secret** Certificate" in secret_file.read_text()


def test_keygen_refuses_to_overwrite_an_existing_pair(tmp_path: Path) -> None:
    public_file, secret_file = keygen(tmp_path / "keys")
    before = secret_file.read_bytes()

    with pytest.raises(UsageError, match="already exists"):
        keygen(tmp_path / "keys")
    assert secret_file.read_bytes() == before
    public_file.unlink()
    with pytest.raises(UsageError, match="already exists"):
        keygen(tmp_path / "keys")


def test_the_supervisor_pair_is_made_once_then_reused(tmp_path: Path) -> None:
    config = tmp_path / "config"
    public_file, secret_file, created = supervisor_keys(config)
    again_public, again_secret, created_again = supervisor_keys(config)

    assert (created, created_again) == (True, False)
    assert (again_public, again_secret) == (public_file, secret_file)
    assert public_file == config / "bridge" / "supervisor.key"
    assert stat.S_IMODE(public_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_the_authorized_keys_directory_is_created_private(tmp_path: Path) -> None:
    directory = authorized_keys_dir(tmp_path / "config")

    assert directory == tmp_path / "config" / "workers.d"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.3.2.1:5555", True),
        ("tcp://[::1]:5555", True),
        ("tcp://localhost:5555", True),
        ("tcp://127.0.0.1:*", True),
        ("ipc:///tmp/agentproxy.sock", True),
        ("inproc://bridge", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://[::]:5555", False),
        ("tcp://10.0.0.7:5555", False),
        ("tcp://build-host.example.com:5555", False),
        ("tcp://eth0:5555", False),
    ],
)
def test_is_loopback(endpoint: str, local: bool) -> None:
    assert is_loopback(endpoint) is local


@pytest.mark.parametrize("endpoint", ["127.0.0.1:5555", "localhost", "tcp://127.0.0.1", "tcp://:5555", ""])
def test_a_malformed_endpoint_names_the_expected_form(endpoint: str) -> None:
    with pytest.raises(UsageError, match="tcp://HOST:PORT"):
        is_loopback(endpoint)


def test_a_missing_certificate_file_is_a_usage_error(context: zmq.Context, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no certificate file"):
        public_key_text(tmp_path / "absent.key")
    with pytest.raises(UsageError, match="no certificate file"):
        make_server_secure(context.socket(zmq.ROUTER), tmp_path / "absent.key_secret")


def test_a_file_that_is_not_a_certificate_is_a_usage_error(tmp_path: Path) -> None:
    not_a_certificate = tmp_path / "notes.key"
    not_a_certificate.write_text("hello\n")

    with pytest.raises(UsageError, match="not a ZeroMQ certificate"):
        public_key_text(not_a_certificate)


def test_the_wrong_half_of_a_pair_is_a_usage_error_that_never_shows_the_secret(
    context: zmq.Context, tmp_path: Path
) -> None:
    public_file, secret_file = keygen(tmp_path / "keys")
    secret = secret_text(secret_file)
    wrong_halves = [
        (lambda: make_server_secure(context.socket(zmq.ROUTER), public_file), "give the secret one"),
        (lambda: make_client_secure(context.socket(zmq.DEALER), public_file, public_file), "give the secret one"),
        (lambda: make_client_secure(context.socket(zmq.DEALER), secret_file, secret_file), "give the public one"),
        (lambda: public_key_text(secret_file), "give the public one"),
    ]
    for call, expected in wrong_halves:
        with pytest.raises(UsageError, match=expected) as raised:
            call()
        assert secret not in str(raised.value)


def test_a_malformed_secret_key_is_refused_without_being_shown(context: zmq.Context, tmp_path: Path) -> None:
    _, secret_file = keygen(tmp_path / "keys")
    secret = secret_text(secret_file)
    truncated = secret[:-5]
    secret_file.write_text(secret_file.read_text().replace(secret, truncated))

    with pytest.raises(UsageError, match="malformed CURVE key") as raised:
        make_server_secure(context.socket(zmq.ROUTER), secret_file)
    assert truncated not in str(raised.value)


def test_a_key_directory_that_cannot_be_created_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    with pytest.raises(UsageError, match="cannot create key directory"):
        keygen(blocker / "keys")
