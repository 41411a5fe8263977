"""The Textual face of nixmod (``nixmod`` with no verb). Core modules never import this."""
