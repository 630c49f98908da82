"""One mask for a URL's user:password (report.redact.redact_userinfo), used by --endpoint, --nfs-url and
--node messages alike: a password that itself contains '@' is masked whole, not up to its first '@'."""

from __future__ import annotations

import pytest

from pytest_inference.report.redact import redact_userinfo

PASSWORD = "pa@ss@w0rd"


def _leaks(text: str) -> list[str]:
    return [piece for piece in ("pa@", "ss@", "w0rd", PASSWORD) if piece in text]


def test_the_whole_userinfo_is_masked_even_with_at_signs():
    assert redact_userinfo(f"nfs://admin:{PASSWORD}@10.0.0.5/export") == "nfs://***@10.0.0.5/export"
    assert redact_userinfo(f"see http://u:{PASSWORD}@[fe80::1/v1 and mail me@example.org") == (
        "see http://***@[fe80::1/v1 and mail me@example.org")  # free text around it is left alone


def test_nfs_url_messages():
    from pytest_inference.storage.probe import StorageError, inspect_url

    with pytest.raises(StorageError) as e:
        inspect_url(f"nfs://admin:{PASSWORD}@10.0.0.5/export/llama")
    assert not _leaks(str(e.value)), str(e.value)


def test_node_url_messages():
    from pytest_inference.node.backends import NodeError, backend_from_url

    with pytest.raises(NodeError) as e:
        backend_from_url(f"ssh://root:{PASSWORD}@host")
    assert not _leaks(str(e.value)), str(e.value)


def test_endpoint_messages():
    from pytest_inference.session import UsageError, normalize_endpoint

    with pytest.raises(UsageError) as e:
        normalize_endpoint(f"http://u:{PASSWORD}@[fe80::1/v1")
    assert not _leaks(str(e.value)), str(e.value)
