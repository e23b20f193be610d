"""Readers of public preference datasets, one module per dataset family: each holds its
adapters (native rows -> candidate pairs or quarantine records) and its `FORMATS` entries,
which :mod:`rlhf.preferences.formats` collects into the one registry."""
