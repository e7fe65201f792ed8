# requires: host
"""A fresh running host and waiting ``workflow_id`` (see ``host``), for a page whose earlier block
stopped its own host."""

host, workflow_id = start_docs_host()
