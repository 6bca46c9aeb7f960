"""WSO2 estates as they are: the secure vault that holds their passwords.

:class:`SecureVault` reads a product home's own secure-vault configuration
(deployment.toml ``[secrets]``, ``cipher-text.properties``, ``secret-conf.properties``
and the internal keystore) and decrypts what WSO2's cipher tool encrypted. Pass it as
``secret_resolver=`` to :meth:`mtls.SSLProfileSet.from_deployment_toml` or
:meth:`mtls.SSLProfileSet.from_xml`; both use it on their own when the estate
configures a vault. See docs/secure-vault.md.
"""

from ._errors import SecureVaultError
from ._vault import PASSWORD_ENV, SecureVault, VaultEntry

__all__ = ["PASSWORD_ENV", "SecureVault", "SecureVaultError", "VaultEntry"]

for _name in ("SecureVault", "VaultEntry"):
    globals()[_name].__module__ = __name__
del _name
