"""``lightonml.cmd_line``: the ``opu_test`` self-test."""
