"""Fixtures shared by the connector tests: emulators run over real HTTP and SMTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from signalflow.emulators.tls import TlsFiles, ensure_tls_files


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA and server certificate shared by every TLS emulator in the run."""
    return ensure_tls_files(Path(tmp_path_factory.mktemp("emulator-tls")))
