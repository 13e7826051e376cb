"""The Host/Origin names of an app are computed once (api.app): the Host allow-list and /mcp share them, so the
warning that the check is off (bound to every interface without RAG_PUBLIC_URL) is written once, not twice."""

import logging

from api.app import create_app
from api.settings import ServerSettings


def test_the_dns_rebinding_warning_is_written_once_per_app(service, caplog):
    with caplog.at_level(logging.WARNING, logger="api.security"):
        app = create_app(server_settings=ServerSettings(host="0.0.0.0"), service=service, check_host=True)
    warnings = [r for r in caplog.records if "DNS-rebinding protection is off" in r.getMessage()]
    assert len(warnings) == 1
    assert app.state.transport_security.enable_dns_rebinding_protection is False
