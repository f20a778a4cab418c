"""What the service's HTML pages (the model card, the monitoring page) share: escaping, and a
Content-Security-Policy that lets a page use its own inline style and nothing else."""

import base64
import hashlib
import html


def text(value: object) -> str:
    """Any value as HTML text: everything a page shows is data, escaped, never markup."""
    return html.escape(str(value))


def content_security_policy(style: str) -> str:
    """A policy allowing exactly the page's own ``<style>`` element (by its SHA-256) and nothing else: no
    script, image, font, frame or form."""
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )
