"""Reporting: the pictures (``plots``) and the self-contained HTML page (``html``)."""
