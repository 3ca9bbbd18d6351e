"""Clarion: a self-hosted push-marketing engine."""

__version__ = "0.1.0"
