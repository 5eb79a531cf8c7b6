"""DDSP timbre transfer (ddsp 3.7.0): ``[pdbridge.ddsp]``. See docs/models/ddsp.md.

Importing this package makes ``import ddsp`` work without the crepe package (see
:mod:`.crepe_module`), so import it before ddsp.
"""
from .crepe_module import install as _install_crepe

_install_crepe()
