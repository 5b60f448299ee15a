"""The ``hvsa`` command line. Thin: parse into a namespace, call the core, present."""
