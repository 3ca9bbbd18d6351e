"""Segments: rules over contacts, in JSON and text form."""
