"""Optional storage, queue and lock backends, one subpackage each."""
