"""Our custom JupyterHub scopes: what the lease service lets their holders do.

The hub defines them (``c.JupyterHub.custom_scopes``) and grants them through roles: admins and
the ``opu-tutor`` role (OPUHUB_LEASE_TUTORS) hold both. The lease service checks them in the
caller's token, never the admin flag, so an operator can let a workshop tutor revoke without
making them admin (e.g. a role in jupyterhub_config.d granting REVOKE to a group).
"""

REVOKE = "custom:opu-lease:revoke"
READ_USAGE = "custom:opu-lease:read-usage"

CUSTOM_SCOPES = {
    REVOKE: {"description": "End anyone's OPU lease (their server is stopped, files kept)."},
    READ_USAGE: {"description": "Read every user's OPU seconds from the lease service."},
}
